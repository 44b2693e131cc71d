"""Tests for lapakd.mailparse: real sample mails under tests/data/mail plus hostile input."""

import base64
import hashlib
import random
from datetime import UTC, datetime, timedelta, timezone
from email.parser import BytesParser
from email.policy import compat32
from pathlib import Path

import pytest

from lapakd.mail.parse import (
    CUT_MARKER,
    MailParseError,
    ParsedEmail,
    external_id_for,
    headers_only,
    html_to_text,
    parse_address,
    parse_email,
)

MAIL_DIR = Path(__file__).parent / "data" / "mail"
# The photo used by photo.eml and rfc2047_indonesian.eml.
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 4 + b"\xff\xd9"
KELUHAN = "Jalan di depan SD Negeri 2 Karangsalam berlubang, mohon segera diperbaiki."


def sample(name: str) -> bytes:
    return (MAIL_DIR / name).read_bytes()


def crlf(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def mime(*parts: bytes, boundary: bytes = b"batas", ctype: bytes = b"multipart/mixed") -> bytes:
    """A multipart body (without top-level headers other than Content-Type)."""
    body = b"".join(b"--" + boundary + b"\r\n" + part + b"\r\n" for part in parts)
    return (
        b"Content-Type: " + ctype + b'; boundary="' + boundary + b'"\r\n\r\n'
        + body + b"--" + boundary + b"--\r\n"
    )  # fmt: skip


def safe_parse(raw: bytes) -> ParsedEmail | None:
    """Parse, allowing only MailParseError (any other exception fails the test)."""
    try:
        return parse_email(raw)
    except MailParseError:
        return None


# --------------------------------------------------------------------------- ordinary mail


def test_plain_text_mail() -> None:
    mail = parse_email(sample("plain.eml"))
    assert mail.message_id == "20260105081500.1234@mail.example.id"
    assert mail.from_addr == "budi.santoso@example.id"
    assert mail.from_name == "Budi Santoso"
    assert mail.to == ["aduan@lapak.test"]
    assert mail.cc == ["rt03.karangsalam@example.id"]
    assert mail.subject == "Jalan berlubang di depan SD Negeri 2 Karangsalam"
    assert mail.date == datetime(2026, 1, 5, 8, 15, tzinfo=timezone(timedelta(hours=7)))
    assert mail.text.startswith("Selamat pagi Bapak/Ibu,\n\n" + KELUHAN + "\nLubangnya")
    assert mail.text.endswith("RT 03 / RW 01 Karangsalam, Kedungbanteng")
    assert all(line == line.rstrip() for line in mail.text.split("\n"))
    assert mail.attachments == []
    assert mail.headers["received"].startswith("from mail.example.id")
    assert mail.headers["message-id"] == "<20260105081500.1234@mail.example.id>"
    assert not mail.auto_submitted and not mail.is_bounce
    assert mail.bounced_message_ids == [] and mail.bounce_status is None
    assert mail.notes == []


def test_crlf_line_endings_are_normalized() -> None:
    mail = parse_email(crlf(sample("plain.eml")))
    assert "\r" not in mail.text
    assert KELUHAN in mail.text
    assert mail.text == parse_email(sample("plain.eml")).text


def test_multipart_alternative_prefers_plain() -> None:
    mail = parse_email(sample("alternative.eml"))
    assert mail.text == (
        "Lampu penerangan jalan umum di Jl. Raya Baturraden km 5 sudah mati sejak seminggu "
        "yang lalu. Mohon ditindaklanjuti.\n\nSalam,\nSiti"
    )
    assert "HTML-VERSION" not in mail.text
    assert mail.message_id == "CAF=alt.5678@mail.gmail.test"
    assert mail.attachments == []


def test_alternative_with_blank_plain_uses_html() -> None:
    raw = b"From: warga@example.id\r\n" + mime(
        b"Content-Type: text/plain\r\n\r\n   \r\n",
        b"Content-Type: text/html; charset=utf-8\r\n\r\n<p>" + KELUHAN.encode() + b"</p>",
        ctype=b"multipart/alternative",
    )
    assert parse_email(raw).text == KELUHAN


def test_html_only_mail_becomes_readable_text() -> None:
    mail = parse_email(sample("html_only.eml"))
    assert mail.text == (
        "Aduan sampah\n\n"
        "Sampah menumpuk di sekitar Pasar Wage Purwokerto sejak hari Senin & belum diangkut.\n"
        "Baunya sangat mengganggu warga.\n\n"
        "- Lokasi: pintu timur pasar\n"
        "- Foto: lihat di sini (https://foto.example.id/pasar-wage.jpg)\n\n"
        "Terima kasih – Dewi"  # windows-1252 0x96 is an en dash
    )
    for fragment in ("<", ">", "JANGAN TAMPIL", "alert", "color: red", "Aduan\n\nAduan"):
        assert fragment not in mail.text


def test_photo_attachment_is_kept() -> None:
    mail = parse_email(sample("photo.eml"))
    assert mail.text == (
        "Pohon besar tumbang menutup jalan desa Kalisalak, Kebasen.\n"
        "Kendaraan tidak bisa lewat. Foto terlampir."
    )
    assert len(mail.attachments) == 1
    photo = mail.attachments[0]
    assert photo.filename == "pohon-tumbang.jpg"
    assert photo.content_type == "image/jpeg"
    assert photo.data == JPEG
    assert photo.inline is False
    assert "multi-part message" not in mail.text  # the preamble is not body text


def test_rfc2047_subject_and_name_in_indonesian() -> None:
    mail = parse_email(sample("rfc2047_indonesian.eml"))
    # the em dash is split across two encoded words and must be joined before decoding
    assert mail.subject == "Jembatan ambrol di Desa Kalisalak — mohon segera diperbaiki"
    assert mail.from_name == "Siti Nurhaliza — RT 03"
    assert mail.from_addr == "siti.nurhaliza@example.id"
    assert mail.headers["to"] == "Lapak Aduan <aduan@lapak.test>"
    assert "kesulitan – mohon bantuan" in mail.text  # iso-8859-1 label read as windows-1252
    [photo] = mail.attachments
    assert photo.filename == "Foto Jembatan Ambrol — Kalisalak.jpg"  # RFC 2231 filename*
    assert photo.content_type == "image/jpeg"
    assert photo.data == JPEG


def test_broken_charsets_decode_with_replacement() -> None:
    mail = parse_email(sample("broken_charset.eml"))
    first, second = mail.text.split("\n\n")
    assert first == "Saluran air di Jalan Gatot Subroto — depan toko bangunan \ufffd mampet total."
    assert second == "Air meluap ke jalan setiap hujan \ufffd( \ufffd\ufffd mohon dibersihkan."
    assert "body: charset x-unknown decoded with replacement" in mail.notes
    assert "body: invalid UTF-8 bytes replaced" in mail.notes


@pytest.mark.parametrize(
    ("charset", "body", "expected"),
    [
        (b"x-unknown", b"Jalan rusak", "Jalan rusak"),
        (
            b"x-unknown",
            "Jalan rusak parah — Karangsalam".encode(),
            "Jalan rusak parah — Karangsalam",
        ),
        (b"unknown-8bit", b"Caf\xe9 di Jalan Bank rusak", "Café di Jalan Bank rusak"),
        (b"us-ascii", "Kali Banjaran — meluap".encode(), "Kali Banjaran — meluap"),
        (b"utf-8", b"Jalan \xff\xfe rusak", "Jalan \ufffd\ufffd rusak"),
        (b"windows-1252", b"Biaya \x80 50.000", "Biaya € 50.000"),
        (b'"utf8"', b"Sungai Serayu", "Sungai Serayu"),
        (b"base64", b"Jalan rusak", "Jalan rusak"),  # not a text charset: ignored
        (b"unicode_escape", b"Jalan \\u0041", "Jalan \\u0041"),
        (b"shift_jis", b"\x82\xa0\xff\xff", None),
    ],
)
def test_charset_fallbacks_never_raise(charset: bytes, body: bytes, expected: str | None) -> None:
    raw = b"From: w@example.id\r\nContent-Type: text/plain; charset=" + charset + b"\r\n\r\n" + body
    mail = parse_email(raw)
    if expected is not None:
        assert mail.text == expected
    assert isinstance(mail.text, str)


def test_raw_8bit_headers_are_decoded() -> None:
    raw = (
        b"From: J\xc3\xb6rg Wiryo <jorg@example.id>\r\n"
        b"Subject: Stra\xdfe dan jembatan rusak\r\n"  # latin-1 bytes, not UTF-8
        b'To: "Budi, S.T." <budi@example.id>, Ani <ANI@Example.ID>\r\n'
        b"Reply-To: Lapor <lapor@example.id>\r\n\r\nisi\r\n"
    )
    mail = parse_email(raw)
    assert mail.from_name == "Jörg Wiryo"
    assert mail.subject == "Straße dan jembatan rusak"
    assert mail.to == ["budi@example.id", "ani@example.id"]
    assert mail.reply_to == "lapor@example.id"


def test_missing_headers_are_tolerated() -> None:
    mail = parse_email(b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + KELUHAN.encode())
    assert mail.message_id is None
    assert mail.from_addr is None and mail.from_name is None
    assert mail.to == [] and mail.cc == [] and mail.reply_to is None
    assert mail.subject == ""
    assert mail.date is None
    assert mail.in_reply_to is None and mail.references == []
    assert mail.text == KELUHAN
    assert not mail.auto_submitted


def test_garbage_header_values_are_tolerated() -> None:
    raw = (
        b"From: <<<>>> (((\r\nTo: ,,,;;;\r\nDate: kemarin sore\r\n"
        b"Message-ID: bukan id\r\nIn-Reply-To: <>\r\nReferences: < >\r\nSubject:\r\n\r\nisi"
    )
    mail = parse_email(raw)
    assert (mail.from_addr, mail.from_name, mail.to, mail.date) == (None, None, [], None)
    assert (mail.message_id, mail.in_reply_to, mail.references) == (None, None, [])
    assert mail.subject == ""
    assert "Date header unparseable" in mail.notes
    assert "From header has no usable address" in mail.notes


def test_headerless_text_is_kept_with_a_note() -> None:
    mail = parse_email(KELUHAN.encode() + b"\n")
    assert mail.text == KELUHAN
    assert "no email headers found; content treated as plain text" in mail.notes


@pytest.mark.parametrize("raw", [b"", b"   \r\n\r\n", b"\n"])
def test_empty_input_raises_mail_parse_error(raw: bytes) -> None:
    with pytest.raises(MailParseError, match="empty"):
        parse_email(raw)


def test_non_bytes_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        parse_email("From: a@b.c\r\n\r\nx")  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", range(8))
def test_random_binary_garbage(seed: int) -> None:
    rng = random.Random(seed)
    raw = rng.randbytes(rng.choice([1, 17, 300, 4096, 200_000]))
    mail = safe_parse(raw)
    if mail is not None:
        assert mail.from_addr is None and mail.message_id is None
        assert len(mail.text) <= 50_000


def test_random_garbage_raises_clear_reason() -> None:
    with pytest.raises(MailParseError, match="no email headers and no readable text"):
        parse_email(random.Random(42).randbytes(10_000))


@pytest.mark.parametrize("name", sorted(p.name for p in MAIL_DIR.glob("*.eml")))
def test_mutated_samples_never_crash(name: str) -> None:
    # Truncations and byte flips of every sample: only MailParseError may escape.
    raw = sample(name)
    rng = random.Random(name)
    for _ in range(25):
        data = bytearray(raw[: rng.randrange(1, len(raw) + 1)])
        for _ in range(rng.randrange(0, 20)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        mail = safe_parse(bytes(data))
        assert mail is None or isinstance(mail.text, str)


# --------------------------------------------------------------------------- hostile HTML


def test_html_bomb_in_mail_is_bounded() -> None:
    bomb = f"<p>{KELUHAN}</p>" + "<div>" * 200_000 + "Banjir" + "<p>spam</p>" * 500_000
    assert len(bomb) > 5_000_000
    raw = b"From: w@example.id\r\nContent-Type: text/html\r\n\r\n" + bomb.encode()
    mail = parse_email(raw, max_text_chars=10_000)
    assert mail.text.startswith(KELUHAN)
    assert len(mail.text) <= 10_000
    assert mail.text.endswith(CUT_MARKER)
    assert "HTML body too large; only its beginning was converted" in mail.notes


def test_html_to_text_bomb_is_bounded() -> None:
    nested = "<div>" * 100_000 + "Banjir" + "</div>" * 100_000
    assert html_to_text(nested, max_chars=300_000) == "Banjir"
    # beyond the input bound (1M characters for the default max_chars) the rest is ignored
    assert html_to_text("<div>" * 100_000 + "Banjir" + "<div>" * 200_000) == (
        "Banjir\n" + CUT_MARKER
    )
    huge = html_to_text("<p>Jalan rusak &amp; berlubang</p>" * 200_000, max_chars=5_000)
    assert len(huge) <= 5_000 and huge.endswith(CUT_MARKER)


@pytest.mark.parametrize(
    "unit",
    ["<a ", "<!--", "<![", "<![if x", "</", "<?", "<a b='", '<a b="', "&#", "&", "<!",
     "<script>", "</script", "<", "<a/", "<!doctype", "<a href='x", "<td>", "<li>", "<pre>"],
)  # fmt: skip
def test_html_to_text_unterminated_constructs(unit: str) -> None:
    text = html_to_text(unit * 100_000, max_chars=20_000)
    assert len(text) <= 20_000


def test_html_to_text_formatting() -> None:
    html = """<html><head><title>Judul</title><style>p{color:red}</style>
    <meta charset="utf-8"></head><body>
    <h1>Laporan&nbsp;Warga</h1><p>Jalan di depan <b>SD&nbsp;Negeri 2</b>   Karangsalam
    berlubang,<br>mohon segera diperbaiki.</p><script>alert("x<p>")</script>
    <ul><li>Lokasi: Karangsalam</li><li><a href="https://lapor.go.id/">lapor.go.id</a></li>
    <li><a href="javascript:alert(1)">klik</a></li><li><a href='mailto:a@b.id'>tulis</a></li></ul>
    <table><tr><td>Nama</td><td>Budi</td></tr><tr><td>RT</td><td>03</td></tr></table>
    <pre>  kode   123</pre><!-- komentar --><div><div>Terima &amp; kasih &#8212; salam</div></div>
    <p>a &lt; b</p><template><p>TIDAK</p></template>\u200b</body></html>"""
    assert html_to_text(html) == (
        "Laporan Warga\n\n"
        "Jalan di depan SD Negeri 2 Karangsalam berlubang,\nmohon segera diperbaiki.\n\n"
        "- Lokasi: Karangsalam\n- lapor.go.id\n- klik\n- tulis (mailto:a@b.id)\n\n"
        "Nama Budi\nRT 03\n\n"
        "  kode   123\n\n"
        "Terima & kasih — salam\n\n"
        "a < b"
    )


def test_html_to_text_caps_output_with_marker() -> None:
    text = html_to_text("<p>" + "kata " * 1_000 + "</p>", max_chars=100)
    assert len(text) <= 100
    assert text.endswith("\n" + CUT_MARKER)


# --------------------------------------------------------------------------- bounces


def test_dsn_bounce_with_returned_message() -> None:
    mail = parse_email(sample("bounce_dsn.eml"))
    assert mail.is_bounce
    assert mail.auto_submitted
    assert mail.bounced_message_ids == ["outbox-12.LA-2026-000001@lapak.test"]
    assert mail.bounce_status == "5.1.1"
    assert mail.bounce_headers["x-lapakd-outbox"] == "12"
    assert mail.bounce_headers["x-lapakd-ticket"] == "LA-2026-000001"
    assert mail.bounce_headers["message-id"] == "<outbox-12.LA-2026-000001@lapak.test>"
    assert mail.text.startswith("This is the mail system at host mx.example.id.")
    assert "Reporting-MTA" not in mail.text  # the machine-readable parts are not body text
    assert mail.attachments == []  # the returned original is not an attachment


def test_dsn_bounce_with_rfc822_headers_only() -> None:
    mail = parse_email(sample("bounce_headers_only.eml"))
    assert mail.is_bounce
    assert mail.bounced_message_ids == ["outbox-31.LA-2026-000007@lapak.test"]
    assert mail.bounce_headers["x-lapakd-ticket"] == "LA-2026-000007"
    assert mail.bounce_status == "5.2.2"
    assert mail.text == (
        "Pesan Anda tidak dapat dikirim ke camat.kembaran@banyumas.test (kotak surat penuh)."
    )


def test_mailer_daemon_without_report_container() -> None:
    raw = b"From: MAILER-DAEMON@mx.example.id\r\nSubject: Returned mail\r\n" + mime(
        b"Content-Type: text/plain\r\n\r\nUser unknown: 550 5.1.1",
        b"Content-Type: text/rfc822-headers\r\n\r\n"
        b"Message-ID: <outbox-5.LA-2026-000002@lapak.test>\r\nX-Lapakd-Outbox: 5\r\n",
    )
    mail = parse_email(raw)
    assert mail.is_bounce and mail.auto_submitted
    assert mail.bounced_message_ids == ["outbox-5.LA-2026-000002@lapak.test"]
    assert mail.bounce_headers["x-lapakd-outbox"] == "5"
    assert mail.bounce_status == "5.1.1"  # from the text, as there is no delivery-status


def test_qmail_style_plain_text_bounce() -> None:
    raw = crlf(
        b"From: MAILER-DAEMON@mx.example.id\nTo: aduan@lapak.test\nSubject: failure notice\n\n"
        b"Hi. This is the qmail-send program at mx.example.id.\n<x@dinas.test>:\n"
        b"Remote host said: 550 5.1.1 mailbox unavailable\n\n"
        b"--- Below this line is a copy of the message.\n\n"
        b"Return-Path: <aduan@lapak.test>\nMessage-ID: <outbox-9.LA-2026-000003@lapak.test>\n"
        b"X-Lapakd-Ticket: LA-2026-000003\nSubject: Aduan\n\nisi\n"
    )
    mail = parse_email(raw)
    assert mail.is_bounce
    assert mail.bounced_message_ids == ["outbox-9.LA-2026-000003@lapak.test"]
    assert mail.bounce_headers["x-lapakd-ticket"] == "LA-2026-000003"
    assert mail.bounce_status == "5.1.1"


def test_read_receipt_is_auto_but_not_bounce() -> None:
    raw = b"From: camat@kecamatan.test\r\n" + mime(
        b"Content-Type: text/plain\r\n\r\nPesan Anda telah dibaca.",
        b"Content-Type: message/disposition-notification\r\n\r\n"
        b"Final-Recipient: rfc822; camat@kecamatan.test\r\n"
        b"Disposition: manual-action; displayed\r\n",
        b"Content-Type: message/rfc822\r\n\r\nMessage-ID: <outbox-1@lapak.test>\r\n\r\nisi\r\n",
        ctype=b"multipart/report; report-type=disposition-notification",
    )
    mail = parse_email(raw)
    assert mail.auto_submitted
    assert not mail.is_bounce
    assert mail.bounced_message_ids == [] and mail.bounce_headers == {}
    assert mail.bounce_status is None
    assert mail.attachments == []


def test_forwarded_bounce_from_a_citizen_is_not_a_bounce() -> None:
    raw = b"From: warga@example.id\r\nSubject: Fwd: gagal kirim\r\n" + mime(
        b"Content-Type: text/plain\r\n\r\nIni balasan gagal.",
        b"Content-Type: message/rfc822\r\n\r\n" + sample("bounce_dsn.eml"),
    )
    mail = parse_email(raw)
    assert not mail.is_bounce and not mail.auto_submitted
    assert [a.content_type for a in mail.attachments] == ["message/rfc822"]


# --------------------------------------------------------------------------- auto replies


def test_out_of_office_auto_reply() -> None:
    mail = parse_email(sample("ooo_autoreply.eml"))
    assert mail.auto_submitted
    assert not mail.is_bounce
    assert mail.in_reply_to == "outbox-12.LA-2026-000001@lapak.test"
    assert mail.references == ["outbox-12.LA-2026-000001@lapak.test"]


def test_precedence_bulk_newsletter() -> None:
    mail = parse_email(sample("newsletter_bulk.eml"))
    assert mail.auto_submitted
    assert mail.text == "Buletin Banyumas\n\nBerita kegiatan kabupaten bulan ini."


def test_auto_submitted_no_is_a_normal_mail() -> None:
    mail = parse_email(sample("auto_submitted_no.eml"))
    assert not mail.auto_submitted
    assert mail.x_loop == ["warga@example.id"]
    assert mail.in_reply_to == "ack-LA-2026-000001@lapak.test"
    assert mail.references == [
        "20260105081500.1234@mail.example.id",
        "ack-LA-2026-000001@lapak.test",
    ]


@pytest.mark.parametrize(
    ("header", "auto"),
    [
        (b"Auto-Submitted: auto-generated", True),
        (b"Auto-Submitted: auto-replied; owner-email=x@y.test", True),
        (b"Auto-Submitted: No", False),
        (b"Precedence: list", True),
        (b"Precedence: junk", True),
        (b"Precedence: auto_reply", True),
        (b"Precedence: first-class", False),
        (b"X-Autoreply: yes", True),
        (b"X-Autorespond: Ini balasan otomatis", True),
        (b"X-Auto-Response-Suppress: DR, OOF", True),
        (b"X-Auto-Response-Suppress: All", True),
        (b"X-Auto-Response-Suppress: DR, RN", False),
        (b"X-Autogenerated: Reply", True),
        (b"Return-Path: <>", True),
        (b"Return-Path: <warga@example.id>", False),
    ],
)
def test_auto_submitted_headers(header: bytes, auto: bool) -> None:
    raw = b"From: warga@example.id\r\nSubject: Jalan rusak\r\n" + header + b"\r\n\r\nisi\r\n"
    assert parse_email(raw).auto_submitted is auto


def test_out_of_office_subject_alone_is_only_a_note() -> None:
    raw = b"From: warga@example.id\r\nSubject: Balasan otomatis: sedang cuti\r\n\r\nisi"
    mail = parse_email(raw)
    assert not mail.auto_submitted
    assert any("automatic reply" in note for note in mail.notes)
    weak = b"X-Auto-Response-Suppress: DR, RN\r\n"
    assert parse_email(raw.replace(b"\r\n\r\n", b"\r\n" + weak + b"\r\n")).auto_submitted


# --------------------------------------------------------------------------- headers, ids


def test_subject_header_injection_is_neutralized() -> None:
    raw = (
        b"From: warga@example.id\r\n"
        b"Subject: =?UTF-8?Q?Jalan_rusak=0D=0ABcc:_evil@x.test?= =?UTF-8?B?DQpYLUV2aWw6IHk=?=\r\n"
        b"\r\nisi\r\n"
    )
    mail = parse_email(raw)
    assert mail.subject == "Jalan rusak Bcc: evil@x.test X-Evil: y"
    assert "\r" not in mail.subject and "\n" not in mail.subject
    assert all("\n" not in value and "\r" not in value for value in mail.headers.values())


def test_folded_subject_and_whitespace_collapse() -> None:
    raw = b"From: w@example.id\r\nSubject:   Banjir\r\n\t di   Sokaraja \x00\x07\r\n\r\nisi"
    assert parse_email(raw).subject == "Banjir di Sokaraja"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Budi Santoso <Budi@Example.ID>", ("Budi Santoso", "budi@example.id")),
        ('"Santoso, Budi" <budi@example.id>', ("Santoso, Budi", "budi@example.id")),
        ("Santoso, Budi <budi@example.id>", ("Santoso, Budi", "budi@example.id")),
        ("budi@example.id (Budi dari RT 03)", ("Budi dari RT 03", "budi@example.id")),
        ("<budi@example.id>", (None, "budi@example.id")),
        ("budi@example.id", (None, "budi@example.id")),
        ("=?UTF-8?Q?Wahyu_=C3=9Atomo?= <w@example.id>", ("Wahyu Útomo", "w@example.id")),
        ('"=?utf-8?b?U2l0aQ==?=" <siti@example.id>', ("Siti", "siti@example.id")),
        (
            '"Budi <palsu@evil.test>" <asli@example.id>',
            ("Budi <palsu@evil.test>", "asli@example.id"),
        ),
        ("Warga: a@example.id, b@example.id;", (None, "a@example.id")),
        ("<mailto:Ani@Example.ID>", (None, "ani@example.id")),
        ("MAILER-DAEMON (Mail Delivery System)", ("MAILER-DAEMON", None)),
        ("undisclosed-recipients:;", (None, None)),
        ("", (None, None)),
        ("<<<>>>", (None, None)),
        ("a@@b", (None, None)),
        ("(" * 10_000 + "a@b.id", (None, None)),
    ],
)
def test_parse_address(value: str, expected: tuple[str | None, str | None]) -> None:
    assert parse_address(value) == expected


def test_parse_address_tolerates_non_strings() -> None:
    assert parse_address(None) == (None, None)  # type: ignore[arg-type]


def test_date_variants() -> None:
    def date_of(value: bytes) -> datetime | None:
        return parse_email(b"From: w@example.id\r\nDate: " + value + b"\r\n\r\nx").date

    assert date_of(b"Mon, 05 Jan 2026 08:15:00 -0000") == datetime(2026, 1, 5, 8, 15, tzinfo=UTC)
    assert date_of(b"5 Jan 26 08:15 WIB") is not None  # unknown zone name: taken as UTC
    assert date_of(b"2026-01-05T08:15:00+07:00") == datetime(2026, 1, 5, 1, 15, tzinfo=UTC)
    assert date_of(b"Mon, 31 Feb 2026 08:15:00 +0700") is None
    assert date_of(b"kemarin") is None
    assert date_of(b"2026-01-05 08:00") == datetime(2026, 1, 5, 8, 0, tzinfo=UTC)  # naive: UTC


def test_references_are_bounded() -> None:
    refs = b" ".join(b"<r%d@example.id>" % i for i in range(1_000))
    mail = parse_email(b"From: w@example.id\r\nReferences: " + refs + b"\r\n\r\nx")
    assert len(mail.references) == 100
    assert mail.references[0] == "r0@example.id"  # the thread root is kept
    assert mail.references[-1] == "r999@example.id"


def test_external_id_for() -> None:
    raw = sample("plain.eml")
    assert external_id_for(raw, "abc@example.id") == "mid:abc@example.id"
    assert external_id_for(raw, " <abc@example.id> ") == "mid:abc@example.id"
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    for implausible in (None, "", "tanpa-at", "a b@c", "@x", "x@", "a@" + "b" * 300, "é@x"):
        assert external_id_for(raw, implausible) == digest
    mail = parse_email(raw)
    assert external_id_for(raw, mail.message_id) == "mid:20260105081500.1234@mail.example.id"


def test_headers_only() -> None:
    raw = sample("plain.eml")
    block = headers_only(raw)
    assert block.endswith(b"Content-Transfer-Encoding: 8bit\n")
    assert b"Selamat pagi" not in block
    assert headers_only(crlf(raw)) == crlf(block)
    assert headers_only(b"\r\nbody only") == b""
    assert headers_only(b"Subject: x") == b"Subject: x"
    parsed = BytesParser(policy=compat32).parsebytes(block)
    assert parsed["Message-ID"] == "<20260105081500.1234@mail.example.id>"


# --------------------------------------------------------------------------- attachments


def _attachment(name_params: bytes, data: bytes = JPEG, ctype: bytes = b"image/jpeg") -> bytes:
    return (
        b"Content-Type: " + ctype + b"\r\nContent-Disposition: attachment; " + name_params
        + b"\r\nContent-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(data)
    )  # fmt: skip


def test_attachment_filenames_are_sanitized() -> None:
    long_name = b"laporan-" + b"x" * 300 + b".pdf"
    raw = b"From: w@example.id\r\n" + mime(
        b"Content-Type: text/plain\r\n\r\nFoto terlampir.",
        _attachment(b'filename="../../etc/passwd"', b"root:x:0:0", b"application/octet-stream"),
        _attachment(b'filename="C:\\\\Users\\\\budi\\\\foto\x01\xe2\x80\xae.jpg"'),
        _attachment(b'filename="' + long_name + b'"', b"%PDF-1.4", b"application/pdf"),
        _attachment(b'filename="  ..  "'),
        _attachment(b'filename="IMG_0001.JPG"'),
        _attachment(b'filename="img_0001.jpg"'),
        _attachment(b'filename="nul.txt"', b"x", b"text/plain"),
    )
    names = [a.filename for a in parse_email(raw).attachments]
    assert names[0] == "passwd"
    assert names[1] == "foto.jpg"  # Windows path, control and bidi-override chars removed
    assert len(names[2]) == 150 and names[2].startswith("laporan-xxx") and names[2].endswith(".pdf")
    assert names[3] == "lampiran-4.jpg"  # nothing usable left: default name
    assert names[4:6] == ["IMG_0001.JPG", "img_0001-2.jpg"]  # unique within the message
    assert names[6] == "_nul.txt"
    for name in names:
        assert "/" not in name and "\\" not in name
        assert all(ch.isprintable() for ch in name)


def test_attachment_filename_rfc2231_and_rfc2047() -> None:
    raw = b"From: w@example.id\r\n" + mime(
        _attachment(b"filename*0*=UTF-8''Foto%20Jalan%20; filename*1*=Karangsalam%E2%80%94r.jpg"),
        _attachment(b'filename="=?UTF-8?B?U2FsdXJhbiBtYW1wZXQuanBn?="'),
        _attachment(b"filename*=iso-8859-1'id'Pr%E9sentasi.pdf", b"%PDF-1.4", b"application/pdf"),
    )  # fmt: skip
    names = [a.filename for a in parse_email(raw).attachments]
    assert names == ["Foto Jalan Karangsalam—r.jpg", "Saluran mampet.jpg", "Présentasi.pdf"]


def test_default_names_and_refined_content_types() -> None:
    raw = b"From: w@example.id\r\n" + mime(
        b"Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20),
        b"Content-Type: application/octet-stream; name=IMG_2044.HEIC\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(b"\x00" * 40),
        b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(JPEG),
        b"Content-Type: image/JPG; name=foto.jpg\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(JPEG),
        b"Content-Type: application/pdf\r\nContent-Disposition: attachment\r\n\r\n%PDF-1.4",
    )  # fmt: skip
    got = [(a.filename, a.content_type) for a in parse_email(raw).attachments]
    assert got == [
        ("lampiran-1.png", "image/png"),
        ("IMG_2044.HEIC", "image/heic"),
        ("lampiran-3.jpg", "image/jpeg"),  # sniffed from the bytes
        ("foto.jpg", "image/jpeg"),
        ("lampiran-5.pdf", "application/pdf"),
    ]


def test_attachment_limits_and_text_cap() -> None:
    big = b"\xff" * 5_000
    raw = b"From: w@example.id\r\n" + mime(
        b"Content-Type: text/plain\r\n\r\n" + KELUHAN.encode() * 20,
        *[_attachment(b'filename="foto-%d.jpg"' % i) for i in range(4)],
        _attachment(b'filename="besar.jpg"', big),
        _attachment(b'filename="kosong.jpg"', b""),
    )
    mail = parse_email(raw, max_text_chars=200, max_attachments=3, max_attachment_bytes=2_000)
    assert [a.filename for a in mail.attachments] == ["foto-0.jpg", "foto-1.jpg", "foto-2.jpg"]
    assert len(mail.text) <= 200 and mail.text.endswith("\n" + CUT_MARKER)
    assert "body truncated to 200 characters" in mail.notes
    over = "3 attachments over the limit of 3 not kept: foto-3.jpg, besar.jpg, kosong.jpg"
    assert over in mail.notes

    mail = parse_email(raw, max_attachments=20, max_attachment_bytes=2_000)
    assert [a.filename for a in mail.attachments][-1] == "foto-3.jpg"
    assert "attachment besar.jpg (4 KB) over the limit of 1 KB, not kept" in mail.notes
    assert "empty attachment kosong.jpg skipped" in mail.notes


def test_oversized_attachment_is_dropped_with_a_note() -> None:
    raw = b"From: w@example.id\r\n" + mime(
        b"Content-Type: text/plain\r\n\r\nFoto terlalu besar.",
        _attachment(b'filename="foto.jpg"', JPEG * 100),  # 103,700 bytes
        _attachment(b'filename="kecil.jpg"'),
    )
    mail = parse_email(raw, max_attachment_bytes=100_000)
    assert [a.filename for a in mail.attachments] == ["kecil.jpg"]
    assert "attachment foto.jpg (101 KB) over the limit of 97 KB, not kept" in mail.notes
    assert mail.text == "Foto terlalu besar."


def test_inline_image_in_html_branch_and_format_flowed() -> None:
    raw = b"From: w@example.id\r\n" + mime(
        b"Content-Type: text/plain; charset=utf-8; format=flowed\r\n\r\n"
        b"Jalan di depan SD Negeri 2 Karangsalam \r\nberlubang, mohon segera \r\n"
        b"diperbaiki.\r\n> kutipan yang \r\n> panjang\r\n-- \r\nBudi",
        mime(
            b'Content-Type: text/html\r\n\r\n<p>Jalan <img src="cid:foto1"></p>',
            b"Content-Type: image/jpeg\r\nContent-ID: <foto1>\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(JPEG),
            boundary=b"rel",
            ctype=b"multipart/related",
        ),
        ctype=b"multipart/alternative",
    )
    mail = parse_email(raw)
    assert mail.text == KELUHAN + "\n> kutipan yang panjang\n--\nBudi"
    [photo] = mail.attachments
    assert (photo.filename, photo.inline, photo.data) == ("lampiran-1.jpg", True, JPEG)


def test_forwarded_message_is_kept_as_eml() -> None:
    inner = b"From: Camat <camat@kecamatan.test>\r\nSubject: Tanggapan\r\n\r\nSudah diteruskan.\r\n"
    raw = b"From: w@example.id\r\n" + mime(
        b"Content-Type: text/plain\r\n\r\nLihat lampiran.",
        b'Content-Type: message/rfc822; name="tanggapan.eml"\r\n\r\n' + inner,
    )
    mail = parse_email(raw)
    assert mail.text == "Lihat lampiran."
    [eml] = mail.attachments
    assert (eml.filename, eml.content_type) == ("tanggapan.eml", "message/rfc822")
    again = parse_email(eml.data)
    assert again.subject == "Tanggapan" and again.text == "Sudah diteruskan."


def test_signed_mail_drops_signature_part() -> None:
    raw = b"From: w@example.id\r\n" + mime(
        b"Content-Type: text/plain\r\n\r\n" + KELUHAN.encode(),
        b"Content-Type: application/pgp-signature; name=signature.asc\r\n\r\n-----BEGIN PGP",
        ctype=b'multipart/signed; protocol="application/pgp-signature"',
    )
    mail = parse_email(raw)
    assert mail.text == KELUHAN and mail.attachments == []


def test_inline_text_parts_of_mixed_are_joined() -> None:
    raw = b"From: w@example.id\r\n" + mime(
        b"Content-Type: text/plain\r\n\r\nBagian pertama.",
        _attachment(b'filename="foto.jpg"'),
        b"Content-Type: text/plain\r\n\r\nBagian kedua.",
        b"Content-Type: text/plain\r\nContent-Disposition: attachment; filename=catatan.txt\r\n\r\n"
        b"catatan",
    )
    mail = parse_email(raw)
    assert mail.text == "Bagian pertama.\n\nBagian kedua."
    assert [a.filename for a in mail.attachments] == ["foto.jpg", "catatan.txt"]


# --------------------------------------------------------------------------- structure limits


def test_deeply_nested_multipart_falls_back_to_raw_text() -> None:
    raw = b"From: w@example.id\r\nSubject: bersarang\r\n"
    for level in range(5_000):
        raw += b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (level, level)
    raw += b"Content-Type: text/plain\r\n\r\n" + KELUHAN.encode() * 10_000
    mail = parse_email(raw)
    assert mail.subject == "bersarang"
    assert any("MIME containers" in note for note in mail.notes)
    assert len(mail.text) <= 50_000


def test_many_parts_are_capped() -> None:
    raw = b"From: w@example.id\r\n" + mime(
        *[b"Content-Type: text/plain; name=n%d.txt\r\n\r\nx" % i for i in range(1_000)]
    )
    mail = parse_email(raw)
    assert len(mail.attachments) == 20
    assert any("MIME parts beyond the first 500 ignored" in note for note in mail.notes)
    assert len(mail.notes) <= 51


def test_nested_message_rfc822_chain() -> None:
    raw = b"From: w@example.id\r\n" + b"Content-Type: message/rfc822\r\n\r\n" * 3_000 + b"x"
    mail = safe_parse(raw)
    assert mail is not None and mail.from_addr == "w@example.id"


@pytest.mark.parametrize(
    "header",
    [
        b"Subject: " + b"=?a?q?" * 50_000,
        b"Subject: " + b"=?utf-8?q?a?= " * 50_000,
        b'Content-Type: multipart/mixed; boundary="x' + b";" * 200_000 + b'"',
        b"To: " + b'"a\\' * 100_000,
        b"Message-ID: " + b"<" * 200_000,
        b"X-Panjang: " + b"b" * 3_000_000,
        b"Subject: a\r\n" + b" b\r\n" * 200_000,
    ],
)
def test_hostile_headers_are_bounded(header: bytes) -> None:
    mail = parse_email(b"From: w@example.id\r\n" + header + b"\r\n\r\nisi\r\n")
    assert mail.from_addr == "w@example.id"
    assert len(mail.subject) <= 1_000
    assert all(len(value) <= 4_096 for value in mail.headers.values())
