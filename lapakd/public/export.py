"""Build the public site into a fresh directory, then swap it in atomically.

Layout: `public_dir` is a symlink to `.<public_dir name>.lapakd-build-XXXX` next to it. A
build is written completely (every page, open data, `.manifest.json`), then a temporary symlink
to it replaces `public_dir` with one `os.replace` (rename(2), atomic): a web server whose root
is `public_dir` sees the old site or the new one, never half of one. A failed build is deleted
and the last good site stays. The previous build is kept (requests in flight), older ones are
removed.

Never delete what lapakd did not make: every build holds a marker (`.lapakd-build`, naming its
target) written the moment it is created, and only marked builds of the same target are ever
removed. A target that exists and is not lapakd's (a non-empty folder, a file, a symlink to
anything but a marked build of this target) is refused (`ExportRefused`) before anything is
written: never moved, never deleted. Every name lapakd makes beside the target (builds, the
pages directory, the lock, the temporary symlink) starts with `.<target name>`, so two targets
in one folder never touch each other.

Detail pages (`aduan/<ticket>.html`, one per complaint — 100,000 files) are the exception:
creating or hard-linking that many files per export is too slow, so they live in ONE shared
directory `.<public_dir name>-aduan/` next to the builds, and every build has `aduan` as a
relative symlink to it. A changed page is written aside and renamed over the old one (each
page is always complete), new pages are written before the swap (so no list ever links to a
missing page), and pages of complaints no longer published are deleted after the swap. A
failed export therefore leaves the last good list, statistics and open data, with possibly a
few detail pages already showing the newer state of their complaint.

Incremental: `public_cache` (store) keeps each complaint's published record keyed by what it
was built from (the key is computed in SQL); only changed complaints are rebuilt and only their
detail pages rewritten. `public_index`, a narrow table, holds the key and the statistics fields
as columns (statistics and filters are computed in SQL) and `public_blocks` holds, per archive
block of 100 complaints, the block's part of aduan.json, aduan.csv and data/cari.json, so the
open data is concatenated from 1,000 cached blocks instead of re-serialized. `.manifest.json`
(in each build) maps each file to a content key; an unchanged build file is hard-linked from the
previous build. The pages directory holds a token (`.lapakd-pages`) that `public_state` also
records: if they differ (directory deleted, another target, or another target exported since:
only the last target's row is kept), every page is rebuilt.

Full builds (and any run with many changed complaints) build records and render pages in a
pool of worker processes (one per CPU, fork), each reading the store on its own connection and
writing its own pages; the parent writes the cache and the aggregate files.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.resources
import json
import multiprocessing
import multiprocessing.pool
import os
import secrets
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import structlog
from jinja2 import Environment, PackageLoader, select_autoescape

from lapakd.errors import LapakdError
from lapakd.lifecycle import boilerplate
from lapakd.public import model, photos, stats
from lapakd.routing import kecamatan as kec
from lapakd.store import iso, utcnow

if TYPE_CHECKING:
    from lapakd.app import Desk

log = structlog.get_logger("lapakd.public")

FORMAT = "1"  # bump when the record shape changes (templates and code are hashed anyway)
PAGE_SIZE = 100  # complaints per archive page (halaman/N.html, N=1 is the oldest)
INDEX_ROWS = 50  # newest complaints on index.html
FEED_SIZE = 50
KEEP_BUILDS = 2  # the current one and the previous one
POOL_MIN = 2000  # changed complaints from which a worker pool is used
TASK_BLOCKS = 10  # archive blocks per worker task
PAGES_TOKEN = ".lapakd-pages"
BUILD_MARKER = ".lapakd-build"  # in every build: {"target": <target name>}
PAGES_MARKER = ".lapakd-aduan"  # in the pages directory: {"target": <target name>}
LEGACY_PREFIX = ".public-build-"  # builds before the marker (one prefix for every target)
SITE_FILE_MODE = 0o644  # the web server (another user) reads the site whatever the umask
SITE_DIR_MODE = 0o755
MONTHS = ["Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus",
          "September", "Oktober", "November", "Desember"]


class ExportRefused(LapakdError):
    """The target exists and is not lapakd's: nothing was written, moved or deleted."""


@dataclass
class ExportResult:
    target: Path
    build: Path
    complaints: int
    rebuilt: int  # complaints whose record was rebuilt
    rendered: int  # files written
    reused: int  # files hard-linked from the previous build
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in self.__dict__.items()}


# -- helpers --------------------------------------------------------------------------------


def _code_version(extra: Any) -> str:
    """Hash of the templates, the code that shapes the output and the site settings."""
    h = hashlib.sha256(FORMAT.encode())
    root = importlib.resources.files("lapakd.public")
    for name in ("model.py", "stats.py", "export.py", "photos.py"):
        h.update((root / name).read_bytes())
    h.update(importlib.resources.files("lapakd").joinpath("redact.py").read_bytes())
    h.update(importlib.resources.files("lapakd.lifecycle").joinpath("boilerplate.py").read_bytes())
    mail_templates = importlib.resources.files("lapakd.mail").joinpath("templates")
    for name in boilerplate.TEMPLATES:  # the answer guard's markers come from them
        h.update(mail_templates.joinpath(name).read_bytes())
    tpl = Path(str(root / "templates"))
    for path in sorted(tpl.rglob("*")):
        if path.is_file():
            h.update(path.name.encode() + path.read_bytes())
    h.update(json.dumps(extra, sort_keys=True, ensure_ascii=False).encode())
    return h.hexdigest()[:16]


def _env(tz: ZoneInfo) -> Environment:
    env = Environment(
        loader=PackageLoader("lapakd.public", "templates"),
        autoescape=select_autoescape(["html", "xml"], default_for_string=True, default=True),
        trim_blocks=True, lstrip_blocks=True,
    )

    def local(value: str | None) -> datetime | None:
        return datetime.fromisoformat(value).astimezone(tz) if value else None

    def tanggal(value: str | None) -> str:
        dt = local(value)
        return f"{dt.day} {MONTHS[dt.month - 1][:3]} {dt.year}" if dt else "-"

    def waktu(value: str | None) -> str:
        dt = local(value)
        return f"{dt.day} {MONTHS[dt.month - 1]} {dt.year}, {dt:%H.%M}" if dt else "-"

    def bulan(value: str) -> str:
        year, month = value.split("-")
        return f"{MONTHS[int(month) - 1][:3]} {year}"

    env.filters.update(tanggal=tanggal, waktu=waktu, bulan=bulan)
    env.globals.update(STATUS=model.STATUS_LABELS, CHANNEL=model.CHANNEL_LABELS)
    return env


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def backfill_kecamatan(desk: Desk, limit: int = 100_000,
                       detect: Callable[..., Any] | None = None) -> int:
    """Detect the kecamatan of complaints routed before detection existed ('' = none found).
    `detect`: a `map` (e.g. a process pool's) to spread the detection over CPUs."""
    store = desk.store
    rows = store.all(
        "SELECT id, subject, text FROM complaints WHERE kecamatan IS NULL AND status != 'new'"
        " LIMIT ?", (limit,),
    )
    if not rows:
        return 0
    texts = [f"{r['subject']}\n{r['text']}" for r in rows]
    found = detect(_detect, texts, 1000) if detect else map(_detect, texts)
    values = [(k, r["id"]) for k, r in zip(found, rows, strict=True)]
    with store.transaction() as conn:
        conn.executemany("UPDATE complaints SET kecamatan = ? WHERE id = ?", values)
    return len(values)


class _Builder:
    """Writes one build; reuses unchanged files of the previous build by hard link."""

    def __init__(self, root: Path, prev: Path | None, prev_manifest: dict[str, str]) -> None:
        self.root, self.prev, self.prev_manifest = root, prev, prev_manifest
        self.manifest: dict[str, str] = {}
        self.rendered = self.reused = 0
        self.removed_pages: list[Path] = []

    def file(self, rel: str, key: str | None,
             render: Callable[[], str | bytes | list[bytes]]) -> None:
        dest = self.root / rel
        if key is not None:
            self.manifest[rel] = key
            if self.prev is not None and self.prev_manifest.get(rel) == key:
                try:
                    os.link(self.prev / rel, dest)
                    self.reused += 1
                    return
                except OSError:
                    pass  # missing or another filesystem: render it
        data = render()
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, SITE_FILE_MODE)
        os.fchmod(fd, SITE_FILE_MODE)  # not narrowed by a private umask (UMask=0077)
        with open(fd, "wb") as fh:
            if isinstance(data, list):  # chunks, written without joining them first
                fh.writelines(data)
            else:
                fh.write(data.encode("utf-8") if isinstance(data, str) else data)
        self.rendered += 1


def _key(*parts: Any) -> str:
    return hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()


def build_prefix(target: Path) -> str:
    return f".{target.name}.lapakd-build-"


def _marker(folder: Path, name: str) -> str | None:
    """The target named by the marker file `name` in `folder` (None: no readable marker)."""
    try:
        value = json.loads((folder / name).read_text(encoding="utf-8")).get("target")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def _mark(folder: Path, name: str, target: Path) -> None:
    _write(str(folder / name), json.dumps({"target": target.name, "made_by": "lapakd export"})
           .encode("utf-8"))


def _is_build_of(path: Path, target: Path) -> bool:
    """A real directory beside `target`, named and marked as one of its builds."""
    if path.parent != target.parent or path.is_symlink() or not path.is_dir():
        return False
    if not path.name.startswith((build_prefix(target), LEGACY_PREFIX)):
        return False
    return _marker(path, BUILD_MARKER) == target.name


def _refuse(target: Path, what: str) -> ExportRefused:
    return ExportRefused(
        f"{target} {what} that lapakd did not make; the export will not replace it (nothing "
        "was moved or deleted): export to a new or empty folder, or move it away first")


def _empty(folder: Path) -> bool:
    with os.scandir(folder) as entries:
        return next(entries, None) is None


def check_target(target: Path) -> Path | None:
    """The live build `target` points at (None: no site yet), or ExportRefused when `target`
    exists and is not lapakd's own.

    lapakd's own: a symlink whose value is a plain name of one of this target's builds, either
    marked for this target or gone (dangling). A build of the old layout (`.public-build-*`
    with its `.manifest.json`, the one the target points at) is adopted: marked for it.
    Absent or an empty folder: no site yet (the empty folder is replaced by the symlink)."""
    if target.is_symlink():
        value = os.readlink(target)
        build = target.parent / value
        if "/" in value or not value.startswith((build_prefix(target), LEGACY_PREFIX)):
            raise _refuse(target, f"is a symlink (to {value})")
        if not os.path.lexists(build):
            return None  # our link, its build gone: the next build replaces it
        if _is_build_of(build, target):
            return build
        if (value.startswith(LEGACY_PREFIX) and not build.is_symlink() and build.is_dir()
                and _marker(build, BUILD_MARKER) is None
                and (build / ".manifest.json").is_file()):
            _mark(build, BUILD_MARKER, target)  # the old layout: this target's live build
            return build
        raise _refuse(target, f"is a symlink (to {value}, no build of this site)")
    if not os.path.lexists(target):
        return None
    if target.is_dir():
        if _empty(target):
            return None
        raise _refuse(target, "is a folder with files in it")
    raise _refuse(target, "is a file")


def _check_pages_dir(pages_dir: Path, target: Path) -> None:
    """The shared detail pages directory: made here, or lapakd's for this target."""
    if pages_dir.is_symlink() or (os.path.lexists(pages_dir) and not pages_dir.is_dir()):
        raise _refuse(pages_dir, "is not a folder")
    if not pages_dir.exists():
        pages_dir.mkdir()
        _mark(pages_dir, PAGES_MARKER, target)
        return
    marker = _marker(pages_dir, PAGES_MARKER)
    if marker == target.name:
        return
    if marker is None and ((pages_dir / PAGES_TOKEN).is_file() or _empty(pages_dir)):
        _mark(pages_dir, PAGES_MARKER, target)  # made before the marker existed, or empty
        return
    raise _refuse(pages_dir, "is a folder with files in it")


def swap(target: Path, build: Path) -> None:
    """Point `target` at `build` with one atomic rename of a symlink."""
    link = target.parent / f".{target.name}.lapakd-link-{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(link)
    os.symlink(build.name, link)
    try:
        check_target(target)  # again, at the last moment: never replace what is not ours
        if target.is_dir() and not target.is_symlink():
            os.rmdir(target)  # empty (checked); rmdir never removes a file in it
        os.replace(link, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(link)
        raise


def _cleanup(target: Path, keep: set[Path]) -> None:
    """Remove this target's older builds: only those marked for it, never anything else."""
    for old in target.parent.iterdir():
        if old.name.startswith((build_prefix(target), LEGACY_PREFIX)) \
                and _is_build_of(old, target) and old.resolve() not in keep:
            shutil.rmtree(old, ignore_errors=True)


# -- the export -----------------------------------------------------------------------------


def export(desk: Desk, out: str | os.PathLike[str] | None = None, *, full: bool = False,
           now: datetime | None = None) -> ExportResult:
    started = time.monotonic()
    target = Path(out) if out else desk.config.public_dir
    target = Path(os.path.abspath(target))  # `.` and `..` too; the last part is not resolved
    if target.parent == target:
        raise _refuse(target, "is the root folder")
    _make_dirs(target.parent)
    with _locked(target.parent / f".{target.name}.lock"):
        return _export(desk, target, full=full, now=now, started=started)


def _make_dirs(folder: Path) -> None:
    """mkdir -p, the folders made readable by the web server whatever the umask."""
    if folder.is_dir():
        return
    _make_dirs(folder.parent)
    with contextlib.suppress(FileExistsError):
        folder.mkdir()
        os.chmod(folder, SITE_DIR_MODE)


# Worker context: set by the parent before the pool forks (workers inherit it), or used
# in-process for small runs.
_CTX: dict[str, Any] = {}


def _pool() -> multiprocessing.pool.Pool:
    """Worker processes (fork) that die with their parent. They hold no lock of the store:
    `lapakd.store` closes the inherited runner and writer locks in every forked child."""
    return multiprocessing.get_context("fork").Pool(
        os.cpu_count() or 1, initializer=_worker_init, initargs=(os.getpid(),))


def _worker_init(parent: int) -> None:
    from lapakd.delivery.sender import _die_with_parent

    _die_with_parent(parent)  # PR_SET_PDEATHSIG: a SIGKILLed runner leaves no worker behind


def _conn() -> sqlite3.Connection:
    if _CTX.get("pid") != os.getpid():  # a forked worker: its own connection
        _CTX["conn"] = sqlite3.connect(_CTX["db"], timeout=30)
        _CTX["conn"].execute("PRAGMA busy_timeout=30000")
        _CTX["pid"] = os.getpid()
    return _CTX["conn"]


def _write(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, SITE_FILE_MODE)
    try:
        os.fchmod(fd, SITE_FILE_MODE)  # not narrowed by a private umask (UMask=0077)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def _detect(text: str) -> str:
    return kec.detect(text) or ""


def _work(blocks: list[tuple[int, list[int], list[int], bool, bool]]) -> dict[str, Any]:
    """Build and render some archive blocks: (n, member ids, stale ids, render halaman/n.html,
    make the open-data parts). Stale complaints get a new record, cache row and detail page."""
    c = _CTX
    conn = _conn()
    stale = [cid for b in blocks for cid in b[2]]
    built = model.build_records(conn, stale, c["now"], photos=c["photos"])
    cached: dict[int, tuple[str, str, str]] = {}
    wanted = [cid for n, ids, _s, page, data in blocks if page or data
              for cid in ids if cid not in built]
    for chunk in model._chunks(wanted):
        marks = ",".join("?" * len(chunk))
        for cid, record, csv_line, row in conn.execute(
            f"SELECT complaint_id, record, csv, row FROM public_cache"
            f" WHERE complaint_id IN ({marks})", chunk
        ):
            cached[cid] = (record, csv_line, row)
    detail = c["env"].get_template("detail.html")
    common = c["common"]
    pages_dir = c["pages_dir"]
    tmp = f"{pages_dir}/.tmp-{os.getpid()}"
    tz = c["tz"]
    entries = []
    fresh: dict[int, tuple[str, str, list[Any]]] = {}
    for cid in stale:
        pc = built[cid]
        r = pc.record
        row = pc.row()
        record_s = json.dumps(r, ensure_ascii=False)
        csv_s = pc.csv_line()
        fresh[cid] = (record_s, csv_s, row)
        received = datetime.fromisoformat(r["received_at"]).astimezone(tz)
        entries.append((
            cid, c["keys"][cid], record_s, csv_s, json.dumps(row, ensure_ascii=False), r["id"],
            r["received_at"], f"{received.year:04d}-{received.month:02d}", r["channel"],
            r["category"], json.dumps(r["agencies"], ensure_ascii=False), r["kecamatan"],
            r["status"], int(r["overdue"]), pc.first_answer_at, int(pc.settled),
        ))
        html = detail.render(c=r, timeline=pc.timeline, photos=pc.photos, root="../",
                             **common)
        _write(tmp, html.encode("utf-8"))
        os.replace(tmp, f"{pages_dir}/{r['id']}.html")
    listing = c["env"].get_template("page.html")
    parts = []
    written = 0
    for n, ids, _stale, page, data in blocks:
        newest = list(reversed(ids))

        def row_of(cid: int) -> list[Any]:
            return fresh[cid][2] if cid in fresh else json.loads(cached[cid][2])

        if page:
            rows = [dict(zip(model.ROW_FIELDS, row_of(cid), strict=True)) for cid in newest]
            html = listing.render(rows=rows, page=n, pages=c["pages"], root="../", **common)
            _write(f"{c['build']}/halaman/{n}.html", html.encode("utf-8"))
            written += 1
        if data:
            def part(i: int, newest: list[int] = newest) -> list[str]:
                out = []
                for cid in newest:
                    if cid in fresh:
                        f = fresh[cid]
                        out.append(f[i] if i < 2 else json.dumps(f[2], ensure_ascii=False))
                    else:
                        out.append(cached[cid][i])
                return out
            parts.append((n, c["data_keys"][n], ",\n".join(part(0)).encode("utf-8"),
                          "".join(part(1)).encode("utf-8"), ",\n".join(part(2)).encode("utf-8")))
    return {"entries": entries, "parts": parts, "pages": written, "details": len(stale)}


def _export(desk: Desk, target: Path, *, full: bool, now: datetime | None,
            started: float) -> ExportResult:
    cfg = desk.config
    tz = cfg.tz
    conn = desk.store.conn
    now_s = iso(now or utcnow())
    assert now_s is not None
    try:
        agency_names = {k: a.name for k, a in desk.rules.agencies.items()}
    except Exception:  # noqa: BLE001 - broken rules must not stop publication
        agency_names = {}
    site = {
        "name": cfg.desk.name, "url": cfg.desk.public_url.rstrip("/"),
        "photos": bool(cfg.public.publish_photos),
    }
    version = _code_version({"agencies": agency_names, "site": site, "tz": str(tz)})
    env = _env(tz)
    common = {"site": site, "agency_names": agency_names, "generated_at": now_s}

    prev = check_target(target)  # refused before anything is written
    # The detail pages directory, and whether the cache describes it (else: rebuild all).
    pages_dir = target.parent / f".{target.name}-aduan"
    _check_pages_dir(pages_dir, target)
    os.chmod(pages_dir, SITE_DIR_MODE)
    state_name = f"pages:{pages_dir}"
    stored = conn.execute("SELECT value FROM public_state WHERE name = ?",
                          (state_name,)).fetchone()
    try:
        token = (pages_dir / PAGES_TOKEN).read_text(encoding="utf-8").strip()
    except OSError:
        token = ""
    if not token or stored is None or stored[0] != token:
        full = True
    if full:
        token = secrets.token_hex(8)

    _CTX.clear()
    _CTX.update(db=str(desk.store.path), conn=conn, pid=os.getpid(), now=now_s,
                photos=site["photos"], env=env, common=common, pages_dir=str(pages_dir), tz=tz)
    pool = None
    try:
        pending = conn.execute(
            "SELECT COUNT(*) FROM complaints WHERE kecamatan IS NULL AND status != 'new'"
        ).fetchone()[0]
        if pending >= POOL_MIN:
            pool = _pool()
        backfill_kecamatan(desk, detect=pool.map if pool else None)
        if pool is not None:  # forked before the context below was complete
            pool.close()
            pool.join()
            pool = None

        # 1. Which complaints changed (keys in SQL), and the archive blocks they fall in.
        sources = model.source_keys(conn, now_s, version)
        order = [cid for cid, _k, _c in sources]  # oldest first
        keys = {cid: key for cid, key, _c in sources}
        stale_set = {cid for cid, key, cached in sources if full or cached != key}
        published = set(order)
        gone = [cid for (cid,) in conn.execute("SELECT complaint_id FROM public_index")
                if cid not in published]
        pages = max(1, (len(order) + PAGE_SIZE - 1) // PAGE_SIZE)
        if prev is not None and not prev.is_dir():
            prev = None
        prev_manifest: dict[str, str] = {}
        if prev is not None and not full:
            with contextlib.suppress(OSError, ValueError):
                prev_manifest = json.loads(
                    (prev / ".manifest.json").read_text(encoding="utf-8"))
        old_parts = {} if full else dict(conn.execute("SELECT n, key FROM public_blocks"))
        build = Path(tempfile.mkdtemp(prefix=build_prefix(target), dir=target.parent))
        try:
            _mark(build, BUILD_MARKER, target)  # first: only marked builds are ever removed
            os.chmod(build, SITE_DIR_MODE)
            for sub in ("halaman", "data", "static", "foto"):
                (build / sub).mkdir()
                os.chmod(build / sub, SITE_DIR_MODE)
            os.symlink(f"../{pages_dir.name}", build / "aduan")
            b = _Builder(build, prev, prev_manifest)
            work = []
            data_keys: dict[int, str] = {}
            for n in range(1, pages + 1):
                ids = order[(n - 1) * PAGE_SIZE:n * PAGE_SIZE]
                member_keys = [keys[c] for c in ids]
                rel = f"halaman/{n}.html"
                page_key = _key(version, n, n == pages, *member_keys)
                data_keys[n] = _key(version, *member_keys)
                b.manifest[rel] = page_key
                stale = [c for c in ids if c in stale_set]
                page = True
                if prev is not None and prev_manifest.get(rel) == page_key:
                    try:
                        os.link(prev / rel, build / rel)
                        b.reused += 1
                        page = False
                    except OSError:
                        pass
                data = old_parts.get(n) != data_keys[n]
                if stale or page or data:
                    work.append((n, ids, stale, page, data))
            _CTX.update(keys=keys, build=str(build), pages=pages, data_keys=data_keys)
            b.reused += len(order) - len(stale_set)  # detail pages left alone

            # 2. Records, detail pages, archive pages and open-data parts of changed blocks.
            if pool is None and len(stale_set) >= POOL_MIN:
                pool = _pool()
            tasks = [work[i:i + TASK_BLOCKS] for i in range(0, len(work), TASK_BLOCKS)]
            results = pool.imap_unordered(_work, tasks) if pool else map(_work, tasks)
            entries, parts = [], []
            for res in results:
                entries += res["entries"]
                parts += res["parts"]
                b.rendered += res["pages"] + res["details"]
            if pool is not None:
                pool.close()
                pool.join()
                pool = None
            _write(str(pages_dir / PAGES_TOKEN), token.encode())
            removed = []
            with desk.store.transaction() as tx:
                for chunk in model._chunks(gone):
                    marks = ",".join("?" * len(chunk))
                    removed += [t for (t,) in tx.execute(
                        f"SELECT ticket FROM public_index WHERE complaint_id IN ({marks})",
                        chunk) if t]
                    for table in ("public_cache", "public_index"):
                        tx.execute(f"DELETE FROM {table} WHERE complaint_id IN ({marks})",
                                   chunk)
                if full:
                    tx.execute("DELETE FROM public_cache")
                    tx.execute("DELETE FROM public_index")
                tx.executemany(
                    "INSERT OR REPLACE INTO public_cache (complaint_id, source_key, record, csv,"
                    " row) VALUES (?, ?, ?, ?, ?)", [e[:5] for e in entries])
                tx.executemany(
                    "INSERT OR REPLACE INTO public_index (complaint_id, source_key, ticket,"
                    " received_at, month, channel, category, agencies, kecamatan, status,"
                    " overdue, first_answer_at, settled) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    [e[:2] + e[5:] for e in entries])
                tx.executemany("INSERT OR REPLACE INTO public_blocks (n, key, json, csv, cari)"
                               " VALUES (?, ?, ?, ?, ?)", parts)
                tx.execute("DELETE FROM public_blocks WHERE n > ?", (pages,))
                tx.execute("INSERT OR REPLACE INTO public_state (name, value) VALUES (?, ?)",
                           (state_name, token))
                # The cache now describes this target's pages only: another target's pages
                # are rebuilt in full at its next export.
                tx.execute("DELETE FROM public_state WHERE name LIKE 'pages:%' AND name != ?",
                           (state_name,))
            del entries, parts
            b.removed_pages = [pages_dir / f"{t}.html" for t in removed]
            _render(desk, b, env, order, agency_names, site, tz, now_s, version, pages,
                    data_keys, common)
            _write(str(build / ".manifest.json"), json.dumps(b.manifest).encode("utf-8"))
            swap(target, build)
        except BaseException:
            shutil.rmtree(build, ignore_errors=True)
            raise
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
        _CTX.clear()
    if full:
        # Pages the cache no longer knows of (it described another target, or the token was
        # lost): every `<ticket>.html` of this target's marked pages directory that is not
        # published now. They were all written here.
        live = {f"{t}.html" for (t,) in conn.execute("SELECT ticket FROM public_index") if t}
        with os.scandir(pages_dir) as entries:
            b.removed_pages += [Path(e.path) for e in entries
                                if e.name.endswith(".html") and e.name not in live]
    for page in b.removed_pages:  # hidden or merged: gone once no list links to it
        with contextlib.suppress(FileNotFoundError):
            page.unlink()
    _cleanup(target, {build.resolve(), *([prev.resolve()] if prev else [])})
    res = ExportResult(
        target=target, build=build, complaints=len(order), rebuilt=len(stale_set),
        rendered=b.rendered, reused=b.reused, seconds=round(time.monotonic() - started, 3),
    )
    log.info("public.exported", **res.as_dict())
    return res


def _render(desk: Desk, b: _Builder, env: Environment, order: list[int],
            agency_names: dict[str, str], site: dict[str, Any], tz: ZoneInfo, now: str,
            version: str, pages: int, data_keys: dict[int, str],
            common: dict[str, Any]) -> None:
    """The aggregate files, from the cache columns and the cached open-data blocks."""
    conn = desk.store.conn

    # Static assets.
    static = importlib.resources.files("lapakd.public") / "templates" / "static"
    for entry in static.iterdir():
        data = entry.read_bytes()
        b.file(f"static/{entry.name}", _key(hashlib.sha1(data).hexdigest()),
               lambda d=data: d)

    if site["photos"]:  # only with publish_photos = true, and without metadata
        for sha, ctype in photos.published(conn, order):
            b.file(photos.rel_path(sha, ctype), _key("photo", photos.VERSION, sha),
                   lambda sha=sha, ctype=ctype: photos.stripped(desk.store, sha, ctype))

    newest_ids = list(reversed(order[-max(INDEX_ROWS, FEED_SIZE):]))
    cached = {}
    for chunk in model._chunks(newest_ids):
        marks = ",".join("?" * len(chunk))
        for cid, record, row in conn.execute(
            f"SELECT complaint_id, record, row FROM public_cache WHERE complaint_id IN ({marks})",
            chunk,
        ):
            cached[cid] = (record, row)
    embedded = [json.loads(cached[c][1]) for c in newest_ids[:INDEX_ROWS]]
    newest = [dict(zip(model.ROW_FIELDS, r, strict=True)) for r in embedded]

    def distinct(column: str) -> list[str]:
        return sorted(v for (v,) in conn.execute(
            f"SELECT DISTINCT {column} FROM public_index") if v)

    facets = {
        "status": distinct("status"),
        "channel": distinct("channel"),
        "category": distinct("category"),
        "agency": sorted((a for (a,) in conn.execute(
            "SELECT DISTINCT je.value FROM public_index p, json_each(p.agencies) je")),
            key=lambda a: agency_names.get(a, a)),
        "kecamatan": distinct("kecamatan"),
    }
    meta = {
        "status": model.STATUS_LABELS, "channel": model.CHANNEL_LABELS,
        "agency": agency_names, "fields": model.ROW_FIELDS, "total": len(order),
        "complete": len(order) <= INDEX_ROWS,
    }
    b.file("index.html", None, lambda: env.get_template("index.html").render(
        rows=newest, pages=pages, total=len(order), facets=facets, meta=meta,
        # the embedded rows let the filters work without another download on small sites
        embedded=embedded, root="", **common))

    # Statistics (in SQL over the cache columns).
    st = stats.compute(conn, agency_names, tz)
    charts = {
        "category": stats.bar_chart(st["per_category"], "Aduan per kategori"),
        "agency": stats.bar_chart(st["per_agency"], "Aduan per instansi"),
        "kecamatan": stats.bar_chart(st["per_kecamatan"], "Aduan per kecamatan", limit=28),
        "month": stats.column_chart(st["per_month"], "Aduan per bulan"),
    }
    b.file("statistik.html", None, lambda: env.get_template("stats.html").render(
        st=st, charts=charts, root="", **common))

    # Open data, newest first: the cached blocks concatenated (hard-linked when unchanged).
    data_key = _key(version, *(data_keys[n] for n in range(1, pages + 1)))
    heads = {
        "json": (b"[\n", b",\n", b"\n]\n"),
        "csv": ((",".join(model.COLUMNS) + "\r\n").encode(), b"", b""),
        "cari": (('{"fields":' + json.dumps(model.ROW_FIELDS) + ',"rows":[\n').encode(),
                 b",\n", b"\n]}\n"),
    }
    for rel, kind in (("aduan.json", "json"), ("aduan.csv", "csv"), ("data/cari.json", "cari")):
        head, sep, tail = heads[kind]

        def concat(kind: str = kind, head: bytes = head, sep: bytes = sep,
                   tail: bytes = tail) -> list[bytes]:
            chunks = [head]
            for (blob,) in conn.execute(
                f"SELECT {kind} FROM public_blocks WHERE n <= ? ORDER BY n DESC", (pages,)
            ):
                if blob:
                    if len(chunks) > 1:
                        chunks.append(sep)
                    chunks.append(blob)
            chunks.append(tail)
            return chunks

        b.file(rel, _key(kind, data_key), concat)
    b.file("instansi.json", None, lambda: json.dumps(
        agency_names, ensure_ascii=False, indent=1, sort_keys=True))
    feed = [json.loads(cached[c][0]) for c in newest_ids[:FEED_SIZE]]
    b.file("feed.xml", None, lambda: env.get_template("feed.xml").render(
        entries=feed, updated=feed[0]["received_at"] if feed else now, **common))
