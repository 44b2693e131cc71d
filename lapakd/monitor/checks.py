"""What `lapakd status` checks, computed once for every reader: the CLI's `status` view and the
daemon's `/healthz` (lapakd/monitor/metrics.py). Read-only over the store."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from lapakd import runs
from lapakd.errors import RulesError
from lapakd.intake.poll import duplicates_dropped
from lapakd.mail import oauth2
from lapakd.monitor.tokens import token_problem, token_status
from lapakd.store import iso, parse_iso, utcnow

if TYPE_CHECKING:
    from lapakd.app import Desk

OUTBOX_STATES = ("pending", "sending", "sent", "failed")


def status(desk: Desk) -> dict[str, Any]:
    store = desk.store
    channels: dict[str, Any] = {}
    names = list(desk.config.channels)
    for row in store.all("SELECT DISTINCT channel FROM messages"):
        if row["channel"] not in names:
            names.append(row["channel"])
    for name in names:
        h = store.one("SELECT * FROM channel_health WHERE channel = ?", (name,))
        section = desk.config.channels.get(name)
        enabled = bool(section and section.enabled)
        channels[name] = {
            "enabled": enabled,
            "state": (h["state"] if h else "ok") if enabled else "disabled",
            "messages_stored": store.one(
                "SELECT count(*) n FROM messages WHERE channel = ?", (name,))["n"],
            "seen_before": store.one(
                "SELECT count(*) n FROM messages WHERE channel = ? AND state = 'seen_before'",
                (name,))["n"],
            "duplicates_dropped": duplicates_dropped(store, name),
            "last_success": h["last_success"] if h else None,
            "last_error": h["last_error"] if h else None,
            "last_error_at": h["last_error_at"] if h else None,
            # Rate limited: this channel (only it) waits until then; the others go on.
            "paused_until": h["next_try_at"] if h and h["state"] == "paused" else None,
        }
        if enabled:
            token = token_status(desk, name, h)
            if token is not None:
                channels[name]["token"] = token
    complaints = {r["status"]: r["n"] for r in store.all(
        "SELECT status, count(*) n FROM complaints GROUP BY status")}
    counts = {r["status"]: r["n"] for r in store.all(
        "SELECT status, count(*) n FROM outbox GROUP BY status")}
    outbox = {s: counts.get(s, 0) for s in OUTBOX_STATES}
    quarantined = store.one(
        "SELECT count(*) n FROM messages WHERE state = 'quarantined'")["n"] + complaints.get(
        "quarantined", 0)
    try:
        rules = desk.rules
        rules_state: dict[str, Any] = {"ok": True, "rules": len(rules.rules),
                                       "agencies": len(rules.agencies)}
    except RulesError as exc:
        rules_state = {"ok": False, "problems": exc.problems}
    daemon = runs.summary(desk)
    retrying = _retrying(desk)
    problems = []
    for name, ch in channels.items():
        if ch["enabled"] and ch["state"] != "ok":
            problems.append(f"channel {name} is {ch['state']}: {ch['last_error']}")
        problem = token_problem(name, ch.get("token")) if ch["state"] != "needs_reauth" else None
        if problem:  # a dead channel is told once, by its state
            problems.append(problem)
    problems += _silent_channels(desk, channels, daemon)
    logins = _oauth2_logins(desk)
    for use, login in logins.items():
        channel = channels.get(use)
        if login["error"] and not (channel and channel["state"] != "ok"):  # else said above
            problems.append(f"OAuth2 login for [{login['section']}]: {login['error']}")
    if retrying["count"]:
        problems.append(
            f"{retrying['count']} outgoing message(s) waiting for a retry after a failed attempt"
            f" (last error: {retrying['last_error']}; next try {retrying['next_attempt_at']})")
    if outbox["failed"]:
        problems.append(f"{outbox['failed']} outgoing message(s) failed "
                        "(lapakd list, lapakd requeue --failed)")
    if quarantined:
        problems.append(f"{quarantined} item(s) quarantined (lapakd list --status quarantined)")
    if not rules_state["ok"]:
        problems.append("rules have errors (lapakd rules check)")
    if not daemon["runs"]:
        problems.append("the daemon has never run on this store "
                        "(start lapakd run, or lapakd run --once from cron)")
    return {
        "channels": channels,
        "complaints": complaints,
        "outbox": outbox,
        "retrying": retrying["count"],
        "quarantined": quarantined,
        "rules": rules_state,
        "daemon": daemon,
        "oauth2": logins,
        "needs_admin": bool(problems),
        "problems": problems,
        "reasons": problems,  # the name before `problems`, kept for scripts that read it
    }


def _oauth2_logins(desk: Desk) -> dict[str, Any]:
    """The mail logins with auth = "oauth2": where their refresh token comes from, and the last
    token-endpoint failure still standing (kept in data_dir/oauth2/ by lapakd/mail/oauth2.py)."""
    cfg = desk.config
    email = cfg.channels.get("email")
    sections = {"email": email if email is not None and email.enabled else None,
                "smtp": cfg.smtp}
    out: dict[str, Any] = {}
    for use, section in sections.items():
        if section is None or section.get("auth") != "oauth2":
            continue
        settings = oauth2.OAuth2Settings.from_section(use, section, cfg.data_dir)
        out[use] = {
            "section": oauth2.section_name(use),
            "refresh_token": oauth2.current_refresh_token(settings)[1],
            "error": oauth2.problem(settings),
        }
    return out


# A polled channel whose last success is older than this many poll intervals is stale.
STALE_POLLS = 3


def _retrying(desk: Desk) -> dict[str, Any]:
    """Outbox rows waiting after a failed attempt (SMTP unreachable, refusing, deferring)."""
    row = desk.store.one(
        "SELECT count(*) n, min(next_attempt_at) next_at, max(id) last FROM outbox"
        " WHERE status = 'pending' AND attempts > 0 AND last_error IS NOT NULL")
    last = desk.store.one("SELECT last_error FROM outbox WHERE id = ?", (row["last"],))
    return {"count": row["n"], "next_attempt_at": row["next_at"],
            "last_error": last["last_error"] if last else None}


def _silent_channels(desk: Desk, channels: dict[str, Any], daemon: dict[str, Any]) -> list[str]:
    """Enabled channels that stopped bringing anything: a polled one whose last success is
    older than STALE_POLLS poll intervals, a push-only one (WhatsApp) without a webhook for
    `silence_alert_hours`. A channel already failing is told once, by its state."""
    if not daemon["runs"]:
        return []  # "never run" says it
    now = utcnow()
    out = []
    for name, ch in channels.items():
        if not ch["enabled"] or ch["state"] != "ok":
            continue
        adapter = desk.adapter(name)
        if adapter.polls:
            interval = adapter.poll_seconds
            last = parse_iso(ch["last_success"])
            if last is None:
                since = parse_iso(runs.first_enabled_at(desk, name))
                if since is not None and now - since > timedelta(seconds=STALE_POLLS * interval):
                    out.append(f"channel {name} has never fetched successfully since "
                               f"{iso(since)}")
            elif now - last > timedelta(seconds=STALE_POLLS * interval):
                out.append(f"channel {name} last fetched at {iso(last)}, more than "
                           f"{STALE_POLLS} × poll_seconds ({interval} s) ago: is lapakd running?")
            continue
        hours = desk.config.channels[name].get("silence_alert_hours")
        if not hours:
            continue
        last_hook = desk.store.one(  # the newest row is the last stored (the index walk)
            "SELECT stored_at FROM messages WHERE id ="
            " (SELECT max(id) FROM messages WHERE channel = ?)", (name,))
        last_hook = last_hook[0] if last_hook else None
        since = parse_iso(last_hook) or parse_iso(runs.first_enabled_at(desk, name))
        if since is not None and now - since > timedelta(hours=hours):
            what = f"since {last_hook}" if last_hook else f"at all since {iso(since)}"
            out.append(f"channel {name}: no webhook arrived {what} (more than "
                       f"silence_alert_hours = {hours}; check the app's webhook subscription "
                       "and the proxy)")
    return out
