"""The working-day calendar, the overdue clocks and the reply parser (real `holidays` data)."""

from __future__ import annotations

import itertools
import sqlite3
from datetime import date

import pytest

from lapakd import statuses
from lapakd.errors import ConfigError
from lapakd.lifecycle.replies import parse_reply, strip_reply
from lapakd.routing.deadlines import CLOCK_SQL, Calendar, clocks_late


def test_working_days_skip_weekends():
    cal = Calendar("working")
    assert cal.add_days(date(2026, 3, 13), 3) == date(2026, 3, 18)  # Fri → Wed
    assert cal.add_days(date(2026, 3, 14), 1) == date(2026, 3, 16)  # Sat → Mon
    assert cal.days_between(date(2026, 3, 13), date(2026, 3, 18)) == 3


def test_national_holidays_and_cuti_bersama():
    # Nyepi Thu 19 March 2026; Idul Fitri Sat 21 – Sun 22 March 2026.
    cal = Calendar("working")
    assert not cal.is_working_day(date(2026, 3, 19))
    assert cal.add_days(date(2026, 3, 18), 3) == date(2026, 3, 24)  # 20, 23, 24
    cuti = Calendar("working", ["2026-03-20", "2026-03-23", "2026-03-24"])
    assert cuti.add_days(date(2026, 3, 18), 3) == date(2026, 3, 27)  # 25, 26, 27
    assert Calendar("working").add_days(date(2026, 8, 14), 1) == date(2026, 8, 18)  # 17 Agustus
    assert Calendar("calendar").add_days(date(2026, 3, 18), 3) == date(2026, 3, 21)


def test_bad_extra_holiday_is_a_config_error():
    with pytest.raises(ConfigError, match="extra_holidays"):
        Calendar("working", ["20-03-2026"])


@pytest.mark.parametrize(("text", "status", "rest"), [
    ("Status: selesai", "resolved", ""),
    ("status : Selesai.", "resolved", ""),
    ("STATUS:SELESAI!\nJalan sudah ditambal.", "resolved", "Jalan sudah ditambal."),
    ("*Status: selesai*\nsudah", "resolved", "sudah"),
    ("Status - tuntas", "resolved", ""),
    ("Status: ditolak, bukan kewenangan kami", "rejected", "bukan kewenangan kami"),
    ("status: tolak", "rejected", ""),
    ("Status: Menunggu Anggaran\nMasuk usulan 2027", "waiting_budget", "Masuk usulan 2027"),
    ("Status: menunggu  anggaran.", "waiting_budget", ""),
    ("\n\n  Status: diproses — tim ke lokasi besok", "answered", "tim ke lokasi besok"),
    ("Status: sedang diproses", "answered", ""),
])
def test_status_line_variations(text, status, rest):
    parsed = parse_reply(text)
    assert (parsed.status, parsed.text) == (status, rest)


@pytest.mark.parametrize("text", [
    "Terima kasih.\nStatus: selesai",  # not the first line
    "Statusnya: selesai",
    "Status: sudahlah",
    "Status selesai besok",  # no separator
])
def test_not_a_status_line(text):
    assert parse_reply(text).status is None


def test_strip_reply_removes_history_signature_and_disclaimer():
    text = (
        "Baik, kami tindak lanjuti.\n\n"
        "Hormat kami,\nDinas X\n"
    )
    assert strip_reply(text) == "Baik, kami tindak lanjuti."
    outlook = (
        "Sudah kami perbaiki.\n\n"
        "________________________________\n"
        "From: Lapak Aduan <lapak@banyumas.example>\nSent: Monday\n"
    )
    assert strip_reply(outlook) == "Sudah kami perbaiki."
    gmail_id = (
        "Oke.\n\nPada Sen, 2 Mar 2026 pukul 09.00 Lapak Aduan <lapak@banyumas.example>\n"
        "menulis:\n> isi lama\n"
    )
    assert strip_reply(gmail_id) == "Oke."
    disclaimer = (
        "Sedang kami cek.\n\nDISCLAIMER: Email ini dan lampirannya bersifat rahasia.\n"
    )
    assert strip_reply(disclaimer) == "Sedang kami cek."
    secret = "Sudah.\nEmail ini bersifat rahasia dan hanya untuk penerima.\n"
    assert strip_reply(secret) == "Sudah."
    inline = "> pertanyaan lama\nJawaban kami di sini.\n> yang lain\n-- \nSig"
    assert strip_reply(inline) == "Jawaban kami di sini."
    phone = "Sudah.\n\nSent from my iPhone"
    assert strip_reply(phone) == "Sudah."


def test_due_at_follows_the_desk_calendar_settings_when_they_change():
    # due_at remembers answers; the key is the calendar's settings, so a changed config (or
    # another desk) never gets a stale date
    from datetime import datetime
    from types import SimpleNamespace
    from zoneinfo import ZoneInfo

    from lapakd.routing.deadlines import due_at

    settings = SimpleNamespace(sla_calendar="working", extra_holidays=[])
    desk = SimpleNamespace(
        config=SimpleNamespace(desk=settings, tz=ZoneInfo("Asia/Jakarta"))
    )
    received = datetime.fromisoformat("2026-03-18T03:00:00+00:00")  # Wed 10:00 WIB
    assert due_at(desk.config, received, 3) == "2026-03-24T16:59:59+00:00"  # 20, 23, 24
    assert due_at(desk.config, received, 3) == "2026-03-24T16:59:59+00:00"  # remembered
    settings.extra_holidays = ["2026-03-20", "2026-03-23", "2026-03-24"]
    assert due_at(desk.config, received, 3) == "2026-03-27T16:59:59+00:00"
    settings.sla_calendar = "calendar"
    assert due_at(desk.config, received, 3) == "2026-03-21T16:59:59+00:00"
    desk.config.tz = ZoneInfo("UTC")
    assert due_at(desk.config, received, 3) == "2026-03-21T23:59:59+00:00"
    settings.sla_calendar, settings.extra_holidays = "working", ["20-03-2026"]
    with pytest.raises(ConfigError, match="extra_holidays"):
        due_at(desk.config, received, 3)


def test_clocks_late_reads_a_row_as_clock_sql_reads_the_table() -> None:
    """`lapakd list --overdue` filters with CLOCK_SQL and shows each row's clocks_late: the
    two must agree on every combination (real SQLite)."""
    conn = sqlite3.connect(":memory:")
    conn.row_factory = sqlite3.Row
    conn.execute("CREATE TABLE complaints (id INTEGER PRIMARY KEY, due_at TEXT,"
                 " resolve_due_at TEXT, budget_dependent INTEGER, status TEXT)")
    now = "2026-12-03T10:00:00Z"
    times = [None, "2026-12-01T00:00:00Z", "2026-12-05T00:00:00Z"]
    every_status = sorted({*statuses.OPEN, *statuses.CLOSED, "new"})
    for due, resolve, budget, status in itertools.product(times, times, (0, 1), every_status):
        conn.execute("INSERT INTO complaints (due_at, resolve_due_at, budget_dependent, status)"
                     " VALUES (?, ?, ?, ?)", (due, resolve, budget, status))
    rows = conn.execute("SELECT * FROM complaints").fetchall()
    for clock, where in CLOCK_SQL.items():
        by_sql = {r["id"] for r in conn.execute(
            f"SELECT id FROM complaints WHERE {where}", {"now": now})}
        by_row = {r["id"] for r in rows if clock in clocks_late(r, now)}
        assert by_sql == by_row, clock
        assert by_sql  # each clock is late for some rows
