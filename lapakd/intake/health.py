"""Channel health, kept as data the admin can see (`lapakd status`).

An outage is logged once when it starts and once when it ends; in between the channel is retried
with backoff (or paused until a rate limit resets) while every other job keeps running.
"""

from __future__ import annotations

from datetime import timedelta

import structlog

from lapakd.adapters.base import NeedsReauth, TransientError
from lapakd.outbox import queue as outbox
from lapakd.store import Store, iso, parse_iso, utcnow

log = structlog.get_logger("lapakd.intake.health")

# Seconds to wait after the 1st, 2nd, ... consecutive failure; the last value repeats.
BACKOFF = (30, 60, 120, 300, 600, 900)


def invalid_token_key(credential: str) -> str:
    """The alert key for a dead credential (its fingerprint): whoever notices first — a poll,
    a send, the daily token check (monitor/tokens.py) — the admin is told once per token."""
    return f"token-invalid:{credential}"


def _row(store: Store, channel: str) -> dict:
    row = store.one("SELECT * FROM channel_health WHERE channel = ?", (channel,))
    return dict(row) if row else {"channel": channel, "state": "ok", "failures": 0}


def ready(store: Store, channel: str) -> bool:
    row = _row(store, channel)
    next_try = parse_iso(row.get("next_try_at"))
    return next_try is None or utcnow() >= next_try


def retry_now(store: Store, channel: str, why: str) -> None:
    """A channel waiting for new credentials got them: its next poll runs now, not after the
    rest of the hour's wait (`needs_reauth` waits an hour between tries)."""
    with store.transaction() as conn:
        changed = conn.execute(
            "UPDATE channel_health SET next_try_at = NULL WHERE channel = ?"
            " AND state = 'needs_reauth' AND next_try_at IS NOT NULL", (channel,)).rowcount
    if changed:
        log.info("channel.retry_now", channel=channel, why=why)


def record_success(store: Store, channel: str) -> None:
    row = _row(store, channel)
    if row["state"] != "ok":
        log.info("channel.recovered", channel=channel, after_failures=row["failures"])
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO channel_health (channel, state, last_success, failures, next_try_at)"
            " VALUES (?, 'ok', ?, 0, NULL) ON CONFLICT(channel) DO UPDATE SET state = 'ok',"
            " last_success = excluded.last_success, failures = 0, next_try_at = NULL",
            (channel, iso(utcnow())),
        )


def record_failure(store: Store, channel: str, exc: BaseException) -> None:
    row = _row(store, channel)
    failures = int(row.get("failures") or 0) + 1
    message = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
    if isinstance(exc, NeedsReauth):
        state = "needs_reauth"
        delay = 3600.0
    elif isinstance(exc, TransientError) and exc.retry_after is not None:
        state = "paused"  # rate limited: wait exactly as long as the server asked
        delay = max(1.0, exc.retry_after)
    else:
        state = "error"
        delay = float(BACKOFF[min(failures, len(BACKOFF)) - 1])
    if not isinstance(exc, TransientError | NeedsReauth):
        message = f"{type(exc).__name__}: {message}"
    now = utcnow()
    if row["state"] != state:  # once per outage, not once per retry
        if state == "paused":
            log.warning("channel.paused", channel=channel, error=message,
                        until=iso(now + timedelta(seconds=delay)),
                        note="only this channel waits; the others go on")
        else:
            log.error(
                "channel.failed", channel=channel, state=state, error=message,
                retry_in=int(delay)
            )
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO channel_health (channel, state, last_error, last_error_at, failures,"
            " next_try_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(channel) DO UPDATE SET"
            " state = excluded.state, last_error = excluded.last_error,"
            " last_error_at = excluded.last_error_at, failures = excluded.failures,"
            " next_try_at = excluded.next_try_at",
            (channel, state, message, iso(now), failures, iso(now + timedelta(seconds=delay))),
        )
    if state == "needs_reauth" and row["state"] != "needs_reauth":
        credential = getattr(exc, "credential", None)
        outbox.alert_admin(
            store, invalid_token_key(credential) if credential else
            f"needs-reauth:{channel}:{iso(now)}",
            f"Channel {channel} needs new credentials",
            f"The {channel} channel's credentials were rejected: {message}\n"
            "Renew the token in lapakd.toml and restart lapakd.",
        )
