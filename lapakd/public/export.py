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
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import structlog
from jinja2 import Environment, PackageLoader, select_autoescape

from lapakd import channels, links, statuses
from lapakd.delivery.sender import die_with_parent
from lapakd.errors import LapakdError
from lapakd.lifecycle import boilerplate, ranking
from lapakd.public import model, photos, stats, tilemap
from lapakd.routing import kecamatan as kec
from lapakd.routing.deadlines import DEFAULT_SLA_DAYS, Calendar
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
SHARD_BLOCKS = 10  # archive blocks per search shard: 1,000 complaints, ~350 KB (~60 KB gzip)
SEARCH_DIR = "data/cari"  # the shards and their index.json
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
    for name in ("model.py", "stats.py", "export.py", "photos.py", "tilemap.py",
                 "data/" + tilemap.POPULATION_FILE):
        h.update((root / name).read_bytes())
    h.update(importlib.resources.files("lapakd.lifecycle").joinpath("ranking.py").read_bytes())
    h.update(importlib.resources.files("lapakd").joinpath("redact.py").read_bytes())
    h.update(importlib.resources.files("lapakd.lifecycle").joinpath("boilerplate.py").read_bytes())
    mail_templates = importlib.resources.files("lapakd.mail").joinpath("templates")
    for name in boilerplate.TEMPLATES:  # the answer guard's markers come from them
        h.update(mail_templates.joinpath(name).read_bytes())
    tpl = Path(str(root / "templates"))
    for path in sorted(tpl.rglob("*")):
        if path.is_file():
            h.update(path.name.encode() + path.read_bytes())
    # The names the pages print and the page layout live outside lapakd/public.
    shared = {"statuses": statuses.headings(), "channels": channels.labels(),
              "ticket_path": links.ticket_path("{ticket}")}
    h.update(json.dumps([extra, shared], sort_keys=True, ensure_ascii=False).encode())
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
    env.globals.update(STATUS=statuses.headings(), CHANNEL=channels.labels(),
                       ticket_path=links.ticket_path, ticket_url=links.ticket_url)
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
    die_with_parent(parent)  # PR_SET_PDEATHSIG: a SIGKILLed runner leaves no worker behind


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


@dataclass
class _BuildContext:
    """What the steps of one export share: settings, the target, and what changed.

    Made by `_begin` (settings, refusals, whether to rebuild all); `_plan` fills in which
    complaints changed; the build directory itself is the `_Builder` made by `_start_build`."""

    desk: Desk
    target: Path
    full: bool  # rebuild every record and page
    now: str  # ISO time of this export
    site: dict[str, Any]
    agency_names: dict[str, str]
    version: str  # of the code, templates and settings: part of every key
    env: Environment
    common: dict[str, Any]  # given to every template
    prev: Path | None  # the live build (None: no site yet)
    pages_dir: Path  # the shared detail pages directory
    state_name: str  # its row in public_state
    token: str  # the pages directory's token after this export
    pool: multiprocessing.pool.Pool | None = None
    # Filled by _plan:
    order: list[int] = field(default_factory=list)  # published complaints, oldest first
    keys: dict[int, str] = field(default_factory=dict)  # complaint -> source key
    stale: set[int] = field(default_factory=set)  # complaints whose record is rebuilt
    gone: list[int] = field(default_factory=list)  # published before, not any more
    pages: int = 1  # archive pages (blocks of PAGE_SIZE)
    prev_manifest: dict[str, str] = field(default_factory=dict)
    old_parts: dict[int, str] = field(default_factory=dict)  # block -> key of its cached parts
    data_keys: dict[int, str] = field(default_factory=dict)  # block -> key of its open data

    @property
    def conn(self) -> sqlite3.Connection:
        return self.desk.store.conn

    @property
    def tz(self) -> ZoneInfo:
        return self.desk.config.tz

    def close_pool(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool.join()
            self.pool = None


def _export(desk: Desk, target: Path, *, full: bool, now: datetime | None,
            started: float) -> ExportResult:
    ctx = _begin(desk, target, full=full, now=now)  # refused before anything is written
    _CTX.clear()
    _CTX.update(db=str(desk.store.path), conn=ctx.conn, pid=os.getpid(), now=ctx.now,
                photos=ctx.site["photos"], env=ctx.env, common=ctx.common,
                pages_dir=str(ctx.pages_dir), tz=ctx.tz)
    try:
        _backfill(ctx)
        _plan(ctx)
        files = _start_build(ctx)
        try:
            work = _plan_blocks(ctx, files)
            entries, parts = _build_blocks(ctx, files, work)
            _store_cache(ctx, files, entries, parts)
            del entries, parts
            _render(ctx, files)
            _write(str(files.root / ".manifest.json"), json.dumps(files.manifest).encode("utf-8"))
            swap(target, files.root)
        except BaseException:
            shutil.rmtree(files.root, ignore_errors=True)
            raise
    finally:
        if ctx.pool is not None:
            ctx.pool.terminate()
            ctx.pool.join()
        _CTX.clear()
    _remove_pages(ctx, files)
    _cleanup(target, {files.root.resolve(), *([ctx.prev.resolve()] if ctx.prev else [])})
    res = ExportResult(
        target=target, build=files.root, complaints=len(ctx.order), rebuilt=len(ctx.stale),
        rendered=files.rendered, reused=files.reused,
        seconds=round(time.monotonic() - started, 3),
    )
    log.info("public.exported", **res.as_dict())
    return res


def _begin(desk: Desk, target: Path, *, full: bool, now: datetime | None) -> _BuildContext:
    """The settings of this export; refuses a target or pages directory that is not lapakd's."""
    cfg = desk.config
    tz = cfg.tz
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
    calendar = [cfg.desk.sla_calendar, [str(d) for d in cfg.desk.extra_holidays]]
    version = _code_version({"agencies": agency_names, "site": site, "tz": str(tz),
                             "calendar": calendar})
    env = _env(tz)
    common = {"site": site, "agency_names": agency_names, "generated_at": now_s}

    prev = check_target(target)  # refused before anything is written
    # The detail pages directory, and whether the cache describes it (else: rebuild all).
    pages_dir = target.parent / f".{target.name}-aduan"
    _check_pages_dir(pages_dir, target)
    os.chmod(pages_dir, SITE_DIR_MODE)
    state_name = f"pages:{pages_dir}"
    stored = desk.store.conn.execute("SELECT value FROM public_state WHERE name = ?",
                                     (state_name,)).fetchone()
    try:
        token = (pages_dir / PAGES_TOKEN).read_text(encoding="utf-8").strip()
    except OSError:
        token = ""
    if not token or stored is None or stored[0] != token:
        full = True
    if full:
        token = secrets.token_hex(8)
    return _BuildContext(
        desk=desk, target=target, full=full, now=now_s, site=site, agency_names=agency_names,
        version=version, env=env, common=common, prev=prev, pages_dir=pages_dir,
        state_name=state_name, token=token,
    )


def _backfill(ctx: _BuildContext) -> None:
    """Detect missing kecamatan first (they are part of the records), in a pool when many."""
    pending = ctx.conn.execute(
        "SELECT COUNT(*) FROM complaints WHERE kecamatan IS NULL AND status != 'new'"
    ).fetchone()[0]
    if pending >= POOL_MIN:
        ctx.pool = _pool()
    backfill_kecamatan(ctx.desk, detect=ctx.pool.map if ctx.pool else None)
    ctx.close_pool()  # forked before the worker context was complete


def _plan(ctx: _BuildContext) -> None:
    """1. Which complaints changed (keys in SQL), and what of the previous build is reusable."""
    conn = ctx.conn
    sources = model.source_keys(conn, ctx.now, ctx.version)
    ctx.order = [cid for cid, _k, _c in sources]  # oldest first
    ctx.keys = {cid: key for cid, key, _c in sources}
    ctx.stale = {cid for cid, key, cached in sources if ctx.full or cached != key}
    published = set(ctx.order)
    ctx.gone = [cid for (cid,) in conn.execute("SELECT complaint_id FROM public_index")
                if cid not in published]
    ctx.pages = max(1, (len(ctx.order) + PAGE_SIZE - 1) // PAGE_SIZE)
    if ctx.prev is not None and not ctx.prev.is_dir():
        ctx.prev = None
    if ctx.prev is not None and not ctx.full:
        with contextlib.suppress(OSError, ValueError):
            ctx.prev_manifest = json.loads(
                (ctx.prev / ".manifest.json").read_text(encoding="utf-8"))
    ctx.old_parts = {} if ctx.full else dict(conn.execute("SELECT n, key FROM public_blocks"))


def _start_build(ctx: _BuildContext) -> _Builder:
    """A fresh, marked build directory beside the target."""
    target = ctx.target
    build = Path(tempfile.mkdtemp(prefix=build_prefix(target), dir=target.parent))
    try:
        _mark(build, BUILD_MARKER, target)  # first: only marked builds are ever removed
        os.chmod(build, SITE_DIR_MODE)
        for sub in ("halaman", "data", SEARCH_DIR, "static", "foto", "instansi", "kecamatan"):
            (build / sub).mkdir()
            os.chmod(build / sub, SITE_DIR_MODE)
        os.symlink(f"../{ctx.pages_dir.name}", build / links.TICKET_DIR)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    return _Builder(build, ctx.prev, ctx.prev_manifest)


def _plan_blocks(
    ctx: _BuildContext, files: _Builder
) -> list[tuple[int, list[int], list[int], bool, bool]]:
    """The archive blocks that need work (see `_work`); unchanged archive pages are linked."""
    build, prev = files.root, ctx.prev
    work = []
    for n in range(1, ctx.pages + 1):
        ids = ctx.order[(n - 1) * PAGE_SIZE:n * PAGE_SIZE]
        member_keys = [ctx.keys[c] for c in ids]
        rel = f"halaman/{n}.html"
        page_key = _key(ctx.version, n, n == ctx.pages, *member_keys)
        ctx.data_keys[n] = _key(ctx.version, *member_keys)
        files.manifest[rel] = page_key
        stale = [c for c in ids if c in ctx.stale]
        page = True
        if prev is not None and ctx.prev_manifest.get(rel) == page_key:
            try:
                os.link(prev / rel, build / rel)
                files.reused += 1
                page = False
            except OSError:
                pass
        data = ctx.old_parts.get(n) != ctx.data_keys[n]
        if stale or page or data:
            work.append((n, ids, stale, page, data))
    _CTX.update(keys=ctx.keys, build=str(build), pages=ctx.pages, data_keys=ctx.data_keys)
    files.reused += len(ctx.order) - len(ctx.stale)  # detail pages left alone
    return work


def _build_blocks(
    ctx: _BuildContext, files: _Builder, work: list[tuple[int, list[int], list[int], bool, bool]]
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """2. Records, detail pages, archive pages and open-data parts of changed blocks."""
    if ctx.pool is None and len(ctx.stale) >= POOL_MIN:
        ctx.pool = _pool()
    tasks = [work[i:i + TASK_BLOCKS] for i in range(0, len(work), TASK_BLOCKS)]
    results = ctx.pool.imap_unordered(_work, tasks) if ctx.pool else map(_work, tasks)
    entries, parts = [], []
    for res in results:
        entries += res["entries"]
        parts += res["parts"]
        files.rendered += res["pages"] + res["details"]
    ctx.close_pool()
    return entries, parts


def _store_cache(ctx: _BuildContext, files: _Builder, entries: list[tuple[Any, ...]],
                 parts: list[tuple[Any, ...]]) -> None:
    """The new records, index rows and open-data blocks into the cache, in one transaction;
    the pages of complaints no longer published are noted for removal after the swap."""
    _write(str(ctx.pages_dir / PAGES_TOKEN), ctx.token.encode())
    removed = []
    with ctx.desk.store.transaction() as tx:
        for chunk in model._chunks(ctx.gone):
            marks = ",".join("?" * len(chunk))
            removed += [t for (t,) in tx.execute(
                f"SELECT ticket FROM public_index WHERE complaint_id IN ({marks})",
                chunk) if t]
            for table in ("public_cache", "public_index"):
                tx.execute(f"DELETE FROM {table} WHERE complaint_id IN ({marks})",
                           chunk)
        if ctx.full:
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
        tx.execute("DELETE FROM public_blocks WHERE n > ?", (ctx.pages,))
        tx.execute("INSERT OR REPLACE INTO public_state (name, value) VALUES (?, ?)",
                   (ctx.state_name, ctx.token))
        # The cache now describes this target's pages only: another target's pages
        # are rebuilt in full at its next export.
        tx.execute("DELETE FROM public_state WHERE name LIKE 'pages:%' AND name != ?",
                   (ctx.state_name,))
    files.removed_pages = [ctx.pages_dir / f"{t}.html" for t in removed]


def _remove_pages(ctx: _BuildContext, files: _Builder) -> None:
    """After the swap: delete the detail pages no list links to any more."""
    if ctx.full:
        # Pages the cache no longer knows of (it described another target, or the token was
        # lost): every `<ticket>.html` of this target's marked pages directory that is not
        # published now. They were all written here.
        live = {f"{t}.html" for (t,) in ctx.conn.execute("SELECT ticket FROM public_index")
                if t}
        with os.scandir(ctx.pages_dir) as entries:
            files.removed_pages += [Path(e.path) for e in entries
                                    if e.name.endswith(".html") and e.name not in live]
    for page in files.removed_pages:  # hidden or merged: gone once no list links to it
        with contextlib.suppress(FileNotFoundError):
            page.unlink()


def _render(ctx: _BuildContext, files: _Builder) -> None:
    """The aggregate files, from the cache columns and the cached open-data blocks."""
    conn, env, common = ctx.conn, ctx.env, ctx.common
    order, pages, agency_names = ctx.order, ctx.pages, ctx.agency_names

    # Static assets.
    static = importlib.resources.files("lapakd.public") / "templates" / "static"
    for entry in static.iterdir():
        data = entry.read_bytes()
        files.file(f"static/{entry.name}", _key(hashlib.sha1(data).hexdigest()),
               lambda d=data: d)

    if ctx.site["photos"]:  # only with publish_photos = true, and without metadata
        store = ctx.desk.store
        for sha, ctype in photos.published(conn, order):
            files.file(photos.rel_path(sha, ctype), _key("photo", photos.VERSION, sha),
                   lambda sha=sha, ctype=ctype: photos.stripped(store, sha, ctype))

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
        "status": statuses.headings(), "channel": channels.labels(),
        "agency": agency_names, "fields": model.ROW_FIELDS, "total": len(order),
        "complete": len(order) <= INDEX_ROWS,
    }
    acc = _accountability(ctx)
    files.file("index.html", None, lambda: env.get_template("index.html").render(
        rows=newest, pages=pages, total=len(order), facets=facets, meta=meta,
        # the embedded rows let the filters work without another download on small sites
        embedded=embedded, tiles=acc.tiles, root="", **common))

    # Statistics (in SQL over the cache columns).
    st = stats.compute(conn, agency_names, ctx.tz)
    charts = {
        "category": stats.bar_chart(st["per_category"], "Aduan per kategori"),
        "agency": stats.bar_chart(st["per_agency"], "Aduan per instansi"),
        "kecamatan": stats.bar_chart(st["per_kecamatan"], "Aduan per kecamatan", limit=28),
        "month": stats.column_chart(st["per_month"], "Aduan per bulan"),
    }
    files.file("statistik.html", None, lambda: env.get_template("stats.html").render(
        st=st, charts=charts, agency_rows=acc.rows, periods=acc.periods, tiles=acc.tiles,
        computed_at=acc.computed_at,
        root="", **common))
    _render_accountability(ctx, files, acc)

    # Open data, newest first: the cached blocks concatenated (hard-linked when unchanged).
    data_key = _key(ctx.version, *(ctx.data_keys[n] for n in range(1, pages + 1)))
    heads = {
        "json": (b"[\n", b",\n", b"\n]\n"),
        "csv": ((",".join(model.COLUMNS) + "\r\n").encode(), b"", b""),
    }
    for rel, kind in (("aduan.json", "json"), ("aduan.csv", "csv")):
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

        files.file(rel, _key(kind, data_key), concat)
    _write_search(ctx, files)
    files.file("instansi.json", None, lambda: json.dumps(
        _open_data(ctx, acc), ensure_ascii=False, indent=1))
    feed = [json.loads(cached[c][0]) for c in newest_ids[:FEED_SIZE]]
    files.file("feed.xml", None, lambda: env.get_template("feed.xml").render(
        entries=feed, updated=feed[0]["received_at"] if feed else ctx.now, **common))


def _write_search(ctx: _BuildContext, files: _Builder) -> None:
    """The search data, split into shards the browser loads on demand, newest first.

    One JSON file of search rows per SHARD_BLOCKS archive blocks (`data/cari/<s>.json`, s = 1
    the oldest), concatenated from the cached blocks and hard-linked when unchanged: a new
    complaint rewrites only the newest shard. `data/cari/index.json` lists the shards, newest
    first, each with the facet values it holds, so a filter skips shards that cannot match and
    a search stops once it has a page of hits."""
    conn, pages = ctx.conn, ctx.pages
    shards = (pages + SHARD_BLOCKS - 1) // SHARD_BLOCKS
    previous: dict[int, dict[str, Any]] = {}
    if ctx.prev is not None and not ctx.full:
        with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
            old = json.loads((ctx.prev / SEARCH_DIR / "index.json").read_text(encoding="utf-8"))
            previous = {e["n"]: e for e in old["shards"]}
    listed = []
    for s in range(shards, 0, -1):
        first, last = (s - 1) * SHARD_BLOCKS + 1, min(s * SHARD_BLOCKS, pages)
        key = _key("cari", ctx.version, *(ctx.data_keys[n] for n in range(first, last + 1)))
        rel = f"{SEARCH_DIR}/{s}.json"

        def rows(first: int = first, last: int = last) -> list[bytes]:
            chunks = [b'{"rows":[\n']
            for (blob,) in conn.execute(
                "SELECT cari FROM public_blocks WHERE n BETWEEN ? AND ? ORDER BY n DESC",
                (first, last),
            ):
                if blob:
                    if len(chunks) > 1:
                        chunks.append(b",\n")
                    chunks.append(blob)
            chunks.append(b"\n]}\n")
            return chunks

        files.file(rel, key, rows)
        entry = previous.get(s)
        if entry is None or entry.get("key") != key[:16]:
            ids = ctx.order[(first - 1) * PAGE_SIZE:last * PAGE_SIZE]
            entry = {"n": s, "key": key[:16], **_shard_facets(conn, ids)}
        listed.append(entry)
    index = json.dumps({"fields": model.ROW_FIELDS, "total": len(ctx.order), "shards": listed},
                       ensure_ascii=False, separators=(",", ":"))
    files.file(f"{SEARCH_DIR}/index.json", _key("cari-index", index), lambda: index)


def _shard_facets(conn: sqlite3.Connection, ids: list[int]) -> dict[str, Any]:
    """What one shard holds: its size, its time span and each facet value in it."""
    has: dict[str, set[str]] = {f: set() for f in
                                ("status", "channel", "category", "agency", "kecamatan")}
    count = overdue = 0
    newest = oldest = ""
    for chunk in model._chunks(ids):
        marks = ",".join("?" * len(chunk))
        for status, channel, category, agencies, kecamatan, late, received in conn.execute(
            "SELECT status, channel, category, agencies, kecamatan, overdue, received_at"
            f" FROM public_index WHERE complaint_id IN ({marks})", chunk
        ):
            count += 1
            overdue += int(late or 0)
            has["status"].add(status)
            has["channel"].add(channel)
            has["category"].add(category)
            has["kecamatan"].add(kecamatan)
            has["agency"].update(json.loads(agencies or "[]"))
            newest = max(newest, received or "")
            oldest = min(oldest, received or "") if oldest else (received or "")
    return {"count": count, "overdue": overdue, "newest": newest, "oldest": oldest,
            "has": {f: sorted(v for v in values if v) for f, values in has.items()}}


# -- agencies held to account, the kecamatan map ---------------------------------------------

OPEN_ROWS = 200  # newest open complaints listed on an agency's page, and complaints on a
# kecamatan's page (the full list: the filters of index.html)
RANKING_MINUTES = 60  # the agencies' figures are recomputed at most this often (and at --full)
RANKING_STATE = "ranking"  # their row in public_state


@dataclass
class _Accountability:
    rows: list[dict[str, Any]]  # ranking.ranking() over the published complaints
    computed_at: str  # as of when
    periods: dict[str, str]  # period key -> label
    tiles: dict[str, Any]  # tilemap.tiles()
    agency_rows: dict[str, list[dict[str, Any]]]  # agency -> its newest open complaints' rows
    kecamatan_rows: dict[str, list[dict[str, Any]]]  # kecamatan -> its newest complaints' rows


def _accountability(ctx: _BuildContext) -> _Accountability:
    """The agencies' figures and the map's counts, over the published complaints only (the
    rows of `public_index`, written by this export), as of this export."""
    conn = ctx.conn
    rows, computed_at = _ranking(ctx)
    # Newest first: an agency's open complaints, a kecamatan's complaints (at most OPEN_ROWS
    # each, cut in SQL: at 100,000 complaints Python never walks them all).
    by_agency: dict[str, list[int]] = {}
    for key, cid in conn.execute(
        "SELECT key, cid FROM (SELECT je.value AS key, p.complaint_id AS cid, ROW_NUMBER()"
        " OVER (PARTITION BY je.value ORDER BY p.complaint_id DESC) AS n"
        " FROM public_index p, json_each(p.agencies) je"
        f" WHERE p.status IN ({statuses.sql_list(statuses.WITH_AGENCY)})) WHERE n <= ?"
        " ORDER BY key, cid DESC", (OPEN_ROWS,)
    ):
        by_agency.setdefault(key, []).append(cid)
    # The kecamatan's counts and newest complaints in one pass.
    counts: dict[str, dict[str, int]] = {}
    by_kecamatan: dict[str, list[int]] = {}
    # Counts by a group-by over the kecamatan index; each one's newest by that index too (it
    # holds the rowid, complaint_id, in order): ~2x faster than one window query at 100,000.
    for name, total, late, open_ in conn.execute(
        "SELECT kecamatan, COUNT(*), SUM(overdue),"
        f" SUM(status IN ({statuses.sql_list(statuses.OPEN)}))"
        " FROM public_index WHERE kecamatan IS NOT NULL AND kecamatan != ''"
        " GROUP BY kecamatan"
    ):
        counts[name] = {"total": total, "overdue": late or 0, "open": open_ or 0}
        by_kecamatan[name] = [cid for (cid,) in conn.execute(
            "SELECT complaint_id FROM public_index WHERE kecamatan = ?"
            " ORDER BY complaint_id DESC LIMIT ?", (name, OPEN_ROWS))]
    tiles = tilemap.tiles(counts, "kecamatan/{slug}.html")
    wanted = sorted({c for ids in (*by_agency.values(), *by_kecamatan.values()) for c in ids})
    cached: dict[int, dict[str, Any]] = {}
    for chunk in model._chunks(wanted):
        marks = ",".join("?" * len(chunk))
        for cid, row in conn.execute(
            f"SELECT complaint_id, row FROM public_cache WHERE complaint_id IN ({marks})",
            chunk,
        ):
            cached[cid] = dict(zip(model.ROW_FIELDS, json.loads(row), strict=True))
    return _Accountability(
        rows=rows, computed_at=computed_at,
        periods={p: label for p, (_d, label) in ranking.PERIODS.items()},
        tiles=tiles,
        agency_rows={k: [cached[c] for c in ids if c in cached] for k, ids in by_agency.items()},
        kecamatan_rows={k: [cached[c] for c in ids if c in cached]
                        for k, ids in by_kecamatan.items()},
    )


def _ranking(ctx: _BuildContext) -> tuple[list[dict[str, Any]], str]:
    """The agencies' figures and as of when. A pass over every published complaint (seconds at
    100,000), so they are kept in `public_state` and recomputed only when older than
    RANKING_MINUTES, at a full export, or when the code, rules or calendar changed (version):
    an incremental export stays quick. The pages say as of when."""
    conn = ctx.conn
    row = conn.execute("SELECT value FROM public_state WHERE name = ?",
                       (RANKING_STATE,)).fetchone()
    try:
        kept = json.loads(row[0]) if row else None
        at = kept["computed_at"]
        age = datetime.fromisoformat(ctx.now) - datetime.fromisoformat(at)
        if (not ctx.full and kept["version"] == ctx.version
                and timedelta(0) <= age < timedelta(minutes=RANKING_MINUTES)):
            return kept["rows"], at
    except (ValueError, KeyError, TypeError):
        pass  # none kept, or unreadable: compute
    cfg = ctx.desk.config
    rows = ranking.ranking(
        ranking.load(conn, "SELECT complaint_id FROM public_index"),
        ranking.agencies_of(ctx.desk.rules, DEFAULT_SLA_DAYS), as_of=ctx.now,
        calendar=Calendar.from_settings(cfg.desk), tz=ctx.tz)
    value = json.dumps({"version": ctx.version, "computed_at": ctx.now, "rows": rows})
    with ctx.desk.store.transaction() as tx:
        tx.execute("INSERT OR REPLACE INTO public_state (name, value) VALUES (?, ?)",
                   (RANKING_STATE, value))
    return rows, ctx.now


def _render_accountability(ctx: _BuildContext, files: _Builder, acc: _Accountability) -> None:
    """`instansi/<key>.html` for every agency (in the rules or on a complaint) and
    `kecamatan/<slug>.html` for each of the 27: keyed by what they show, so an unchanged page
    is linked from the previous build."""
    env, common = ctx.env, ctx.common
    ranked = {p: sum(1 for r in acc.rows if r["rank"][p]) for p in acc.periods}
    agency_tpl = env.get_template("agency.html")
    for row in acc.rows:
        if not _safe_name(row["key"]):
            continue  # not a file name (keys come from the rules' checked format)
        rows = acc.agency_rows.get(row["key"], [])
        key = _key(ctx.version, acc.computed_at,
                   json.dumps([row, rows, ranked], sort_keys=True))
        files.file(f"instansi/{row['key']}.html", key,
                   lambda row=row, rows=rows: agency_tpl.render(
                       a=row, rows=rows, periods=acc.periods, ranked=ranked, root="../",
                       computed_at=acc.computed_at,
                       **common))
    kec_tpl = env.get_template("kecamatan.html")
    for tile in acc.tiles["tiles"]:
        rows = acc.kecamatan_rows.get(tile["name"], [])
        key = _key(ctx.version, json.dumps([tile, rows], sort_keys=True))
        files.file(f"kecamatan/{tile['slug']}.html", key,
                   lambda tile=tile, rows=rows: kec_tpl.render(
                       k=tile, rows=rows, root="../", **common))


def _safe_name(key: str) -> bool:
    return bool(key) and all(ch.isalnum() or ch in "_.-" for ch in key) and key[0] != "."


def _open_data(ctx: _BuildContext, acc: _Accountability) -> dict[str, Any]:
    """instansi.json: every agency's figures (the same as the pages), and the names."""
    return {
        "generated_at": ctx.now,
        "computed_at": acc.computed_at,  # the agencies' figures are as of this moment
        "periods": acc.periods,
        "names": ctx.agency_names,
        "agencies": [
            {k: r[k] for k in ("key", "name", "sla_days", "open", "overdue", "rank",
                               "periods", "trend")}
            for r in acc.rows
        ],
        "kecamatan": [
            {k: t[k] for k in ("name", "total", "open", "overdue", "population", "per10k")}
            for t in acc.tiles["ordered"]
        ],
        "population_source": "BPS Kabupaten Banyumas, Kabupaten Banyumas Dalam Angka"
                             f" ({acc.tiles['year']}), perkiraan dibulatkan ke ribuan",
    }
