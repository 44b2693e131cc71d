"""Processing: turn stored raw messages into complaints (or record what else they are).

Each message is handled in a savepoint of its own, PER_TRANSACTION messages to a transaction. A
message that breaks has its writes undone, is quarantined with its error and the stage goes on
with the next one; `lapakd requeue msg-N` puts it back. A transient
failure (a media server that is down) is retried with backoff before it is quarantined.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

import structlog

from lapakd.adapters.base import Content, TransientError
from lapakd.lifecycle import confirm, replies
from lapakd.mail.filenames import safe_filename
from lapakd.outbox import queue as outbox
from lapakd.redact import extract_location
from lapakd.store import Store, dumps, in_transactions, iso, now_iso, parse_iso, utcnow

if TYPE_CHECKING:
    from lapakd.app import Desk
    from lapakd.config import Config

log = structlog.get_logger("lapakd.intake.process")

# Seconds before the 1st, 2nd, ... retry of a transient failure; quarantined after the last.
RETRY_DELAYS = (30, 60, 120, 300, 900, 1800, 3600, 3600, 3600, 3600)

# A handler takes a parsed message and returns True when it dealt with it. They run in order;
# the last one turns whatever is left into a complaint.
Handler = Callable[["Desk", sqlite3.Row, Content], bool]


PER_TRANSACTION = 20  # messages committed together (each in a savepoint of its own)


def process_pending(desk: Desk, limit: int = 1000) -> int:
    """Process stored messages, PER_TRANSACTION to a transaction.

    A message that breaks has its own writes undone (a savepoint) and is quarantined in the
    same transaction; the others go on. Parsing happens before the transaction opens, so the
    write lock is held only for the handlers' few statements."""
    store = desk.store
    with desk.pipeline_lock:  # rows read here are changed below: one thread at a time
        rows = store.all(
            "SELECT * FROM messages WHERE state = 'pending'"
            " AND (retry_at IS NULL OR retry_at <= ?) ORDER BY id LIMIT ?",
            (now_iso(), limit),
        )
        return in_transactions(
            store, rows,
            lambda row: desk.adapter(row["channel"]).parse(row["raw"], json.loads(row["meta"])),
            lambda row, content: _process_one(desk, row, content),
            PER_TRANSACTION, desk.stopping,
        )


def _process_one(desk: Desk, row: sqlite3.Row, content: Content | BaseException) -> int:
    store = desk.store
    try:
        if isinstance(content, BaseException):
            raise content
        with store.savepoint():
            for handler in HANDLERS:
                if handler(desk, row, content):
                    break
        return 1
    except TransientError as exc:
        if row["attempts"] >= len(RETRY_DELAYS):
            quarantine_message(store, row["id"], exc)
        else:
            retry_later(store, row, exc)
    except Exception as exc:  # noqa: BLE001 - quarantine, keep going
        quarantine_message(store, row["id"], exc)
    return 0


def retry_later(store: Store, row: sqlite3.Row, exc: TransientError) -> None:
    delay = exc.retry_after or RETRY_DELAYS[row["attempts"]]
    error = f"TransientError: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
    with store.transaction() as conn:
        conn.execute(
            "UPDATE messages SET attempts = attempts + 1, error = ?, retry_at = ? WHERE id = ?",
            (error, iso(utcnow() + timedelta(seconds=delay)), row["id"]),
        )
    log.warning("message.retry", message=f"msg-{row['id']}", error=error, retry_in=int(delay))


def quarantine_message(store: Store, message_id: int, exc: BaseException) -> None:
    error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
    with store.transaction() as conn:
        conn.execute(
            "UPDATE messages SET state = 'quarantined', error = ?, attempts = attempts + 1"
            " WHERE id = ?",
            (error, message_id),
        )
        store.event("quarantined", message_id=message_id, error=error)
    log.error("message.quarantined", message=f"msg-{message_id}", error=error,
              hint=f"fix the cause, then: lapakd requeue msg-{message_id}")


# -- handlers, in order -----------------------------------------------------------------------


def handle_not_complaint(desk: Desk, row: sqlite3.Row, content: Content) -> bool:
    """Mail from the desk itself, auto-replies, status updates: stored, marked, not routed."""
    if content.kind in ("complaint", "bounce"):
        return False
    desk.store.mark_processed(row["id"], content.kind)
    desk.store.event("not_a_complaint", message_id=row["id"], kind=content.kind)
    return True


def handle_bounce(desk: Desk, row: sqlite3.Row, content: Content) -> bool:
    if content.kind != "bounce":
        return False
    matched = outbox.record_bounce(
        desk.store, content.bounced_ids, content.bounce_status, row["id"]
    )
    desk.store.mark_processed(row["id"], "bounce")
    desk.store.event("bounce", message_id=row["id"], outbox=matched, status=content.bounce_status)
    return True


def handle_complaint(desk: Desk, row: sqlite3.Row, content: Content) -> bool:
    complaint_id = add_to_complaint(desk.store, desk.config, row, content)
    desk.store.mark_processed(row["id"], "complaint", complaint_id)
    return True


def handle_reply(desk: Desk, row: sqlite3.Row, content: Content) -> bool:
    """Agency replies to forwards and the admin's triage answers (replies.py)."""
    return replies.handle(desk, row, content)


def handle_confirmation(desk: Desk, row: sqlite3.Row, content: Content) -> bool:
    """A chat/social citizen's SUDAH/BELUM (or rating) after `selesai` (confirm.py)."""
    return confirm.handle(desk, row, content)


HANDLERS: list[Handler] = [handle_not_complaint, handle_bounce, handle_reply, handle_confirmation,
                           handle_complaint]


def add_to_complaint(store: Store, cfg: Config, row: sqlite3.Row, content: Content) -> int:
    """Create a complaint for this message, or add it to the open chat complaint it continues."""
    received = parse_iso(row["received_at"]) or utcnow()
    window = timedelta(minutes=cfg.desk.group_window_minutes)
    complaint_id: int | None = None
    lat, lon = location_of(content)
    if content.conversation:
        open_row = store.one(
            "SELECT id, text FROM complaints WHERE channel = ? AND conversation = ?"
            " AND status = 'new' ORDER BY id DESC LIMIT 1",
            (row["channel"], content.conversation),
        )
        if open_row is not None:
            complaint_id = open_row["id"]
            text = "\n".join(t for t in (open_row["text"], content.text) if t)
            store.conn.execute(
                "UPDATE complaints SET text = ?, route_after = ?, updated_at = ?,"
                " lat = COALESCE(lat, ?), lon = COALESCE(lon, ?) WHERE id = ?",
                (text, iso(received + window), now_iso(), lat, lon, complaint_id),
            )
    if complaint_id is None:
        local = received.astimezone(cfg.tz)
        ticket = store.next_ticket(cfg.desk.ticket_prefix, local.year)
        route_after = received + window if content.conversation else received
        now = now_iso()
        complaint_id = store.conn.execute(
            "INSERT INTO complaints (ticket, channel, status, sender, sender_name, conversation,"
            " reply_ref, subject, text, notes, received_at, route_after, created_at, updated_at,"
            " awaiting_review, lat, lon)"
            " VALUES (?, ?, 'new', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (
                ticket, row["channel"], content.sender, content.sender_name,
                content.conversation, dumps(content.reply_ref), _clean(content.subject),
                _clean(content.text), dumps(content.notes), iso(received),
                iso(route_after), now, now, int(cfg.public.review), lat, lon,
            ),
        ).fetchone()[0]
        store.event(
            "received", complaint_id=complaint_id, message_id=row["id"], at=now,
            channel=row["channel"], ticket=ticket, notes=content.notes,
        )
    else:
        store.event("message_added", complaint_id=complaint_id, message_id=row["id"])
    for att in content.attachments:
        digest = store.save_blob(att.data)
        store.conn.execute(
            "INSERT INTO attachments (message_id, complaint_id, sha256, filename, content_type,"
            " size) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (row["id"], complaint_id, digest, safe_filename(att.filename, "lampiran"),
             att.content_type, len(att.data)),
        )
    return complaint_id


def location_of(content: Content) -> tuple[float | None, float | None]:
    """Where the complaint is: what the channel says (a WhatsApp location, an X place), else
    coordinates or a map link written in the text. Kept private at full precision."""
    found = content.location or extract_location(f"{content.subject}\n{content.text}")
    return found if found else (None, None)


_CONTROL = re.compile("[\x00-\x08\x0b-\x1f]")  # C0 controls but tab and newline


def _clean(text: str) -> str:
    """Drop NULs and other control characters that have no place in a complaint."""
    return _CONTROL.sub("", text).strip()


def requeue_message(store: Store, message_id: int, actor: str) -> None:
    with store.transaction() as conn:
        conn.execute(
            "UPDATE messages SET state = 'pending', error = NULL, attempts = 0, retry_at = NULL"
            " WHERE id = ?",
            (message_id,),
        )
        store.event("requeued", message_id=message_id, actor=actor)
