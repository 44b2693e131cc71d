"""Agencies held to account in public and the kecamatan tile map: instansi/<key>.html,
instansi.json, the ranking on statistik.html, kecamatan/<slug>.html — figures checked by hand."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo

import pytest
from publicenv import add_complaint, make_desk

from lapakd.lifecycle import ranking
from lapakd.public import export, tilemap
from lapakd.routing.deadlines import Calendar
from lapakd.routing.kecamatan import KECAMATAN
from lapakd.store import iso

WIB = 7  # hours ahead of UTC
NOW = datetime(2026, 9, 1, 3, 0, tzinfo=UTC)  # Tuesday 1 September 2026, 10.00 WIB


def wib(day: int, hour: int = 10, month: int = 8) -> datetime:
    """A moment of August 2026 at `hour` WIB."""
    return datetime(2026, month, day, hour - WIB, 0, tzinfo=UTC)


@pytest.fixture
def desk(tmp_path):
    d = make_desk(tmp_path)
    yield d
    d.close()


def cid_of(desk, ticket: str) -> int:
    return desk.store.conn.execute("SELECT id FROM complaints WHERE ticket = ?",
                                   (ticket,)).fetchone()[0]


def answer(desk, ticket: str, at: datetime) -> None:
    with desk.store.transaction() as conn:
        conn.execute("UPDATE complaints SET first_answer_at = ?, status = 'answered'"
                     " WHERE ticket = ?", (iso(at), ticket))


def resolve(desk, ticket: str, at: datetime) -> None:
    with desk.store.transaction() as conn:
        conn.execute("UPDATE complaints SET status = 'resolved', closed_at = ? WHERE ticket = ?",
                     (iso(at), ticket))
        desk.store.event("status_changed", complaint_id=cid_of(desk, ticket), at=iso(at),
                         **{"from": "answered", "to": "resolved"})


def confirm_event(desk, ticket: str, kind: str, at: datetime) -> None:
    with desk.store.transaction():
        desk.store.event(kind, complaint_id=cid_of(desk, ticket), at=iso(at))


def seed(desk) -> dict[str, str]:
    """dpupr: four complaints in August 2026 (17 August, a Monday, is a national holiday),
    dlh: two, one of them late and unanswered; one not published (public = false)."""
    t = {}
    # Fri 14 Aug → answered Tue 18 Aug: Sat, Sun, Mon 17 (holiday) do not count → 1 working day
    t["a"] = add_complaint(desk, "Jalan ambles di Kecamatan Sokaraja", received=wib(14),
                           kecamatan="Sokaraja", due_days=5)
    answer(desk, t["a"], wib(18, 9))
    resolve(desk, t["a"], wib(24, 15))  # Fri 14 → Mon 24: 18,19,20,21,24 = 5 working days
    # Mon 10 Aug → answered Wed 12 Aug: 2 working days; due Mon 10 + 1 day → late
    t["b"] = add_complaint(desk, "Gorong-gorong mampet di Wangon", received=wib(10),
                           kecamatan="Wangon", due_days=1)
    answer(desk, t["b"], wib(12, 14))
    resolve(desk, t["b"], wib(20, 8))  # Mon 10 → Thu 20: 11,12,13,14,18,19,20 = 7
    # Wed 12 Aug → answered the same day: 0 working days, on time
    t["c"] = add_complaint(desk, "Lampu PJU mati di Kecamatan Cilongok", received=wib(12),
                           kecamatan="Cilongok")
    answer(desk, t["c"], wib(12, 16))
    # Thu 27 Aug, still open, not due yet (due_days 7 → 3 Sep): neither on time nor late
    t["d"] = add_complaint(desk, "Jembatan bambu putus, warga muter jauh", received=wib(27),
                           kecamatan="Wangon")
    # dlh: late and unanswered (due 20 Aug), and one answered on time
    t["e"] = add_complaint(desk, "Sampah numpuk nang pinggir kali Kembaran", agencies=("dlh",),
                           received=wib(13), kecamatan="Kembaran", due_days=7,
                           category="LINGKUNGAN")
    t["f"] = add_complaint(desk, "Bau limbah tahu, mboten kuat", agencies=("dlh", "dpupr"),
                           received=wib(11), kecamatan="Wangon", category="LINGKUNGAN")
    answer(desk, t["f"], wib(13, 11))  # Tue 11 → Thu 13: 2
    # Not published: counted nowhere on the site.
    t["hidden"] = add_complaint(desk, "Rahasia: jalan rusak depan rumah saya", public=False,
                                received=wib(12), kecamatan="Wangon")
    # The citizen's confirmation (the events `confirm` writes): a asked + confirmed,
    # b asked + reopened.
    confirm_event(desk, t["a"], "confirm_asked", wib(24, 16))
    confirm_event(desk, t["a"], "confirmed", wib(25, 9))
    confirm_event(desk, t["b"], "confirm_asked", wib(20, 9))
    confirm_event(desk, t["b"], "reopened", wib(21, 9))
    return t


def agency(data: dict, key: str) -> dict:
    return next(a for a in data["agencies"] if a["key"] == key)


def test_working_days_match_the_calendar():
    cal = Calendar("working")
    wd = ranking.WorkingDays(cal, ZoneInfo("Asia/Jakarta"))
    assert wd.between(iso(wib(14)), iso(wib(18, 9))) == 1  # over a weekend and 17 August
    assert wd.between(iso(wib(10)), iso(wib(20, 8))) == 7
    assert wd.between(iso(wib(12)), iso(wib(12, 16))) == 0
    assert wd.between(iso(wib(12)), iso(wib(10))) == 0  # earlier: 0
    # 23.30 WIB on the 14th is still the 14th locally (16.30 UTC): the local date counts.
    assert wd.between(iso(wib(13, 23)), iso(wib(14, 8))) == 1
    for start in range(1, 28):
        a, b = wib(start), wib(start, month=9)
        assert wd.between(iso(a), iso(b)) == cal.days_between(a.date(), b.date())


def test_instansi_json_figures_by_hand(desk):
    t = seed(desk)
    export.export(desk, now=NOW)
    site = desk.config.public_dir
    data = json.loads((site / "instansi.json").read_text(encoding="utf-8"))
    assert set(data["periods"]) == {"30hari", "12bulan", "semua"}
    dpupr = agency(data, "dpupr")
    f = dpupr["periods"]["30hari"]  # 2 Aug – 1 Sep: all of them
    # a, b, c, d, f (f names dlh and dpupr); not the unpublished one
    assert f["received"] == 5
    # decided: a (on time, due 19 Aug), b (late), c (on time), f (on time); d not yet due
    assert (f["on_time"], f["due_decided"], f["on_time_pct"]) == (3, 4, 75.0)
    assert f["median_answer_days"] == 1.5  # a 1, b 2, c 0, f 2 → median 1.5
    assert f["median_resolve_days"] == 6.0  # a 5, b 7
    assert (f["asked"], f["confirmed_pct"], f["reopen_pct"]) == (2, 50.0, 50.0)
    assert f["mean_rating"] is None and f["rated"] == 0  # nobody rated yet
    assert dpupr["overdue"] == 0 and dpupr["open"] == 3  # c, d, f (a and b are resolved)
    dlh = agency(data, "dlh")
    g = dlh["periods"]["30hari"]
    assert (g["received"], g["on_time"], g["due_decided"]) == (2, 1, 2)
    assert g["median_answer_days"] == 2.0 and g["median_resolve_days"] is None
    assert g["confirmed_pct"] is None and g["reopen_pct"] is None  # never asked: "–"
    assert dlh["overdue"] == 1  # e: due 20 Aug, unanswered
    # Ranking: dpupr (75%) above dlh (50%), in every period; inspektorat has none.
    assert dpupr["rank"]["30hari"] == 1 and dlh["rank"]["30hari"] == 2
    assert agency(data, "inspektorat")["rank"]["30hari"] is None
    # Monthly trend: August has all six published complaints of dpupr and dlh.
    aug = next(m for m in dpupr["trend"] if m["month"] == "2026-08")
    assert aug["received"] == 5 and dpupr["trend"][-1]["month"] == "2026-09"
    # Kecamatan counts, per 10,000 inhabitants from the data file.
    _year, people = tilemap.population()
    wangon = next(k for k in data["kecamatan"] if k["name"] == "Wangon")
    assert wangon["total"] == 3  # b, d, f (not the unpublished one)
    assert wangon["per10k"] == round(3 * 10_000 / people["Wangon"], 1)
    assert "Rahasia" not in json.dumps(data) and t["hidden"] not in json.dumps(data)


def test_periods_rating_and_changes(desk):
    t = seed(desk)
    old = add_complaint(desk, "Jalan rusak dari tahun lalu", received=wib(3, month=2),
                        kecamatan="Lumbir")
    answer(desk, old, wib(10, 15, month=2))  # 5 working days: late (due 10 Feb, 10.00)
    with desk.store.transaction() as conn:  # ratings as the citizen gives them
        conn.execute("UPDATE complaints SET rating = 4 WHERE ticket = ?", (t["a"],))
        conn.execute("UPDATE complaints SET rating = 1 WHERE ticket = ?", (t["b"],))
        conn.execute("UPDATE complaints SET rating = 9 WHERE ticket = ?", (t["c"],))  # ignored
        # an event whose data is not JSON (hand-edited store) breaks nothing
        conn.execute("INSERT INTO events (complaint_id, at, type, actor, data) VALUES"
                     " (?, ?, 'status_changed', 'x', 'not json')", (cid_of(desk, t["c"]), iso(NOW)))
    export.export(desk, now=NOW)
    data = json.loads((desk.config.public_dir / "instansi.json").read_text(encoding="utf-8"))
    dpupr = agency(data, "dpupr")
    assert dpupr["periods"]["30hari"]["received"] == 5
    assert dpupr["periods"]["12bulan"]["received"] == 6
    assert dpupr["periods"]["semua"]["received"] == 6
    assert dpupr["periods"]["12bulan"]["on_time"] == 3
    assert dpupr["periods"]["12bulan"]["due_decided"] == 5
    assert dpupr["periods"]["30hari"]["mean_rating"] == 2.5
    assert dpupr["periods"]["30hari"]["rated"] == 2

    # As of a week earlier (what the digest compares with): d and the confirmations after
    # 25 Aug are not there yet, b's first answer is.
    rows_now = ranking.ranking(ranking.load(desk.store.conn), {"dpupr": {"name": "PU"},
                               "dlh": {"name": "LH"}}, as_of=iso(NOW),
                               calendar=Calendar("working"), tz=desk.config.tz)
    rows_before = ranking.ranking(ranking.load(desk.store.conn), {"dpupr": {"name": "PU"},
                                  "dlh": {"name": "LH"}}, as_of=iso(wib(25, 8)),
                                  calendar=Calendar("working"), tz=desk.config.tz)
    before = next(r for r in rows_before if r["key"] == "dpupr")["periods"]["30hari"]
    assert before["received"] == 5  # 26 Jul – 25 Aug: a, b, c, f, and the unpublished one
    assert before["asked"] == 2 and before["confirmed_pct"] == 0.0  # confirmed on the 25th
    ch = {r["key"]: r for r in ranking.changes(rows_now, rows_before, "30hari")}
    assert ch["dlh"]["d_overdue"] == 0 and ch["dpupr"]["prev_rank"] == 1


def test_agency_pages_list_open_complaints_redacted(desk):
    t = seed(desk)
    add_complaint(desk, "Hubungi saya 081234567890, jalan rusak di Kecamatan Rawalo",
                  sender_name="Budi Santoso", kecamatan="Rawalo", received=wib(28))
    export.export(desk, now=NOW)
    site = desk.config.public_dir
    page = (site / "instansi" / "dpupr.html").read_text(encoding="utf-8")
    assert "Dinas Pekerjaan Umum" in page
    for key in ("c", "d", "f"):  # open: answered / forwarded
        assert f'href="../aduan/{t[key]}.html"' in page
    for key in ("a", "b", "hidden"):  # resolved, or not published
        assert t[key] not in page
    assert "081234567890" not in page and "Budi Santoso" not in page
    assert (site / "instansi" / "dlh.html").is_file()
    assert (site / "instansi" / "inspektorat.html").is_file()  # no complaints, still a page
    # The same figures as instansi.json, per period.
    assert re.search(r"<td>30 hari terakhir</td><td>1 dari 2</td><td>6</td><td>75.0% \(3/4\)", page)


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("href"):
            self.hrefs.append(a["href"] or "")
        if a.get("id"):
            self.ids.add(a["id"] or "")


def links_resolve(page: Path) -> list[str]:
    """Every relative link of `page` that does not reach a file (and anchor) of the site."""
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8"))
    broken = []
    for href in parser.hrefs:
        parts = urlsplit(href)
        if parts.scheme or href.startswith("//"):
            continue
        target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
        if not target.is_file():
            broken.append(href)
            continue
        if parts.fragment:
            other = _Links()
            other.feed(target.read_text(encoding="utf-8"))
            if parts.fragment not in other.ids:
                broken.append(href)
    return broken


def test_tile_map_names_all_27_and_every_link_resolves(desk):
    seed(desk)
    export.export(desk, now=NOW)
    site = desk.config.public_dir
    html = (site / "statistik.html").read_text(encoding="utf-8")
    svg = re.search(r'<figure class="tilemap".*?(<svg.*?</svg>)', html, re.S).group(1)
    titles = re.findall(r"<title>([^<:]+):", svg)
    assert sorted(titles) == sorted(KECAMATAN) and len(titles) == 27
    assert 'viewBox="0 0 ' in svg
    hrefs = re.findall(r'<a href="([^"]+)"', svg)
    assert len(hrefs) == 27
    for href in hrefs:
        assert (site / href).is_file(), href
    # Shading: Wangon (3 complaints) is darker than a kecamatan without any.
    fills = dict(re.findall(r"<title>([^<:]+):[^<]*</title><rect[^>]*fill=\"([^\"]+)\"", svg))
    assert fills["Lumbir"] == tilemap.NONE_SHADE and fills["Wangon"] in tilemap.SHADES
    wangon = (site / "kecamatan" / "wangon.html").read_text(encoding="utf-8")
    assert wangon.count('href="../aduan/') == 3
    assert "index.html?kecamatan=Wangon" in wangon
    for rel in ("statistik.html", "index.html", "instansi/dpupr.html", "kecamatan/wangon.html",
                "kecamatan/purwokerto-barat.html"):
        assert links_resolve(site / rel) == [], rel
    index = (site / "index.html").read_text(encoding="utf-8")
    assert index.count("<title>") >= 27 + 1  # the map on the front page too


def test_unchanged_agency_and_kecamatan_pages_are_reused(desk):
    seed(desk)
    export.export(desk, now=NOW)
    site = desk.config.public_dir

    def inodes() -> dict[str, int]:
        return {f"{d}/{p.name}": p.stat().st_ino
                for d in ("instansi", "kecamatan") for p in (site / d).iterdir()}

    first = inodes()
    assert len(first) == 3 + 27
    export.export(desk, now=NOW + timedelta(minutes=5))
    assert inodes() == first  # every page hard-linked from the previous build
    t = add_complaint(desk, "Jalan rusak di Kecamatan Tambak", received=wib(31),
                      kecamatan="Tambak")
    export.export(desk, now=NOW + timedelta(minutes=10))
    page = site / "kecamatan" / "tambak.html"
    assert t in page.read_text(encoding="utf-8")
    changed = {k for k, ino in inodes().items() if first[k] != ino}
    # the new complaint's kecamatan and agency (an open one); the figures are kept
    assert changed == {"kecamatan/tambak.html", "instansi/dpupr.html"}

    # The agencies' figures are kept for RANKING_MINUTES: the new complaint counts after that,
    # or at a full export.
    def received() -> int:
        data = json.loads((desk.config.public_dir / "instansi.json").read_text("utf-8"))
        return agency(data, "dpupr")["periods"]["semua"]["received"]

    assert received() == 5
    export.export(desk, now=NOW + timedelta(minutes=export.RANKING_MINUTES - 1))
    assert received() == 5
    export.export(desk, now=NOW + timedelta(minutes=export.RANKING_MINUTES + 1))
    assert received() == 6
    add_complaint(desk, "Jalan rusak di Kecamatan Tambak lagi", received=wib(31),
                  kecamatan="Tambak")
    export.export(desk, now=NOW + timedelta(minutes=export.RANKING_MINUTES + 2), full=True)
    assert received() == 7
