"""Intake: move raw messages from a channel into the store.

Each batch and the cursor that covers it commit in one transaction; only then is the server told
(IMAP \\Seen / move). A crash anywhere loses nothing: uncommitted batches are fetched again, and
UNIQUE(channel, external_id) drops what was already stored.

An email whose Message-ID is stored already but whose bytes differ is another mail (a broken
mailer reusing ids, a forward, an edited resend): it is stored under Message-ID + content hash
and processed. A true duplicate (the same bytes again) is dropped, logged at debug level and
counted per channel (`channel_counters`, shown by `lapakd status`).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog

from lapakd.adapters.base import Inbound
from lapakd.intake import health
from lapakd.store import Store, dumps, iso, now_iso

if TYPE_CHECKING:
    from lapakd.adapters.base import Adapter
    from lapakd.app import Desk

log = structlog.get_logger("lapakd.intake.poll")

DUPLICATES = "duplicates_dropped"  # the channel_counters name


def store_batch(
    store: Store, channel: str, messages: list[Inbound], cursor: dict | None
) -> list[int]:
    """Store messages (skipping ones already stored) and move the cursor, atomically.

    A message whose meta says `seen_before` is kept in that state, never processed.
    Returns the ids of newly stored messages."""
    new_ids: list[int] = []
    dropped = 0
    now = now_iso()
    # durable: the caller acknowledges to the server right after this commit.
    with store.transaction(durable=True) as conn:
        for m in messages:
            state = "seen_before" if m.meta.get("seen_before") else "pending"
            new_id = _insert(conn, channel, m, m.external_id, state, now)
            if new_id is None and _keyed_by_message_id(m) and not m.meta.get("rebuilt"):
                digest = hashlib.sha256(m.raw).hexdigest()
                stored = conn.execute(
                    "SELECT raw FROM messages WHERE channel = ? AND external_id = ?",
                    (channel, m.external_id),
                ).fetchone()
                if stored is not None and hashlib.sha256(stored[0]).hexdigest() != digest:
                    new_id = _insert(conn, channel, m, f"{m.external_id}#sha256:{digest}",
                                     state, now)
                    if new_id is not None:
                        log.info("intake.message_id_reused", channel=channel,
                                 external_id=m.external_id, message=f"msg-{new_id}")
            if new_id is None:
                dropped += 1
                log.debug("intake.duplicate_dropped", channel=channel,
                          external_id=m.external_id)
            else:
                new_ids.append(new_id)
        if dropped:
            conn.execute(
                "INSERT INTO channel_counters (channel, name, value) VALUES (?, ?, ?)"
                " ON CONFLICT(channel, name) DO UPDATE SET value = value + excluded.value",
                (channel, DUPLICATES, dropped),
            )
        if cursor is not None:
            store.set_cursor(channel, cursor)
    return new_ids


def _keyed_by_message_id(m: Inbound) -> bool:
    """An email known by its Message-ID, not by the hash of its bytes. Only email: a chat
    or social message re-fetched as JSON may differ in its counters and is still the same."""
    return m.raw_format == "eml" and m.external_id.startswith("mid:")


def _insert(
    conn: sqlite3.Connection, channel: str, m: Inbound, external_id: str, state: str, now: str
) -> int | None:
    row = conn.execute(
        "INSERT INTO messages (channel, external_id, raw, raw_format, meta, received_at,"
        " stored_at, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT(channel, external_id) DO NOTHING RETURNING id",
        (
            channel, external_id, m.raw, m.raw_format, dumps(m.meta),
            iso(m.received_at) or now, now, state,
        ),
    ).fetchone()
    return row[0] if row is not None else None


def duplicates_dropped(store: Store, channel: str) -> int:
    row = store.one(
        "SELECT value FROM channel_counters WHERE channel = ? AND name = ?",
        (channel, DUPLICATES),
    )
    return int(row[0]) if row else 0


def poll_channel(
    desk: Desk, channel: str, after_batch: Callable[[], object] | None = None
) -> int:
    """Fetch everything new on one channel. The channel's failures are recorded, never raised.

    `after_batch` runs after each batch is stored and acknowledged (run_once processes and
    routes a burst while the rest is still being fetched); what it raises is not the channel's
    failure and goes to the caller."""
    store = desk.store
    if not health.ready(store, channel):
        return 0
    adapter: Adapter = desk.adapter(channel)
    stored = 0
    batches = iter(adapter.fetch(store.get_cursor(channel)))
    try:
        while not desk.stopping.is_set():
            try:
                batch = next(batches, None)
                if batch is None:
                    break
                stored += len(store_batch(store, channel, batch.messages, batch.cursor))
                adapter.acknowledge(batch)
            except Exception as exc:  # noqa: BLE001 - a channel's failure never stops the daemon
                health.record_failure(store, channel, exc)
                return stored
            if after_batch is not None:
                after_batch()
    finally:
        close = getattr(batches, "close", None)  # a generator: its own cleanup first
        if close is not None:
            close()
        adapter.close()
    health.record_success(store, channel)
    if stored:
        log.info("intake.stored", channel=channel, messages=stored)
    return stored
