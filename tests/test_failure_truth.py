"""Telling the truth when things fail: status and run --once exit codes, the sender child
during an SMTP outage, bulk requeue, rate-limited alerts."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from deskenv import ADMIN_EMAIL, make_mail

from lapakd import daemon
from lapakd.app import Desk
from lapakd.store import iso, utcnow

TEXTS = [
    ("Jalan rusak", "dalane rusak parah neng Desa {i}, akeh bolongan, mbok didandani"),
    ("Sampah", "sampah numpuk di TPS no {i} udah seminggu gak diangkut, bau bgt"),
    ("Lampu PJU", "lampu jalan mati di gang {i} Sokaraja, gelap kalo malam"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_smtp_refusing_a_burst_does_not_crash_the_sender_and_keeps_rows_pending(desk_env):
    total = daemon.SENDER_BACKLOG + 300  # the child starts and stops while intake goes on
    desk_env.append_many(TEXTS, total)
    desk_env.write_config(smtp={"port": free_port()})  # nothing listens there
    proc = desk_env.cli("run", "--once", "--log-level", "info", check=False)
    output = proc.stdout + proc.stderr
    assert "Fatal Python error" not in output, output[-3000:]
    assert "burst.started" in output
    with desk_env.db() as db:
        statuses = dict(db.execute("SELECT status, count(*) FROM outbox GROUP BY 1").fetchall())
    assert statuses == {"pending": total}


# -- lapakd status: exit 1 and one line per problem --------------------------------------------


def _status(desk_env) -> tuple[int, dict, str]:
    text = desk_env.cli("status", check=False)
    data = desk_env.cli_json("status")
    assert data["problems"] == data["reasons"]
    return text.returncode, data, text.stdout


def test_status_is_all_good_only_after_a_run_and_with_nothing_waiting(desk_env):
    desk_env.write_config(**{"channels.email": {"poll_seconds": 600}})
    code, data, text = _status(desk_env)
    assert code == 1 and data["daemon"]["runs"] == 0
    assert data["problems"] == ["the daemon has never run on this store "
                                "(start lapakd run, or lapakd run --once from cron)"]
    desk_env.append(make_mail("Sampah", "sampah numpuk neng pinggir dalan, TPS penuh"))
    assert desk_env.run_once().returncode == 0
    desk_env.sink.wait_for(1)
    code, data, text = _status(desk_env)
    assert (code, data["problems"]) == (0, []), text
    assert text.rstrip().endswith("all good")
    assert data["daemon"]["runs"] == 1 and data["daemon"]["last_mode"] == "once"


def test_smtp_down_run_once_and_status_exit_1_and_the_complaint_stays_queued(desk_env):
    desk_env.write_config(**{"channels.email": {"poll_seconds": 600}})
    desk_env.append(make_mail("Jalan", "Jalan ning Desa Kedungrandu bolong gede, wis 2 wulan"))
    desk_env.write_config(smtp={"port": free_port()})  # SMTP refuses connections
    proc = desk_env.cli("run", "--once", check=False)
    assert proc.returncode == 1, proc.stderr
    [summary] = [line for line in proc.stderr.splitlines() if line.startswith("lapakd:")]
    assert "deferred for a retry" in summary and "connection refused" in summary
    with desk_env.db() as db:
        [(status, attempts, error)] = db.execute(
            "SELECT status, attempts, last_error FROM outbox").fetchall()
    assert status == "pending" and attempts == 1 and "connection refused" in error
    code, data, text = _status(desk_env)
    assert code == 1 and data["retrying"] == 1
    [problem] = data["problems"]
    assert problem.startswith("1 outgoing message(s) waiting for a retry after a failed attempt")
    assert "connection refused" in problem and problem in text
    # SMTP back: the retry goes out, and everything is good again.
    desk_env.write_config(smtp={"port": desk_env.sink.port})
    with desk_env.db() as db:
        db.execute("UPDATE outbox SET next_attempt_at = '2000-01-01T00:00:00+00:00'")
    assert desk_env.run_once().returncode == 0
    desk_env.sink.wait_for(1)
    code, data, _ = _status(desk_env)
    assert (code, data["problems"]) == (0, [])


def test_wrong_imap_password_makes_run_once_exit_1(desk_env):
    desk_env.write_config(**{"channels.email": {"password": "salah-sandi"}})
    proc = desk_env.cli("run", "--once", check=False)
    assert proc.returncode == 1
    [summary] = [line for line in proc.stderr.splitlines() if line.startswith("lapakd:")]
    assert "channel email error" in summary and "login failed" in summary
    assert "salah-sandi" not in proc.stderr
    code, data, _ = _status(desk_env)
    assert code == 1 and data["problems"][0].startswith("channel email is error")


def test_a_channel_that_stopped_fetching_is_reported(desk_env):
    desk_env.write_config(**{"channels.email": {"poll_seconds": 60}})
    assert desk_env.run_once().returncode == 0
    assert _status(desk_env)[0] == 0
    # As if lapakd had stopped 4 minutes ago: 3 poll intervals have passed without a fetch.
    with desk_env.db() as db:
        db.execute("UPDATE channel_health SET last_success = ?",
                   (iso(utcnow() - timedelta(minutes=4)),))
    code, data, _ = _status(desk_env)
    [problem] = data["problems"]
    assert code == 1 and problem.startswith("channel email last fetched at")
    assert "3 × poll_seconds (60 s)" in problem


def test_failed_sends_are_reported(desk_env):
    desk_env.write_config(**{"channels.email": {"poll_seconds": 600}})
    desk_env.sink.fail_recipient("dlh@banyumas.example", 550, "5.1.1 no such mailbox")
    desk_env.append(make_mail("Sampah", "sampah di TPS Sokaraja ra diangkut"))
    proc = desk_env.cli("run", "--once", check=False)
    assert proc.returncode == 1 and "1 send(s) failed" in proc.stderr
    code, data, _ = _status(desk_env)
    assert code == 1
    assert "1 outgoing message(s) failed (lapakd list, lapakd requeue --failed)" in data["problems"]


def test_whatsapp_webhooks_that_stop_arriving_are_reported(desk_env, replica, hook):
    from lapakd.embedded.replica.graph import send_webhook

    assert desk_env.run_once().returncode == 0  # WhatsApp enabled from this run on
    assert _status(desk_env)[0] == 0
    with desk_env.db() as db:  # a day and an hour later, not one webhook came
        db.execute("UPDATE daemon_runs SET started_at = ?", (iso(utcnow() - timedelta(hours=25)),))
    code, data, _ = _status(desk_env)
    [problem] = data["problems"]
    assert code == 1 and problem.startswith("channel whatsapp: no webhook arrived at all since")
    assert "silence_alert_hours = 24" in problem
    status, answer = send_webhook(hook.url, replica.whatsapp_text_body(
        "6281234567001", "Sri", "Lampu PJU ning prapatan Kober mati, peteng banget"))
    assert status == 200, answer
    assert _status(desk_env)[0] == 0
    with desk_env.db() as db:  # the last webhook came 25 hours ago
        db.execute("UPDATE messages SET stored_at = ?", (iso(utcnow() - timedelta(hours=25)),))
    code, data, _ = _status(desk_env)
    assert code == 1
    assert data["problems"][0].startswith("channel whatsapp: no webhook arrived since")
    desk_env.write_config(**{"channels.whatsapp": {"silence_alert_hours": 48}})
    assert _status(desk_env)[0] == 0


@pytest.mark.parametrize("hours", [0, -3])
def test_silence_alert_hours_must_be_positive(desk_env, replica, hours):
    from metaenv import WA, configure

    configure(desk_env, replica, whatsapp={**WA, "silence_alert_hours": hours})
    proc = desk_env.cli("status", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith(f"lapakd: {desk_env.config}: ")
    assert f"channels.whatsapp.silence_alert_hours = {hours} is out of range" in proc.stderr


# -- requeue: several ids, --failed [--since] [--agency] ---------------------------------------

COMPLAINTS = [
    ("Jalan", "Jalan berlubang di Desa Karangsalam, motor sampai jatuh tadi pagi"),  # dpupr
    ("Sampah", "sampah di TPS Pasar Wage numpuk, lalat di mana2"),  # dlh
    ("Pungli", "ada pungli pas bikin surat pindah di kelurahan, diminta 200rb"),  # inspektorat
    ("Dalan", "Ana lubang gede neng dalan Baturraden, bahaya nek bengi"),  # dpupr
    ("TPS", "tps nang Kembaran wis kebak, sampahe luber meng dalan"),  # dlh
]


def _outbox(desk_env) -> list[dict]:
    with desk_env.db() as db:
        return [dict(r) for r in db.execute(
            "SELECT o.id, o.kind, o.status, o.message_id, o.payload, c.ticket FROM outbox o"
            " LEFT JOIN complaints c ON c.id = o.complaint_id ORDER BY o.id")]


def test_requeue_failed_after_a_relay_refused_everything_sends_all_with_the_same_ids(desk_env):
    desk_env.write_config(**{"channels.email": {"poll_seconds": 600}})
    for subject, body in COMPLAINTS:
        desk_env.append(make_mail(subject, body))
    desk_env.sink.fail_always(554, "5.7.1 relay access denied")
    proc = desk_env.cli("run", "--once", check=False)
    assert proc.returncode == 1 and "send(s) failed" in proc.stderr
    rows = _outbox(desk_env)
    forwards = [r for r in rows if r["kind"] == "forward"]
    assert len(forwards) == 5 and {r["status"] for r in rows} == {"failed"}
    # The admin's alert failed too: no alert about the alert.
    assert [r["kind"] for r in rows].count("alert") == 1
    assert desk_env.sink.messages == []

    desk_env.sink.accept_again()
    assert desk_env.cli("requeue", "--since", "2026-02-30", check=False).returncode == 2
    bad = desk_env.cli("requeue", "--failed", "--since", "2026-02-30", check=False)
    assert bad.returncode == 2 and "not a date" in bad.stderr
    bad = desk_env.cli("requeue", "--failed", "--agency", "dpurp", check=False)
    assert bad.returncode == 2 and "no such agency" in bad.stderr
    out = desk_env.cli("requeue", "--failed", "--since", "2999-01-01").stdout
    assert out.strip() == "0 failed message(s) of 0 complaint(s) queued for sending again" \
        " (same Message-IDs)"
    out = desk_env.cli("requeue", "--failed", "--agency", "dlh").stdout
    assert out.startswith("2 failed message(s) of 2 complaint(s) queued")
    assert desk_env.run_once().returncode == 0  # nothing failed in this run: dlh's two went out
    assert sorted(m.rcpt_tos[0] for m in desk_env.sink.messages) == ["dlh@banyumas.example"] * 2
    assert _status(desk_env)[1]["outbox"]["failed"] == 4  # status still says so
    out = desk_env.cli("requeue", "--failed", "--since", "2026-01-01").stdout
    assert out.startswith("4 failed message(s) of 3 complaint(s) queued")  # 3 forwards, alert
    assert desk_env.run_once().returncode == 0
    rows = _outbox(desk_env)
    assert {r["status"] for r in rows} == {"sent"}
    got = sorted(m.message["Message-ID"] for m in desk_env.sink.messages)
    assert got == sorted(f"<{r['message_id']}>" for r in rows)  # each once, same Message-ID
    assert _status(desk_env)[0] == 0


def test_requeue_takes_several_ids_and_checks_them_all_first(desk_env):
    desk_env.write_config(**{"channels.email": {"poll_seconds": 600}})
    for subject, body in COMPLAINTS[:3]:
        desk_env.append(make_mail(subject, body))
    desk_env.sink.fail_always(550, "5.1.1 mailbox unavailable", stage="RCPT")
    desk_env.cli("run", "--once", check=False)
    desk_env.sink.accept_again()
    tickets = [r["ticket"] for r in _outbox(desk_env) if r["kind"] == "forward"]
    bad = desk_env.cli("requeue", tickets[0], "LA-2026-999999", check=False)
    assert bad.returncode == 2
    assert {r["status"] for r in _outbox(desk_env)} == {"failed"}  # nothing was requeued
    out = desk_env.cli("requeue", tickets[0], tickets[2]).stdout.splitlines()
    assert out == [f"{tickets[0]}: 1 failed message(s) queued for sending again",
                   f"{tickets[2]}: 1 failed message(s) queued for sending again"]
    desk_env.run_once()
    sent = {r["ticket"] for r in _outbox(desk_env) if r["status"] == "sent"}
    assert sent == {tickets[0], tickets[2]}


# -- failed sends: one admin alert per hour at most, with the count ----------------------------


def _run_at(desk_env, when: datetime) -> list[str]:
    with time_machine.travel(when, tick=True):
        desk = Desk.open(str(desk_env.config))
        try:
            return daemon.run_once(desk)
        finally:
            desk.close()


def _alerts(desk_env) -> list:
    return [m for m in desk_env.sink.messages if m.rcpt_tos == [ADMIN_EMAIL]]


def test_failed_forwards_make_one_alert_an_hour_with_the_count(desk_env):
    t0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    desk_env.sink.fail_recipient("dlh@banyumas.example", 550, "5.1.1 mailbox unknown")
    sampah = [("Sampah", "sampah numpuk di TPS RT {i}, bau sampe rumah warga")]
    desk_env.append_many(sampah, 30)
    problems = _run_at(desk_env, t0)
    [problem] = problems
    assert problem.startswith("30 send(s) failed (last error: permanent: SMTP 127.0.0.1:")
    assert problem.endswith("dlh@banyumas.example: 550 5.1.1 mailbox unknown)")
    [alert] = _alerts(desk_env)
    assert alert.message["Subject"] == "[lapakd] Pengiriman gagal: 30 pesan"
    body = alert.message.get_body(("plain",)).get_content()
    assert body.startswith("30 pesan gagal terkirim")
    assert body.count("(forward) ke dlh@banyumas.example: permanent: SMTP") == 30
    assert "lapakd requeue --failed" in body
    # More failures within the hour wait for the next alert...
    desk_env.append_many(sampah, 4)
    _run_at(desk_env, t0 + timedelta(minutes=20))
    assert len(_alerts(desk_env)) == 1
    # ... which goes out an hour after the first, with their count.
    _run_at(desk_env, t0 + timedelta(minutes=61))
    [_, second] = _alerts(desk_env)
    assert second.message["Subject"] == "[lapakd] Pengiriman gagal: 4 pesan"
    # Long after, the next failure is told at once.
    desk_env.append_many(sampah, 1)
    _run_at(desk_env, t0 + timedelta(hours=5))
    [_, _, third] = _alerts(desk_env)
    assert third.message["Subject"] == "[lapakd] Pengiriman gagal: 1 pesan"
    with desk_env.db() as db:
        assert db.execute("SELECT count(*) FROM outbox WHERE kind = 'alert'").fetchone()[0] == 3


def test_an_alert_that_bounces_is_not_alerted_about(desk_env):
    desk_env.sink.fail_recipient("dlh@banyumas.example", 550, "5.1.1 mailbox unknown")
    desk_env.append(make_mail("Sampah", "sampah di kali Logawa, banyu dadi ireng"))
    assert desk_env.run_once().returncode == 1
    [alert] = _alerts(desk_env)
    # The admin's mailbox is gone: the relay accepted the alert, then it bounces.
    dsn = (
        "From: Mail Delivery System <MAILER-DAEMON@banyumas.example>\r\n"
        "To: lapakaduanbms@banyumas.example\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <bounce-alert@banyumas.example>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nMailbox unknown.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n"
        f"Final-Recipient: rfc822; {ADMIN_EMAIL}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: {alert.message['Message-ID']}\r\nSubject: {alert.message['Subject']}\r\n"
        "--B--\r\n"
    ).encode()
    desk_env.append(dsn)
    desk_env.run_once()
    with desk_env.db() as db:
        rows = db.execute("SELECT kind, status FROM outbox ORDER BY id").fetchall()
    assert [tuple(r) for r in rows] == [("forward", "failed"), ("alert", "failed")]
    assert len(_alerts(desk_env)) == 1
