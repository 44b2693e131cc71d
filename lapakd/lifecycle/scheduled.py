"""Scheduled mail: morning reminders to agencies, escalation of late complaints, weekly digest.

Each job runs often (daemon.EXTRA_JOBS) and does nothing until its time of day has come. What it
sends goes through the outbox with a dedupe_key naming the period — `reminder:<agency>:<date>`,
`escalate:<complaint>`, `digest:<iso-week>` — so it is sent once per period even across restarts,
and a desk that was down at 08:00 catches up when it starts. Nothing to say: nothing is queued.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

import structlog

from lapakd import statuses
from lapakd.errors import ConfigError
from lapakd.lifecycle import confirm, ranking
from lapakd.links import ticket_url
from lapakd.mail.text import first_words
from lapakd.outbox import queue as outbox
from lapakd.routing.deadlines import DEFAULT_SLA_DAYS, Calendar, end_of_day
from lapakd.store import iso, now_iso, parse_iso, utcnow

if TYPE_CHECKING:
    from lapakd.app import Desk

log = structlog.get_logger("lapakd.lifecycle.scheduled")

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
JOB_SECONDS = 60


def reminder_clock(desk: Desk) -> time:
    value = desk.config.desk.reminder_time
    try:
        hh, mm = value.split(":")
        return time(int(hh), int(mm))
    except ValueError:
        raise ConfigError(
            f"{desk.config.path}: desk.reminder_time = {value!r} must be HH:MM, e.g. \"08:00\""
        ) from None


def _local_now(desk: Desk) -> datetime:
    return utcnow().astimezone(desk.config.tz)


# -- reminders and escalation -------------------------------------------------------------------


def _late_rows(desk: Desk, until: datetime, clock: str = "first") -> list[Any]:
    """Complaints whose clock ends before `until` (not merged duplicates). The first clock
    (`due_at`): forwarded, unanswered; the second (`resolve_due_at`): answered or not, not
    settled yet (`statuses.RESOLVE_RUNNING`), never budget-bound."""
    if clock == "first":
        column, running, extra = "due_at", statuses.DEADLINE_RUNNING, ""
    else:
        column, running, extra = ("resolve_due_at", statuses.RESOLVE_RUNNING,
                                  " AND budget_dependent = 0")
    return desk.store.all(
        f"SELECT * FROM complaints WHERE {column} IS NOT NULL AND {column} <= ?"
        f" AND status IN ({statuses.sql_list(running)}){extra}"
        f" AND merged_into IS NULL ORDER BY {column}, id",
        (iso(until),),
    )


def _item(desk: Desk, c: Any, today: date, cal: Calendar, clock: str = "first"
          ) -> dict[str, Any]:
    tz = desk.config.tz
    due_value = c["due_at"] if clock == "first" else c["resolve_due_at"]
    due = parse_iso(due_value)
    due_day = due.astimezone(tz).date() if due else today
    if clock == "first":
        late = cal.days_between(due_day, today) if due_day < today else 0
    else:  # the resolution clock counts calendar days
        late = max((today - due_day).days, 0)
    return {
        "ticket": c["ticket"],
        "summary": first_words(c["subject"] or c["text"], 10),
        "category": c["category"],
        "received_at": c["received_at"],
        "due_at": due_value,
        "overdue_days": late,
        "clock": clock,
        "link": ticket_url(desk.config.desk.public_url, c["ticket"]),
    }


def morning(desk: Desk) -> int:
    """After reminder_time: reminders (working days) and escalations. Returns rows queued."""
    now = _local_now(desk)
    if now.time() < reminder_clock(desk):
        return 0
    cal = Calendar.from_settings(desk.config.desk)
    today = now.date()
    queued = escalate(desk, today, cal)
    if cal.is_working_day(today):
        queued += remind(desk, today, cal)
    return queued


def remind(desk: Desk, today: date, cal: Calendar) -> int:
    """One email per agency with overdue or due-by-next-working-day complaints, once a day."""
    tz = desk.config.tz
    horizon = end_of_day(cal.next_working_day(today), tz)
    per_agency: dict[str, list[dict[str, Any]]] = {}
    for clock in ("first", "resolve"):
        for c in _late_rows(desk, horizon, clock):
            for key in json.loads(c["agencies"]):
                per_agency.setdefault(key, []).append(_item(desk, c, today, cal, clock))
    queued = 0
    store = desk.store
    with store.transaction():
        for key, items in sorted(per_agency.items()):
            agency = desk.rules.agencies.get(key)
            if agency is None:
                continue
            row = outbox.enqueue(
                store, domain=desk.desk_domain, kind="reminder",
                recipients=list(agency.addresses),
                dedupe_key=f"reminder:{key}:{today.isoformat()}",
                payload={"agency": key, "date": today.isoformat(), "items": items},
            )
            if row:
                queued += 1
                store.event("reminder_queued", outbox_id=row, agency=key,
                            tickets=[i["ticket"] for i in items if i["clock"] == "first"],
                            resolve_tickets=[i["ticket"] for i in items
                                             if i["clock"] == "resolve"])
    if queued:
        log.info("reminders.queued", agencies=queued, date=today.isoformat())
    return queued


def escalate(desk: Desk, today: date, cal: Calendar) -> int:
    """Complaints overdue by escalate_after_days go to the admin and leadership, once each."""
    d = desk.config.desk
    tz = desk.config.tz
    now = utcnow()
    recipients = [d.admin_email, *([d.leadership_email] if d.leadership_email else [])]
    queued = 0
    store = desk.store
    with store.transaction():
        for clock in ("first", "resolve"):
            for c in _late_rows(desk, now, clock):
                due_value = c["due_at"] if clock == "first" else c["resolve_due_at"]
                due_day = (parse_iso(due_value) or now).astimezone(tz).date()
                if clock == "first":
                    limit = cal.add_days(due_day, d.escalate_after_days)
                else:
                    limit = due_day + timedelta(days=d.escalate_after_days)
                if end_of_day(limit, tz) >= now:
                    continue
                # a BELUM sets a new resolution deadline: late again, escalated again
                key = (f"escalate:{c['id']}" if clock == "first"
                       else f"escalate-resolve:{c['id']}:{due_value}")
                row = outbox.enqueue(
                    store, domain=desk.desk_domain, kind="escalation", complaint=c,
                    recipients=recipients, dedupe_key=key,
                    payload=_item(desk, c, today, cal, clock)
                    | {"agencies": json.loads(c["agencies"])},
                )
                if row:
                    queued += 1
                    store.event("escalated", complaint_id=c["id"], outbox_id=row,
                                to=recipients, due_at=due_value, clock=clock)
    if queued:
        log.info("escalations.queued", complaints=queued)
    return queued


# -- the weekly digest --------------------------------------------------------------------------


def weekly(desk: Desk) -> int:
    """On digest_day after reminder_time: the digest to leadership_email, once per ISO week."""
    d = desk.config.desk
    if not d.leadership_email:
        return 0
    now = _local_now(desk)
    if WEEKDAYS[now.weekday()] != d.digest_day or now.time() < reminder_clock(desk):
        return 0
    year, week, _ = now.date().isocalendar()
    key = f"digest:{year}-W{week:02d}"
    store = desk.store
    if store.one("SELECT 1 FROM outbox WHERE dedupe_key = ?", (key,)):
        return 0
    end = datetime.combine(now.date(), time(0), tzinfo=desk.config.tz)
    data = digest_data(desk, end - timedelta(days=7), end)
    if not data["new"] and not sum(data["open_by_status"].values()):
        return 0  # nothing to say
    with store.transaction():
        row = outbox.enqueue(store, domain=desk.desk_domain, kind="digest",
                             recipients=[d.leadership_email], dedupe_key=key, payload=data)
        if row:
            store.event("digest_queued", outbox_id=row, week=f"{year}-W{week:02d}")
    return 1 if row else 0


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def digest_data(desk: Desk, start: datetime, end: datetime) -> dict[str, Any]:
    """The digest's numbers for [start, end) — also what the tests check against the store.

    - new: complaints received in the period (not ignored, not merged duplicates)
    - open_by_status: open complaints now, by status
    - per agency: received (forwarded to it, received in the period); answered (first answers
      from it given in the period), of which on_time (at or before the deadline, or no
      deadline); overdue (forwarded, unanswered and past the deadline now); median_days from
      receipt to its first answer, over those answered in the period
    - top categories and kecamatan of the new complaints; the oldest open complaints
    """
    store = desk.store
    s, e, now = iso(start), iso(end), now_iso()
    counted = "status NOT IN ('ignored', 'new', 'quarantined') AND merged_into IS NULL"
    new_rows = store.all(
        f"SELECT * FROM complaints WHERE received_at >= ? AND received_at < ? AND {counted}",
        (s, e),
    )
    open_by_status = {st: 0 for st in statuses.OPEN}
    for r in store.all(
        "SELECT status, count(*) AS n FROM complaints WHERE merged_into IS NULL"
        f" AND status IN ({', '.join('?' * len(statuses.OPEN))}) GROUP BY status",
        statuses.OPEN,
    ):
        open_by_status[r["status"]] = r["n"]

    first_answers = store.all(
        "SELECT u.agency, u.complaint_id, min(u.at) AS at, c.received_at, c.due_at"
        " FROM updates u JOIN complaints c ON c.id = u.complaint_id"
        " WHERE u.source = 'agency' AND c.merged_into IS NULL GROUP BY u.agency, u.complaint_id"
    )
    agencies: dict[str, dict[str, Any]] = {}

    def slot(key: str) -> dict[str, Any]:
        agency = desk.rules.agencies.get(key)
        return agencies.setdefault(key, {
            "key": key, "name": agency.name if agency else key, "received": 0, "answered": 0,
            "on_time": 0, "overdue": 0, "median_days": None, "_days": [],
        })

    for c in new_rows:
        for key in json.loads(c["agencies"]):
            slot(key)["received"] += 1
    for fa in first_answers:
        if not (s <= fa["at"] < e):
            continue
        a = slot(fa["agency"])
        a["answered"] += 1
        if fa["due_at"] is None or fa["at"] <= fa["due_at"]:
            a["on_time"] += 1
        received = parse_iso(fa["received_at"])
        answered = parse_iso(fa["at"])
        if received and answered:
            a["_days"].append((answered - received).total_seconds() / 86400)
    for c in store.all(
        "SELECT agencies FROM complaints WHERE due_at IS NOT NULL AND due_at < ?"
        f" AND status IN ({statuses.sql_list(statuses.DEADLINE_RUNNING)})"
        " AND merged_into IS NULL", (now,),
    ):
        for key in json.loads(c["agencies"]):
            slot(key)["overdue"] += 1
    for a in agencies.values():
        a["median_days"] = _median(a.pop("_days"))

    categories = Counter(c["category"] or "Belum dikategorikan" for c in new_rows)
    kecamatan = Counter(c["kecamatan"] for c in new_rows if c["kecamatan"])
    # the oldest still waiting for an agency (not those waiting for the citizen's SUDAH/BELUM)
    waiting = tuple(st for st in statuses.OPEN if st not in statuses.AWAITING_CONFIRMATION)
    oldest = store.all(
        "SELECT * FROM complaints WHERE merged_into IS NULL"
        f" AND status IN ({', '.join('?' * len(waiting))})"
        " ORDER BY received_at, id LIMIT 10",
        waiting,
    )
    today = end.date()
    return {
        "ranking": digest_ranking(desk, end),
        "start": s,
        "end": e,
        "new": len(new_rows),
        "open_by_status": open_by_status,
        "agencies": sorted(agencies.values(),
                           key=lambda a: (-a["overdue"], -a["received"], a["key"])),
        "top_categories": categories.most_common(5),
        "top_kecamatan": kecamatan.most_common(5),
        "oldest_open": [
            {
                "ticket": c["ticket"], "status": c["status"],
                "status_label": statuses.label(c["status"]),
                "agencies": json.loads(c["agencies"]),
                "days_open": (today - (parse_iso(c["received_at"]) or end)
                              .astimezone(desk.config.tz).date()).days,
                "summary": first_words(c["subject"] or c["text"], 10),
            }
            for c in oldest
        ],
    }


DIGEST_PERIOD = "30hari"


def digest_ranking(desk: Desk, end: datetime) -> list[dict[str, Any]]:
    """The agencies' ranking as the public site computes it (complaints of the last 30 days,
    as of `end`), with the changes since a week earlier (the same figures as of end - 7 days).
    Counts every routed complaint, also those not published (public: false, held for review),
    so a figure can be higher than the site's. Agencies without complaints or overdue are left
    out."""
    p = DIGEST_PERIOD
    agencies = ranking.agencies_of(desk.rules, DEFAULT_SLA_DAYS)
    complaints = ranking.load(desk.store.conn)
    calendar = Calendar.from_settings(desk.config.desk)
    tz = desk.config.tz
    now_rows, before_rows = (
        ranking.ranking(complaints, agencies, as_of=iso(at), calendar=calendar, tz=tz,
                        periods=(p,))  # type: ignore[arg-type]
        for at in (end, end - timedelta(days=7))
    )
    out = []
    for r in ranking.changes(now_rows, before_rows, p):
        f = r["periods"][p]
        if not f["received"] and not r["overdue"]:
            continue
        out.append({
            "key": r["key"], "name": r["name"], "rank": r["rank"][p],
            "prev_rank": r["prev_rank"], "d_rank": r["d_rank"],
            "received": f["received"], "on_time_pct": f["on_time_pct"],
            "d_on_time_pct": r["d_on_time_pct"],
            "median_answer_days": f["median_answer_days"],
            "median_resolve_days": f["median_resolve_days"],
            "confirmed_pct": f["confirmed_pct"], "reopen_pct": f["reopen_pct"],
            "mean_rating": f["mean_rating"], "overdue": r["overdue"],
            "d_overdue": r["d_overdue"],
        })
    return out


# -- budget-bound complaints: "masih menunggu anggaran?" once a month ----------------------------

BUDGET_ASK_DAYS = 30  # a month of waiting, whatever the month's length


def budget_questions(desk: Desk) -> int:
    """After reminder_time on a working day: each budget-bound complaint still open that has
    waited a month gets a question to its agencies, once a calendar month
    (`budget_ask:<id>:<agency>:<YYYY-MM>`) and never within BUDGET_ASK_DAYS of the last one, so
    a desk that was down asks once, not for each month missed."""
    now = _local_now(desk)
    cal = Calendar.from_settings(desk.config.desk)
    if now.time() < reminder_clock(desk) or not cal.is_working_day(now.date()):
        return 0
    store, today, queued = desk.store, now.date(), 0
    recent = iso(utcnow() - timedelta(days=BUDGET_ASK_DAYS - 2))
    waiting = tuple(s for s in statuses.OPEN
                    if s not in (*statuses.AWAITING_CONFIRMATION, "triage"))
    with store.transaction():
        for c in store.all(
            "SELECT * FROM complaints WHERE budget_dependent = 1 AND merged_into IS NULL"
            f" AND status IN ({statuses.sql_list(waiting)}) AND received_at <= ?"
            " AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.complaint_id = complaints.id"
            " AND o.kind = 'budget_ask' AND o.created_at > ?) ORDER BY id",
            (iso(utcnow() - timedelta(days=BUDGET_ASK_DAYS)), recent),
        ):
            since = waiting_since(desk, c)
            days = (today - since.astimezone(desk.config.tz).date()).days
            for key in json.loads(c["agencies"]):
                agency = desk.rules.agencies.get(key)
                if agency is None:
                    continue
                row = outbox.enqueue(
                    store, domain=desk.desk_domain, kind="budget_ask", complaint=c,
                    recipients=list(agency.addresses),
                    dedupe_key=f"budget_ask:{c['id']}:{key}:{today:%Y-%m}",
                    payload={"agency": key, "since": iso(since), "days": days,
                             "summary": first_words(c["subject"] or c["text"], 20)},
                )
                if row:
                    queued += 1
                    store.event("budget_asked", complaint_id=c["id"], outbox_id=row,
                                agency=key, days=days)
    return queued


def waiting_since(desk: Desk, c: Any) -> datetime:
    """How long a budget-bound complaint has waited is counted from its receipt: the citizen
    has waited since then, whenever the agency named the budget."""
    return parse_iso(c["received_at"]) or utcnow()


def confirmations(desk: Desk) -> int:
    """No objection within confirm_days working days: closed (confirm.auto_close)."""
    return confirm.auto_close(desk)


JOBS = [("reminders", JOB_SECONDS, morning), ("digest", JOB_SECONDS, weekly),
        ("budget", JOB_SECONDS, budget_questions), ("confirmations", JOB_SECONDS, confirmations)]
