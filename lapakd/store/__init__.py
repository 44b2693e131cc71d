"""The local store: one SQLite file (WAL) plus attachment files named by their sha256.

Every stage reads what the previous one committed, so any stage can be re-run after a crash.
Writes go through `transaction()` (BEGIN IMMEDIATE), so a batch of messages and the cursor that
covers it, or a routing decision and its outbox rows, commit together or not at all.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.resources
import json
import os
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lapakd.errors import NotFound, StoreError


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(dt: datetime | None) -> str | None:
    """The one timestamp format in the store: UTC, seconds, `+00:00` (sorts as text)."""
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).isoformat(timespec="seconds")


def now_iso() -> str:
    return iso(utcnow())  # type: ignore[return-value]


def parse_iso(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


# One encoder for all: json.dumps with options builds a new JSONEncoder on every call, which
# costs more than encoding the small values stored here (encode() keeps no state between calls).
_ENCODER = json.JSONEncoder(ensure_ascii=False, sort_keys=True, default=str)


def dumps(value: Any) -> str:
    return _ENCODER.encode(value)


def in_transactions(
    store: Store,
    rows: Sequence[sqlite3.Row],
    prepare: Callable[[sqlite3.Row], Any],
    apply: Callable[[sqlite3.Row, Any], int],
    per_transaction: int,
    stopping: threading.Event,
) -> int:
    """The stages' batch loop: `prepare` each row outside any transaction (parsing, rules: the
    write lock is not held for them; what it raises is passed on as the value), then `apply`
    them `per_transaction` to a transaction. `apply` keeps each item in a savepoint of its own
    and deals with its failure; returns the sum of what `apply` returned."""
    done = 0
    for start in range(0, len(rows), per_transaction):
        if stopping.is_set():
            break
        prepared: list[tuple[sqlite3.Row, Any]] = []
        for row in rows[start:start + per_transaction]:
            try:
                value = prepare(row)
            except Exception as exc:  # noqa: BLE001 - apply() quarantines the row
                value = exc
            prepared.append((row, value))
        with store.transaction():
            for row, value in prepared:
                if stopping.is_set():
                    break
                done += apply(row, value)
    return done


# Open stores, so that a forked child can let go of their locks (below).
_STORES: weakref.WeakSet[Store] = weakref.WeakSet()


def _drop_locks_in_child() -> None:
    """In a forked child (the export's worker pool): close the inherited runner and writer
    lock files. flock() belongs to the open file, which a fork shares: a worker that kept it
    would hold `lapakd.lock` after its parent died, and the next runner would be refused. The
    sender is started by fork+exec without this hook and is handed the runner lock on purpose
    (sender.py)."""
    for store in list(_STORES):
        for name in ("_lock_fd", "_writer"):
            fd = getattr(store, name)
            if fd is not None and fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
            setattr(store, name, None)


os.register_at_fork(after_in_child=_drop_locks_in_child)


class Store:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        try:
            if not self.data_dir.is_dir():
                self.data_dir.mkdir(parents=True, exist_ok=True)
                # Others may pass through (a public_dir kept inside data_dir, like the shipped
                # `var/public`, stays reachable for the web server) but not list it; all that
                # lapakd keeps in it is 0600/0700.
                os.chmod(self.data_dir, DATA_DIR_MODE)
        except OSError as exc:
            raise StoreError(f"{self.data_dir}: cannot create data_dir: {exc.strerror}") from None
        self.path = self.data_dir / "lapakd.sqlite3"
        self.attachments_dir = self.data_dir / "attachments"
        _make_private(self.path, self.attachments_dir,
                      *(self.data_dir / f"lapakd.sqlite3{x}" for x in ("-wal", "-shm", "-journal")))
        try:
            self.conn = sqlite3.connect(
                self.path, isolation_level=None, timeout=30, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open the database: {exc}") from None
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL: in WAL mode a commit survives a crash of the process (SIGKILL) but may be
        # lost on power failure. Commits that precede an acknowledgement to a server (IMAP
        # \\Seen/move, a webhook's 200) use transaction(durable=True), which syncs to disk.
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        self.conn.execute("PRAGMA busy_timeout=30000")
        # Reads through a memory map: a connection's page cache is dropped whenever another
        # connection has committed (the runner and the sender write side by side), and
        # refilling it from the map costs less than a read() per page.
        self.conn.execute("PRAGMA mmap_size=268435456")
        self._lock_fd: int | None = None
        self._writer: int | None = None  # _writer_fd(), opened on the first write
        _STORES.add(self)
        self._migrate()

    # -- plumbing ---------------------------------------------------------------------------

    def _migrate(self) -> None:
        """Apply `migrations/NNNN_name.sql` files not applied yet, in name order.

        Tracked by name, so features can add their own file without renumbering others."""
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT)"
        )
        applied = {r[0] for r in self.conn.execute("SELECT name FROM schema_migrations")}
        folder = importlib.resources.files("lapakd.store") / "migrations"
        for entry in sorted(folder.iterdir(), key=lambda p: p.name):
            if not entry.name.endswith(".sql") or entry.name in applied:
                continue
            with self.transaction():
                for statement in _split_sql(entry.read_text(encoding="utf-8")):
                    self.conn.execute(statement)
                self.conn.execute(
                    "INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)",
                    (entry.name, now_iso()),
                )

    @contextlib.contextmanager
    def transaction(self, durable: bool = False) -> Iterator[sqlite3.Connection]:
        if self.conn.in_transaction:  # nested use joins the outer transaction
            yield self.conn
            return
        writer = self._writer_fd()
        if writer is not None:
            fcntl.flock(writer, fcntl.LOCK_EX)
        if durable:
            self.conn.execute("PRAGMA synchronous=FULL")
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")
        finally:
            if durable:
                self.conn.execute("PRAGMA synchronous=NORMAL")
            if writer is not None:
                fcntl.flock(writer, fcntl.LOCK_UN)

    def _writer_fd(self) -> int | None:
        """The writers' queue: a file lock taken around every write transaction.

        SQLite makes a second writer wait by sleeping and polling (1, 2, 5, 10... 100 ms),
        so with the runner and the sender process writing side by side most of a burst was
        spent asleep (the sender's threads waited 23 s in all at 10,000 emails, 2,400 times
        over 1 ms). A waiter on flock() is woken the moment the lock is released. SQLite's
        own lock stays the authority (busy_timeout still applies); without a writable
        data_dir (a read-only `lapakd list`) there is no queue and nothing to write."""
        if self._writer is None:
            try:
                self._writer = os.open(
                    self.data_dir / "lapakd.writer.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                    0o600,
                )
            except OSError:
                self._writer = -1
        return self._writer if self._writer >= 0 else None

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[sqlite3.Connection]:
        """One item inside a batch transaction: on an exception its writes, and only its
        writes, are undone (the exception goes on to the caller)."""
        self.conn.execute("SAVEPOINT item")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK TO item")
            self.conn.execute("RELEASE item")
            raise
        self.conn.execute("RELEASE item")

    def lock_runner(self) -> None:
        """Hold the data_dir's runner lock: one daemon (or `run --once`) per store.

        Holding it also proves that outbox rows left in `sending` belong to a dead process."""
        if self._lock_fd is not None:  # already ours
            return
        fd = os.open(self.data_dir / "lapakd.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreError(
                f"{self.data_dir}: another lapakd runner is using this data_dir "
                "(stop it first, e.g. systemctl stop lapakd)"
            ) from None
        self._lock_fd = fd

    def close(self) -> None:
        self.conn.close()
        if self._writer is not None and self._writer >= 0:
            os.close(self._writer)
        self._writer = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def one(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> sqlite3.Row | None:
        return self.conn.execute(sql, params).fetchone()

    def all(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        return self.conn.execute(sql, params).fetchall()

    # -- events -----------------------------------------------------------------------------

    def event(
        self,
        type_: str,
        *,
        actor: str = "lapakd",
        complaint_id: int | None = None,
        message_id: int | None = None,
        outbox_id: int | None = None,
        at: str | None = None,
        **data: Any,
    ) -> None:
        self.conn.execute(
            "INSERT INTO events (complaint_id, message_id, outbox_id, at, type, actor, data)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (complaint_id, message_id, outbox_id, at or now_iso(), type_, actor, dumps(data)),
        )

    # -- messages ---------------------------------------------------------------------------

    def mark_processed(self, message_id: int, kind: str, complaint_id: int | None = None) -> None:
        """A stored message is dealt with: what it turned out to be, and its complaint if any."""
        self.conn.execute(
            "UPDATE messages SET state = 'processed', kind = ?, error = NULL, complaint_id = ?"
            " WHERE id = ?",
            (kind, complaint_id, message_id),
        )

    # -- cursors ----------------------------------------------------------------------------

    def get_cursor(self, channel: str) -> dict[str, Any] | None:
        row = self.one("SELECT value FROM cursors WHERE channel = ?", (channel,))
        return json.loads(row["value"]) if row else None

    def set_cursor(self, channel: str, value: dict[str, Any]) -> None:
        self.conn.execute(
            "INSERT INTO cursors (channel, value, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT(channel) DO UPDATE SET value = excluded.value,"
            " updated_at = excluded.updated_at",
            (channel, dumps(value), now_iso()),
        )

    # -- attachments ------------------------------------------------------------------------

    def attachment_path(self, sha256: str) -> Path:
        return blob_path(self.attachments_dir, sha256)

    def save_blob(self, data: bytes) -> str:
        return save_blob(self.attachments_dir, data)

    # -- tickets and lookups ----------------------------------------------------------------

    def next_ticket(self, prefix: str, year: int) -> str:
        scope = f"{prefix}-{year}"
        row = self.one(
            "INSERT INTO ticket_sequences (scope, last) VALUES (?, 1)"
            " ON CONFLICT(scope) DO UPDATE SET last = last + 1 RETURNING last",
            (scope,),
        )
        assert row is not None
        return f"{scope}-{row['last']:06d}"

    def complaint(self, ref: str | int) -> sqlite3.Row:
        """A complaint by ticket (`LA-2026-000123`, case-insensitive) or numeric id."""
        text = str(ref).strip()
        if text.isdigit():
            row = self.one("SELECT * FROM complaints WHERE id = ?", (int(text),))
        else:
            row = self.one("SELECT * FROM complaints WHERE ticket = ?", (text.upper(),))
        if row is None:
            raise NotFound(f"no complaint {text!r} (use a ticket like LA-2026-000123)")
        return row

    def message(self, ref: str | int) -> sqlite3.Row:
        text = str(ref).strip().lower().removeprefix("msg-")
        row = self.one("SELECT * FROM messages WHERE id = ?", (int(text),)) if text.isdigit() \
            else None
        if row is None:
            raise NotFound(f"no message {ref!r} (use an id like msg-17)")
        return row


# The store is private to its user whatever the umask: citizens' messages, addresses and photos.
PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700
DATA_DIR_MODE = 0o711


def _make_private(db: Path, *others: Path) -> None:
    """Create the database file 0600 before SQLite does (SQLite gives its -wal, -shm and
    -journal files the database file's mode), and take group and other access away from
    these files when a store made before this rule left them open. Files of another user
    (a read-only `lapakd list` by an admin) are left alone."""
    try:
        fd = os.open(db, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    except OSError:
        pass  # it exists (or cannot be made here: connect() says why)
    else:
        os.fchmod(fd, PRIVATE_FILE_MODE)
        os.close(fd)
    for path in (db, *others):
        with contextlib.suppress(OSError):
            st = path.lstat()
            if st.st_uid == os.geteuid() and st.st_mode & 0o077:
                os.chmod(path, PRIVATE_DIR_MODE if path.is_dir() else PRIVATE_FILE_MODE)


def _private_dirs(path: Path) -> None:
    """mkdir -p for the attachments' folders: 0700 whatever the umask."""
    if path.is_dir():
        return
    _private_dirs(path.parent)
    with contextlib.suppress(FileExistsError):
        path.mkdir(PRIVATE_DIR_MODE)
        os.chmod(path, PRIVATE_DIR_MODE)


def blob_path(attachments_dir: Path, sha256: str) -> Path:
    """Where content-addressed bytes live: attachments/<first 2 hex>/<sha256>."""
    return attachments_dir / sha256[:2] / sha256


def save_blob(attachments_dir: Path, data: bytes) -> str:
    """Write content-addressed bytes; idempotent, atomic (write aside, then rename).

    A module function so adapters can keep media at fetch time without a store handle."""
    digest = hashlib.sha256(data).hexdigest()
    path = blob_path(attachments_dir, digest)
    if not path.exists():
        _private_dirs(path.parent)
        tmp = path.with_name(f".{digest}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, PRIVATE_FILE_MODE)
        with open(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    return digest


def _split_sql(script: str) -> list[str]:
    statements, buf = [], []
    for line in script.splitlines():
        stripped = line.split("--", 1)[0].rstrip()
        if not stripped:
            continue
        buf.append(stripped)
        if stripped.endswith(";"):
            statements.append("\n".join(buf))
            buf = []
    if buf:
        statements.append("\n".join(buf))
    return statements
