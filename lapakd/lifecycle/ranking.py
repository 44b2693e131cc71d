"""Agencies held to account: each agency's record, computed once for the public site
(`statistik.html`, `instansi/<key>.html`, `instansi.json`) and the weekly digest.

Per agency and period (complaints received in the last 30 days, 12 months, or ever):
received, the share answered within the deadline (`due_at`, which routing computed from
`sla_days` on the desk's calendar), the median working days to the first answer and to the
resolution, the share confirmed by citizens, the reopen rate, the mean rating, and the
complaints overdue now. A complaint forwarded to two agencies counts for both.

Everything can be computed "as of" an earlier moment (the digest's changes since last week):
only what had happened by then counts (timestamps), never today's status.

The citizen's confirmation (lifecycle/confirm.py) is read from its events (CONFIRM_*) and the
`rating` column; a figure nobody gave yet (no citizen asked, none rated) is None ("–" on the site).
"""

from __future__ import annotations

import json
import sqlite3
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from lapakd import statuses
from lapakd.routing.deadlines import Calendar

# period key -> (days back, label); None = everything
PERIODS: dict[str, tuple[int | None, str]] = {
    "30hari": (30, "30 hari terakhir"),
    "12bulan": (365, "12 bulan terakhir"),
    "semua": (None, "Sepanjang waktu"),
}
TREND_MONTHS = 12

# The citizen's confirmation (events.type values lifecycle/confirm.py writes).
CONFIRM_ASKED = "confirm_asked"  # the citizen was asked SUDAH/BELUM
CONFIRMED = "confirmed"  # the citizen said SUDAH
REOPENED = "reopened"  # the citizen said BELUM
RATED = "rated"  # the citizen gave a 1-5 rating (complaints.rating)
AUTO_CLOSED = "auto_closed"  # no objection within confirm_days
CONFIRM_EVENTS = (CONFIRM_ASKED, CONFIRMED, REOPENED, RATED, AUTO_CLOSED)
# The agency resolved it: `resolved` (the agency's word) or `closed` (confirmed after that).
RESOLVED = ("resolved", "closed")
COUNTED_SQL = ("c.status NOT IN ('new', 'ignored', 'quarantined')"
               " AND c.merged_into IS NULL")


@dataclass
class Complaint:
    """What the figures need of one complaint (no text, nothing about the citizen)."""

    cid: int
    agencies: list[str]
    received: str  # UTC ISO, like every timestamp in the store
    status: str
    due: str | None
    first_answer: str | None
    resolved: str | None  # when the agency resolved it (only if resolved or closed now)
    closed: str | None
    budget: bool
    resolve_due: str | None = None
    rating: int | None = None
    events: dict[str, str] = field(default_factory=dict)  # confirm event type -> first time
    # Filled by `measure` (they do not depend on the moment of the figures):
    answer_days: int | None = None  # working days received -> first answer
    resolve_days: int | None = None  # working days received -> resolved
    month: str = ""  # local YYYY-MM of received


def measure(complaints: list[Complaint], working: WorkingDays) -> None:
    """The working days and month of each complaint, once (not per period and agency)."""
    for c in complaints:
        if c.month:
            continue
        c.month = _month(c.received, working.tz)
        if c.first_answer:
            c.answer_days = working.between(c.received, c.first_answer)
        if c.resolved:
            c.resolve_days = working.between(c.received, c.resolved)


def load(conn: sqlite3.Connection, scope_sql: str | None = None) -> list[Complaint]:
    """The counted complaints (not new/ignored/quarantined/merged), in id order; `scope_sql`:
    a SELECT of complaint ids to keep (the public site keeps the published ones)."""
    scope = f" AND c.id IN ({scope_sql})" if scope_sql else ""
    resolved_in = statuses.sql_list(RESOLVED)
    rows = conn.execute(
        "SELECT c.id, c.agencies, c.received_at, c.status, c.due_at, c.first_answer_at,"
        " c.closed_at, c.updated_at, c.budget_dependent, c.resolve_due_at, c.rating"
        f" FROM complaints c WHERE {COUNTED_SQL}{scope} ORDER BY c.id"
    ).fetchall()
    # When each was last resolved (the status event), for those resolved or closed now.
    resolved_at = dict(conn.execute(
        "SELECT e.complaint_id, MAX(e.at) FROM events e JOIN complaints c"
        " ON c.id = e.complaint_id WHERE e.type = 'status_changed'"
        " AND CASE WHEN json_valid(e.data) THEN json_extract(e.data, '$.to') END = 'resolved'"
        f" AND c.status IN ({resolved_in})"
        " GROUP BY e.complaint_id"))
    # An answer set by hand (`lapakd set-status X answered` after a phone call) leaves no
    # first_answer_at: the first status change to an answering status stands for it.
    answered_at = dict(conn.execute(
        "SELECT complaint_id, MIN(at) FROM events WHERE type = 'status_changed'"
        " AND CASE WHEN json_valid(data) THEN json_extract(data, '$.to') END"
        " IN (" + statuses.sql_list(statuses.ANSWERS) + ")"
        " GROUP BY complaint_id"))
    confirm: dict[int, dict[str, str]] = {}
    marks = ",".join("?" * len(CONFIRM_EVENTS))
    for cid, type_, at in conn.execute(
        "SELECT complaint_id, type, MIN(at) FROM events WHERE type IN (" + marks + ")"
        " AND complaint_id IS NOT NULL GROUP BY complaint_id, type", CONFIRM_EVENTS
    ):
        confirm.setdefault(cid, {})[type_] = at
    out = []
    for (cid, agencies, received, status, due, first_answer, closed, updated, budget,
         resolve_due_at, rating) in rows:
        resolved = None
        if status in RESOLVED:
            resolved = resolved_at.get(cid) or closed or updated
        if not first_answer and status in (*statuses.ANSWERS, *RESOLVED):
            first_answer = answered_at.get(cid) or resolved or updated
        try:
            keys = [a for a in json.loads(agencies or "[]") if isinstance(a, str)]
        except ValueError:
            keys = []
        out.append(Complaint(
            cid=cid, agencies=keys, received=received, status=status, due=due or None,
            first_answer=first_answer or None, resolved=resolved, closed=closed or None,
            budget=bool(budget), resolve_due=resolve_due_at or None,
            rating=rating if isinstance(rating, int) and 1 <= rating <= 5 else None,
            events=confirm.get(cid, {}),
        ))
    return out


class WorkingDays:
    """Working days between two instants on the desk's calendar (local dates), by a prefix
    count over the days seen, so 100,000 complaints cost one walk over the calendar."""

    def __init__(self, calendar: Calendar, tz: tzinfo) -> None:
        self.calendar, self.tz = calendar, tz
        self.start: date | None = None
        self.prefix: list[int] = []

    def _local(self, value: str) -> date:
        return datetime.fromisoformat(value).astimezone(self.tz).date()

    def _index(self, day: date) -> int:
        if self.start is None or day < self.start:
            self.start, self.prefix = day, []
        while len(self.prefix) <= (day - self.start).days:
            n = len(self.prefix)
            current = self.start + timedelta(days=n)
            working = n > 0 and self.calendar.is_working_day(current)
            self.prefix.append((self.prefix[-1] if self.prefix else 0) + int(working))
        return self.prefix[(day - self.start).days]

    def between(self, start: str, end: str) -> int:
        """`Calendar.days_between` of the two instants' local dates (0 if end is earlier)."""
        a, b = self._local(start), self._local(end)
        if b <= a:
            return 0
        first = self._index(a)
        return self._index(b) - first


def _at_or_before(value: str | None, moment: str) -> bool:
    return bool(value) and value <= moment  # type: ignore[operator]


def _pct(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


def _median(values: list[int]) -> float | None:
    return round(float(statistics.median(values)), 1) if values else None


def is_overdue(c: Complaint, as_of: str) -> bool:
    """Past a deadline at `as_of`: no first answer by the first deadline, or (with the
    resolution clock) not resolved by the resolution deadline. Budget-bound ones have none."""
    closed = _at_or_before(c.closed, as_of) or (c.status in statuses.CLOSED and c.closed is None)
    if closed or c.status in ("rejected", "ignored"):
        return False
    first = (c.due is not None and c.due < as_of
             and not _at_or_before(c.first_answer, as_of)
             and c.status not in ("answered", "waiting_budget", *RESOLVED))
    resolve = (c.resolve_due is not None and not c.budget and c.resolve_due < as_of
               and not _at_or_before(c.resolved, as_of))
    return first or resolve


def figures(items: Iterable[Complaint], as_of: str) -> dict[str, Any]:
    """One agency's figures over `items` (its complaints of one period, `measure`d), as of
    `as_of`."""
    received = due_decided = on_time = asked = confirmed = reopened = 0
    answer_days: list[int] = []
    resolve_days: list[int] = []
    ratings: list[int] = []
    for c in items:
        received += 1
        answered = _at_or_before(c.first_answer, as_of)
        if answered or (c.due is not None and c.due < as_of):
            due_decided += 1  # answered, or its deadline has passed unanswered
            if answered and (c.due is None or c.first_answer <= c.due):  # type: ignore[operator]
                on_time += 1
        if answered and c.answer_days is not None:
            answer_days.append(c.answer_days)
        if _at_or_before(c.resolved, as_of) and c.resolve_days is not None:
            resolve_days.append(c.resolve_days)
        ev = c.events
        if _at_or_before(ev.get(CONFIRM_ASKED), as_of):
            asked += 1
            confirmed += _at_or_before(ev.get(CONFIRMED), as_of)
            reopened += _at_or_before(ev.get(REOPENED), as_of)
        if c.rating is not None and (RATED not in ev or ev[RATED] <= as_of):
            ratings.append(c.rating)
    return {
        "received": received,
        "on_time_pct": _pct(on_time, due_decided),
        "on_time": on_time,
        "due_decided": due_decided,
        "median_answer_days": _median(answer_days),
        "median_resolve_days": _median(resolve_days),
        "answered": len(answer_days),
        "resolved": len(resolve_days),
        "asked": asked,
        "confirmed_pct": _pct(confirmed, asked),
        "reopen_pct": _pct(reopened, asked),
        "rated": len(ratings),
        "mean_rating": round(sum(ratings) / len(ratings), 2) if ratings else None,
    }


def _month(value: str, tz: tzinfo) -> str:
    local = datetime.fromisoformat(value).astimezone(tz)
    return f"{local.year:04d}-{local.month:02d}"


def _months_back(as_of: str, tz: tzinfo, n: int) -> list[str]:
    local = datetime.fromisoformat(as_of).astimezone(tz)
    y, m = local.year, local.month
    out = []
    for _ in range(n):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y, m - 1) if m > 1 else (y - 1, 12)
    return out[::-1]


def sort_key(row: dict[str, Any], period: str) -> tuple[Any, ...]:
    """The ranking: answered on time (share, high first), then fewest overdue now, then the
    fastest median first answer, then most complaints; agencies without complaints last."""
    f = row["periods"][period]
    return (
        f["received"] == 0,
        -(f["on_time_pct"] if f["on_time_pct"] is not None else -1),
        row["overdue"],
        f["median_answer_days"] if f["median_answer_days"] is not None else float("inf"),
        -f["received"],
        row["name"],
    )


def ranking(complaints: list[Complaint], agencies: dict[str, dict[str, Any]], *,
            as_of: str, calendar: Calendar, tz: tzinfo,
            periods: Iterable[str] = tuple(PERIODS)) -> list[dict[str, Any]]:
    """Every agency's record as of `as_of`: {key, name, sla_days, overdue (now), open,
    periods: {period: figures}, trend: [{month, received, on_time_pct}], rank: {period: n}}.

    `agencies`: key -> {"name", "sla_days"} from the rules; keys found only on complaints
    (an agency removed from the rules) are listed under their key. Sorted by the first
    period's ranking."""
    periods = list(periods)
    measure(complaints, WorkingDays(calendar, tz))
    by_agency: dict[str, list[Complaint]] = {k: [] for k in agencies}
    for c in complaints:
        if c.received >= as_of:
            continue
        for key in dict.fromkeys(c.agencies):
            by_agency.setdefault(key, []).append(c)
    moment = datetime.fromisoformat(as_of)
    starts = {p: (moment - timedelta(days=PERIODS[p][0])).isoformat()
              if PERIODS[p][0] else "" for p in periods}
    months = _months_back(as_of, tz, TREND_MONTHS)
    rows = []
    for key, items in by_agency.items():
        info = agencies.get(key, {})
        per_month: dict[str, list[Complaint]] = {m: [] for m in months}
        for c in items:
            bucket = per_month.get(c.month)
            if bucket is not None:
                bucket.append(c)
        rows.append({
            "key": key,
            "name": info.get("name") or key,
            "sla_days": info.get("sla_days"),
            "overdue": sum(is_overdue(c, as_of) for c in items),
            "open": sum(c.status in statuses.WITH_AGENCY for c in items),
            "periods": {p: figures((c for c in items if c.received >= starts[p]), as_of)
                        for p in periods},
            "trend": [{"month": m, "received": len(cs),
                       "on_time_pct": figures(cs, as_of)["on_time_pct"]}
                      for m, cs in per_month.items()],
        })
    for p in reversed(periods):  # the first period's order last: it is the list's order
        rows.sort(key=lambda r, p=p: sort_key(r, p))
        for i, r in enumerate(rows, 1):
            r.setdefault("rank", {})[p] = i if r["periods"][p]["received"] else None
    return rows


def agencies_of(rules: Any, default_sla: int) -> dict[str, dict[str, Any]]:
    """key -> {name, sla_days} from the loaded rules (broken rules: none)."""
    try:
        return {k: {"name": a.name, "sla_days": a.sla_days or default_sla}
                for k, a in rules.agencies.items()}
    except Exception:  # noqa: BLE001 - broken rules must not stop the site or the digest
        return {}


def changes(now_rows: list[dict[str, Any]], before_rows: list[dict[str, Any]],
            period: str) -> list[dict[str, Any]]:
    """`now_rows` with what changed since `before_rows` (a week earlier): rank, on-time share
    and overdue, as `prev_rank`, `d_rank` (positive: moved up), `d_on_time_pct`, `d_overdue`."""
    before = {r["key"]: r for r in before_rows}
    out = []
    for r in now_rows:
        b = before.get(r["key"])
        now_f = r["periods"][period]
        prev_rank = b["rank"][period] if b else None
        prev_pct = b["periods"][period]["on_time_pct"] if b else None
        out.append(r | {
            "prev_rank": prev_rank,
            "d_rank": (prev_rank - r["rank"][period])
            if prev_rank is not None and r["rank"][period] is not None else None,
            "d_on_time_pct": round(now_f["on_time_pct"] - prev_pct, 1)
            if now_f["on_time_pct"] is not None and prev_pct is not None else None,
            "d_overdue": r["overdue"] - (b["overdue"] if b else 0),
        })
    return out
