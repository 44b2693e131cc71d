"""Deadlines, reminders, escalation and the weekly digest, with time travel (time-machine).

The desk runs in this process (`daemon.run_once` on a fresh `Desk` per run, as after a restart),
against the real Dovecot and SMTP sink; only the clock is moved.
"""

from __future__ import annotations

import email
import re
import statistics
from datetime import datetime
from zoneinfo import ZoneInfo

import time_machine
from deskenv import ADMIN_EMAIL, make_mail

from lapakd import daemon
from lapakd.app import Desk
from lapakd.store import parse_iso

WIB = ZoneInfo("Asia/Jakarta")
LEADER = "bupati@banyumas.example"
DLH = "dlh@banyumas.example"


def at(day: int, hour: int = 9, minute: int = 0, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=WIB)


def run_at(desk_env, when: datetime) -> None:
    """One `run --once` at that moment, by a freshly started desk."""
    with time_machine.travel(when, tick=True):
        desk = Desk.open(str(desk_env.config))
        try:
            daemon.run_once(desk)
        finally:
            desk.close()


def complaint_at(desk_env, when, body, sender="Budi <budi.warga@example.com>", subject="Aduan"):
    before = len(desk_env.sink.messages)
    desk_env.append(make_mail(subject, body, sender=sender))
    run_at(desk_env, when)
    mails = desk_env.sink.wait_for(before + 1)
    # The new forward (a reminder for older complaints may go out in the same run).
    return [m.message for m in mails[before:] if m.message["X-Lapakd-Ticket"]][-1]


def due_at(desk_env, ticket):
    with desk_env.db() as conn:
        return conn.execute("SELECT due_at FROM complaints WHERE ticket = ?",
                            (ticket,)).fetchone()[0]


def test_due_date_across_a_weekend(desk_env):
    fwd = complaint_at(desk_env, at(13, 10), "Sampah menumpuk di TPS")  # Friday
    ticket = fwd["X-Lapakd-Ticket"]
    assert due_at(desk_env, ticket) == "2026-03-18T16:59:59+00:00"  # Wed 23:59:59 WIB
    body = fwd.get_body(("plain",)).get_content()
    assert "Rabu, 18 Maret 2026 (3 hari kerja)" in body


def test_due_date_across_idul_fitri_and_cuti_bersama(desk_env):
    fwd = complaint_at(desk_env, at(18, 10), "Sampah menumpuk di TPS")  # Wed before Nyepi
    assert due_at(desk_env, fwd["X-Lapakd-Ticket"]) == "2026-03-24T16:59:59+00:00"
    desk_env.write_config(desk={"extra_holidays": ["2026-03-20", "2026-03-23", "2026-03-24"]})
    fwd = complaint_at(desk_env, at(18, 11), "Sampah liar di sungai")
    assert due_at(desk_env, fwd["X-Lapakd-Ticket"]) == "2026-03-27T16:59:59+00:00"
    assert "Jumat, 27 Maret 2026 (3 hari kerja)" in fwd.get_body(("plain",)).get_content()
    desk_env.write_config(desk={"sla_calendar": "calendar"})
    fwd = complaint_at(desk_env, at(18, 12), "Sampah di pasar")
    assert due_at(desk_env, fwd["X-Lapakd-Ticket"]) == "2026-03-21T16:59:59+00:00"
    assert "(3 hari)" in fwd.get_body(("plain",)).get_content()


def test_budget_dependent_complaints_have_no_deadline(desk_env):
    fwd = complaint_at(desk_env, at(2), "Jalan berlubang di Karangsalam")
    assert due_at(desk_env, fwd["X-Lapakd-Ticket"]) is None
    run_at(desk_env, at(20, 8, 30))  # weeks later: no reminder, no escalation
    assert len(desk_env.sink.messages) == 1


def test_reminders_and_escalation_are_sent_once_across_restarts(desk_env):
    desk_env.write_config(desk={"leadership_email": LEADER, "escalate_after_days": 3})
    fwd = complaint_at(desk_env, at(2, 9), "Sampah menumpuk di TPS")  # Mon; due Thu 5
    ticket = fwd["X-Lapakd-Ticket"]
    answered = complaint_at(desk_env, at(2, 9, 30), "Sampah di pasar Wage")
    desk_env.append(make_mail(f"Re: {answered['Subject']}", "Sudah kami angkut.",
                              sender=f"DLH <{DLH}>",
                              headers={"In-Reply-To": answered["Message-ID"]}))
    run_at(desk_env, at(2, 10))
    desk_env.sink.wait_for(3)  # 2 forwards + the relay of the answer
    desk_env.sink.clear()

    run_at(desk_env, at(3, 8, 30))  # Tue: due Thu is not yet by the next working day
    run_at(desk_env, at(4, 7, 30))  # Wed before reminder_time
    assert desk_env.sink.messages == []
    run_at(desk_env, at(4, 8, 30))  # Wed: due by the next working day
    (soon,) = desk_env.sink.wait_for(1)
    assert soon.rcpt_tos == [DLH]
    body = soon.message.get_body(("plain",)).get_content()
    assert ticket in body and "HARI KERJA BERIKUTNYA" in body and "MELEWATI" not in body
    assert answered["X-Lapakd-Ticket"] not in body  # answered: nothing to chase
    run_at(desk_env, at(4, 14))  # restarted the same day: not again
    assert len(desk_env.sink.messages) == 1
    desk_env.sink.clear()

    run_at(desk_env, at(6, 8, 5))  # Fri: overdue by one working day
    (late,) = desk_env.sink.wait_for(1)
    body = late.message.get_body(("plain",)).get_content()
    assert "MELEWATI TENGGAT (1)" in body and "terlambat 1 hari kerja" in body
    assert "melewati tenggat" in late.message["Subject"]
    run_at(desk_env, at(7, 9))  # Saturday: no reminders on days off
    assert len(desk_env.sink.messages) == 1
    desk_env.sink.clear()

    # Overdue by 3 working days after Thu 5 = after Tue 10: escalated on Wed 11, once.
    run_at(desk_env, at(10, 9))
    assert [m.rcpt_tos for m in desk_env.sink.wait_for(1)] == [[DLH]]
    desk_env.sink.clear()
    run_at(desk_env, at(11, 8, 1))
    mails = desk_env.sink.wait_for(2)
    escalation = next(m for m in mails if m.rcpt_tos != [DLH])
    assert escalation.rcpt_tos == [ADMIN_EMAIL, LEADER]
    assert ticket in escalation.message["Subject"] and "Eskalasi" in escalation.message["Subject"]
    run_at(desk_env, at(11, 15))  # restart: nothing again
    assert len(desk_env.sink.messages) == 2
    desk_env.sink.clear()
    run_at(desk_env, at(12, 8, 30))  # next day: a reminder again, no second escalation
    (again,) = desk_env.sink.wait_for(1)
    assert again.rcpt_tos == [DLH]
    assert desk_env.count("SELECT count(*) FROM outbox WHERE kind = 'escalation'") == 1
    events = [e["type"] for e in desk_env.cli_json("show", ticket)["events"]]
    assert events.count("escalated") == 1
    with time_machine.travel(at(12, 9), tick=True):
        overdue = desk_env.cli_json("list", "--overdue", "first")
        both = desk_env.cli_json("list", "--overdue")
    assert [c["id"] for c in overdue] == [ticket]
    # the answered one stopped its first clock, but not its resolution clock (7 days)
    assert [c["id"] for c in both] == [ticket, answered["X-Lapakd-Ticket"]]
    assert both[1]["overdue"] == ["resolve"]

    # An agency answering the reminder itself (no ticket): for the admin, not a new complaint.
    complaints = desk_env.count("SELECT count(*) FROM complaints")
    desk_env.sink.clear()
    desk_env.append(make_mail(f"Re: {again.message['Subject']}", "Sedang kami kerjakan semua.",
                              sender=f"DLH <{DLH}>",
                              headers={"In-Reply-To": again.message["Message-ID"]}))
    run_at(desk_env, at(12, 10))
    assert desk_env.count("SELECT count(*) FROM complaints") == complaints
    assert desk_env.count("SELECT count(*) FROM messages WHERE kind = 'reply_to_notice'") == 1
    (alert,) = desk_env.sink.wait_for(1)
    assert alert.rcpt_tos == [ADMIN_EMAIL]


def _digest_parts(msg):
    html = msg.get_body(("html",))
    text = msg.get_body(("plain",)).get_content()
    related = next(p for p in msg.walk() if p.get_content_type() == "multipart/related")
    images = {p["Content-ID"].strip("<>"): p.get_content() for p in related.iter_parts()
              if p.get_content_type() == "image/png"}
    return text, html.get_content(), images


def test_weekly_digest_numbers_match_the_store(desk_env):
    desk_env.write_config(desk={"leadership_email": LEADER})
    run_at(desk_env, at(2, 7))  # Monday, nothing at all yet: no digest
    a = complaint_at(desk_env, at(2, 10), "Sampah menumpuk di TPS Sokaraja")  # dlh
    b = complaint_at(desk_env, at(3, 10), "Jalan berlubang di Karangsalam")  # dpupr, budget
    c = complaint_at(desk_env, at(3, 11), "Ada pungli di kelurahan")  # inspektorat
    complaint_at(desk_env, at(4, 10), "Listrik padam terus")  # triage
    d = complaint_at(desk_env, at(4, 11), "Sampah liar di Cilongok")  # dlh, will be late
    desk_env.append(make_mail("promo", "promo slot gacor"))  # ignored: not counted
    desk_env.append(make_mail(f"Re: {a['Subject']}", "Status: selesai\nSudah diangkut.",
                              sender=f"DLH <{DLH}>", headers={"In-Reply-To": a["Message-ID"]}))
    run_at(desk_env, at(4, 15))
    desk_env.append(make_mail(f"Re: {b['Subject']}", "Status: menunggu anggaran",
                              sender="kabid.jalan@banyumas.example",
                              headers={"In-Reply-To": b["Message-ID"]}))
    run_at(desk_env, at(6, 10))
    # Received in the week before: not in this digest's "new" count, still open and oldest.
    desk_env.sink.clear()

    run_at(desk_env, at(9, 8, 30))  # Monday after reminder_time
    digests = [m for m in desk_env.sink.wait_for(1) if m.rcpt_tos == [LEADER]]
    assert len(digests) == 1
    msg = digests[0].message
    text, html, images = _digest_parts(msg)

    # The numbers, recomputed from the store.
    with desk_env.db() as conn:
        start, end = "2026-03-01T17:00:00+00:00", "2026-03-08T17:00:00+00:00"
        new = conn.execute(
            "SELECT count(*) FROM complaints WHERE received_at >= ? AND received_at < ?"
            " AND status NOT IN ('ignored', 'new', 'quarantined')", (start, end)).fetchone()[0]
        by_status = dict(conn.execute(
            "SELECT status, count(*) FROM complaints WHERE status IN"
            " ('triage', 'forwarded', 'answered', 'waiting_budget') GROUP BY status").fetchall())
        first = conn.execute(
            "SELECT min(u.at), c.received_at FROM updates u JOIN complaints c"
            " ON c.id = u.complaint_id WHERE u.agency = 'dlh' GROUP BY u.complaint_id"
        ).fetchall()
    assert new == 5
    assert by_status == {"triage": 1, "forwarded": 2, "waiting_budget": 1}
    dlh_median = round(statistics.median(
        (parse_iso(f[0]) - parse_iso(f[1])).total_seconds() / 86400 for f in first), 1)

    assert "Aduan baru minggu ini: 5" in text
    for label, n in (("menunggu verifikasi", 1), ("diteruskan", 2), ("ditanggapi", 0),
                     ("menunggu anggaran", 1)):
        line = next(x for x in text.splitlines() if x.strip().startswith(label))
        assert line.split()[len(label.split())] == str(n), line
    dlh = next(x for x in text.splitlines() if x.strip().startswith("Dinas Lingkungan Hidup"))
    # received 2 (a, d), answered 1 on time, overdue 1 (d due Mon 9 end: not yet) → 0
    assert dlh.split()[-5:] == ["2", "1", "1", "0", str(dlh_median)]
    dpupr = next(x for x in text.splitlines() if x.strip().startswith("Dinas Pekerjaan Umum"))
    assert dpupr.split()[-5:-1] == ["1", "1", "1", "0"]
    insp = next(x for x in text.splitlines() if x.strip().startswith("Inspektorat"))
    assert insp.split()[-5:] == ["1", "0", "0", "0", "-"]
    # It leads with the agencies' ranking (the public site's figures, last 30 days): dlh and
    # dpupr answered on time (1/1 each; d is not due yet), dlh faster (a: Mon 2 → Wed 4 = 2
    # working days; b: Tue 3 → Fri 6 = 3); inspektorat not answered, not due: "–".
    assert text.index("Peringkat instansi") < text.index("Aduan baru minggu ini")
    block = text.split("Peringkat instansi")[1].split("TepatWaktu:")[0]
    ranked = [line.split() for line in block.splitlines()[2:] if line.strip()]
    assert [r[0] for r in ranked] == ["1", "2", "3"], block
    assert ranked[0][1:5] == ["Dinas", "Lingkungan", "Hidup", "2"] and ranked[0][5] == "100%"
    assert ranked[0][6] == "2"  # median working days to the first answer
    assert ranked[1][1:3] == ["Dinas", "Pekerjaan"] and "100%" in ranked[1]
    assert ranked[1][ranked[1].index("100%") + 1] == "3"
    assert ranked[2][1] == "Inspektorat" and ranked[2][ranked[2].index("1") + 1] == "–"
    assert html.index("Peringkat instansi") < html.index("Aduan terbuka per status")
    assert "LINGKUNGAN HIDUP DAN KEHUTANAN" in text and "Belum dikategorikan" in text
    oldest = text.split("Aduan terbuka paling lama:")[1]
    assert oldest.index(b["X-Lapakd-Ticket"]) < oldest.index(c["X-Lapakd-Ticket"]) \
        < oldest.index(d["X-Lapakd-Ticket"])
    assert a["X-Lapakd-Ticket"] not in oldest  # resolved

    # HTML with its charts embedded: every cid: the HTML uses is an attached PNG.
    cids = set(re.findall(r'src="cid:([^"]+)"', html))
    assert cids and cids <= set(images)
    assert all(data.startswith(b"\x89PNG\r\n\x1a\n") for data in images.values())
    assert "http" not in "".join(re.findall(r'src="([^"]+)"', html))
    assert "<script" not in html and "Dinas Lingkungan Hidup" in html

    # Once per week, across restarts.
    run_at(desk_env, at(9, 13))
    assert len([m for m in desk_env.sink.messages if m.rcpt_tos == [LEADER]]) == 1
    raw = email.message_from_bytes(msg.as_bytes())
    assert raw.is_multipart()
