"""Closing the loop, end to end: after an agency's `Status: selesai` the citizen is asked
SUDAH/BELUM on their channel; SUDAH closes, BELUM reopens (the agency and the admin are told, a
new resolution deadline runs), silence closes after `confirm_days` working days; the second
clock (resolution) keeps reminding after `diproses`; budget-bound complaints get a monthly
question. Real Dovecot, the SMTP sink, the Graph replica and lapakd's /webhook; time-machine
moves only the clock."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
import time_machine
from deskenv import ADMIN_EMAIL, make_mail
from metaenv import complaints, rows
from test_lifecycle_e2e import DLH, reply_to, status_of
from test_scheduled_e2e import at, run_at

from lapakd.app import Desk
from lapakd.cli import views
from lapakd.embedded.replica import graph as R
from lapakd.embedded.replica.graph import send_webhook
from lapakd.lifecycle.confirm import parse_answer

CITIZEN = "Siti Rahayu <siti.rahayu88@example.com>"
CITIZEN_ADDRESS = "siti.rahayu88@example.com"
PHONE = "6281398765432"


def plain(msg) -> str:
    return msg.get_body(("plain",)).get_content()


def complaint(env, row_sql: str = "SELECT * FROM complaints ORDER BY id DESC LIMIT 1"):
    return rows(env, row_sql)[0]


def events(env, ticket: str, kind: str) -> list[dict]:
    return [json.loads(r["data"]) | {"actor": r["actor"]} for r in rows(
        env, "SELECT e.* FROM events e JOIN complaints c ON c.id = e.complaint_id"
        " WHERE c.ticket = ? AND e.type = ? ORDER BY e.id", ticket, kind)]


# -- the words: Indonesian, slang, Javanese -----------------------------------------------------


@pytest.mark.parametrize("text", [
    "SUDAH", "sudah pak, makasih", "sdh", "Udah beres kok", "udh", "wis", "Uwis mas",
    "uwes", "dah", "beres", "Selesai, terima kasih", "Sampun, matur nuwun", "ya",
    "[Balasan] Sudah",
])
def test_yes_words(text):
    assert parse_answer(text).verdict == "sudah", text


@pytest.mark.parametrize("text", [
    "BELUM. Lubangnya masih ada", "blm", "blom pak", "belom", "durung, isih bocor", "drung",
    "urung", "belum selesai", "masalahnya belum selesai", "tidak beres, masih mampet",
    "ora uwis", "Belum", "[Balasan] Belum",
])
def test_no_words(text):
    assert parse_answer(text).verdict == "belum", text


@pytest.mark.parametrize("text,rating", [
    ("SUDAH 4", 4), ("udah beres, nilai 3", 3), ("nilai 5", 5), ("5", 5), ("Rating: 2", 2),
    ("sudah", None), ("belum 0", None), ("sudah 9", None), ("bintang 1 aja", 1),
    ("sudah 4 bintang", 4), ("Sudah 3 hari lampu PJU mati", None),
])
def test_rating(text, rating):
    assert parse_answer(text).rating == rating, text


@pytest.mark.parametrize("text", [
    "Jalan di RT 05 rusak lagi, tolong dicek",
    "ya jalannya masih rusak di depan pasar",  # "ya" alone only in a short answer
    "Mohon info nomor aduan saya",
    "Sudah 3 hari lampu PJU di Jl. Bank mati",  # how long, not an answer
    "Wis rong minggu sampah ora diangkut",
    "sudah seminggu jalannya ambles",
])
def test_other_texts_are_not_answers(text):
    answer = parse_answer(text)
    assert answer.verdict is None and answer.rating is None, text


# -- email ----------------------------------------------------------------------------------------


def resolved_by_email(desk_env, body="Sampah di TPS Pasar Wage sudah seminggu tidak diangkut"):
    """A complaint from CITIZEN, forwarded to DLH, answered 'Status: selesai'; returns
    (forward, question) as the sink received them."""
    desk_env.append(make_mail("Sampah menumpuk", body, sender=CITIZEN))
    desk_env.run_once()
    (fwd,) = [m.message for m in desk_env.sink.wait_for(1)]
    desk_env.sink.clear()
    desk_env.append(reply_to(fwd, "Status: selesai\nSudah kami angkut tadi pagi dengan truk."))
    desk_env.run_once()
    mails = desk_env.sink.wait_for(2)  # the relay of the answer, then the question
    to_citizen = [m for m in mails if m.rcpt_tos == [CITIZEN_ADDRESS]]
    (question,) = [m.message for m in to_citizen if "Balas SUDAH atau BELUM" in plain(m.message)]
    desk_env.sink.clear()
    return fwd, question


def test_email_sudah_with_rating_closes_and_stores_the_rating(desk_env):
    fwd, question = resolved_by_email(desk_env)
    ticket = fwd["X-Lapakd-Ticket"]
    body = plain(question)
    assert "Apakah masalahnya sudah selesai? Balas SUDAH atau BELUM" in body
    assert ticket in question["Subject"] and "Nilai 1-5?" in body
    assert question["In-Reply-To"]  # in the citizen's own thread
    c = complaint(desk_env)
    assert c["status"] == "resolved" and c["confirm_due_at"] and c["resolved_at"]

    desk_env.append(reply_to(question, "Udah beres, makasih banyak. Nilai 5\n\n> kutipan",
                             sender=CITIZEN))
    desk_env.run_once()
    c = complaint(desk_env)
    assert (c["status"], c["rating"], c["confirmation"]) == ("closed", 5, "sudah")
    assert c["closed_at"] and c["confirm_due_at"] is None
    assert events(desk_env, ticket, "confirmed")[0]["via"] == "email:thread"
    assert events(desk_env, ticket, "rated")[0]["rating"] == 5
    assert not events(desk_env, ticket, "reply_unverified")  # not sent to the admin as unknown
    # a later rating in its own reply replaces nothing once given; a first one would be taken
    desk_env.cli("export")
    page = (desk_env.data_dir / "public" / "aduan" / f"{ticket}.html").read_text()
    assert "Pelapor menyatakan masalahnya sudah selesai" in page
    assert "siti" not in page.lower()


def test_email_belum_reopens_tells_the_agency_in_its_thread_and_the_admin(desk_env):
    fwd, question = resolved_by_email(desk_env)
    ticket = fwd["X-Lapakd-Ticket"]
    words = "durung, sampahe isih numpuk neng pojok pasar, mung dijupuk separo"
    desk_env.append(reply_to(question, words, sender=CITIZEN))
    desk_env.run_once()
    c = complaint(desk_env)
    assert (c["status"], c["confirmation"], c["reopen_count"]) == ("reopened", "belum", 1)
    assert c["resolve_due_at"] and c["resolve_due_at"] > c["resolved_at"]
    mails = desk_env.sink.wait_for(2)
    (agency,) = [m for m in mails if DLH in m.rcpt_tos]
    assert words in " ".join(plain(agency.message).split())
    assert agency.message["In-Reply-To"] == fwd["Message-ID"]  # threaded to its forward
    (admin,) = [m for m in mails if m.rcpt_tos == [ADMIN_EMAIL]]
    assert ticket in admin.message["Subject"] and "BELUM" in admin.message["Subject"]
    assert events(desk_env, ticket, "reopened")[0]["words"] == words
    desk_env.cli("export")
    page = (desk_env.data_dir / "public" / "aduan" / f"{ticket}.html").read_text()
    assert "Konfirmasi pelapor" in page and "isih numpuk" in page
    assert "Dibuka kembali" in page

    # The agency says selesai again: asked again (a new round), then SUDAH closes.
    desk_env.sink.clear()
    desk_env.append(reply_to(fwd, "Status: selesai\nSisa sampah sudah diangkut semua."))
    desk_env.run_once()
    second = [m.message for m in desk_env.sink.wait_for(2)
              if "Balas SUDAH atau BELUM" in plain(m.message)]
    assert len(second) == 1
    desk_env.append(reply_to(second[0], "sdh", sender=CITIZEN))
    desk_env.run_once()
    assert status_of(desk_env, ticket) == "closed"
    assert len(events(desk_env, ticket, "confirm_asked")) == 2


def test_ticket_in_the_text_and_a_strangers_belum(desk_env):
    fwd, question = resolved_by_email(desk_env)
    ticket = fwd["X-Lapakd-Ticket"]
    # someone else answering in the thread is not the citizen: for the admin, not applied
    desk_env.append(reply_to(question, "BELUM", sender="Orang Lain <iseng@example.com>"))
    desk_env.run_once()
    assert status_of(desk_env, ticket) == "resolved"
    # the citizen in a new mail (no thread, no tag in the subject), the ticket in the text
    desk_env.append(make_mail("balasan", f"Aduan {ticket} belum beres, truk cuma lewat.",
                              sender=CITIZEN))
    desk_env.run_once()
    assert status_of(desk_env, ticket) == "reopened"
    assert events(desk_env, ticket, "reopened")[0]["via"] == "email:ticket"
    assert len(complaints(desk_env)) == 1  # not a new complaint


# -- silence: closed after confirm_days working days, holidays skipped ---------------------------


def test_no_objection_closes_after_ten_working_days_across_holidays(desk_env):
    # cuti bersama around Idul Fitri 1447 H; Nyepi (19 March) and Good Friday (3 April) are
    # national holidays the calendar knows
    desk_env.write_config(desk={"extra_holidays": ["2026-03-20", "2026-03-23", "2026-03-24"]})
    desk_env.append(make_mail("Sampah", "Sampah di TPS Pasar Wage menumpuk", sender=CITIZEN))
    run_at(desk_env, at(16, 9))
    (fwd,) = [m.message for m in desk_env.sink.wait_for(1)]
    ticket = fwd["X-Lapakd-Ticket"]
    desk_env.append(reply_to(fwd, "Status: selesai\nSudah diangkut."))
    run_at(desk_env, at(16, 10))  # Monday 16 March
    c = complaint(desk_env)
    # 17, 18, 25, 26, 27, 30, 31 March, 1, 2, 6 April: the end of the 10th working day
    assert c["confirm_due_at"] == "2026-04-06T16:59:59+00:00"
    question = next(m.message for m in desk_env.sink.wait_for(3)
                    if "Balas SUDAH atau BELUM" in plain(m.message))
    assert "Senin, 6 April 2026" in plain(question)
    run_at(desk_env, at(6, 23, 30, month=4))
    assert status_of(desk_env, ticket) == "resolved"
    run_at(desk_env, at(7, 0, 30, month=4))
    assert status_of(desk_env, ticket) == "closed"
    (auto,) = events(desk_env, ticket, "auto_closed")
    assert auto["confirm_days"] == 10
    assert complaint(desk_env)["confirmation"] == "auto"
    run_at(desk_env, at(8, 9, month=4))
    assert len(events(desk_env, ticket, "auto_closed")) == 1


# -- the two clocks -------------------------------------------------------------------------------


def overdue(desk_env, when: datetime, clock: str | bool) -> list[str]:
    with time_machine.travel(when, tick=True):
        desk = Desk.open(str(desk_env.config))
        try:
            return [r["id"] for r in views.list_complaints(desk, overdue=clock)]
        finally:
            desk.close()


def test_diproses_stops_the_first_clock_only_reminders_go_on_with_the_second(desk_env):
    desk_env.write_config(desk={"escalate_after_days": 2})
    desk_env.append(make_mail("Sampah", "Sampah di TPS Pasar Wage menumpuk", sender=CITIZEN))
    run_at(desk_env, at(2, 9))  # Monday 2 March; dlh: sla_days 3, resolve_days 7 (default)
    (fwd,) = [m.message for m in desk_env.sink.wait_for(1)]
    ticket = fwd["X-Lapakd-Ticket"]
    c = complaint(desk_env)
    assert c["due_at"] == "2026-03-05T16:59:59+00:00"  # 3 working days
    assert c["resolve_due_at"] == "2026-03-09T16:59:59+00:00"  # 7 calendar days
    desk_env.append(reply_to(fwd, "Status: diproses\nTruk dijadwalkan minggu ini."))
    run_at(desk_env, at(2, 10))
    desk_env.sink.clear()

    assert overdue(desk_env, at(6, 9), "first") == []  # answered: the first clock stopped
    run_at(desk_env, at(6, 8, 30))  # Fri: resolution due by the next working day (Mon 9)
    (reminder,) = desk_env.sink.wait_for(1)
    body = plain(reminder.message)
    assert reminder.rcpt_tos == [DLH] and ticket in body
    assert "TENGGAT PENYELESAIAN HARI INI ATAU HARI KERJA BERIKUTNYA (1)" in body
    assert "belum diselesaikan" in reminder.message["Subject"]
    desk_env.sink.clear()

    assert overdue(desk_env, at(10, 9), "resolve") == [ticket]
    assert overdue(desk_env, at(10, 9), "first") == []
    assert overdue(desk_env, at(10, 9), True) == [ticket]  # plain --overdue: both
    run_at(desk_env, at(10, 8, 30))  # Tue: late by a day; not escalated yet (2 days)
    body = plain(desk_env.sink.wait_for(1)[0].message)
    assert "MELEWATI TENGGAT PENYELESAIAN (1)" in body and "terlambat 1 hari" in body
    desk_env.sink.clear()
    run_at(desk_env, at(12, 8, 30))  # Thu: past 9 March + 2 days: escalated once
    mails = desk_env.sink.wait_for(2)
    (esc,) = [m for m in mails if m.rcpt_tos == [ADMIN_EMAIL]]
    assert "belum diselesaikan" in esc.message["Subject"]
    assert events(desk_env, ticket, "escalated")[0]["clock"] == "resolve"

    shown = desk_env.cli_json("show", ticket)
    assert shown["clocks"]["first"]["running"] is False
    assert shown["clocks"]["resolve"]["due_at"] == "2026-03-09T16:59:59+00:00"
    out = desk_env.cli("list", "--overdue", "first").stdout
    assert ticket not in out
    # the agency says selesai: the second clock stops too
    desk_env.append(reply_to(fwd, "Status: selesai\nSudah diangkut semua."))
    run_at(desk_env, at(12, 10))
    assert overdue(desk_env, at(13, 9), True) == []


def test_budget_bound_complaints_get_a_monthly_question_and_no_resolution_clock(desk_env):
    desk_env.append(make_mail("Jalan", "Jalan berlubang di Karangsalam, sudah setahun",
                              sender=CITIZEN))
    run_at(desk_env, at(2, 9))
    (fwd,) = [m.message for m in desk_env.sink.wait_for(1)]
    ticket = fwd["X-Lapakd-Ticket"]
    c = complaint(desk_env)
    assert c["budget_dependent"] == 1 and c["resolve_due_at"] is None and c["due_at"] is None
    desk_env.sink.clear()
    run_at(desk_env, at(31, 9))  # 29 days: not yet
    assert desk_env.sink.messages == []
    run_at(desk_env, at(1, 9, month=4))  # a month of waiting
    (ask,) = desk_env.sink.wait_for(1)
    assert "dpupr@banyumas.example" in ask.rcpt_tos
    assert "Masih menunggu anggaran?" in ask.message["Subject"]
    assert "menunggu anggaran sejak" in plain(ask.message)
    run_at(desk_env, at(2, 9, month=4))  # once a month
    assert len(desk_env.sink.messages) == 1
    shown = desk_env.cli_json("show", ticket)
    assert shown["clocks"]["budget_waiting"]["days"] >= 30
    # the agency's answer to the question is an answer to the complaint (its thread)
    desk_env.append(reply_to(ask.message, "Status: menunggu anggaran\nMasuk usulan APBD 2027.",
                             sender="DPUPR <dpupr@banyumas.example>"))
    run_at(desk_env, at(2, 10, month=4))
    assert status_of(desk_env, ticket) == "waiting_budget"
    run_at(desk_env, at(4, 9, month=5))  # a second month (Monday 4 May)
    assert sum("Masih menunggu anggaran?" in (m.message["Subject"] or "")
               for m in desk_env.sink.messages) == 2


# -- WhatsApp -------------------------------------------------------------------------------------


def deliver(hook, body) -> None:
    status, answer = send_webhook(hook.url, body)
    assert status == 200, answer


def button_reply(replica, wa_id: str, context_id: str, button_id: str, title: str) -> dict:
    body = replica.whatsapp_text_body(wa_id, "Siti", title, context={"from": R.DISPLAY_PHONE,
                                                                     "id": context_id})
    msg = body["entry"][0]["changes"][0]["value"]["messages"][0]
    del msg["text"]
    msg["type"] = "interactive"
    msg["interactive"] = {"type": "button_reply",
                          "button_reply": {"id": button_id, "title": title}}
    return body


def with_email(desk_env, replica, **wa) -> None:
    """The hook's desk, its mailbox polled too (agencies answer by email)."""
    from metaenv import WA, configure

    configure(desk_env, replica, email=True, whatsapp=WA | wa)


def whatsapp_resolved(desk_env, replica, hook, text="Sampah di TPS Pasar Wage numpuk"):
    with_email(desk_env, replica)
    deliver(hook, replica.whatsapp_text_body(PHONE, "Siti", text))
    desk_env.run_once()
    (fwd,) = [m.message for m in desk_env.sink.wait_for(1)]
    desk_env.sink.clear()
    desk_env.append(reply_to(fwd, "Status: selesai\nSudah diangkut."))
    desk_env.run_once()
    return fwd


def test_whatsapp_buttons_sudah_closes(desk_env, replica, hook):
    fwd = whatsapp_resolved(desk_env, replica, hook)
    ticket = fwd["X-Lapakd-Ticket"]
    asked = [p for p in replica.posted if p.get("type") == "interactive"]
    assert len(asked) == 1
    buttons = asked[0]["interactive"]["action"]["buttons"]
    assert [b["reply"]["title"] for b in buttons] == ["Sudah", "Belum"]
    assert "Balas SUDAH atau BELUM" in asked[0]["interactive"]["body"]["text"]
    assert ticket in asked[0]["interactive"]["body"]["text"]
    (row,) = rows(desk_env, "SELECT result FROM outbox WHERE kind = 'confirm_ask'")
    wamid = json.loads(row["result"])["wamid"]
    deliver(hook, button_reply(replica, PHONE, wamid, f"confirm:{ticket}:sudah", "Sudah"))
    desk_env.run_once()
    assert status_of(desk_env, ticket) == "closed"
    assert events(desk_env, ticket, "confirmed")[0]["via"] == "whatsapp:context"
    # a rating in a later message is stored on the closed complaint, not a new complaint
    deliver(hook, replica.whatsapp_text_body(PHONE, "Siti", "nilai 4"))
    desk_env.run_once()
    assert complaint(desk_env)["rating"] == 4
    assert len(complaints(desk_env)) == 1


def test_whatsapp_belum_in_the_conversation_reopens(desk_env, replica, hook):
    fwd = whatsapp_resolved(desk_env, replica, hook)
    ticket = fwd["X-Lapakd-Ticket"]
    deliver(hook, replica.whatsapp_text_body(PHONE, "Siti", "blm mas, isih ana sampah 3 karung"))
    desk_env.run_once()
    assert status_of(desk_env, ticket) == "reopened"
    assert len(complaints(desk_env)) == 1
    (agency,) = [m for m in desk_env.sink.wait_for(2) if DLH in m.rcpt_tos]
    assert "isih ana sampah 3 karung" in plain(agency.message)
    # a message that is not an answer is a new complaint, as before
    deliver(hook, replica.whatsapp_text_body(PHONE, "Siti", "Lampu PJU di Jl. Bank mati"))
    desk_env.run_once()
    assert len(complaints(desk_env)) == 2


def test_whatsapp_outside_the_window_uses_the_followup_template(desk_env, replica, hook):
    from datetime import UTC, timedelta

    with_email(desk_env, replica, followup_template="konfirmasi_selesai")
    old = datetime.now(UTC) - timedelta(hours=30)
    deliver(hook, replica.whatsapp_text_body(PHONE, "Siti", "Sampah di TPS numpuk", when=old))
    desk_env.run_once()
    (fwd,) = [m.message for m in desk_env.sink.wait_for(1) if DLH in m.rcpt_tos]
    desk_env.append(reply_to(fwd, "Status: selesai\nSudah diangkut."))
    desk_env.run_once()
    (asked,) = [p for p in replica.posted if p.get("type") == "template"]
    assert asked["template"]["name"] == "konfirmasi_selesai"
    assert asked["template"]["components"][0]["parameters"][0]["text"] == \
        fwd["X-Lapakd-Ticket"]


# -- Messenger: the question as a DM, the answer in the conversation -----------------------------


def test_messenger_dm_question_and_an_answer_with_rating(desk_env, replica):
    from metaenv import FB, configure

    configure(desk_env, replica, email=True, facebook=FB)
    psid = "7319876543210001"
    replica.messenger_message(psid, "Siti Rahayu", "Sampah di TPS Pasar Wage numpuk seminggu")
    desk_env.run_once()
    (fwd,) = [m.message for m in desk_env.sink.wait_for(1) if DLH in m.rcpt_tos]
    ticket = fwd["X-Lapakd-Ticket"]
    desk_env.append(reply_to(fwd, "Status: selesai\nSudah diangkut."))
    desk_env.run_once()
    dms = [p for p in replica.posted if p["path"] == f"{R.PAGE_ID}/messages"
           and "Balas SUDAH atau BELUM" in p["message"]["text"]]
    assert len(dms) == 1 and dms[0]["recipient"] == {"id": psid}
    assert ticket in dms[0]["message"]["text"]
    replica.messenger_message(psid, "Siti Rahayu", "uwis mas, matur nuwun. nilai 4")
    desk_env.run_once()
    c = complaint(desk_env)
    assert (c["status"], c["rating"]) == ("closed", 4)
    assert events(desk_env, ticket, "confirmed")[0]["via"] == "facebook:conversation"
    assert len(complaints(desk_env)) == 1
