"""Statistics for `statistik.html`, computed from the compact public rows (see model.ROW_FIELDS)."""

from __future__ import annotations

import sqlite3
import statistics
from collections import Counter, defaultdict
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from lapakd import statuses

UNKNOWN = "(tidak diketahui)"
BAR_WIDTH = 600


def _days(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds() / 86400


def compute(rows: list[list[Any]] | sqlite3.Connection, agency_names: dict[str, str],
            tz: ZoneInfo) -> dict[str, Any]:
    """Statistics of the published complaints: from compact rows (oldest first), or, given a
    store connection, in SQL from the columns of `public_index` (same result, no row parsing)."""
    if isinstance(rows, sqlite3.Connection):
        return _compute_cached(rows, agency_names)
    per_category: Counter[str] = Counter()
    per_agency: Counter[str] = Counter()
    per_kecamatan: Counter[str] = Counter()
    per_month: Counter[str] = Counter()
    per_status: Counter[str] = Counter()
    overdue_agency: Counter[str] = Counter()
    answer_days: dict[str, list[float]] = defaultdict(list)
    answered = settled = overdue = 0
    for (_t, received, _ch, category, agencies, kec, status, is_overdue, _due, first_answer,
         is_settled, _snip) in rows:
        per_category[category or UNKNOWN] += 1
        per_kecamatan[kec or UNKNOWN] += 1
        per_status[status] += 1
        local = datetime.fromisoformat(received).astimezone(tz)
        per_month[f"{local.year:04d}-{local.month:02d}"] += 1
        names = [agency_names.get(a, a) for a in agencies] or [UNKNOWN]
        for name in names:
            per_agency[name] += 1
            if is_overdue:
                overdue_agency[name] += 1
            if first_answer:
                answer_days[name].append(max(0.0, _days(received, first_answer)))
        if first_answer or status in statuses.ANSWERS:
            answered += 1
        if is_settled:
            settled += 1
        if is_overdue:
            overdue += 1
    return _result(len(rows), answered, settled, overdue, per_category.most_common(),
                   per_agency.most_common(), per_kecamatan.most_common(),
                   sorted(per_month.items())[-24:], per_status.most_common(), answer_days,
                   overdue_agency)


def _result(total: int, answered: int, settled: int, overdue: int,
            per_category: list[tuple[str, int]], agencies: list[tuple[str, int]],
            per_kecamatan: list[tuple[str, int]], months: list[tuple[str, int]],
            per_status: list[tuple[str, int]], answer_days: dict[str, list[float]],
            overdue_agency: dict[str, int]) -> dict[str, Any]:
    return {
        "total": total,
        "answered": answered,
        "settled": settled,
        "overdue": overdue,
        "answered_pct": round(100 * answered / total, 1) if total else 0.0,
        "settled_pct": round(100 * settled / total, 1) if total else 0.0,
        "per_category": per_category,
        "per_agency": agencies,
        "per_kecamatan": per_kecamatan,
        "per_month": months,
        "per_status": per_status,
        "response": [
            {
                "agency": name,
                "total": count,
                "answered": len(answer_days.get(name, [])),
                "median_days": round(statistics.median(answer_days[name]), 1)
                if answer_days.get(name) else None,
                "overdue": overdue_agency.get(name, 0),
            }
            for name, count in agencies
        ],
    }


def _ranked(groups: list[tuple[Any, int, int]], label: Any = None) -> list[tuple[str, int]]:
    """(value, count, first position) groups -> [(label, count)] in `Counter.most_common`
    order: count descending, ties in order of first appearance (the rows' order)."""
    counts: dict[str, int] = {}
    first: dict[str, int] = {}
    for value, count, pos in groups:
        name = label(value) if label else value
        counts[name] = counts.get(name, 0) + count
        first[name] = min(first.get(name, pos), pos)
    return sorted(counts.items(), key=lambda item: (-item[1], first[item[0]]))


def _compute_cached(conn: sqlite3.Connection, agency_names: dict[str, str]) -> dict[str, Any]:
    """`compute` over `public_index` (one row per published complaint; position = id order)."""
    def groups(column: str) -> list[tuple[Any, int, int]]:
        return conn.execute(f"SELECT {column}, COUNT(*), MIN(complaint_id) FROM public_index"
                            f" GROUP BY {column}").fetchall()

    answered_in = statuses.sql_list(statuses.ANSWERS)
    total, answered, settled, overdue = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM((first_answer_at IS NOT NULL AND first_answer_at != '')"
        f" OR status IN ({answered_in})), 0), COALESCE(SUM(settled), 0),"
        " COALESCE(SUM(overdue), 0) FROM public_index").fetchone()
    by_name = lambda v: v or UNKNOWN  # noqa: E731
    # Agencies: each list element counts (as in `compute`); first position = (row, index).
    elements = conn.execute(
        "SELECT je.value, COUNT(*), MIN(p.complaint_id * 1000 + je.key), SUM(p.overdue)"
        " FROM public_index p, json_each(p.agencies) je GROUP BY je.value").fetchall()
    none = conn.execute(
        "SELECT COUNT(*), MIN(complaint_id * 1000), SUM(overdue) FROM public_index"
        " WHERE json_array_length(agencies) = 0").fetchone()
    name = lambda a: agency_names.get(a, a)  # noqa: E731
    agency_groups = [(name(a), n, pos) for a, n, pos, _ in elements]
    overdue_agency: Counter[str] = Counter()
    for a, _n, _pos, late in elements:
        overdue_agency[name(a)] += late or 0
    if none[0]:
        agency_groups.append((UNKNOWN, none[0], none[1]))
        overdue_agency[UNKNOWN] += none[2] or 0
    answer_days: dict[str, list[float]] = defaultdict(list)
    for a, received, first_answer in conn.execute(
        "SELECT je.value, p.received_at, p.first_answer_at FROM public_index p,"
        " json_each(p.agencies) je WHERE p.first_answer_at IS NOT NULL"
        " AND p.first_answer_at != ''"
        " UNION ALL SELECT NULL, received_at, first_answer_at FROM public_index"
        " WHERE first_answer_at IS NOT NULL AND first_answer_at != ''"
        " AND json_array_length(agencies) = 0"
    ):
        answer_days[name(a) if a is not None else UNKNOWN].append(
            max(0.0, _days(received, first_answer)))
    months = [(m, n) for m, n, _ in groups("month")]
    return _result(
        total, answered, settled, overdue, _ranked(groups("category"), by_name),
        _ranked(agency_groups), _ranked(groups("kecamatan"), by_name), sorted(months)[-24:],
        _ranked(groups("status")), answer_days, overdue_agency)


def bar_chart(items: list[tuple[str, int]], title: str, limit: int = 30) -> dict[str, Any]:
    """Geometry for a horizontal bar chart rendered as inline SVG by the template."""
    items = items[:limit]
    top = max((v for _, v in items), default=0) or 1
    row_h, label_w, value_w = 22, 190, 60
    bars = [
        {"label": _fit(label, 22), "full": label, "value": value, "y": i * row_h,
         "w": max(1, round(value / top * (BAR_WIDTH - label_w - value_w)))}
        for i, (label, value) in enumerate(items)
    ]
    return {"title": title, "bars": bars, "height": max(row_h, len(bars) * row_h),
            "width": BAR_WIDTH, "label_w": label_w, "row_h": row_h}


def _fit(label: str, chars: int) -> str:
    """Shorten a label to what fits left of the bars (the table beside it has it in full)."""
    return label if len(label) <= chars else label[: chars - 1].rstrip() + "…"


def column_chart(items: list[tuple[str, int]], title: str) -> dict[str, Any]:
    """Geometry for a vertical (per-month) column chart."""
    top = max((v for _, v in items), default=0) or 1
    height, col_w = 160, max(8, min(40, (BAR_WIDTH - 20) // max(1, len(items))))
    cols = []
    for i, (label, value) in enumerate(items):
        h = max(1, round(value / top * height))
        cols.append({"label": label, "value": value, "x": 10 + i * col_w, "w": col_w - 3,
                     "h": h, "y": height - h})
    return {"title": title, "cols": cols, "height": height + 40, "chart_h": height,
            "width": max(BAR_WIDTH, 20 + len(items) * col_w)}
