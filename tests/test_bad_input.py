"""Hostile and broken mail through the real Dovecot: clear errors, nothing lost, rest goes on."""

from __future__ import annotations

import json

from deskenv import make_mail

BROKEN_MIME = (
    b"From: Warga <warga@example.com>\r\nTo: aduan@lapak.test\r\nSubject: Sampah\r\n"
    b"Message-ID: <broken-mime@example.com>\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="tidak-pernah-ditutup"\r\n\r\n'
    b"--tidak-pernah-ditutup\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n"
    b"U2FtcGFoIG1lbnVtcHVrIGRpIFRQUyBQYXNhciBXYWdl!!!not base64 at all\r\n"
    b"--tidak-pernah-ditutup\r\nContent-Type: image/jpeg\r\n"
    b"Content-Disposition: attachment; filename*=utf-8''..%2F..%2Fetc%2Fpasswd\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n/9j/4AAQ\r\n"
)

UNKNOWN_CHARSET = (
    b"From: Warga <warga2@example.com>\r\nTo: aduan@lapak.test\r\n"
    b"Subject: =?x-unknown?q?Jalan_rusak?=\r\nMessage-ID: <charset@example.com>\r\n"
    b'MIME-Version: 1.0\r\nContent-Type: text/plain; charset="x-unknown"\r\n'
    b"Content-Transfer-Encoding: 8bit\r\n\r\n"
    b"Jalan rusak di depan pasar \x93sudah lama\x94 \xff\xfe tidak diperbaiki.\r\n"
)

NO_FROM = (
    b"To: aduan@lapak.test\r\nSubject: Sampah di TPS\r\n\r\n"
    b"Sampah menumpuk di TPS Karangklesem, baunya sampai ke rumah warga.\r\n"
)

# No header, no readable text: this cannot become a complaint.
GARBAGE = bytes(range(0x80, 0x100)) * 40


def html_bomb() -> bytes:
    html = "<div>" * 100_000 + "sampah menumpuk di TPS" + "</div>" * 100_000
    html += "<p>" + "<b>x</b>" * 300_000 + "</p>"
    return make_mail("Sampah", "", html=html, sender="bom@example.com")


def test_broken_mail_is_stored_and_handled_the_rest_goes_on(desk_env):
    good_before = make_mail("Sampah", "sampah menumpuk di TPS Pasar Wage")
    thirty_mb = make_mail(
        "Jalan rusak, foto besar", "jalan rusak, foto terlampir",
        attachments=[("besar.jpg", "image/jpeg", b"\xff\xd8" + b"\x00" * (30 * 1024 * 1024))],
        sender="foto@example.com",
    )
    good_after = make_mail("Pungli", "ada pungli di kantor desa", sender="c@example.com")
    for raw in (good_before, BROKEN_MIME, UNKNOWN_CHARSET, NO_FROM, html_bomb(), thirty_mb,
                GARBAGE, good_after):
        desk_env.append(raw)
    desk_env.run_once()

    # Nothing lost: every mail is stored verbatim (the 30 MB one as its headers, with a note).
    assert desk_env.count("SELECT count(*) FROM messages") == 8
    listed = desk_env.cli_json("list")
    complaints = [c for c in listed if not c["id"].startswith("msg-")]
    quarantined = [c for c in listed if c["id"].startswith("msg-")]
    assert len(complaints) == 7
    assert [c["status"] for c in quarantined] == ["quarantined"]
    assert "MailParseError" in quarantined[0]["text"]

    by_subject = {c["subject"]: c for c in complaints}
    broken = by_subject["Sampah"]  # first one with that subject: good_before
    assert broken["status"] == "forwarded"
    assert any("Jalan rusak di depan pasar" in c["text"] for c in complaints)
    no_from = next(c for c in complaints if "Karangklesem" in c["text"])
    assert no_from["status"] == "forwarded"
    big = by_subject["Jalan rusak, foto besar"]
    assert "terlalu besar" in big["text"] and big["status"] == "forwarded"
    bomb = next(c for c in complaints if "sampah menumpuk di TPS" in c["text"]
                and c["subject"] == "Sampah" and len(c["text"]) > 30)
    assert len(bomb["text"]) <= 60_000
    assert "<div>" not in bomb["text"]

    # The attachment name cannot climb out of the attachments folder.
    with desk_env.db() as db:
        names = [r[0] for r in db.execute("SELECT filename FROM attachments")]
    assert all("/" not in n and ".." not in n.split("/") for n in names)

    # The good mail after the broken ones was forwarded: one bad mail never blocks the rest.
    assert any("inspektorat@banyumas.example" in m.rcpt_tos for m in desk_env.sink.messages)

    # status says an admin is needed, and names the quarantine.
    status = desk_env.cli_json("status")
    assert status["quarantined"] == 1 and status["needs_admin"]
    assert any("quarantined" in r for r in status["reasons"])

    # requeue puts it back; it fails again the same clear way, and the story shows both tries.
    ref = quarantined[0]["id"]
    out = desk_env.cli("requeue", ref).stdout
    assert "queued for processing again" in out
    desk_env.run_once()
    story = desk_env.cli_json("show", ref)
    assert story["state"] == "quarantined"
    assert [e["type"] for e in story["events"]] == ["quarantined", "requeued", "quarantined"]
    assert story["raw_bytes"] == len(GARBAGE)

    # Run again: nothing doubled.
    sent = len(desk_env.sink.messages)
    desk_env.run_once()
    assert len(desk_env.sink.messages) == sent
    assert desk_env.count("SELECT count(*) FROM complaints") == 7


def test_oversized_limit_is_checked_before_download(desk_env):
    desk_env.write_config(**{"channels.email": {"max_message_bytes": 1_000_000}})
    desk_env.append(make_mail("Foto", "foto jalan rusak",
                              attachments=[("a.jpg", "image/jpeg", b"\xff" * 3_000_000)]))
    desk_env.run_once()
    with desk_env.db() as db:
        raw, meta = db.execute("SELECT raw, meta FROM messages").fetchone()
    assert json.loads(meta)["oversized"] is True and json.loads(meta)["size"] > 3_000_000
    assert len(raw) < 10_000
