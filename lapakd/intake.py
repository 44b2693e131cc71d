"""Intake: move raw messages from a channel into the store.

Each batch and the cursor that covers it commit in one transaction; only then is the server told
(IMAP \\Seen / move). A crash anywhere loses nothing: uncommitted batches are fetched again, and
UNIQUE(channel, external_id) drops what was already stored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from lapakd import health
from lapakd.adapters.base import Inbound
from lapakd.store import Store, dumps, iso, now_iso

if TYPE_CHECKING:
    from lapakd.adapters.base import Adapter
    from lapakd.app import Desk

log = structlog.get_logger("lapakd.intake")


def store_batch(
    store: Store, channel: str, messages: list[Inbound], cursor: dict | None
) -> list[int]:
    """Store messages (skipping ones already stored) and move the cursor, atomically.

    Returns the ids of newly stored messages."""
    new_ids: list[int] = []
    now = now_iso()
    # durable: the caller acknowledges to the server right after this commit.
    with store.transaction(durable=True) as conn:
        for m in messages:
            row = conn.execute(
                "INSERT INTO messages (channel, external_id, raw, raw_format, meta, received_at,"
                " stored_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(channel, external_id) DO NOTHING RETURNING id",
                (
                    channel, m.external_id, m.raw, m.raw_format, dumps(m.meta),
                    iso(m.received_at) or now, now,
                ),
            ).fetchone()
            if row is not None:
                new_ids.append(row[0])
        if cursor is not None:
            store.set_cursor(channel, cursor)
    return new_ids


def poll_channel(desk: Desk, channel: str) -> int:
    """Fetch everything new on one channel. Failures are recorded, never raised."""
    store = desk.store
    if not health.ready(store, channel):
        return 0
    adapter: Adapter = desk.adapter(channel)
    stored = 0
    try:
        for batch in adapter.fetch(store.get_cursor(channel)):
            stored += len(store_batch(store, channel, batch.messages, batch.cursor))
            adapter.acknowledge(batch)
            if desk.stopping.is_set():
                break
    except Exception as exc:  # noqa: BLE001 - a channel's failure never stops the daemon
        health.record_failure(store, channel, exc)
        return stored
    finally:
        adapter.close()
    health.record_success(store, channel)
    if stored:
        log.info("intake.stored", channel=channel, messages=stored)
    return stored
