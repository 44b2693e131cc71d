"""Intake: move raw messages from a channel into the store.

Each batch and the cursor that covers it commit in one transaction; only then is the server told
(IMAP \\Seen / move). A crash anywhere loses nothing: uncommitted batches are fetched again, and
UNIQUE(channel, external_id) drops what was already stored.
"""

from __future__ import annotations

from collections.abc import Callable
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
