"""Deadlines: the desk's calendar of working days, due dates, overdue and due-soon.

A deadline is `sla_days` after the day a complaint was received. With `[desk] sla_calendar =
"working"` (the default) only working days count: Monday–Friday, minus Indonesia's national
public holidays (the `holidays` package) and the extra days off listed in `[desk]
extra_holidays` (cuti bersama). With `"calendar"` every day counts. A complaint is due at the end
of its last day (23:59:59 in the desk's time zone), stored in UTC like every timestamp.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from lapakd import statuses
from lapakd.errors import ConfigError
from lapakd.store import iso, utcnow

if TYPE_CHECKING:
    from lapakd.config import Config, Section

# The two clocks as SQL over `complaints` (`:now` an ISO time): the first answer (`due_at`,
# stopped by `diproses`) and the resolution (`resolve_due_at`, stopped by `selesai`; none for
# budget-bound complaints), each late when its deadline passed while it runs. `lapakd list
# --overdue` and /metrics read them from here.
CLOCK_SQL = {
    "first": (f"due_at IS NOT NULL AND due_at < :now"
              f" AND status IN ({statuses.sql_list(statuses.DEADLINE_RUNNING)})"),
    "resolve": (f"resolve_due_at IS NOT NULL AND resolve_due_at < :now AND budget_dependent = 0"
                f" AND status IN ({statuses.sql_list(statuses.RESOLVE_RUNNING)})"),
}


def clocks_late(row: Any, now: str) -> list[str]:
    """Which clocks have run out: [], ["first"], ["resolve"] or both (CLOCK_SQL for one row)."""
    late = []
    if row["due_at"] and row["due_at"] < now and row["status"] in statuses.DEADLINE_RUNNING:
        late.append("first")
    if (row["resolve_due_at"] and row["resolve_due_at"] < now and not row["budget_dependent"]
            and row["status"] in statuses.RESOLVE_RUNNING):
        late.append("resolve")
    return late


# The SLA when neither the rule nor any of its agencies sets one.
DEFAULT_SLA_DAYS = 7


@lru_cache(maxsize=64)
def _national(year: int) -> frozenset[date]:
    import holidays  # why: 45 ms to import; the sender process and CLI verbs never need it

    return frozenset(holidays.country_holidays("ID", years=year))


class Calendar:
    def __init__(self, mode: str = "working", extra: tuple[str, ...] | list[str] = ()) -> None:
        self.mode = mode
        days = set()
        for value in extra:
            try:
                days.add(date.fromisoformat(str(value)))
            except ValueError:
                raise ConfigError(
                    f"desk.extra_holidays: {value!r} is not a date like \"2026-03-20\""
                ) from None
        self.extra = frozenset(days)

    @classmethod
    def from_settings(cls, desk_settings: Section) -> Calendar:
        """The calendar `[desk] sla_calendar` and `extra_holidays` describe."""
        return cls(desk_settings.sla_calendar, tuple(desk_settings.extra_holidays))

    def is_working_day(self, day: date) -> bool:
        if self.mode == "calendar":
            return True
        return day.weekday() < 5 and day not in _national(day.year) and day not in self.extra

    def add_days(self, start: date, days: int) -> date:
        """The day `days` (working) days after `start`; `start` itself does not count."""
        day = start
        counted = 0
        while counted < days:
            day += timedelta(days=1)
            if self.is_working_day(day):
                counted += 1
        return day

    def next_working_day(self, day: date) -> date:
        return self.add_days(day, 1)

    def days_between(self, start: date, end: date) -> int:
        """Working days after `start` up to and including `end` (0 when end <= start)."""
        count, day = 0, start
        while day < end:
            day += timedelta(days=1)
            if self.is_working_day(day):
                count += 1
        return count


def end_of_day(day: date, tz) -> datetime:
    return datetime.combine(day, time(23, 59, 59), tzinfo=tz)


def due_at(config: Config, received: datetime, sla_days: int) -> str:
    """received + sla_days on the desk's calendar, at the end of that day (UTC ISO)."""
    d = config.desk
    tz = config.tz
    start = received.astimezone(tz).date()
    # keyed by the calendar's settings (as Calendar reads them), not by the desk: a changed
    # config gives other keys, never a stale date
    return _due_at(d.sla_calendar, tuple(str(v) for v in d.extra_holidays), tz, start, sla_days)


@lru_cache(maxsize=4096)
def _due_at(mode: str, extra: tuple[str, ...], tz: tzinfo, start: date, sla_days: int) -> str:
    """Routing asks this for every complaint; those received on the same day with the same SLA
    share the answer (the working-day walk and holiday lookups run once)."""
    last_day = Calendar(mode, extra).add_days(start, sla_days)
    due = end_of_day(last_day, tz)
    return iso(due)  # type: ignore[return-value]


def resolve_due_at(config: Config, start: datetime, resolve_days: int) -> str:
    """The resolution clock: `resolve_days` calendar days after `start`'s day, at its end."""
    day = start.astimezone(config.tz).date() + timedelta(days=resolve_days)
    return iso(end_of_day(day, config.tz))  # type: ignore[return-value]


def confirm_due_at(config: Config, start: datetime, confirm_days: int) -> str:
    """The citizen may object until the end of the `confirm_days`-th working day after `start`
    (always working days — national holidays and `extra_holidays` skipped — whatever
    `sla_calendar` says: the SP4N-LAPOR! rule)."""
    cal = Calendar("working", tuple(str(v) for v in config.desk.extra_holidays))
    day = cal.add_days(start.astimezone(config.tz).date(), confirm_days)
    return iso(end_of_day(day, config.tz))  # type: ignore[return-value]


def today(tz: tzinfo) -> date:
    return utcnow().astimezone(tz).date()
