"""End to end over real servers: mail in Dovecot → `lapakd run --once` → SMTP sink + store."""

from __future__ import annotations

import json
import re

import pytest
from deskenv import ADMIN_EMAIL, DESK_EMAIL, TINY_JPEG, make_mail


def test_complaints_are_stored_routed_and_forwarded_once(desk_env):
    desk_env.append(make_mail(
        "Jalan berlubang di Karangsalam",
        "Jalan di Desa Karangsalam berlubang besar, sudah 2 bulan tdk diperbaiki.",
        attachments=[("lubang.jpg", "image/jpeg", TINY_JPEG)],
    ))
    desk_env.append(make_mail(
        "Sampah menumpuk", "", html="<p>Sampah di <b>TPS</b> Pasar Wage menumpuk</p>"
        "<script>alert(1)</script>",
        sender="Sri <sri@example.net>",
    ))
    desk_env.append(make_mail("Tanya", "Kapan pendaftaran beasiswa dibuka?",
                              sender="andi@example.org"))
    desk_env.run_once()

    mails = desk_env.sink.wait_for(3)  # dpupr (with its cc), dlh, triage to the admin
    assert sorted(tuple(m.rcpt_tos) for m in mails) == [
        (ADMIN_EMAIL,),
        ("dlh@banyumas.example",),
        ("dpupr@banyumas.example", "kabid.jalan@banyumas.example"),
    ]

    road = next(m.message for m in mails if "dpupr@banyumas.example" in m.rcpt_tos)
    assert re.fullmatch(
        r"\[LA-\d{4}-000001\] PEKERJAAN UMUM DAN PENATAAN RUANG: Jalan berlubang di Karangsalam",
        road["Subject"],
    )
    assert DESK_EMAIL in road["From"] and road["Reply-To"] == DESK_EMAIL
    assert road["X-Lapakd-Ticket"].endswith("-000001")
    assert road["Message-ID"].startswith("<LA-")
    body = road.get_body(("plain",)).get_content()
    for expected in ("Karangsalam berlubang besar", "budi.warga@example.com", "Budi Santoso",
                     "https://lapakaduan.example/aduan/", "Balas (reply) email ini",
                     "bergantung pada anggaran"):
        assert expected in body, expected
    photos = [p for p in road.iter_attachments() if p.get_content_type() == "image/jpeg"]
    assert [p.get_filename() for p in photos] == ["lubang.jpg"]
    assert photos[0].get_content() == TINY_JPEG

    rubbish = next(m.message for m in mails if "dlh@banyumas.example" in m.rcpt_tos)
    rubbish_body = rubbish.get_body(("plain",)).get_content()
    assert "TPS" in rubbish_body and "<b>" not in rubbish_body and "alert(1)" not in rubbish_body
    assert "Tenggat" in rubbish_body and "(3 hari kerja)" in rubbish_body

    triage = next(m.message for m in mails if ADMIN_EMAIL in m.rcpt_tos)
    assert "Perlu verifikasi" in triage["Subject"]

    listed = desk_env.cli_json("list")
    assert [(c["status"], c["agencies"]) for c in listed] == [
        ("forwarded", ["dpupr"]), ("forwarded", ["dlh"]), ("triage", []),
    ]
    assert listed[0]["category"] == "PEKERJAAN UMUM DAN PENATAAN RUANG"
    for key in ("id", "channel", "status", "agencies", "category", "received_at", "text"):
        assert key in listed[0]

    # The server is told only after the store: every message is \Seen now.
    for uid in desk_env.dovecot.folder_uids(desk_env.user):
        assert "\\Seen" in desk_env.dovecot.flags(desk_env.user, uid)

    # Run again: nothing new, nothing doubled.
    desk_env.run_once()
    assert len(desk_env.sink.messages) == len(mails)
    assert desk_env.count("SELECT count(*) FROM messages") == 3
    assert desk_env.count("SELECT count(*) FROM complaints") == 3


def test_show_tells_the_story_with_rule_and_words(desk_env):
    desk_env.append(make_mail("Pungli", "Ada pungli di kantor kelurahan waktu urus KTP"))
    desk_env.run_once()
    desk_env.sink.wait_for(1)
    ticket = desk_env.cli_json("list")[0]["id"]
    story = desk_env.cli_json("show", ticket)
    types = [e["type"] for e in story["events"]]
    assert types[:3] == ["received", "routed", "sent"]
    routed = story["events"][1]
    assert routed["rule"] == "pungli" and routed["matched"] == ["pungli"]
    assert routed["hits"][0]["where"].endswith("10-routing.yaml:2")
    text = desk_env.cli("show", ticket).stdout
    assert "by rule pungli" in text and "inspektorat@banyumas.example" in text


def test_after_move_moves_messages_and_keep_leaves_them(desk_env):
    desk_env.write_config(**{"channels.email": {"after": "move:Diproses"}})
    desk_env.dovecot.create_folder(desk_env.user, "Diproses")
    desk_env.append(make_mail("Sampah", "sampah menumpuk di TPS"))
    desk_env.run_once()
    assert desk_env.dovecot.folder_uids(desk_env.user) == []
    assert len(desk_env.dovecot.folder_uids(desk_env.user, "Diproses")) == 1
    assert desk_env.count("SELECT count(*) FROM complaints") == 1


def test_after_keep_leaves_messages_unseen(desk_env):
    desk_env.write_config(**{"channels.email": {"after": "keep"}})
    uid = desk_env.append(make_mail("Sampah", "sampah menumpuk di TPS"))
    desk_env.run_once()
    assert "\\Seen" not in desk_env.dovecot.flags(desk_env.user, uid)
    desk_env.run_once()  # the cursor, not the flag, says what was read
    assert desk_env.count("SELECT count(*) FROM messages") == 1


def test_uidvalidity_change_rescans_without_duplicates(desk_env):
    dv, user = desk_env.dovecot, desk_env.user
    desk_env.write_config(**{"channels.email": {"folder": "Aduan"}})
    mails = [make_mail("Sampah", f"sampah menumpuk nomor {i}") for i in range(3)]
    for raw in mails:
        desk_env.append(raw, folder="Aduan")
    desk_env.run_once()
    assert desk_env.count("SELECT count(*) FROM messages") == 3
    before = dv.uidvalidity(user, "Aduan")
    # The folder is recreated (a server migration): new UIDVALIDITY, the same mails come
    # back under new UIDs, plus one new mail.
    dv.delete_folder(user, "Aduan")
    for raw in mails:
        desk_env.append(raw, folder="Aduan")
    desk_env.append(make_mail("Sampah", "sampah baru di TPS"), folder="Aduan")
    after = dv.uidvalidity(user, "Aduan")
    assert after != before
    desk_env.run_once()
    assert desk_env.count("SELECT count(*) FROM messages") == 4
    assert desk_env.count("SELECT count(*) FROM complaints") == 4
    cursor = json.loads(desk_env.db().execute("SELECT value FROM cursors").fetchone()[0])
    assert cursor["uidvalidity"] == after


def test_oversized_mail_becomes_a_complaint_from_its_headers(desk_env):
    desk_env.write_config(**{"channels.email": {"max_message_bytes": 200_000}})
    big = make_mail("Foto jalan rusak", "jalan rusak, foto terlampir",
                    attachments=[("besar.jpg", "image/jpeg", TINY_JPEG + b"\0" * 400_000)])
    desk_env.append(big)
    desk_env.run_once()
    (c,) = desk_env.cli_json("list")
    assert c["subject"] == "Foto jalan rusak"
    assert "terlalu besar" in c["text"]
    assert c["status"] == "forwarded"  # routed on its subject
    row = desk_env.db().execute("SELECT raw, meta FROM messages").fetchone()
    assert json.loads(row["meta"])["oversized"] is True
    assert len(row["raw"]) < 5000  # headers only were downloaded


def test_auto_replies_own_mail_and_bulk_are_stored_not_routed(desk_env):
    desk_env.append(make_mail("Out of office", "Saya sedang cuti",
                              headers={"Auto-Submitted": "auto-replied"}))
    desk_env.append(make_mail("Newsletter", "promo", headers={"Precedence": "bulk"}))
    desk_env.append(make_mail("Dari desk", "jalan rusak", sender=f"Desk <{DESK_EMAIL}>"))
    desk_env.append(make_mail("Loop", "jalan rusak", headers={"X-Loop": DESK_EMAIL}))
    desk_env.run_once()
    assert desk_env.count("SELECT count(*) FROM messages") == 4
    assert desk_env.count("SELECT count(*) FROM complaints") == 0
    kinds = sorted(r[0] for r in desk_env.db().execute("SELECT kind FROM messages"))
    assert kinds == ["auto_reply", "auto_reply", "auto_reply", "own"]
    assert desk_env.sink.messages == []


def test_bounce_marks_the_forward_failed_and_alerts_the_admin(desk_env):
    desk_env.append(make_mail("Sampah", "sampah menumpuk di TPS"))
    desk_env.run_once()
    (forward,) = desk_env.sink.wait_for(1)
    original_id = forward.message["Message-ID"]
    desk_env.sink.clear()
    dsn = (
        "From: Mail Delivery System <MAILER-DAEMON@banyumas.example>\r\n"
        f"To: {DESK_EMAIL}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <bounce-1@banyumas.example>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nMailbox unknown.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n"
        "Final-Recipient: rfc822; dlh@banyumas.example\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: {original_id}\r\nSubject: {forward.message['Subject']}\r\n"
        "--B--\r\n"
    ).encode()
    desk_env.append(dsn)
    desk_env.run_once()
    status = desk_env.cli_json("status")
    assert status["outbox"]["failed"] == 1
    (alert,) = desk_env.sink.wait_for(1)
    assert alert.rcpt_tos == [ADMIN_EMAIL] and "gagal" in alert.message["Subject"].lower()
    assert desk_env.count("SELECT count(*) FROM complaints") == 1
    assert desk_env.cli("status", check=False).returncode == 1  # needs an admin


def test_transient_smtp_failure_retries_permanent_fails_and_alerts(desk_env):
    desk_env.sink.fail_next(451, "4.3.0 try again later")
    desk_env.append(make_mail("Sampah", "sampah menumpuk di TPS"))
    desk_env.run_once()
    ticket = desk_env.cli_json("list")[0]["id"]
    (row,) = desk_env.cli_json("show", ticket)["outbox"]
    assert row["status"] == "pending" and "451" in row["last_error"]
    # Make it due now and let the relay refuse it permanently.
    with desk_env.db() as conn:
        conn.execute("UPDATE outbox SET next_attempt_at = '2000-01-01T00:00:00+00:00'")
    desk_env.sink.fail_recipient("dlh@banyumas.example", 550, "5.1.1 no such user")
    desk_env.run_once()
    (row,) = desk_env.cli_json("show", ticket)["outbox"]
    assert row["status"] == "failed" and "550" in row["last_error"]
    alerts = [m for m in desk_env.sink.messages if ADMIN_EMAIL in m.rcpt_tos]
    assert len(alerts) == 1 and ticket in alerts[0].message.get_body(("plain",)).get_content()
    # The admin fixes the address; requeue sends it again with the same Message-ID.
    desk_env.sink.reset()
    out = desk_env.cli("requeue", ticket).stdout
    assert "queued for sending again" in out
    desk_env.run_once()
    (sent,) = [m for m in desk_env.sink.messages if "dlh@banyumas.example" in m.rcpt_tos]
    assert sent.message["Message-ID"] == f"<{row['message_id']}>"


def test_imap_outage_is_recorded_and_other_jobs_keep_running(desk_env):
    desk_env.append(make_mail("Sampah", "sampah menumpuk di TPS"))
    desk_env.run_once()
    desk_env.sink.wait_for(1)
    desk_env.write_config(**{"channels.email": {"port": 1}})  # nothing listens there
    with desk_env.db() as conn:  # a queued alert must still go out while IMAP is down
        conn.execute(
            "INSERT INTO outbox (kind, transport, recipients, payload, dedupe_key, message_id,"
            " next_attempt_at, created_at) VALUES ('alert', 'smtp', '[]', ?, 'alert:t', 't@x',"
            " '2000-01-01T00:00:00+00:00', '2000-01-01T00:00:00+00:00')",
            (json.dumps({"subject": "uji", "body": "uji"}),),
        )
    desk_env.run_once()
    status = desk_env.cli_json("status")
    email = status["channels"]["email"]
    assert email["state"] == "error" and "connection refused" in email["last_error"]
    assert email["last_success"] is not None
    assert status["needs_admin"] is True
    assert any(ADMIN_EMAIL in m.rcpt_tos for m in desk_env.sink.messages)
    # Back up: the channel recovers.
    desk_env.write_config(**{"channels.email": {"port": desk_env.dovecot.port}})
    with desk_env.db() as conn:
        conn.execute("UPDATE channel_health SET next_try_at = NULL")
    desk_env.run_once()
    assert desk_env.cli_json("status")["channels"]["email"]["state"] == "ok"


def test_wrong_password_is_a_clear_channel_error(desk_env):
    desk_env.write_config(**{"channels.email": {"password": "wrong"}})
    desk_env.run_once()
    email = desk_env.cli_json("status")["channels"]["email"]
    assert email["state"] == "error"
    assert "login failed" in email["last_error"] and "wrong" not in email["last_error"]


def test_header_injection_from_citizen_text_is_neutralised(desk_env):
    evil = "=?utf-8?q?Sampah=0D=0ABcc=3A_victim=40evil=2Eexample?="
    raw = make_mail("placeholder", "sampah di TPS").replace(
        b"Subject: placeholder", f"Subject: {evil}".encode())
    desk_env.append(raw)
    desk_env.run_once()
    (m,) = desk_env.sink.wait_for(1)
    assert m.rcpt_tos == ["dlh@banyumas.example"]
    assert m.message["Bcc"] is None
    assert "\n" not in m.message["Subject"] and "\r" not in m.message["Subject"]


@pytest.mark.parametrize("offer_8bitmime", [True, False])
def test_forwards_are_8bit_where_the_server_offers_8bitmime(desk_env, offer_8bitmime):
    """The same forward: its body as 8-bit text (fewer lines for the server) with
    BODY=8BITMIME when the server offers it, else quoted-printable, 7-bit clean."""
    desk_env.sink.offer_8bitmime = offer_8bitmime
    desk_env.append(make_mail("Sampah menumpuk", "Sampah di TPS Pasar Wage menumpuk — bau."))
    desk_env.run_once()
    [mail] = desk_env.sink.wait_for(1)
    msg = mail.message
    assert "Sampah di TPS Pasar Wage menumpuk — bau." in msg.get_body(("plain",)).get_content()
    if offer_8bitmime:
        assert msg["Content-Transfer-Encoding"] == "8bit"
        assert "BODY=8BITMIME" in mail.mail_options
        assert "Sampah di TPS Pasar Wage menumpuk — bau.".encode() in mail.data
    else:
        assert msg["Content-Transfer-Encoding"] == "quoted-printable"
        assert not any(o.startswith("BODY=") for o in mail.mail_options)
        assert mail.data.isascii()
