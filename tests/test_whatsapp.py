"""WhatsApp Cloud API end to end: signed webhook → store → `lapakd run --once` → forward + ack."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from deskenv import TINY_JPEG
from metaenv import complaints, rows

from lapakd.embedded.replica import graph as R
from lapakd.embedded.replica.graph import send_webhook

PHONE = "6281234567001"


def deliver(hook, body) -> None:
    status, answer = send_webhook(hook.url, body)
    assert status == 200, answer


def test_text_complaint_is_forwarded_and_acknowledged_once(desk_env, replica, hook):
    deliver(hook, replica.whatsapp_text_body(
        PHONE, "Budi Santoso", "Jalan berlubang di depan SD Negeri 2 Karangsalam, mohon "
        "diperbaiki."))
    desk_env.run_once()
    [c] = complaints(desk_env)
    assert c["channel"] == "whatsapp" and c["status"] == "forwarded"
    assert c["sender"] == PHONE and c["sender_name"] == "Budi Santoso"
    assert c["conversation"] == f"wa:{PHONE}"
    [mail] = desk_env.sink.wait_for(1)
    assert "dpupr@banyumas.example" in mail.rcpt_tos
    assert "Karangsalam" in mail.message.get_body(("plain",)).get_content()
    [ack] = replica.posted
    assert ack["path"] == f"{R.PHONE_NUMBER_ID}/messages"
    assert ack["to"] == PHONE and ack["type"] == "text"
    assert ack["messaging_product"] == "whatsapp"
    assert c["ticket"] in ack["text"]["body"] and "Terima kasih" in ack["text"]["body"]
    desk_env.run_once()
    assert len(replica.posted) == 1  # at most one ack per complaint
    sent = rows(desk_env, "SELECT result FROM outbox WHERE kind = 'ack'")
    assert json.loads(sent[0]["result"])["wamid"].startswith("wamid.")


def test_chat_messages_group_into_one_complaint(desk_env, replica, hook):
    deliver(hook, replica.whatsapp_text_body(PHONE, "Budi", "Selamat pagi pak"))
    deliver(hook, replica.whatsapp_text_body(PHONE, "Budi", "Mau lapor jalan rusak"))
    deliver(hook, replica.whatsapp_text_body(PHONE, "Budi", "Di Desa Karangsalam, Baturraden"))
    deliver(hook, replica.whatsapp_text_body("6289999000111", "Sri", "Sampah di TPS menumpuk"))
    desk_env.run_once()
    found = complaints(desk_env)
    assert len(found) == 2
    budi = next(c for c in found if c["sender"] == PHONE)
    assert budi["text"].splitlines() == [
        "Selamat pagi pak", "Mau lapor jalan rusak", "Di Desa Karangsalam, Baturraden"]
    assert budi["status"] == "forwarded"
    assert sorted(p["to"] for p in replica.posted) == sorted([PHONE, "6289999000111"])


def test_photo_is_downloaded_kept_by_hash_and_attached(desk_env, replica, hook):
    deliver(hook, replica.whatsapp_media_body(PHONE, "Budi", TINY_JPEG,
                                              caption="Jalan berlubang di Karangsalam"))
    deliver(hook, replica.whatsapp_media_body(
        PHONE, "Budi", b"%PDF-1.4 surat keterangan", mime="application/pdf",
        kind="document", filename="surat.pdf"))
    desk_env.run_once()
    [c] = complaints(desk_env)
    atts = rows(desk_env, "SELECT filename, content_type, sha256 FROM attachments ORDER BY id")
    assert atts[0]["content_type"] == "image/jpeg"
    assert ("surat.pdf", "application/pdf") in [(a["filename"], a["content_type"]) for a in atts]
    [mail] = desk_env.sink.wait_for(1)
    photos = [p for p in mail.message.iter_attachments()
              if p.get_content_type() == "image/jpeg"]
    assert photos and photos[0].get_content() == TINY_JPEG
    assert c["text"].startswith("Jalan berlubang")
    media_calls = [r for r in replica.requests if r.startswith("GET whatsapp_business")]
    assert len(media_calls) == 2  # each downloaded once


def test_location_reply_and_forwarded_messages(desk_env, replica, hook):
    deliver(hook, replica.whatsapp_location_body(
        PHONE, "Budi", -7.3505, 109.2345, "Jalan Baturraden", "Karangsalam, Banyumas"))
    deliver(hook, replica.whatsapp_text_body(
        PHONE, "Budi", "Jalan rusak parah di titik ini", context={"forwarded": True}))
    deliver(hook, replica.whatsapp_text_body(
        PHONE, "Budi", "Yang ini juga lubang", context={"from": R.DISPLAY_PHONE,
                                                        "id": "wamid.abc=="}))
    desk_env.run_once()
    [c] = complaints(desk_env)
    assert "Lokasi: -7.3505, 109.2345" in c["text"] and "Karangsalam" in c["text"]
    assert (c["lat"], c["lon"]) == (-7.3505, 109.2345)  # the location as fields too
    assert "[Pesan diteruskan] Jalan rusak parah di titik ini" in c["text"]
    assert "[Balasan] Yang ini juga lubang" in c["text"]


def test_status_updates_are_recorded_not_complaints(desk_env, replica, hook):
    for status in ("sent", "delivered", "read", "read"):
        deliver(hook, replica.whatsapp_status_body("wamid.ack1", PHONE, status))
    desk_env.run_once()
    assert complaints(desk_env) == []
    kinds = rows(desk_env, "SELECT external_id, kind, state FROM messages ORDER BY id")
    assert [k["kind"] for k in kinds] == ["status"] * 3
    assert {k["state"] for k in kinds} == {"processed"}


def test_ack_outside_the_24_hour_window_fails_with_a_clear_reason(desk_env, replica, hook):
    old = datetime.now(UTC) - timedelta(hours=30)
    deliver(hook, replica.whatsapp_text_body(PHONE, "Budi", "Jalan berlubang di Karangsalam",
                                             when=old))
    desk_env.run_once()
    [c] = complaints(desk_env)
    assert c["status"] == "forwarded"
    [ack] = rows(desk_env, "SELECT status, last_error FROM outbox WHERE kind = 'ack'")
    assert ack["status"] == "failed" and "24-hour" in ack["last_error"]
    assert replica.posted == []


def test_media_gone_quarantines_with_reason_and_keeps_the_message(desk_env, replica, hook):
    body = replica.whatsapp_media_body(PHONE, "Budi", TINY_JPEG, caption="Jalan rusak")
    media_id = body["entry"][0]["changes"][0]["value"]["messages"][0]["image"]["id"]
    del replica.media[media_id]
    deliver(hook, body)
    desk_env.run_once()
    [msg] = rows(desk_env, "SELECT state, error FROM messages")
    assert msg["state"] == "quarantined" and "error 100" in msg["error"]
    assert "access_token" not in msg["error"] and R.TOKEN not in msg["error"]


def test_media_server_down_is_retried_later_not_quarantined(desk_env, replica, hook):
    deliver(hook, replica.whatsapp_media_body(PHONE, "Budi", TINY_JPEG,
                                              caption="Jalan berlubang di Karangsalam"))
    replica.fail(20)  # Graph answers 5xx for a while
    desk_env.run_once()
    [msg] = rows(desk_env, "SELECT state, attempts, error, retry_at FROM messages")
    assert msg["state"] == "pending" and msg["attempts"] == 1
    assert "TransientError" in msg["error"] and msg["retry_at"]
    assert complaints(desk_env) == []
    # Graph is back; once the retry is due the photo is downloaded and the complaint made.
    replica.fail(0)
    with desk_env.db() as conn:
        conn.execute("UPDATE messages SET retry_at = '2000-01-01T00:00:00+00:00'")
    desk_env.run_once()
    [msg] = rows(desk_env, "SELECT state FROM messages")
    assert msg["state"] == "processed"
    [c] = complaints(desk_env)
    assert c["status"] == "forwarded"
    assert rows(desk_env, "SELECT content_type FROM attachments") == [
        {"content_type": "image/jpeg"}]


def test_media_id_that_is_not_an_id_makes_no_request_and_the_complaint_goes_through(
        desk_env, replica, hook):
    body = replica.whatsapp_media_body(
        PHONE, "Budi", TINY_JPEG, caption="Jalan berlubang di depan Pasar Wage, motor sering jatuh")
    body["entry"][0]["changes"][0]["value"]["messages"][0]["image"]["id"] = (
        "../../../../etc/passwd?x=")
    deliver(hook, body)
    evil = replica.whatsapp_media_body("6281234567009", "Sri", b"%PDF-1.4", mime="application/pdf",
                                       kind="document", filename="surat.pdf",
                                       caption="Jalan berlubang di Sokaraja, surat terlampir")
    evil["entry"][0]["changes"][0]["value"]["messages"][0]["document"]["id"] = "123%2F..%2Fme"
    deliver(hook, evil)
    desk_env.run_once()
    # The Graph replica saw no request at all: no media lookup, no download.
    assert not [r for r in replica.requests if "passwd" in r or "%" in r]
    # (the daily token check's debug_token is no media request)
    assert not [r for r in replica.requests
                if r.startswith("GET ") and not r.endswith("/debug_token")], replica.requests
    found = complaints(desk_env)
    assert [c["status"] for c in found] == ["forwarded", "forwarded"]
    assert found[0]["text"].startswith("Jalan berlubang di depan Pasar Wage")
    notes = json.loads(found[0]["notes"]) + json.loads(found[1]["notes"])
    assert any("image refused: media id '../../../../etc/passwd?x='" in n for n in notes), notes
    assert any("document refused: media id '123%2F..%2Fme'" in n for n in notes), notes
    assert rows(desk_env, "SELECT * FROM attachments") == []
    mails = desk_env.sink.wait_for(2)
    assert all("dpupr@banyumas.example" in m.rcpt_tos for m in mails)


def test_document_names_from_outside_are_made_safe(desk_env, replica, hook):
    names = ["../../../home/lapakd/.bashrc", "..\\..\\Windows\\laporan\x00\x1b[31m\u202egpj.pdf",
             "." * 5, "x" * 400 + ".pdf"]
    for n, name in enumerate(names):
        deliver(hook, replica.whatsapp_media_body(
            f"62812345670{n:02d}", "Budi", b"%PDF-1.4 bukti " + bytes([n]),
            mime="application/pdf", kind="document", filename=name,
            caption=f"Jalan berlubang di Karangsalam RT {n + 1}, buktinya terlampir"))
    desk_env.run_once()
    stored = [r["filename"] for r in rows(desk_env, "SELECT filename FROM attachments ORDER BY id")]
    assert stored[0] == "bashrc"  # no path, no leading dot
    assert stored[1] == "laporan[31mgpj.pdf"  # controls and bidi overrides gone
    assert stored[2].startswith("whatsapp-") and stored[2].endswith(".pdf")  # nothing left
    assert len(stored[3]) == 150 and stored[3].endswith(".pdf")  # bounded, extension kept
    mails = desk_env.sink.wait_for(4)
    sent = [p.get_filename() for m in mails for p in m.message.iter_attachments()]
    assert sorted(sent) == sorted(stored)
