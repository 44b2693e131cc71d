"""Build the public site into a fresh directory, then swap it in atomically.

Layout: `public_dir` is a symlink to `.public-build-XXXX` next to it. A build is written
completely (every page, open data, `.manifest.json`), then a temporary symlink to it replaces
`public_dir` with one `os.replace` (rename(2), atomic): a web server whose root is `public_dir`
sees the old site or the new one, never half of one. A failed build is deleted and the last
good site stays. The previous build is kept (requests in flight), older ones are removed.

Detail pages (`aduan/<ticket>.html`, one per complaint — 100,000 files) are the exception:
creating or hard-linking that many files per export is too slow, so they live in ONE shared
directory `.<public_dir name>-aduan/` next to the builds, and every build has `aduan` as a
relative symlink to it. A changed page is written aside and renamed over the old one (each
page is always complete), new pages are written before the swap (so no list ever links to a
missing page), and pages of complaints no longer published are deleted after the swap. A
failed export therefore leaves the last good list, statistics and open data, with possibly a
few detail pages already showing the newer state of their complaint.

Incremental: `public_cache` (store) keeps each complaint's published record keyed by what it
was built from; only changed complaints are rebuilt. `.manifest.json` (in each build, and one
in the pages directory) maps each file to a content key; an unchanged build file is
hard-linked from the previous build, an unchanged detail page is left alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.resources
import json
import os
import shutil
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

from lapakd import kecamatan as kec
from lapakd.public import model, photos, stats
from lapakd.store import iso, utcnow

if TYPE_CHECKING:
    from lapakd.app import Desk

log = structlog.get_logger("lapakd.public")

FORMAT = "1"  # bump when the record shape changes (templates and code are hashed anyway)
PAGE_SIZE = 100  # complaints per archive page (halaman/N.html, N=1 is the oldest)
INDEX_ROWS = 50  # newest complaints on index.html
FEED_SIZE = 50
KEEP_BUILDS = 2  # the current one and the previous one
MONTHS = ["Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus",
          "September", "Oktober", "November", "Desember"]


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


def backfill_kecamatan(desk: Desk, limit: int = 100_000) -> int:
    """Detect the kecamatan of complaints routed before detection existed ('' = none found)."""
    store = desk.store
    rows = store.all(
        "SELECT id, subject, text FROM complaints WHERE kecamatan IS NULL AND status != 'new'"
        " LIMIT ?", (limit,),
    )
    if not rows:
        return 0
    values = [
        (kec.detect(f"{r['subject']}\n{r['text']}") or "", r["id"]) for r in rows
    ]
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

    def file(self, rel: str, key: str | None, render: Callable[[], str | bytes]) -> None:
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
        with open(dest, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
        self.rendered += 1


def _key(*parts: Any) -> str:
    return hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()


def current_build(target: Path) -> Path | None:
    if target.is_symlink():
        resolved = target.resolve()
        return resolved if resolved.is_dir() else None
    return target if target.is_dir() else None


def swap(target: Path, build: Path) -> None:
    """Point `target` at `build` with one atomic rename of a symlink."""
    link = target.parent / f".public-link-{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(link)
    os.symlink(build.name, link)
    if target.exists() and not target.is_symlink():
        # A real directory from before: move it aside once (the only non-atomic moment).
        os.rename(target, target.parent / f".public-build-old-{int(time.time())}")
    os.replace(link, target)


def _cleanup(target: Path, keep: set[Path]) -> None:
    for old in sorted(target.parent.glob(".public-build-*"), key=lambda p: p.stat().st_mtime,
                      reverse=True):
        if old.resolve() in keep or not old.is_dir():
            continue
        shutil.rmtree(old, ignore_errors=True)


# -- the export -----------------------------------------------------------------------------


def export(desk: Desk, out: str | os.PathLike[str] | None = None, *, full: bool = False,
           now: datetime | None = None) -> ExportResult:
    started = time.monotonic()
    target = Path(out) if out else desk.config.public_dir
    target = target.parent.absolute() / target.name
    target.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target.parent / f".{target.name}.lock"):
        return _export(desk, target, full=full, now=now, started=started)


def _export(desk: Desk, target: Path, *, full: bool, now: datetime | None,
            started: float) -> ExportResult:
    cfg = desk.config
    tz = cfg.tz
    conn = desk.store.conn
    now_s = iso(now or utcnow())
    assert now_s is not None
    backfill_kecamatan(desk)
    try:
        agency_names = {k: a.name for k, a in desk.rules.agencies.items()}
    except Exception:  # noqa: BLE001 - broken rules must not stop publication
        agency_names = {}
    site = {
        "name": cfg.desk.name, "url": cfg.desk.public_url.rstrip("/"),
        "photos": bool(cfg.public.publish_photos),
    }
    version = _code_version({"agencies": agency_names, "site": site, "tz": str(tz)})

    # 1. Records: rebuild only complaints whose sources changed.
    sources = model.source_keys(conn, now_s, version)
    cache: dict[int, tuple[str, str, str, str]] = {
        r[0]: (r[1], r[2], r[3], r[4])
        for r in conn.execute("SELECT complaint_id, source_key, record, csv, row FROM public_cache")
    }
    stale = [s.id for s in sources if full or cache.get(s.id, ("",))[0] != s.key]
    built = model.build_records(conn, stale, now_s, photos=site["photos"])
    keys = {s.id: s.key for s in sources}
    fresh_rows = []
    for cid, pc in built.items():
        entry = (keys[cid], json.dumps(pc.record, ensure_ascii=False), pc.csv_line(),
                 json.dumps(pc.row(), ensure_ascii=False))
        cache[cid] = entry
        fresh_rows.append((cid, *entry))
    published = {s.id for s in sources}
    gone = [cid for cid in cache if cid not in published]
    with desk.store.transaction() as tx:
        tx.executemany(
            "INSERT OR REPLACE INTO public_cache (complaint_id, source_key, record, csv, row)"
            " VALUES (?, ?, ?, ?, ?)", fresh_rows,
        )
        tx.executemany("DELETE FROM public_cache WHERE complaint_id = ?", [(c,) for c in gone])
    for cid in gone:
        del cache[cid]
    order = [s.id for s in sources]  # oldest first

    # 2. The build.
    prev = current_build(target)
    prev_manifest: dict[str, str] = {}
    if prev is not None and not full:
        with contextlib.suppress(OSError, ValueError):
            prev_manifest = json.loads((prev / ".manifest.json").read_text(encoding="utf-8"))
    build = Path(tempfile.mkdtemp(prefix=".public-build-", dir=target.parent))
    try:
        os.chmod(build, 0o755)
        result = _render(desk, build, prev, prev_manifest, order, cache, built, keys,
                         agency_names, site, tz, now_s, version, target.name, full)
        (build / ".manifest.json").write_text(json.dumps(result.manifest), encoding="utf-8")
        swap(target, build)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    for page in result.removed_pages:  # hidden or merged: gone once no list links to it
        with contextlib.suppress(FileNotFoundError):
            page.unlink()
    _cleanup(target, {build.resolve(), *([prev.resolve()] if prev else [])})
    res = ExportResult(
        target=target, build=build, complaints=len(order), rebuilt=len(built),
        rendered=result.rendered, reused=result.reused,
        seconds=round(time.monotonic() - started, 3),
    )
    log.info("public.exported", **res.as_dict())
    return res


def _render(desk: Desk, build: Path, prev: Path | None, prev_manifest: dict[str, str],
            order: list[int], cache: dict[int, tuple[str, str, str, str]],
            built: dict[int, model.PublicComplaint], keys: dict[int, str],
            agency_names: dict[str, str], site: dict[str, Any], tz: ZoneInfo, now: str,
            version: str, target_name: str, full: bool) -> _Builder:
    env = _env(tz)
    b = _Builder(build, prev, prev_manifest)
    for sub in ("halaman", "data", "static", "foto"):
        (build / sub).mkdir()
    common = {"site": site, "agency_names": agency_names, "generated_at": now}

    def row_dict(raw: str) -> dict[str, Any]:
        return dict(zip(model.ROW_FIELDS, json.loads(raw), strict=True))

    # Static assets.
    static = importlib.resources.files("lapakd.public") / "templates" / "static"
    for entry in static.iterdir():
        data = entry.read_bytes()
        b.file(f"static/{entry.name}", _key(hashlib.sha1(data).hexdigest()),
               lambda d=data: d)

    # Detail pages: one per complaint, in the shared pages directory (see module doc);
    # a page is rewritten (atomically, before the swap) only when its record changed.
    pages_dir = build.parent / f".{target_name}-aduan"
    pages_dir.mkdir(exist_ok=True)
    os.chmod(pages_dir, 0o755)
    os.symlink(f"../{pages_dir.name}", build / "aduan")
    manifest_path = pages_dir / ".manifest.json"
    old_pages: dict[str, str] = {}
    if not full:
        with contextlib.suppress(OSError, ValueError):
            old_pages = json.loads(manifest_path.read_text(encoding="utf-8"))
    new_pages: dict[str, str] = {}
    detail = env.get_template("detail.html")
    tmp_name = f".tmp-{os.getpid()}"
    for cid in order:
        ticket = json.loads(cache[cid][3])[0]
        name = f"{ticket}.html"
        new_pages[name] = keys[cid]
        if old_pages.get(name) == keys[cid]:
            b.reused += 1
            continue
        pc = built.get(cid)
        if pc is None:  # not rebuilt but its page is missing: rebuild it from the store
            pc = model.build_records(desk.store.conn, [cid], now, photos=site["photos"])[cid]
        html = detail.render(c=pc.record, timeline=pc.timeline, photos=pc.photos,
                             root="../", **common)
        tmp = pages_dir / tmp_name
        tmp.write_text(html, encoding="utf-8")
        os.replace(tmp, pages_dir / name)
        b.rendered += 1
    tmp = pages_dir / tmp_name
    tmp.write_text(json.dumps(new_pages), encoding="utf-8")
    os.replace(tmp, manifest_path)
    b.removed_pages = [pages_dir / n for n in old_pages if n not in new_pages]

    if site["photos"]:  # only with publish_photos = true, and without metadata
        for sha, ctype in photos.published(desk.store.conn, order):
            b.file(photos.rel_path(sha, ctype), _key("photo", photos.VERSION, sha),
                   lambda sha=sha, ctype=ctype: photos.stripped(desk.store, sha, ctype))

    # Archive pages: fixed chunks by age, so a new complaint touches only the last page.
    pages = max(1, (len(order) + PAGE_SIZE - 1) // PAGE_SIZE)
    listing = env.get_template("page.html")
    for n in range(1, pages + 1):
        ids = order[(n - 1) * PAGE_SIZE:n * PAGE_SIZE]

        def render_page(ids: list[int] = ids, n: int = n) -> str:
            rows = [row_dict(cache[c][3]) for c in reversed(ids)]
            return listing.render(rows=rows, page=n, pages=pages, root="../", **common)

        b.file(f"halaman/{n}.html", _key(version, n, n == pages, *(keys[c] for c in ids)),
               render_page)

    newest = [row_dict(cache[c][3]) for c in reversed(order[-INDEX_ROWS:])]
    all_rows = [json.loads(cache[c][3]) for c in order]
    facets = {
        "status": sorted({r[6] for r in all_rows}),
        "channel": sorted({r[2] for r in all_rows}),
        "category": sorted({r[3] for r in all_rows if r[3]}),
        "agency": sorted({a for r in all_rows for a in r[4]},
                         key=lambda a: agency_names.get(a, a)),
        "kecamatan": sorted({r[5] for r in all_rows if r[5]}),
    }
    meta = {
        "status": model.STATUS_LABELS, "channel": model.CHANNEL_LABELS,
        "agency": agency_names, "fields": model.ROW_FIELDS, "total": len(order),
        "complete": len(order) <= INDEX_ROWS,
    }
    b.file("index.html", None, lambda: env.get_template("index.html").render(
        rows=newest, pages=pages, total=len(order), facets=facets, meta=meta,
        # the embedded rows let the filters work without another download on small sites
        embedded=[json.loads(cache[c][3]) for c in reversed(order[-INDEX_ROWS:])],
        root="", **common))

    # Statistics.
    st = stats.compute(all_rows, agency_names, tz)
    charts = {
        "category": stats.bar_chart(st["per_category"], "Aduan per kategori"),
        "agency": stats.bar_chart(st["per_agency"], "Aduan per instansi"),
        "kecamatan": stats.bar_chart(st["per_kecamatan"], "Aduan per kecamatan", limit=28),
        "month": stats.column_chart(st["per_month"], "Aduan per bulan"),
    }
    b.file("statistik.html", None, lambda: env.get_template("stats.html").render(
        st=st, charts=charts, root="", **common))

    # Open data: newest first, built from the cached serialized records.
    newest_first = list(reversed(order))
    b.file("aduan.json", None, lambda: "[\n" + ",\n".join(
        cache[c][1] for c in newest_first) + "\n]\n")
    b.file("aduan.csv", None, lambda: ",".join(model.COLUMNS) + "\r\n" + "".join(
        cache[c][2] for c in newest_first))
    b.file("data/cari.json", None, lambda: '{"fields":' + json.dumps(model.ROW_FIELDS)
           + ',"rows":[\n' + ",\n".join(cache[c][3] for c in newest_first) + "\n]}\n")
    b.file("instansi.json", None, lambda: json.dumps(
        agency_names, ensure_ascii=False, indent=1, sort_keys=True))
    feed = [json.loads(cache[c][1]) for c in newest_first[:FEED_SIZE]]
    b.file("feed.xml", None, lambda: env.get_template("feed.xml").render(
        entries=feed, updated=feed[0]["received_at"] if feed else now, **common))
    return b
