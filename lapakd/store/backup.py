"""Snapshots of a desk's state while the daemon runs: `lapakd backup DIR`.

A snapshot is a folder DIR/lapakd-YYYYmmddTHHMMSSZ/ holding
  data/lapakd.sqlite3     the database, copied through SQLite's online backup API (one read
                          transaction: a consistent state, writers are not blocked), then turned
                          into a single file (journal_mode=DELETE: no -wal to forget);
  data/<other files>      any other state file kept directly in data_dir (not the locks, not
                          rules.cache, which is rebuilt);
  data/attachments/...    the attachment files (content-addressed, never rewritten: hard links
                          where the filesystem allows, else copies);
  rules/...               the rules directory;
  manifest.json           the sha256 and size of every file above. A folder is lapakd's own
                          snapshot only if its manifest says so (`--keep` removes nothing else).
It is built aside (DIR/.lapakd-....partial), checked, and renamed into place when complete.
Files are 0600, folders 0700. Restoring is: stop the daemon, copy data/ back into data_dir and
rules/ into rules_dir, start it (README, "Backups").
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from lapakd.errors import LapakdError

FORMAT = "lapakd-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DB_NAME = "lapakd.sqlite3"
SNAPSHOT_RE = re.compile(r"^lapakd-\d{8}T\d{6}Z(-\d+)?$")
PARTIAL_PREFIX = ".lapakd-"
PARTIAL_SUFFIX = ".partial"
LOCK_NAME = ".lapakd-backup.lock"
FILE_MODE = 0o600
DIR_MODE = 0o700
_CHUNK = 1 << 20


@dataclass
class BackupResult:
    path: Path
    files: int
    bytes: int
    linked: int
    removed: list[Path] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {"snapshot": str(self.path), "files": self.files, "bytes": self.bytes,
                "linked": self.linked, "removed": [str(p) for p in self.removed]}


@dataclass
class VerifyResult:
    path: Path
    files: int
    problems: list[str]

    def as_dict(self) -> dict[str, object]:
        return {"snapshot": str(self.path), "files": self.files, "ok": not self.problems,
                "problems": self.problems}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _mkdir(path: Path) -> None:
    path.mkdir(DIR_MODE, parents=False, exist_ok=True)
    os.chmod(path, DIR_MODE)


def _makedirs(path: Path, root: Path) -> None:
    """mkdir -p below root, every new folder 0700 whatever the umask."""
    if path == root or path.is_dir():
        return
    _makedirs(path.parent, root)
    _mkdir(path)


@contextlib.contextmanager
def _dir_lock(target: Path) -> Iterator[None]:
    """One backup at a time per DIR (the partial folders of another are not ours to clean)."""
    fd = os.open(target / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LapakdError(f"{target}: another `lapakd backup` is writing here; "
                              "try again when it is done") from None
        yield
    finally:
        os.close(fd)


def _copy_database(source: Path, dest: Path) -> None:
    if not source.is_file():
        raise LapakdError(f"{source}: no database to back up (is [paths] data_dir right?)")
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    os.close(fd)
    src = sqlite3.connect(source, timeout=30)
    try:
        src.execute("PRAGMA busy_timeout=30000")
        dst = sqlite3.connect(dest)
        try:
            # pages=-1: the whole database in one step, inside one read transaction of the
            # source: a consistent state even while the daemon commits (WAL readers never block).
            src.backup(dst, pages=-1)
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
            (result,) = dst.execute("PRAGMA integrity_check").fetchone()
        finally:
            dst.close()
    finally:
        src.close()
    if result != "ok":
        raise LapakdError(f"{dest}: the copied database fails integrity_check: {result}")
    for extra in ("-journal", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{dest}{extra}")
    os.chmod(dest, FILE_MODE)


def _copy_file(source: Path, dest: Path) -> None:
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    with open(source, "rb") as src, open(fd, "wb") as out:
        shutil.copyfileobj(src, out, _CHUNK)
        out.flush()
        os.fsync(out.fileno())
    os.chmod(dest, FILE_MODE)


def _link_or_copy(source: Path, dest: Path) -> bool:
    """Hard link an attachment that is already private, if the filesystem allows; True if linked."""
    st = source.stat()
    if st.st_uid == os.geteuid() and not st.st_mode & 0o077:
        try:
            os.link(source, dest)
            return True
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EACCES,
                                 errno.ENOTSUP, errno.EOPNOTSUPP):
                raise
    _copy_file(source, dest)
    return False


def _regular_files(root: Path) -> Iterator[Path]:
    """Regular files under root, sorted; hidden temp files of half-written attachments skipped."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if name.startswith(".") and name.endswith(".tmp"):
                continue
            path = Path(dirpath) / name
            if path.is_file():
                yield path


# In data_dir but not state: the database (copied above) and its journals, locks, the compiled
# rules (rebuilt when missing).
_NOT_STATE = {DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", f"{DB_NAME}-journal", "rules.cache"}


def _state_files(data_dir: Path) -> Iterator[Path]:
    """Other regular files directly in data_dir (a state file a later feature keeps there)."""
    for path in sorted(data_dir.iterdir()):
        if (path.name in _NOT_STATE or path.name.endswith(".lock") or path.name.startswith(".")
                or path.is_symlink() or not path.is_file()):
            continue
        yield path


def _snapshot_name(target: Path, when: datetime) -> str:
    base = f"lapakd-{when.strftime('%Y%m%dT%H%M%SZ')}"
    name, n = base, 1
    while (target / name).exists():
        n += 1
        name = f"{base}-{n}"
    return name


def create(target: Path, data_dir: Path, rules_dir: Path, version: str = "",
           keep: int | None = None) -> BackupResult:
    """Write one snapshot under `target`; then, with `keep`, remove the oldest beyond it."""
    target = Path(target)
    try:
        if not target.is_dir():
            target.mkdir(DIR_MODE, parents=True)
            os.chmod(target, DIR_MODE)
    except OSError as exc:
        raise LapakdError(f"{target}: cannot create the backup folder: {exc.strerror}") from None
    with _dir_lock(target):
        for stale in target.glob(f"{PARTIAL_PREFIX}*{PARTIAL_SUFFIX}"):
            shutil.rmtree(stale, ignore_errors=True)  # a backup that died half-way
        when = datetime.now(UTC)
        name = _snapshot_name(target, when)
        partial = target / f".{name}{PARTIAL_SUFFIX}"
        try:
            result = _build(partial, data_dir, rules_dir, when, version)
            final = target / name
            os.rename(partial, final)
            _fsync_dir(target)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        result.path = final
        if keep is not None:
            result.removed = prune(target, keep)
    return result


def _build(partial: Path, data_dir: Path, rules_dir: Path, when: datetime,
           version: str) -> BackupResult:
    _mkdir(partial)
    data = partial / "data"
    _mkdir(data)
    _copy_database(data_dir / DB_NAME, data / DB_NAME)
    for source in _state_files(data_dir):  # small state beside the database (none today)
        _copy_file(source, data / source.name)
    linked = 0
    attachments = data_dir / "attachments"
    if attachments.is_dir():
        for source in _regular_files(attachments):
            dest = data / "attachments" / source.relative_to(attachments)
            _makedirs(dest.parent, partial)
            linked += _link_or_copy(source, dest)
    rules_out = partial / "rules"
    _mkdir(rules_out)
    if not rules_dir.is_dir():
        raise LapakdError(f"{rules_dir}: no rules directory to back up")
    for source in _regular_files(rules_dir):
        dest = rules_out / source.relative_to(rules_dir)
        _makedirs(dest.parent, partial)
        _copy_file(source, dest)
    files: dict[str, dict[str, object]] = {}
    total = 0
    for path in _regular_files(partial):
        rel = path.relative_to(partial).as_posix()
        size = path.stat().st_size
        total += size
        files[rel] = {"sha256": sha256_file(path), "size": size}
    manifest = {
        "format": FORMAT, "version": FORMAT_VERSION,
        "created": when.isoformat(timespec="seconds"), "lapakd": version,
        "data_dir": str(data_dir), "rules_dir": str(rules_dir),
        "database": f"data/{DB_NAME}", "files": files,
    }
    mpath = partial / MANIFEST
    fd = os.open(mpath, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    with open(fd, "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=1, sort_keys=True)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    return BackupResult(partial, len(files), total, linked)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_manifest(snapshot: Path) -> dict | None:
    """The manifest of one of lapakd's snapshots, or None if the folder is not one."""
    try:
        data = json.loads((snapshot / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return None
    return data


def snapshots(target: Path) -> list[Path]:
    """lapakd's snapshots in target, oldest first (named by their UTC time; a manifest each)."""
    try:
        entries = list(Path(target).iterdir())
    except OSError as exc:
        raise LapakdError(f"{target}: cannot read the backup folder: {exc.strerror}") from None
    found = [p for p in entries
             if SNAPSHOT_RE.match(p.name) and p.is_dir() and not p.is_symlink()
             and read_manifest(p) is not None]
    return sorted(found, key=lambda p: (p.name[:23], int(p.name[24:] or 1)))


def prune(target: Path, keep: int) -> list[Path]:
    """Remove the oldest of lapakd's snapshots beyond `keep`; nothing else is touched."""
    if keep < 1:
        raise LapakdError(f"--keep {keep}: keep at least 1 snapshot")
    old = snapshots(target)[:-keep]
    for path in old:
        shutil.rmtree(path)
    return old


def verify(snapshot: Path) -> VerifyResult:
    """Re-check every file's sha256 against the manifest, and the database's integrity."""
    manifest = read_manifest(snapshot)
    if manifest is None:
        return VerifyResult(snapshot, 0, [f"{snapshot / MANIFEST}: missing or not a lapakd "
                                          "backup manifest"])
    problems: list[str] = []
    files = manifest.get("files") or {}
    for rel, meta in sorted(files.items()):
        path = snapshot / rel
        try:
            digest = sha256_file(path)
        except FileNotFoundError:
            problems.append(f"{path}: missing")
            continue
        except OSError as exc:
            problems.append(f"{path}: cannot read: {exc.strerror}")
            continue
        if digest != meta.get("sha256"):
            problems.append(f"{path}: sha256 differs from the manifest (changed or corrupted)")
    listed = set(files)
    for path in _regular_files(snapshot):
        rel = path.relative_to(snapshot).as_posix()
        if rel != MANIFEST and rel not in listed:
            problems.append(f"{path}: not in the manifest")
    db = snapshot / str(manifest.get("database") or f"data/{DB_NAME}")
    if db.is_file():
        problems += _integrity(db)
    elif f"data/{DB_NAME}" not in files:
        problems.append(f"{db}: missing")
    return VerifyResult(snapshot, len(files), problems)


def _integrity(db: Path) -> list[str]:
    try:
        # immutable: read the copy as it is, create no -wal/-shm beside it
        conn = sqlite3.connect(f"file:{db}?mode=ro&immutable=1", uri=True)
        try:
            rows = [r[0] for r in conn.execute("PRAGMA integrity_check")]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        return [f"{db}: integrity_check failed: {exc}"]
    if rows == ["ok"]:
        return []
    return [f"{db}: integrity_check: {row}" for row in rows[:20]]


def to_verify(path: Path) -> list[Path]:
    """--verify PATH: one snapshot, or every snapshot in a backup folder."""
    path = Path(path)
    if not path.is_dir():
        raise LapakdError(f"{path}: no such folder")
    if (path / MANIFEST).exists():
        return [path]
    found = snapshots(path)
    if not found:
        raise LapakdError(f"{path}: no lapakd snapshot here (a folder with a manifest.json)")
    return found
