"""Smoke tests for the real loopback test servers (Dovecot IMAP, SMTP sink)."""

from __future__ import annotations

import imaplib
import smtplib
import ssl
from email.message import EmailMessage

import pytest
from dovecot import Dovecot
from imap_tools import MailBox, MailBoxStartTls, MailBoxUnencrypted

from lapakd.embedded.smtp_sink import SmtpSink


def _mail(subject: str = "Jalan rusak di Sokaraja", to: str = "dinas@lapak.test") -> bytes:
    msg = EmailMessage()
    msg["From"] = "warga@example.test"
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content("Lubang besar di depan pasar.\n")
    return msg.as_bytes()


# ---------------------------------------------------------------------------
# Dovecot
# ---------------------------------------------------------------------------


def test_dovecot_append_then_read_with_imap_tools(dovecot: Dovecot) -> None:
    user = dovecot.new_user()
    uid = dovecot.append(user, _mail("Lampu mati"), flags=("\\Flagged",))
    assert dovecot.folder_uids(user) == [uid]

    with MailBoxUnencrypted(dovecot.host, dovecot.port).login(user, dovecot.password) as mb:
        [msg] = list(mb.fetch(mark_seen=False))
        assert msg.subject == "Lampu mati"
        assert msg.from_ == "warga@example.test"
    assert dovecot.flags(user, uid) == {"\\Flagged"}  # still unseen


def test_dovecot_fresh_users_have_empty_mailboxes(dovecot: Dovecot) -> None:
    first, second = dovecot.new_user(), dovecot.new_user()
    assert first != second
    dovecot.append(first, _mail())
    assert dovecot.folder_uids(second) == []


def test_dovecot_folders_and_uidvalidity_change(dovecot: Dovecot) -> None:
    user = dovecot.new_user()
    uid = dovecot.append(user, _mail("Arsip"), folder="Arsip/Selesai", flags=("\\Seen",))
    assert dovecot.flags(user, uid, folder="Arsip/Selesai") == {"\\Seen"}
    dovecot.add_flags(user, uid, ["$Forwarded"], folder="Arsip/Selesai")
    assert "$Forwarded" in dovecot.flags(user, uid, folder="Arsip/Selesai")
    assert b"Subject: Arsip" in dovecot.fetch(user, uid, folder="Arsip/Selesai")

    before = dovecot.uidvalidity(user, "Arsip/Selesai")
    dovecot.delete_folder(user, "Arsip/Selesai")
    dovecot.create_folder(user, "Arsip/Selesai")
    assert dovecot.uidvalidity(user, "Arsip/Selesai") != before
    assert dovecot.folder_uids(user, "Arsip/Selesai") == []


def test_dovecot_tls_ports(dovecot: Dovecot) -> None:
    user = dovecot.new_user()
    dovecot.append(user, _mail("Lewat TLS"))
    ctx = ssl.create_default_context(cafile=dovecot.cafile)
    with MailBox(dovecot.host, dovecot.ssl_port, ssl_context=ctx).login(
        user, dovecot.password
    ) as mb:
        assert [m.subject for m in mb.fetch(mark_seen=False)] == ["Lewat TLS"]
    with MailBoxStartTls(dovecot.host, dovecot.port, ssl_context=ctx).login(
        user, dovecot.password
    ) as mb:
        assert [m.subject for m in mb.fetch(mark_seen=False)] == ["Lewat TLS"]


def test_dovecot_rejects_wrong_password(dovecot: Dovecot) -> None:
    conn = imaplib.IMAP4(dovecot.host, dovecot.port, timeout=10)
    try:
        with pytest.raises(imaplib.IMAP4.error):
            conn.login(dovecot.new_user(), "wrong")
    finally:
        conn.shutdown()


# ---------------------------------------------------------------------------
# SMTP sink
# ---------------------------------------------------------------------------


def test_sink_plain_delivery(sink: SmtpSink) -> None:
    with smtplib.SMTP(sink.host, sink.port, timeout=10) as client:
        client.sendmail("lapakd@lapak.test", ["a@dinas.test", "b@dinas.test"], _mail("Banjir"))
    [mail] = sink.wait_for(1)
    assert mail.mail_from == "lapakd@lapak.test"
    assert mail.rcpt_tos == ["a@dinas.test", "b@dinas.test"]
    assert mail.message["Subject"] == "Banjir"
    assert not mail.tls and mail.auth_user is None


def test_sink_is_cleared_between_tests(sink: SmtpSink) -> None:
    assert sink.messages == []


def test_sink_auth_required(sink: SmtpSink) -> None:
    sink.require_auth("lapakd", "rahasia")
    with smtplib.SMTP(sink.host, sink.port, timeout=10) as client:
        with pytest.raises(smtplib.SMTPSenderRefused) as exc:
            client.sendmail("lapakd@lapak.test", ["a@dinas.test"], _mail())
        assert exc.value.smtp_code == 530
    with (
        smtplib.SMTP(sink.host, sink.port, timeout=10) as client,
        pytest.raises(smtplib.SMTPAuthenticationError),
    ):
        client.login("lapakd", "salah")
    with smtplib.SMTP(sink.host, sink.port, timeout=10) as client:
        client.login("lapakd", "rahasia")
        client.sendmail("lapakd@lapak.test", ["a@dinas.test"], _mail())
    [mail] = sink.wait_for(1)
    assert mail.auth_user == "lapakd"


def test_sink_fail_next_451_then_550(sink: SmtpSink) -> None:
    sink.fail_next(451, "4.3.0 Coba lagi nanti")
    sink.fail_next(550, "5.7.1 Ditolak")
    for code in (451, 550):
        with (
            smtplib.SMTP(sink.host, sink.port, timeout=10) as client,
            pytest.raises(smtplib.SMTPResponseException) as exc,
        ):
            client.sendmail("lapakd@lapak.test", ["a@dinas.test"], _mail())
        assert exc.value.smtp_code == code
    assert sink.messages == []
    with smtplib.SMTP(sink.host, sink.port, timeout=10) as client:
        client.sendmail("lapakd@lapak.test", ["a@dinas.test"], _mail())
    assert len(sink.wait_for(1)) == 1


def test_sink_fail_rcpt(sink: SmtpSink) -> None:
    sink.fail_recipient("hilang@dinas.test", 550, "5.1.1 No such user")
    sink.fail_next(452, "4.5.3 Too many recipients", stage="RCPT")
    with smtplib.SMTP(sink.host, sink.port, timeout=10) as client:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as exc:
            client.sendmail("lapakd@lapak.test", ["a@dinas.test"], _mail())
        assert exc.value.recipients["a@dinas.test"][0] == 452
        refused = client.sendmail(
            "lapakd@lapak.test", ["hilang@dinas.test", "ada@dinas.test"], _mail()
        )
        assert refused == {"hilang@dinas.test": (550, b"5.1.1 No such user")}
    [mail] = sink.wait_for(1)
    assert mail.rcpt_tos == ["ada@dinas.test"]


def test_sink_wait_for_times_out(sink: SmtpSink) -> None:
    with pytest.raises(TimeoutError):
        sink.wait_for(1, timeout=0.2)


def test_sink_starttls_with_auth(make_sink, tls_cert) -> None:
    server = make_sink(tls="starttls", require_tls=True)
    server.require_auth("lapakd", "rahasia")
    ctx = ssl.create_default_context(cafile=tls_cert[0])
    with smtplib.SMTP("localhost", server.port, timeout=10) as client:
        client.starttls(context=ctx)
        client.login("lapakd", "rahasia")
        client.sendmail("lapakd@lapak.test", ["a@dinas.test"], _mail("STARTTLS"))
    [mail] = server.wait_for(1)
    assert mail.tls and mail.auth_user == "lapakd"


def test_sink_implicit_ssl_with_auth(make_sink, tls_cert) -> None:
    server = make_sink(tls="ssl")
    server.require_auth("lapakd", "rahasia")
    ctx = ssl.create_default_context(cafile=tls_cert[0])
    with smtplib.SMTP_SSL(server.host, server.port, context=ctx, timeout=10) as client:
        client.login("lapakd", "rahasia")
        client.sendmail("lapakd@lapak.test", ["a@dinas.test"], _mail("SSL"))
    [mail] = server.wait_for(1)
    assert mail.tls and mail.message["Subject"] == "SSL"


def test_sink_writes_eml_files(make_sink, tmp_path) -> None:
    server = make_sink(maildir=tmp_path / "outbox")
    with smtplib.SMTP(server.host, server.port, timeout=10) as client:
        client.sendmail("lapakd@lapak.test", ["a@dinas.test"], _mail("Disimpan"))
    server.wait_for(1)
    [eml] = (tmp_path / "outbox").glob("*.eml")
    text = eml.read_bytes()
    assert b"Delivered-To: a@dinas.test" in text and b"Subject: Disimpan" in text
