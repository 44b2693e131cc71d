"""The exported site in a real headless Chromium: list, filters, detail, statistics, no XSS."""

from __future__ import annotations

import functools
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from chrome import Chrome
from publicenv import add_complaint, make_desk

from lapakd.public import export

# LAPAKD_SCREENSHOTS=DIR keeps the screenshots for a human to look at.
SHOTS = Path(os.environ["LAPAKD_SCREENSHOTS"]) if os.environ.get("LAPAKD_SCREENSHOTS") else None

# No skip without a browser: a missing chromium is an error (./dev test installs it).
pytestmark = pytest.mark.slow

# Each payload, if it ever ran, sets window.__pwned, changes the title or opens a dialog.
PAYLOADS = [
    "<script>window.__pwned=1;document.title='PWNED'</script>",
    '<img src=x onerror="window.__pwned=2;alert(2)">',
    '<a href="javascript:window.__pwned=3">klik</a> javascript:alert(3)',
    "</script><script>window.__pwned=4;alert(4)</script>",
    '"><svg onload="window.__pwned=5;alert(5)">',
    "';window.__pwned=6;//\u2028</script><!--",
]


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[tuple[str, dict[str, str]]]:
    root = tmp_path_factory.mktemp("site")
    desk = make_desk(root)
    tickets = {}
    for i in range(60):  # more than the index embeds: the filters must fetch data/cari.json
        status = ("forwarded", "resolved", "answered")[i % 3]
        tickets[f"plain{i}"] = add_complaint(
            desk, f"Jalan rusak nomor {i} di Kecamatan {('Wangon', 'Sokaraja')[i % 2]}",
            status=status, agencies=(("dpupr",), ("dlh",))[i % 2],
            category=("JALAN", "SAMPAH")[i % 2])
    for i, payload in enumerate(PAYLOADS):
        tickets[f"xss{i}"] = add_complaint(
            desk, f"xssprobe {payload}", category=f"XSSCAT{i} {payload}"[:60])
    export.export(desk)
    site = desk.config.public_dir
    desk.close()
    handler = functools.partial(_Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", tickets
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def chrome() -> Iterator[Chrome]:
    browser = Chrome()
    yield browser
    browser.close()


def assert_nothing_ran(chrome: Chrome, title_prefix: str) -> None:
    assert chrome.eval("typeof window.__pwned") == "undefined"
    assert chrome.eval("document.title").startswith(title_prefix)
    assert chrome.dialogs() == []
    exceptions = [e for e in chrome.events if e["method"] == "Runtime.exceptionThrown"]
    assert exceptions == []


def test_list_without_javascript(served, chrome):
    url, tickets = served
    chrome.send("Emulation.setScriptExecutionDisabled", value=True)
    try:
        chrome.navigate(url + "index.html")
        assert chrome.eval("document.querySelectorAll('#rows tr').length") == 50
        assert chrome.eval("document.getElementById('filter').hidden") is True
        assert chrome.eval("document.querySelectorAll('#pages a').length") == 1
        first = chrome.eval("document.querySelector('#rows tr a').textContent")
        assert first == tickets[f"xss{len(PAYLOADS) - 1}"]  # newest first
    finally:
        chrome.send("Emulation.setScriptExecutionDisabled", value=False)


def test_list_filters_and_search(served, chrome, tmp_path):
    url, _ = served
    chrome.navigate(url + "index.html")
    assert_nothing_ran(chrome, "Daftar aduan")
    assert chrome.eval("document.getElementById('filter').hidden") is False
    rows = "document.querySelectorAll('#rows tr').length"
    assert chrome.eval(rows) == 50

    def choose(select_id: str, value: str) -> None:
        chrome.eval(f"(function(){{var s=document.getElementById('{select_id}');"
                    f"s.value={value!r};"
                    "s.dispatchEvent(new Event('change',{bubbles:true}));})()")

    choose("f-status", "resolved")  # 20 of the 60 plain complaints
    chrome.wait_for("/20 aduan cocok/.test(document.getElementById('info').textContent)")
    assert chrome.eval(rows) == 20
    assert chrome.eval("document.getElementById('pages').hidden") is True
    choose("f-kecamatan", "Sokaraja")  # resolved = i%3==1, Sokaraja = i odd → i ≡ 1 mod 6
    chrome.wait_for("/10 aduan cocok/.test(document.getElementById('info').textContent)")
    assert chrome.eval(rows) == 10
    statuses = chrome.eval("Array.from(document.querySelectorAll('#rows .st'))"
                           ".map(e => e.textContent)")
    assert set(statuses) == {"Selesai, menunggu konfirmasi pelapor"}  # the citizen is asked
    choose("f-status", "")
    choose("f-kecamatan", "")
    chrome.wait_for("document.querySelectorAll('#rows tr').length == 50")
    choose("f-agency", "dlh")
    chrome.wait_for("/30 aduan cocok/.test(document.getElementById('info').textContent)")
    choose("f-agency", "")

    # Search renders citizen text (the payloads) from JSON: as text, never as markup.
    chrome.eval("(function(){var q=document.getElementById('q');q.value='xssprobe';"
                "q.dispatchEvent(new Event('input',{bubbles:true}));})()")
    chrome.wait_for(f"/{len(PAYLOADS)} aduan cocok/"
                    ".test(document.getElementById('info').textContent)")
    titles = chrome.eval("Array.from(document.querySelectorAll('#rows a')).map(a => a.title)")
    assert any("<script>" in t for t in titles) and any("onerror=" in t for t in titles)
    assert chrome.eval("document.querySelectorAll('#rows img, #rows script, #rows svg')"
                       ".length") == 0
    assert_nothing_ran(chrome, "Daftar aduan")
    shot = chrome.screenshot(SHOTS / "index.png" if SHOTS else tmp_path / "index.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 5000


def test_detail_pages_show_payloads_as_text(served, chrome):
    url, tickets = served
    for i, payload in enumerate(PAYLOADS):
        chrome.navigate(f"{url}aduan/{tickets[f'xss{i}']}.html")
        assert_nothing_ran(chrome, "Aduan ")
        text = chrome.eval("document.querySelector('.text').textContent")
        assert text.strip() == f"xssprobe {payload}".strip()
        assert chrome.eval("document.querySelectorAll('main img, main svg, main script')"
                           ".length") == 0
        assert chrome.eval("Array.from(document.links).every("
                           "a => !a.href.startsWith('javascript:'))") is True
    chrome.navigate(f"{url}aduan/{tickets['plain0']}.html")
    body = chrome.eval("document.body.innerText")
    assert "Diteruskan ke Dinas Pekerjaan Umum" in body and "Tenggat jawaban" in body


def test_statistics_page(served, chrome, tmp_path):
    url, _ = served
    chrome.navigate(url + "statistik.html")
    assert_nothing_ran(chrome, "Statistik")
    assert chrome.eval("document.querySelectorAll('figure.chart svg').length") == 4
    assert chrome.eval("document.querySelectorAll('figure.chart svg rect').length") > 4
    assert chrome.eval("document.querySelectorAll('table.num').length") >= 5
    kec = chrome.eval("Array.from(document.querySelectorAll('#chart-kecamatan text'))"
                      ".map(t => t.textContent)")
    assert "Wangon" in kec and "Sokaraja" in kec
    shot = chrome.screenshot(SHOTS / "statistik.png" if SHOTS else tmp_path / "statistik.png")
    assert shot.stat().st_size > 5000


def test_archive_page_and_open_data_load(served, chrome):
    url, _ = served
    chrome.navigate(url + "halaman/1.html")
    assert chrome.eval("document.querySelectorAll('#rows tr').length") == 66
    count = chrome.eval("fetch('../aduan.json').then(r => r.json()).then(j => j.length)")
    assert count == 66


def _serve(site: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(_Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def test_search_loads_shards_on_demand(tmp_path, chrome, monkeypatch):
    """450 complaints in shards of 100 (5 shards, the newest holds 50): a filter fetches only
    the shards whose facets can match, a search stops at a page of hits (300) and counts
    all of them on request, and a hit in the oldest shard is found."""
    monkeypatch.setattr(export, "SHARD_BLOCKS", 1)
    desk = make_desk(tmp_path)
    for i in range(450):
        add_complaint(desk, ("kodetertua " if i == 3 else "") + f"Jalan rusak nomor {i}",
                      agencies=(("dlh",) if i < 100 else ("dpupr",)),
                      kecamatan=("Wangon", "Sokaraja")[i % 2])
    export.export(desk)
    site = desk.config.public_dir
    desk.close()
    server, url = _serve(site)
    try:
        loaded = ("performance.getEntriesByType('resource').map(e => e.name)"
                  ".filter(n => n.includes('/data/cari/')).map(n => n.split('/').pop()"
                  ".split('?')[0]).sort()")

        def choose(select_id: str, value: str) -> None:
            chrome.eval(f"(function(){{var s=document.getElementById('{select_id}');"
                        f"s.value={value!r};"
                        "s.dispatchEvent(new Event('change',{bubbles:true}));})()")

        def search(q: str) -> None:
            chrome.eval(f"(function(){{var q=document.getElementById('q');q.value={q!r};"
                        "q.dispatchEvent(new Event('input',{bubbles:true}));})()")

        info = "document.getElementById('info').textContent"
        chrome.navigate(url + "index.html")
        assert chrome.eval(loaded) == []  # nothing fetched before a filter is used
        choose("f-agency", "dlh")  # only the oldest shard holds dlh
        chrome.wait_for(f"/100 aduan cocok/.test({info})")
        assert chrome.eval(loaded) == ["1.json", "index.json"]

        chrome.navigate(url + "index.html")
        search("jalan rusak")  # every complaint: stops once it has 300, newest first
        chrome.wait_for(f"/Lebih dari 300 aduan cocok/.test({info})")
        assert chrome.eval("document.querySelectorAll('#rows tr').length") == 300
        assert "1.json" not in chrome.eval(loaded)
        chrome.eval("document.getElementById('count-all').click()")
        chrome.wait_for(f"/^450 aduan cocok/.test({info})")

        chrome.navigate(url + "index.html")
        search("kodetertua")
        chrome.wait_for(f"/^1 aduan cocok/.test({info})")
        assert chrome.eval("document.querySelector('#rows tr a').title").startswith("kodetertua")
        exceptions = [e for e in chrome.events if e["method"] == "Runtime.exceptionThrown"]
        assert exceptions == []
    finally:
        server.shutdown()
        server.server_close()
# -- agencies held to account, the kecamatan map -----------------------------------------------

PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True}
DESKTOP = {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False}


def console_errors(chrome: Chrome) -> list[dict]:
    """Exceptions, console.error calls and browser log errors (a CSP violation is one)."""
    return [e for e in chrome.events
            if e["method"] == "Runtime.exceptionThrown"
            or (e["method"] == "Runtime.consoleAPICalled" and e["params"]["type"] == "error")
            or (e["method"] == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")]


@pytest.mark.parametrize("screen", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_agency_table_sorts_and_period_selector(served, chrome, screen, tmp_path):
    url, _ = served
    chrome.send("Log.enable")
    chrome.send("Emulation.setDeviceMetricsOverride", **screen)
    try:
        chrome.navigate(url + "statistik.html")
        assert console_errors(chrome) == []
        visible = ("Array.from(document.querySelectorAll('section.period'))"
                   ".filter(s => !s.hidden).map(s => s.id)")
        assert chrome.eval(visible) == ["peringkat-30hari"]
        names = ("Array.from(document.querySelectorAll('#tabel-30hari tbody tr'))"
                 ".map(r => r.cells[1].textContent)")
        received = ("Array.from(document.querySelectorAll('#tabel-30hari tbody tr'))"
                    ".map(r => Number(r.cells[2].textContent))")
        before = chrome.eval(names)
        assert len(before) == 2  # dpupr (36 with the probes) and dlh (30)
        # Click "Aduan": most first; again: fewest first.
        click = ("document.querySelectorAll('#tabel-30hari thead th')[2]"
                 ".querySelector('button').click()")
        chrome.eval(click)
        counts = chrome.eval(received)
        assert counts == sorted(counts, reverse=True)
        assert chrome.eval("document.querySelectorAll('#tabel-30hari thead th')[2]"
                           ".getAttribute('aria-sort')") == "descending"
        chrome.eval(click)
        assert chrome.eval(received) == sorted(counts)
        # Click "Instansi": alphabetical.
        chrome.eval("document.querySelectorAll('#tabel-30hari thead th')[1]"
                    ".querySelector('button').click()")
        alpha = chrome.eval(names)
        assert alpha == sorted(alpha, key=str.lower) and sorted(alpha) == sorted(before)
        # The period selector.
        chrome.eval("document.querySelector('.periods a[data-period=\"semua\"]').click()")
        assert chrome.eval(visible) == ["peringkat-semua"]
        assert chrome.eval("location.hash") == "#peringkat-semua"
        # The table fits a phone: it scrolls inside its box, the page does not.
        widths = chrome.eval("[document.documentElement.scrollWidth, window.innerWidth]")
        wide = chrome.eval(
            "Array.from(document.querySelectorAll('main *')).filter(e => !e.closest('.scroll')"
            f" && e.getBoundingClientRect().right > {screen['width'] + 1})"
            ".map(e => e.tagName + '#' + e.id + '.' + e.className).slice(0, 8)")
        assert widths[0] <= screen["width"] + 1, (widths, wide)
        assert console_errors(chrome) == []
        shot = tmp_path / f"statistik-{screen['width']}.png"
        chrome.screenshot(SHOTS / shot.name if SHOTS else shot)
    finally:
        chrome.send("Emulation.clearDeviceMetricsOverride")


def test_agency_tables_without_javascript(served, chrome):
    url, _ = served
    chrome.send("Emulation.setScriptExecutionDisabled", value=True)
    try:
        chrome.navigate(url + "statistik.html")
        assert chrome.eval("document.querySelectorAll('section.period').length") == 3
        # all three periods readable, headers plain text, ranked order
        assert chrome.eval("Array.from(document.querySelectorAll('section.period'))"
                           ".every(s => !s.hidden && s.offsetHeight > 0)") is True
        assert chrome.eval("document.querySelectorAll('.sortable th button').length") == 0
        ranks = chrome.eval("Array.from(document.querySelectorAll('#tabel-semua tbody tr'))"
                            ".map(r => Number(r.cells[0].textContent))")
        assert ranks == sorted(ranks) and ranks[0] == 1
    finally:
        chrome.send("Emulation.setScriptExecutionDisabled", value=False)


@pytest.mark.parametrize("screen", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_map_tiles_link_to_the_kecamatan_lists(served, chrome, screen):
    url, _ = served
    chrome.send("Log.enable")
    chrome.send("Emulation.setDeviceMetricsOverride", **screen)
    try:
        chrome.navigate(url + "statistik.html")
        tiles = "document.querySelectorAll('#peta-kecamatan svg a')"
        assert chrome.eval(f"{tiles}.length") == 27
        titles = chrome.eval(f"Array.from({tiles}).map(a => a.querySelector('title')"
                             ".textContent.split(':')[0])")
        assert len(set(titles)) == 27 and "Purwokerto Utara" in titles
        # The tile is large enough to tap on a phone (at least 40 CSS px wide).
        width = chrome.eval("(function(){var r=Array.from(" + tiles + ").find(a => a"
                            ".querySelector('title').textContent.startsWith('Wangon'))"
                            ".querySelector('rect').getBoundingClientRect();return r.width})()")
        assert width >= 40
        # A real click on the Wangon tile's centre.
        box = chrome.eval("(function(){var a=Array.from(" + tiles + ").find(a => a"
                          ".querySelector('title').textContent.startsWith('Wangon'));"
                          "a.scrollIntoView({block:'center',inline:'center'});"
                          "var r=a.querySelector('rect').getBoundingClientRect();"
                          "return [r.x + r.width/2, r.y + r.height/2]})()")
        for kind in ("mousePressed", "mouseReleased"):
            chrome.send("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1],
                        button="left", clickCount=1)
        chrome.wait_event("Page.loadEventFired")
        assert chrome.eval("location.pathname") == "/kecamatan/wangon.html"
        assert chrome.eval("document.querySelectorAll('#rows tr').length") == 30  # even i
        assert console_errors(chrome) == []
        # Its rows open the complaint pages.
        href = chrome.eval("document.querySelector('#rows a').href")
        chrome.navigate(href)
        assert chrome.eval("document.title").startswith("Aduan ")
        # "Cari dan saring": the list opens filtered by the kecamatan (index.html?kecamatan=).
        chrome.navigate(url + "index.html?kecamatan=Wangon")
        chrome.wait_for("/30 aduan cocok/.test(document.getElementById('info').textContent)")
        assert chrome.eval("document.getElementById('f-kecamatan').value") == "Wangon"
        assert console_errors(chrome) == []
    finally:
        chrome.send("Emulation.clearDeviceMetricsOverride")


def test_agency_page(served, chrome):
    url, _ = served
    chrome.navigate(url + "instansi/dlh.html")
    assert_nothing_ran(chrome, "Dinas Lingkungan Hidup")
    rows = chrome.eval("document.querySelectorAll('#rows tr').length")
    assert rows == 20  # dlh: odd i, open = forwarded or answered (i % 3 != 1)
    assert chrome.eval("document.querySelectorAll('#kinerja-instansi tbody tr').length") == 3
    href = chrome.eval("document.querySelector('#rows a').getAttribute('href')")
    assert href.startswith("../aduan/")
