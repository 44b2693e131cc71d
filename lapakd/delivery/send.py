"""The outbox's high half: claim the due rows, send them, mark them.

A row is claimed with a conditional UPDATE, sent, then marked. A crash between the send and the
mark leaves the row in `sending`; the next runner (holding the data_dir lock, so the old one is
dead) puts it back to `pending` and sends it again with the same Message-ID / idempotency key:
delivery is at-least-once, and receivers can drop the duplicate by that id.

Emails are composed here from every builder (`compose.BUILDERS`: the intake and routing mails,
`notices.BUILDERS`: the follow-up mails) and sent on SMTP; replies and DMs go through their
channel's adapter. What cannot be sent is marked by the low half, `outbox.queue`.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import structlog

from lapakd.adapters.base import Adapter, NeedsReauth, PermanentError, TransientError
from lapakd.delivery import compose, smtp
from lapakd.delivery.smtp import SmtpSession
from lapakd.intake import health
from lapakd.lifecycle import notices
from lapakd.outbox.queue import fail
from lapakd.store import Store, dumps, iso, now_iso, parse_iso, utcnow

if TYPE_CHECKING:
    from lapakd.app import Desk

log = structlog.get_logger("lapakd.delivery.send")

# Every kind of email the outbox sends, and the builder that writes it.
BUILDERS: dict[str, compose.Builder] = {**compose.BUILDERS, **notices.BUILDERS}


# Transient failures retry after these delays, then every 6 hours, for 5 days in all.
RETRY_DELAYS = (60, 300, 900, 3600, 6 * 3600)
GIVE_UP_AFTER = timedelta(days=5)
REAUTH_RETRY = 3600  # seconds between tries while a channel's credentials are dead


def retry_delay(attempts: int) -> int:
    return RETRY_DELAYS[min(attempts, len(RETRY_DELAYS)) - 1]


def recover_orphans(store: Store) -> int:
    """Rows left in `sending` by a dead runner go back to `pending` (call with the lock held)."""
    with store.transaction() as conn:
        cur = conn.execute(
            "UPDATE outbox SET status = 'pending', next_attempt_at = ? WHERE status = 'sending'",
            (now_iso(),),
        )
    if cur.rowcount:
        log.warning("outbox.recovered", rows=cur.rowcount,
                    note="sent again with the same Message-ID")
    return cur.rowcount


def send_due(desk: Desk, limit: int = 200) -> int:
    return send_batch(desk, limit)[0]


# Sent rows are marked MARK_EVERY at a time, or after MARK_SECONDS at most: a commit per mail
# cost more than composing it (WAL pages of the row, the event and their indexes). A crash in
# between re-sends at most that many accepted mails, with their Message-IDs (at-least-once).
MARK_EVERY = 20
MARK_SECONDS = 0.25


def send_batch(
    desk: Desk,
    limit: int = 200,
    *,
    transport: str | None = None,
    sessions: Sequence[SmtpSession] | None = None,
    newest_first: bool = False,
) -> tuple[int, bool]:
    """Send up to `limit` due rows: (rows sent, whether a transport failed and was paused).

    Emails go out on `sessions` (SMTP connections, reused and left open for the caller to
    close; default one of this batch's own), as many at once as there are connections
    (`smtp.send_many`), each composed when a connection is free for it. `transport` limits
    the batch to one transport (the sender process takes the smtp rows); the claim is
    conditional, so a row is never sent twice at the same time. `newest_first` takes the rows
    from the other end of the queue (the runner, while the sender process still works
    through it)."""
    rows = _claim(desk.store, limit, transport, newest_first)
    batch = _Batch(desk, rows)
    pool = list(sessions or [])
    finished = False
    try:
        batch.deliver([r for r in rows if r["transport"] != "smtp"])
        emails = [r for r in rows if r["transport"] == "smtp"]
        if emails and not pool:
            pool = [SmtpSession(desk.config)]
        batch.email(emails, pool)
        finished = True
    finally:
        batch.close()
        if not sessions or not finished:  # an error left transfers half-way: start clean
            for session in pool:
                session.close()
    return batch.marks.count, bool(batch.paused)


class _Batch:
    """The rows one `send_batch` claimed, and what becomes of them: each is sent (`deliver`:
    replies and DMs through their channel's adapter; `email`: on the SMTP connections),
    then marked sent or failed (`settle`); `close` gives back what was not tried."""

    def __init__(self, desk: Desk, rows: list[sqlite3.Row]) -> None:
        self.desk = desk
        self.store = desk.store
        self.untried = {row["id"] for row in rows}
        self.paused: set[str] = set()  # a transport that just failed transiently is not hammered
        self.marks = _Marks(desk.store)
        self.complaints: dict[int, sqlite3.Row] = {}

    def due(self, rows: list[sqlite3.Row]) -> Iterator[sqlite3.Row]:
        """The rows to try, taken one by one: a stop or a pause ends the batch's sending."""
        for row in rows:
            if self.desk.stopping.is_set() or row["transport"] in self.paused:
                return
            self.untried.discard(row["id"])
            yield row

    def deliver(self, rows: list[sqlite3.Row]) -> None:
        for row in self.due(rows):
            try:
                outcome = deliver(self.desk.adapter(row["transport"]), row)
            except Exception as exc:  # noqa: BLE001 - a bug in one row must not stop the queue
                outcome = exc
            self.settle(row, outcome)

    def email(self, rows: list[sqlite3.Row], pool: list[SmtpSession]) -> None:
        self.complaints = _complaints(self.store, rows)
        for row, outcome in smtp.send_many(pool, self.due(rows), self.compose):
            self.settle(row, outcome)

    def compose(self, row: sqlite3.Row, eight_bit: bool) -> tuple[bytes, list[str], bool]:
        """The row's mail, when a connection is free for it (`smtp.send_many` asks)."""
        mail = compose.build(self.desk, row, BUILDERS, eight_bit=eight_bit,
                             complaint=self.complaints.get(row["complaint_id"]))
        return mail.data, mail.recipients, mail.eight_bit

    def settle(self, row: sqlite3.Row, outcome: Any) -> None:
        # `row` holds the claimed values: attempts already counts this attempt.
        if isinstance(outcome, Exception):
            if _settle_failure(self.store, row, outcome):
                self.paused.add(row["transport"])
        else:
            self.marks.add(row, outcome)

    def close(self) -> None:
        """Record what was accepted; rows not tried (stopped, or their transport paused) go
        back to `pending`, as if never claimed."""
        self.marks.flush()
        if self.untried:
            with self.store.transaction() as conn:
                conn.executemany(
                    "UPDATE outbox SET status = 'pending', attempts = attempts - 1"
                    " WHERE id = ? AND status = 'sending'",
                    [(i,) for i in self.untried],
                )


def _complaints(store: Store, rows: list[sqlite3.Row]) -> dict[int, sqlite3.Row]:
    """The complaints of a batch's rows, in one query (one per mail was a tenth of the
    sender's time: its page cache is stale after every commit of the runner)."""
    ids = sorted({r["complaint_id"] for r in rows if r["complaint_id"] is not None})
    if not ids:
        return {}
    found = store.all(
        f"SELECT * FROM complaints WHERE id IN ({', '.join('?' * len(ids))})", ids
    )
    return {c["id"]: c for c in found}


class _Marks:
    """Accepted sends, recorded as sent MARK_EVERY at a time or after MARK_SECONDS."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.accepted: list[tuple[sqlite3.Row, dict[str, Any] | None, str]] = []
        self.oldest = 0.0  # monotonic time of accepted[0]
        self.count = 0

    def add(self, row: sqlite3.Row, result: dict[str, Any] | None) -> None:
        if not self.accepted:
            self.oldest = time.monotonic()
        self.accepted.append((row, result, now_iso()))
        self.count += 1
        if len(self.accepted) >= MARK_EVERY or time.monotonic() - self.oldest >= MARK_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Record the accepted mails as sent, with their `sent` events, in one transaction."""
        if not self.accepted:
            return
        with self.store.transaction() as conn:
            for row, result, at in self.accepted:
                conn.execute(
                    "UPDATE outbox SET status = 'sent', sent_at = ?, last_error = NULL,"
                    " result = ? WHERE id = ?",
                    (at, dumps(result or {}), row["id"]),
                )
                self.store.event(
                    "sent", complaint_id=row["complaint_id"], outbox_id=row["id"], at=at,
                    kind=row["kind"], to=json.loads(row["recipients"]),
                    rfc_message_id=row["message_id"], attempt=row["attempts"],
                )
        self.accepted.clear()


def _settle_failure(store: Store, row: sqlite3.Row, exc: Exception) -> bool:
    """Record a failed attempt; True when its transport should pause for this batch."""
    if isinstance(exc, NeedsReauth):
        # Dead credentials: the channel shows needs_reauth and the admin is told once;
        # the reply waits for new keys instead of failing.
        health.record_failure(store, row["transport"], exc)
        _transient(store, row, TransientError(str(exc), retry_after=REAUTH_RETRY))
        return True
    if isinstance(exc, PermanentError):
        fail(store, row["id"], f"permanent: {exc}", alert=row["kind"] != "alert")
        return False
    if isinstance(exc, TransientError):
        return _transient(store, row, exc)
    # A bug met by one row: retried later like a transient failure, the rest goes on.
    _transient(store, row, TransientError(f"{type(exc).__name__}: {exc}"))
    return False


def _claim(
    store: Store, limit: int, transport: str | None, newest_first: bool
) -> list[sqlite3.Row]:
    """Claim up to `limit` due rows in one conditional UPDATE (a row another sender has
    claimed is not taken). Rows not attempted go back to `pending` at the end of the batch;
    a crash leaves them in `sending` for the next runner's recover_orphans."""
    where, params = "", []
    if transport is not None:
        where += " AND transport = ?"
        params.append(transport)
    # The queue's order is the due index's own (outbox_due: status, next_attempt_at, then
    # rowid), so the LIMIT stops the walk; by id alone SQLite sorted every due row per claim.
    order = "next_attempt_at DESC, id DESC" if newest_first else "next_attempt_at, id"
    with store.transaction() as conn:
        rows = conn.execute(
            "UPDATE outbox SET status = 'sending', attempts = attempts + 1 WHERE id IN ("
            " SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_at <= ?"
            f"{where} ORDER BY {order} LIMIT ?)"
            " AND status = 'pending' RETURNING *",
            (now_iso(), *params, limit),
        ).fetchall()
    # RETURNING has no order: the claim's own again
    rows.sort(key=lambda r: (r["next_attempt_at"], r["id"]), reverse=newest_first)
    return rows


def deliver(adapter: Adapter, row: sqlite3.Row) -> dict[str, Any] | None:
    """Send one reply or DM through its channel's adapter (emails: `smtp.send_many`)."""
    payload = json.loads(row["payload"])
    payload["recipients"] = json.loads(row["recipients"])
    return adapter.send(row["kind"], payload, row["message_id"])


def _transient(store: Store, row: sqlite3.Row, exc: TransientError) -> bool:
    """Schedule a retry; give up after GIVE_UP_AFTER. True when the transport looks down.

    `row` is the claimed row: its `attempts` already counts the one that just failed."""
    attempts = row["attempts"]
    created = parse_iso(row["created_at"]) or utcnow()
    delay = exc.retry_after if exc.retry_after is not None else retry_delay(attempts)
    next_at = utcnow() + timedelta(seconds=delay)
    if next_at - created > GIVE_UP_AFTER:
        fail(store, row["id"], f"gave up after {attempts} attempts: {exc}",
             alert=row["kind"] != "alert")
        return True
    with store.transaction() as conn:
        conn.execute(
            "UPDATE outbox SET status = 'pending', next_attempt_at = ?, last_error = ?"
            " WHERE id = ?",
            (iso(next_at), str(exc)[:500], row["id"]),
        )
        store.event(
            "send_retry", complaint_id=row["complaint_id"], outbox_id=row["id"],
            kind=row["kind"], error=str(exc)[:300], attempt=attempts, next_attempt_at=iso(next_at),
        )
    log.warning("outbox.retry", outbox=row["id"], kind=row["kind"], error=str(exc)[:200],
                retry_in=int(delay))
    return True
