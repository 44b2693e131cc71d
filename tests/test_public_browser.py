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
