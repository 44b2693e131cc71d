"""Statistics for `statistik.html`, computed from the compact public rows (see model.ROW_FIELDS)."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from lapakd.public.model import ANSWERED

UNKNOWN = "(tidak diketahui)"
BAR_WIDTH = 600


def _days(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds() / 86400


def compute(rows: list[list[Any]], agency_names: dict[str, str], tz: ZoneInfo) -> dict[str, Any]:
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
        if first_answer or status in ANSWERED:
            answered += 1
        if is_settled:
            settled += 1
        if is_overdue:
            overdue += 1
    total = len(rows)
    months = sorted(per_month.items())[-24:]
    agencies = per_agency.most_common()
    return {
        "total": total,
        "answered": answered,
        "settled": settled,
        "overdue": overdue,
        "answered_pct": round(100 * answered / total, 1) if total else 0.0,
        "settled_pct": round(100 * settled / total, 1) if total else 0.0,
        "per_category": per_category.most_common(),
        "per_agency": agencies,
        "per_kecamatan": per_kecamatan.most_common(),
        "per_month": months,
        "per_status": per_status.most_common(),
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


def bar_chart(items: list[tuple[str, int]], title: str, limit: int = 30) -> dict[str, Any]:
    """Geometry for a horizontal bar chart rendered as inline SVG by the template."""
    items = items[:limit]
    top = max((v for _, v in items), default=0) or 1
    row_h, label_w, value_w = 22, 190, 60
    bars = [
        {"label": label[:32], "value": value, "y": i * row_h,
         "w": max(1, round(value / top * (BAR_WIDTH - label_w - value_w)))}
        for i, (label, value) in enumerate(items)
    ]
    return {"title": title, "bars": bars, "height": max(row_h, len(bars) * row_h),
            "width": BAR_WIDTH, "label_w": label_w, "row_h": row_h}


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
