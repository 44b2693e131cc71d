"""The kecamatan tile map: the 27 kecamatan of Kabupaten Banyumas as equal tiles on a grid,
each roughly where it lies, shaded by complaints per 10,000 inhabitants. Geometry only; the
template draws it as inline SVG (no map tiles from a server, no script).

The layout is written once, here, from the kecamatan's positions (west → east = column, north →
south = row): Lumbir, Wangon and Gumelar in the west, Pekuncen, Cilongok, Baturraden and Sumbang
in the north, the four Purwokerto in the centre, Sumpiuh, Tambak and Kemranjen in the south-east.
"""

from __future__ import annotations

import csv
import importlib.resources
import math
import re
from functools import lru_cache
from typing import Any

from lapakd.routing.kecamatan import KECAMATAN

# name -> (column, row, short label written in the tile)
LAYOUT: dict[str, tuple[int, int, str]] = {
    "Pekuncen": (1, 0, "Pekuncen"),
    "Cilongok": (2, 0, "Cilongok"),
    "Kedungbanteng": (3, 0, "Kedungbtg"),
    "Baturraden": (4, 0, "Baturraden"),
    "Sumbang": (5, 0, "Sumbang"),
    "Gumelar": (0, 1, "Gumelar"),
    "Ajibarang": (1, 1, "Ajibarang"),
    "Karanglewas": (2, 1, "Karanglewas"),
    "Purwokerto Barat": (3, 1, "Pwt Barat"),
    "Purwokerto Utara": (4, 1, "Pwt Utara"),
    "Kembaran": (5, 1, "Kembaran"),
    "Lumbir": (0, 2, "Lumbir"),
    "Purwojati": (1, 2, "Purwojati"),
    "Patikraja": (2, 2, "Patikraja"),
    "Purwokerto Selatan": (3, 2, "Pwt Selatan"),
    "Purwokerto Timur": (4, 2, "Pwt Timur"),
    "Sokaraja": (5, 2, "Sokaraja"),
    "Kalibagor": (6, 2, "Kalibagor"),
    "Wangon": (0, 3, "Wangon"),
    "Jatilawang": (1, 3, "Jatilawang"),
    "Rawalo": (2, 3, "Rawalo"),
    "Kebasen": (3, 3, "Kebasen"),
    "Banyumas": (4, 3, "Banyumas"),
    "Somagede": (5, 3, "Somagede"),
    "Kemranjen": (4, 4, "Kemranjen"),
    "Sumpiuh": (5, 4, "Sumpiuh"),
    "Tambak": (6, 4, "Tambak"),
}
assert set(LAYOUT) == set(KECAMATAN), "one tile for each of the 27 kecamatan"

TILE_W, TILE_H, GAP, MARGIN = 96, 60, 4, 4
LEGEND_H = 34
# Light to dark: more complaints per 10,000 inhabitants is darker. "none" = no complaint.
SHADES = ("#e3eef3", "#b6d4e0", "#7fb1c6", "#3f87a6", "#1f5f7a")
NONE_SHADE = "#f6f6f6"
POPULATION_FILE = "penduduk_kecamatan.csv"


def slug(name: str) -> str:
    """The file name of a kecamatan's list page: `kecamatan/<slug>.html`."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


@lru_cache(maxsize=1)
def population() -> tuple[int | None, dict[str, int]]:
    """(year, name -> inhabitants) from the data file (its source is named in its header)."""
    text = importlib.resources.files("lapakd.public").joinpath("data", POPULATION_FILE) \
        .read_text(encoding="utf-8")
    year, people = None, {}
    for row in csv.reader(line for line in text.splitlines() if not line.startswith("#")):
        if len(row) != 2:
            continue
        if row[0] == "tahun":
            year = int(row[1])
        elif row[0] in LAYOUT:
            people[row[0]] = int(row[1])
    return year, people


def _breaks(values: list[float]) -> list[float]:
    """Four upper bounds splitting 0..max into five equal, round steps (1, 2, 2.5 or 5 times a
    power of ten), so the legend reads "0–2, 2–4, ..." and a tile's shade is its rate."""
    top = max(values, default=0.0)
    if top <= 0:
        return []
    raw = top / 5
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    return [round(step * i, 6) for i in (1, 2, 3, 4)]


def _shade(rate: float, breaks: list[float]) -> int:
    return next((i for i, b in enumerate(breaks) if rate < b), len(breaks))


def tiles(counts: dict[str, dict[str, int]], href: str) -> dict[str, Any]:
    """Geometry of the map. `counts`: kecamatan -> {"total", "overdue", "open"} of published
    complaints; `href`: a format string with `{slug}` (the tile's link)."""
    year, people = population()
    rates = {}
    for name in LAYOUT:
        n = counts.get(name, {}).get("total", 0)
        rates[name] = round(n * 10_000 / people[name], 1) if people.get(name) else 0.0
    breaks = _breaks(list(rates.values()))
    items = []
    for name, (col, row, short) in LAYOUT.items():
        c = counts.get(name, {})
        total, overdue = c.get("total", 0), c.get("overdue", 0)
        level = _shade(rates[name], breaks) if total else None
        fill = SHADES[level] if level is not None else NONE_SHADE
        items.append({
            "name": name, "short": short, "slug": slug(name), "href": href.format(slug=slug(name)),
            "x": MARGIN + col * (TILE_W + GAP), "y": MARGIN + row * (TILE_H + GAP),
            "total": total, "overdue": overdue, "open": c.get("open", 0),
            "population": people.get(name), "per10k": rates[name],
            "overdue_pct": round(100 * overdue / total, 1) if total else None,
            "fill": fill, "dark": level is not None and level >= 3,
        })
    cols = 1 + max(c for c, _r, _s in LAYOUT.values())
    rows = 1 + max(r for _c, r, _s in LAYOUT.values())
    width = 2 * MARGIN + cols * TILE_W + (cols - 1) * GAP
    height = 2 * MARGIN + rows * TILE_H + (rows - 1) * GAP
    legend = []
    bounds = [0.0, *breaks]
    for i, b in enumerate(bounds):
        upper = bounds[i + 1] if i + 1 < len(bounds) else None
        legend.append({"fill": SHADES[i], "x": MARGIN + i * 110,
                       "label": f"{b:g}–{upper:g}" if upper is not None else f"≥ {b:g}"})
    legend.append({"fill": NONE_SHADE, "x": MARGIN + len(legend) * 110, "label": "tanpa aduan"})
    return {"tiles": items, "width": width, "height": height + LEGEND_H, "map_h": height,
            "tile_w": TILE_W, "tile_h": TILE_H, "legend": legend, "year": year,
            "ordered": sorted(items, key=lambda t: t["name"])}
