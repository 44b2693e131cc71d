"""Access tokens that expire: the daily check of each Meta channel's token, and what `lapakd
status` says about every social channel's token.

Meta page tokens expire, and are revoked when the page admin's password changes. Once a day
(and at once when lapakd.toml names a new token) each enabled Graph channel's token is described
by Graph's `debug_token`; the answer is kept in `token_checks` (failures too: data the admin can
see). The admin is mailed through the outbox, once per token and event: EXPIRING_DAYS before
`expires_at` (`token-expiring:<fingerprint>:<date>`), and at once when it is invalid
(`token-invalid:<fingerprint>`, the same key a poll or a send uses when Graph answers error 190
— intake/health.py — so a dead token is told once, whoever notices it first).

X's keys do not expire; a 401 from X marks the channel `needs_reauth` (intake/health.py), which
is what `status` shows for it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog

from lapakd.adapters.base import ChannelError, NeedsReauth, fingerprint
from lapakd.adapters.graph import GraphChannel
from lapakd.intake import health as channel_health
from lapakd.intake.health import invalid_token_key
from lapakd.outbox import queue as outbox
from lapakd.store import iso, parse_iso, utcnow

if TYPE_CHECKING:
    from lapakd.app import Desk

log = structlog.get_logger("lapakd.monitor.tokens")

JOB_SECONDS = 300  # the daemon asks this often whether a check is due (a store read)
CHECK_EVERY = timedelta(days=1)
RETRY_AFTER_FAILURE = timedelta(hours=1)  # a check that got no answer (network, throttled)
EXPIRING_DAYS = 7  # the admin is told this many days before a token expires
TOKEN_CHANNELS = ("twitter",)  # channels with a token but no debug_token: told by their 401s


def graph_channels(desk: Desk) -> list[str]:
    """The enabled channels whose token Graph can describe."""
    return [name for name in desk.config.enabled_channels()
            if isinstance(desk.adapter(name), GraphChannel)]


def check_due(desk: Desk) -> int:
    """The daemon's job: check each Graph channel's token that is due. Returns tokens checked."""
    now = utcnow()
    checked = 0
    for name in desk.config.enabled_channels():
        if name in TOKEN_CHANNELS:
            _notice_new_keys(desk, name)
    for name in graph_channels(desk):
        adapter = desk.adapter(name)
        assert isinstance(adapter, GraphChannel)
        credential = fingerprint(adapter.section.access_token)
        row = desk.store.one("SELECT * FROM token_checks WHERE channel = ?", (name,))
        due = parse_iso(row["next_check_at"]) if row else None
        if row and row["fingerprint"] == credential and due is not None and now < due \
                and not _rejected_since_check(desk, name, row):
            continue
        check_channel(desk, name)
        checked += 1
    return checked


def _notice_new_keys(desk: Desk, name: str) -> None:
    """A channel without debug_token (X): new keys in lapakd.toml end a needs_reauth wait."""
    credential = getattr(desk.adapter(name), "credential", None)
    if not isinstance(credential, str):
        return
    row = desk.store.one("SELECT fingerprint FROM token_checks WHERE channel = ?", (name,))
    if row is not None and row["fingerprint"] == credential:
        return
    now = utcnow()
    with desk.store.transaction() as conn:
        conn.execute(
            "INSERT INTO token_checks (channel, fingerprint, next_check_at) VALUES (?, ?, ?)"
            " ON CONFLICT(channel) DO UPDATE SET fingerprint = excluded.fingerprint",
            (name, credential, iso(now)))
    if row is not None:
        channel_health.retry_now(desk.store, name, "new keys in lapakd.toml")


def _rejected_since_check(desk: Desk, name: str, row: Any) -> bool:
    """A poll or a send met error 190 after the last check, which found the token valid: ask
    again now, for Graph's reason (expired, password changed) and the token's state."""
    health = desk.store.one("SELECT state, last_error_at FROM channel_health WHERE channel = ?",
                            (name,))
    if health is None or health["state"] != "needs_reauth" or row["state"] == "invalid":
        return False
    checked = parse_iso(row["checked_at"])
    failed = parse_iso(health["last_error_at"])
    return checked is None or (failed is not None and failed > checked)


def check_channel(desk: Desk, name: str) -> dict[str, Any]:
    """Ask Graph about one channel's token now; record the answer and alert as needed."""
    adapter = desk.adapter(name)
    assert isinstance(adapter, GraphChannel)
    credential = fingerprint(adapter.section.access_token)
    now = utcnow()
    try:
        data = adapter.graph.debug_token()
    except NeedsReauth as exc:  # error 190 on the call itself: the token cannot even ask
        data = {"is_valid": False, "error": {"message": str(exc)}}
    except ChannelError as exc:
        _record_failure(desk, name, credential, str(exc), now)
        log.warning("token.check_failed", channel=name, error=str(exc)[:300],
                    retry_at=iso(now + RETRY_AFTER_FAILURE))
        return {"state": "unknown", "error": str(exc)}
    return _record_answer(desk, name, credential, data, now)


def _timestamp(value: Any) -> datetime | None:
    """Graph's epoch seconds; 0 (or nothing) means never."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return datetime.fromtimestamp(value, UTC)


def _record_answer(desk: Desk, name: str, credential: str, data: dict[str, Any],
                   now: datetime) -> dict[str, Any]:
    store = desk.store
    previous = store.one("SELECT * FROM token_checks WHERE channel = ?", (name,))
    same_token = previous is not None and previous["fingerprint"] == credential
    valid = data.get("is_valid") is True
    error = data.get("error") if isinstance(data.get("error"), dict) else {}
    reason = str(error.get("message", ""))[:300] or None
    expires = _timestamp(data.get("expires_at"))
    data_access = _timestamp(data.get("data_access_expires_at"))
    state = "valid" if valid else "invalid"
    invalid_since = None
    if not valid:
        invalid_since = (previous["invalid_since"] if same_token and previous["invalid_since"]
                         else iso(now))
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO token_checks (channel, fingerprint, state, expires_at,"
            " data_access_expires_at, invalid_since, reason, checked_at, next_check_at, error,"
            " error_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)"
            " ON CONFLICT(channel) DO UPDATE SET fingerprint = excluded.fingerprint,"
            " state = excluded.state, expires_at = excluded.expires_at,"
            " data_access_expires_at = excluded.data_access_expires_at,"
            " invalid_since = excluded.invalid_since, reason = excluded.reason,"
            " checked_at = excluded.checked_at, next_check_at = excluded.next_check_at,"
            " error = NULL, error_at = NULL",
            (name, credential, state, iso(expires), iso(data_access), invalid_since, reason,
             iso(now), iso(now + CHECK_EVERY)),
        )
    if valid and not same_token:
        channel_health.retry_now(store, name, "a new, valid token in lapakd.toml")
    if not valid:
        if not same_token or previous["state"] != "invalid":
            log.error("token.invalid", channel=name, reason=reason)
        outbox.alert_admin(
            store, invalid_token_key(credential),
            f"Channel {name} needs new credentials",
            f"The {name} channel's access token is no longer valid"
            f"{': ' + reason if reason else ''}.\n"
            f"Renew channels.{name}.access_token in lapakd.toml and reload lapakd "
            "(systemctl reload lapakd).",
        )
    elif expires is not None and expires - now <= timedelta(days=EXPIRING_DAYS):
        day = expires.astimezone(desk.config.tz).date().isoformat()
        log.warning("token.expiring", channel=name, expires_at=iso(expires))
        outbox.alert_admin(
            store, f"token-expiring:{credential}:{day}",
            f"Channel {name}: access token expires on {day}",
            f"The {name} channel's access token expires on {day} ({_days(expires, now)} days "
            "from now); after that lapakd can no longer read or answer on it.\n"
            f"Get a new long-lived page token, put it in channels.{name}.access_token in "
            "lapakd.toml and reload lapakd (systemctl reload lapakd).",
        )
    return {"state": state, "expires_at": iso(expires), "reason": reason}


def _record_failure(desk: Desk, name: str, credential: str, error: str, now: datetime) -> None:
    """No answer: the last known state stays; the error is kept and retried within the hour."""
    with desk.store.transaction() as conn:
        conn.execute(
            "INSERT INTO token_checks (channel, fingerprint, next_check_at, error, error_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT(channel) DO UPDATE SET"
            " next_check_at = excluded.next_check_at, error = excluded.error,"
            " error_at = excluded.error_at,"
            # Another token than the one the row describes: what was known no longer holds.
            " state = CASE WHEN fingerprint = excluded.fingerprint THEN state ELSE 'unknown'"
            " END, fingerprint = excluded.fingerprint",
            (name, credential, iso(now + RETRY_AFTER_FAILURE), error[:300], iso(now)),
        )


def _days(when: datetime, now: datetime) -> int:
    return max(0, (when - now).days)


# -- what `lapakd status` shows -------------------------------------------------------------------


def token_status(desk: Desk, name: str, health: Any) -> dict[str, Any] | None:
    """A social channel's token as `status` shows it (None for channels without one):
    `state` (valid, expiring, invalid, unknown), `expires_at`, `days_left`, `invalid_since`,
    `checked_at`, `error` (a check that got no answer), and `text`, the line for people."""
    adapter = desk.adapter(name)
    now = utcnow()
    needs_reauth = health is not None and health["state"] == "needs_reauth"
    if name in TOKEN_CHANNELS and not isinstance(adapter, GraphChannel):
        if needs_reauth:
            since = health["last_error_at"]
            return {"state": "invalid", "expires_at": None, "days_left": None,
                    "invalid_since": since, "checked_at": None, "error": None,
                    "text": f"INVALID since {since}"}
        return {"state": "valid", "expires_at": None, "days_left": None, "invalid_since": None,
                "checked_at": None, "error": None, "text": "never expires"}
    if not isinstance(adapter, GraphChannel):
        return None
    row = desk.store.one("SELECT * FROM token_checks WHERE channel = ?", (name,))
    current = row is not None and row["fingerprint"] == fingerprint(adapter.section.access_token)
    out: dict[str, Any] = {"state": "unknown", "expires_at": None, "days_left": None,
                           "invalid_since": None, "checked_at": None,
                           "error": row["error"] if current else None}
    if current:
        out["checked_at"] = row["checked_at"]
        out["state"] = row["state"]
        out["invalid_since"] = row["invalid_since"]
        expires = parse_iso(row["expires_at"])
        if expires is not None:
            out["expires_at"] = iso(expires)
            out["days_left"] = _days(expires, now)
            if row["state"] == "valid" and expires - now <= timedelta(days=EXPIRING_DAYS):
                out["state"] = "expiring"
    if needs_reauth and out["state"] != "invalid":  # Graph said 190 to a poll or a send
        out["state"] = "invalid"
        out["invalid_since"] = health["last_error_at"]
    if out["state"] == "invalid":
        out["text"] = f"INVALID since {out['invalid_since']}"
    elif out["state"] == "unknown":
        out["text"] = "not checked yet" + (f" (last check failed: {out['error']})"
                                           if out["error"] else "")
    elif out["expires_at"] is None:
        out["text"] = "never expires"
    else:
        day = parse_iso(out["expires_at"]).astimezone(desk.config.tz).date().isoformat()
        out["text"] = f"expires {day} ({out['days_left']} days)"
    return out


def token_problem(name: str, token: dict[str, Any] | None) -> str | None:
    """The line for `status`'s problems, when a token needs the admin."""
    if token is None:
        return None
    if token["state"] == "invalid":
        return (f"channel {name}: access token INVALID since {token['invalid_since']} "
                f"(renew channels.{name}'s token in lapakd.toml, then reload lapakd)")
    if token["state"] == "expiring":
        return (f"channel {name}: access token {token['text']} "
                f"(renew channels.{name}.access_token before then)")
    return None
