"""mailparse's fast path (single-part text/plain without the MIME parser) gives exactly what the
full path gives, and is actually taken for the common complaint mail.

Every mail here is parsed twice: as parse_email does it, and with the fast path switched off
(`_simple_text` returning None); the results (or the MailParseError) must be identical."""

from __future__ import annotations

import base64
import dataclasses
import random
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from pathlib import Path

import pytest

from lapakd.mail.parse import MailParseError, addresses, fastpath, headers_only, mime, parse_email
from lapakd.mail.parse import headers as header_text

MAIL_DIR = Path(__file__).parent / "data" / "mail"
BENCH_DIR = Path(__file__).resolve().parent.parent / "bench"


def outcome(raw: bytes) -> str:
    """Everything parse_email returns (or the error it raises), as comparable text."""
    try:
        mail = parse_email(raw)
    except MailParseError as exc:
        return f"MailParseError: {exc}"
    # repr keeps what == would hide: the date's zone, types, the order of notes.
    return repr(dataclasses.asdict(mail))


def full_outcome(raw: bytes, monkeypatch: pytest.MonkeyPatch) -> str:
    with monkeypatch.context() as m:
        m.setattr(fastpath, "_simple_text", lambda raw: None)
        return outcome(raw)


def assert_same(raw: bytes, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Both paths agree on raw; returns whether the fast path took it."""
    fast = outcome(raw)
    assert fast == full_outcome(raw, monkeypatch), raw[:600]
    return fastpath._simple_text(raw) is not None


def crlf(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


# --------------------------------------------------------------------------- the corpora


def bench_mails(n: int) -> list[bytes]:
    """Mails as bench/e2e_bench.py makes them (stored as IMAP returns them: CRLF)."""
    sys.path.insert(0, str(BENCH_DIR))
    try:
        from corpus import complaints
    finally:
        sys.path.remove(str(BENCH_DIR))
    out = []
    for i, c in enumerate(complaints(n, seed=11)):
        msg = EmailMessage()
        msg["From"] = formataddr((c.sender_name, c.sender))
        msg["To"] = "lapakaduanbms@banyumas.example"
        msg["Subject"] = c.subject
        msg["Date"] = format_datetime(datetime.fromtimestamp(1_780_000_000 + i, UTC))
        msg["Message-ID"] = f"<bench.{i}@warga.example>"
        msg.set_content(c.body)
        out.append(crlf(msg.as_bytes()))
    return out


KELUHAN = "Jalan di depan SD Negeri 2 Karangsalam berlubang, mohon segera diperbaiki. Matur nuwun."

BASE_HEADERS: list[bytes] = [
    b"From: Budi Santoso <budi.santoso@example.id>",
    b"To: aduan@lapak.test",
    b"Subject: Jalan berlubang",
    b"Date: Mon, 05 Jan 2026 08:15:00 +0700",
    b"Message-ID: <20260105081500.1234@mail.example.id>",
    b"MIME-Version: 1.0",
]

CONTENT_TYPES: list[bytes | None] = [
    None,
    b"text/plain",
    b'text/plain; charset="utf-8"',
    b"TEXT/Plain; CHARSET=UTF-8",
    b"text/plain; charset=us-ascii",
    b"text/plain; charset=iso-8859-1",
    b"text/plain; charset=windows-1252",
    b"text/plain; charset=gb2312",
    b"text/plain; charset=bogus-charset",
    b"text/plain; charset=unknown-8bit",
    b'text/plain; charset=""',
    b'text/plain; charset=" utf-8 "',
    b"text/plain; charset='utf-8'",
    b"text/plain;\r\n\tcharset=utf-8;\r\n\tformat=flowed",
    b"text/plain; charset=utf-8; format=flowed; delsp=yes",
    b"text/plain; format=Flowed; DelSp=Yes; charset=utf-8",
    b'text/plain; charset="utf-8"; format="flowed"; delsp="yes"',
    b'text/plain; charset=utf-8; format=" flowed"',
    b"text/plain; charset=utf-8; charset=iso-8859-1",
    b"text/plain;",
    b"text/plain;;charset=utf-8",
    b" text/plain ; charset = utf-8 ",
    b"text/plain; charset",
    b"text/plain; charset*=utf-8''%E2%82%AC",
    b"text/plain; charset*0=ut; charset*1=f-8",
    b'text/plain; charset="<utf-8>"',
    b'text/plain; charset="utf\\"-8"',
    b'text/plain; charset="utf-8; x=y"',
    b"text/plain; name=keluhan.txt",
    b'text/plain; charset=utf-8; name="=?utf-8?q?keluhan?=.txt"',
    b"text/plain; charset=utf-8; report-type=delivery-status",
    b"text/plain; charset=utf-8 (comment)",
    b"text/plain; charset=\xe2\x82\xac",
    b"text/html; charset=utf-8",
    b"text/plain/extra; charset=utf-8",
    b"text; charset=utf-8",
    b"plain",
    b"",
    b"application/octet-stream",
    b"multipart/mixed; boundary=batas",
    b"message/rfc822",
    b"text/plain; charset=utf-8;" + b" a=b;" * 40,
    b"text/plain; charset=utf-8; x=" + b"y" * 3000,
]

CTES: list[bytes | None] = [
    None, b"7bit", b"8bit", b"binary", b"quoted-printable", b"Quoted-Printable",
    b"base64", b"BASE64", b"base64; x=y", b'"base64"', b"x-uuencode", b"bogus", b"",
]


def encode_body(text: bytes, cte: bytes | None) -> bytes:
    name = (cte or b"").split(b";")[0].strip().strip(b'"').lower()
    if name == b"base64":
        return base64.encodebytes(text)
    if name == b"quoted-printable":
        import quopri

        return quopri.encodestring(text)
    if name == b"x-uuencode":
        import binascii

        return b"begin 644 x.txt\n" + binascii.b2a_uu(text[:45]) + b"`\nend\n"
    return text


BODIES: list[bytes] = [
    KELUHAN.encode(),
    ("Selamat pagi 🙏 jalan rusak — mohon diperbaiki. Café résumé.").encode(),
    "Straße in Karangsalam, 10 € Schaden".encode("iso-8859-1", "replace"),
    "“kutipan” – cp1252".encode("cp1252"),
    b"UTF-8 rusak: \xc3\x28 \xe2\x82 \xff\xfe akhir",
    "黄河 jalan rusak".encode("gb18030"),
    b"baris satu \r\nbaris dua\rbaris tiga\nbaris empat",
    b"Ini baris yang \r\nmengalir terus \r\nsampai akhir.\r\n-- \r\nBudi",
    b"> kutipan \r\n> lanjut\r\nbalasan",
    b"nol\x00byte \x07bel \x1b esc \x0c ff \xef\xbb\xbf bom",
    b"",
    b"\r\n\r\n   \r\n",
    b"boundary=x message/rfc822 " * 45,
    b"From kotak surat\r\nsebaris lagi",
]
FLOWED_BODY = BODIES[7]
LONG_BODY = ("panjang " * 30_000).encode()  # over the text cap: cut, with a note

HEADER_SETS: list[list[bytes]] = [
    BASE_HEADERS,
    [b"From: =?utf-8?B?U2l0aSBBbWluYWg=?= <siti@example.id>", b"To: aduan@lapak.test",
     b"Subject: =?utf-8?Q?Jalan_rusak_di_Kar=C3=A1ngsalam?="],
    [b"From: =?iso-8859-1?q?J=F6rg?= <jorg@example.id>", b"Subject: =?bogus?q?caf=E9?="],
    [b"From: =?utf-8?b?!!!?= <x@example.id>", b"Subject: =?utf-8?q?a?= =?utf-8?q?b?= c"],
    [b"From: J\xc3\xb6rg Wiryo <jorg@example.id>", b"Subject: Stra\xdfe rusak"],
    [b'From: "Budi, S.T." <budi@example.id>', b'To: "Warga" <a@x.id>, b@x.id; c@x.id'],
    [b"From: budi@example.id (Budi Santoso)", b"To: Warga: a@x.id, b@x.id;"],
    [b"From: <<<>>> (((", b"To: ,,,;;;", b"Date: kemarin sore", b"Message-ID: bukan id"],
    [b"Subject: tanpa pengirim", b"Date: 2026-01-05T08:15:00"],
    [b"From: Budi <budi@example.id>", b"Subject: Out of Office: cuti"],
    [b"From: Budi <budi@example.id>", b"Auto-Submitted: auto-replied", b"Subject: Balasan"],
    [b"From: Budi <budi@example.id>", b"Auto-Submitted: no", b"Precedence: bulk"],
    [b"From: Budi <budi@example.id>", b"X-Autoreply: yes", b"Return-Path: <>"],
    [b"From: Budi <budi@example.id>", b"X-Auto-Response-Suppress: OOF",
     b"Subject: Automatic reply: Aduan"],
    [b"From: Budi <budi@example.id>", b"X-Loop: lapakaduanbms@banyumas.example",
     b"X-Loop: =?utf-8?q?lain?="],
    [b"From: MAILER-DAEMON@mail.example.id", b"Subject: failure notice",
     b"Message-ID: <dsn@mail.example.id>"],
    [b"From: Mail Delivery System <postmaster@example.id>", b"Subject: Undelivered"],
    [b"From: Budi <budi@example.id>", b"In-Reply-To: <a@x.id>",
     b"References: <r1@x.id>\r\n <r2@x.id> bare@id", b"Reply-To: Lapor <lapor@example.id>",
     b"X-Lapakd-Ticket: LA-2026-000001"],
    [b"From: Budi\r\n <budi@example.id>", b"Subject: dilipat\r\n\tdua baris\r\n   tiga",
     b"Subject: kedua"],
    [b"From: Budi <budi@example.id>", b"Content-Disposition: inline"],
    [b"From: Budi <budi@example.id>", b"Content-Disposition: attachment; filename=a.txt"],
    [b"From: Budi <budi@example.id>", b"Content-Type: text/plain; charset=iso-8859-1"],
    [b"From: Budi <budi@example.id>", b"Content-Transfer-Encoding: base64"],
    [b"From: Budi <budi@example.id>", b"X-Kosong:", b"X-Spasi:    ", b"x-lapakd-source: web"],
    [b"from: budi@example.id", b"SUBJECT: huruf besar", b"dAtE: Mon, 5 Jan 2026 08:15 -0000"],
    [b"From: Budi <budi@example.id>", b"Subject: " + b"x" * 40_000],
    [b"From: Budi <budi@example.id>", b"X-" + b"n" * 250 + b": nama panjang"],
    [b"From: Budi <budi@example.id>", *(b"X-Banyak-%d: v" % i for i in range(250))],
    [b"From: Budi <budi@example.id>", b"Subject: kontrol \x01\x7f\xc2\x85 \xe2\x80\xa8 ok"],
    [b"Received: from a by b", b"X-Foo: bar"],
    [],
]

# Raw shapes the fast path must decline (or get exactly right): broken header syntax.
ODD_MAILS: list[bytes] = [
    b"From nobody Mon Jan  5 08:15:00 2026\r\nFrom: a@x.id\r\n\r\nisi\r\n",
    b" lanjutan dulu\r\nFrom: a@x.id\r\n\r\nisi\r\n",
    b":tanpa nama\r\nFrom: a@x.id\r\n\r\nisi\r\n",
    b"From: a@x.id\r\nbukan header\r\n\r\nisi\r\n",
    b"From: a@x.id\r\nSubject: cr\rsendiri\r\n\r\nisi\r\n",
    b"From: a@x.id\rSubject: cr saja\r\r\risi\r",
    b"From: a@x.id\r\nSubject: tanpa baris kosong\r\n",
    b"From: a@x.id\r\nSubject: x\r\n\r\n",
    b"From: a@x.id\nSubject: campur\r\n\nisi\r\n",
    b"From: a@x.id\r\nSubject: campur\n\r\nisi\n",
    b"\r\nFrom: a@x.id\r\n\r\nisi\r\n",
    b"From : spasi@x.id\r\n\r\nisi\r\n",
    b"Fr\xc3\xb6m: a@x.id\r\n\r\nisi\r\n",
    b"From: a@x.id\r\nSubject: \x00nol\r\n\r\nisi\x00\r\n",
    b"From: a@x.id\r\nSubject: tab\x0bvt\x0cff\x1cfs\r\n\r\nisi\r\n",
    b"From: a@x.id\r\n\r\n\r\nisi setelah dua baris kosong\r\n",
    b"From: a@x.id\r\nContent-Type: text/plain\r\nContent-Type: text/html\r\n\r\n<b>isi</b>\r\n",
    b"From: a@x.id\r\nContent-Type: text/html\r\nContent-Type: text/plain\r\n\r\n<b>isi</b>\r\n",
    b"Subject: hanya teks tanpa alamat\r\n\r\nisi\r\n",
    b"X-Tidak-Dikenal: saja\r\n\r\nisi\r\n",
    b"X-Tidak-Dikenal: saja\r\n\r\n\x00\x01\x02\x03" * 50,
    b"kalimat biasa: dengan titik dua\r\n\r\nlalu teks\r\n",
]


def build(headers: list[bytes], ctype: bytes | None, cte: bytes | None, body: bytes) -> bytes:
    lines = list(headers)
    if ctype is not None:
        lines.append(b"Content-Type: " + ctype)
    if cte is not None:
        lines.append(b"Content-Transfer-Encoding: " + cte)
    return b"".join(line + b"\r\n" for line in lines) + b"\r\n" + encode_body(body, cte)


def variants() -> Iterator[bytes]:
    base_ct, base_cte, base_body = b"text/plain; charset=utf-8", b"quoted-printable", BODIES[1]
    for ctype in CONTENT_TYPES:
        yield build(BASE_HEADERS, ctype, base_cte, base_body)
        yield build(BASE_HEADERS, ctype, b"8bit", FLOWED_BODY)
    for cte in CTES:
        for body in BODIES[:6]:
            yield build(BASE_HEADERS, base_ct, cte, body)
    for body in [*BODIES, LONG_BODY]:
        yield build(BASE_HEADERS, base_ct, b"8bit", body)
    yield build(BASE_HEADERS, base_ct, b"base64", LONG_BODY)
    for headers in HEADER_SETS:
        yield build(headers, base_ct, base_cte, base_body)
    rng = random.Random(2026)
    for _ in range(1500):
        yield build(
            rng.choice(HEADER_SETS), rng.choice(CONTENT_TYPES), rng.choice(CTES),
            rng.choice(BODIES),
        )


# --------------------------------------------------------------------------- the tests


def test_bench_corpus_takes_the_fast_path_with_the_same_result(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mails = bench_mails(300)
    assert all(assert_same(raw, monkeypatch) for raw in mails)
    # ... and parse_email itself goes that way (not only _simple_text when asked).
    taken = 0
    real = fastpath._simple_text

    def spy(raw: bytes) -> object:
        nonlocal taken
        result = real(raw)
        taken += result is not None
        return result

    monkeypatch.setattr(fastpath, "_simple_text", spy)
    for raw in mails:
        parse_email(raw)
    assert taken == len(mails)


@pytest.mark.parametrize("name", sorted(p.name for p in MAIL_DIR.glob("*.eml")))
def test_sample_mails_same_on_both_paths(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = (MAIL_DIR / name).read_bytes()
    for data in (raw, crlf(raw), raw.replace(b"\r\n", b"\n"), headers_only(raw)):
        assert_same(data, monkeypatch)
    rng = random.Random(name)  # truncations and byte flips, as in test_mailparse
    for _ in range(60):
        data = bytearray(raw[: rng.randrange(1, len(raw) + 1)])
        for _ in range(rng.randrange(0, 12)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        assert_same(bytes(data), monkeypatch)


def test_simple_samples_take_the_fast_path() -> None:
    for name in ("plain.eml", "ooo_autoreply.eml", "auto_submitted_no.eml"):
        raw = (MAIL_DIR / name).read_bytes()
        assert fastpath._simple_text(raw) is not None, name
        assert fastpath._simple_text(crlf(raw)) is not None, name
    for name in ("alternative.eml", "photo.eml", "bounce_dsn.eml", "html_only.eml",
                 "newsletter_bulk.eml", "broken_charset.eml"):
        assert fastpath._simple_text((MAIL_DIR / name).read_bytes()) is None, name


def test_generated_variants_same_on_both_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    taken = declined = 0
    for raw in variants():
        for data in (raw, raw.replace(b"\r\n", b"\n")):
            if assert_same(data, monkeypatch):
                taken += 1
            else:
                declined += 1
    # Both paths are really exercised by these variants.
    assert taken > 1000 and declined > 500, (taken, declined)


@pytest.mark.parametrize("raw", ODD_MAILS)
def test_odd_header_syntax_same_on_both_paths(
    raw: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert_same(raw, monkeypatch)
    assert_same(raw.replace(b"\r\n", b"\n"), monkeypatch)


@pytest.mark.parametrize(
    "ctype",
    [
        b"multipart/mixed; boundary=batas", b"text/html", b"text/plain; name=a.txt",
        b"text/plain; charset*=utf-8''x", b'text/plain; charset="a\\"b"', b"text/plain; x",
    ],
)
def test_fast_path_declines_what_it_does_not_handle(ctype: bytes) -> None:
    assert fastpath._simple_text(build(BASE_HEADERS, ctype, None, b"isi")) is None
    assert fastpath._simple_text(build(BASE_HEADERS, b"text/plain", None, b"isi")) is not None


def test_address_and_header_shortcuts_match_the_general_code() -> None:
    """_scan_mailbox / _split_addresses / _collapse shortcuts == their general versions."""
    rng = random.Random(7)
    alphabet = 'ab @.<>,;:"()\\ \t\r\n\x01\x85\u2028é'
    for _ in range(20_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 24)))
        assert addresses._scan_mailbox(text) == addresses._scan_mailbox_chars(text), text
        assert addresses._split_addresses(text) == addresses._split_addresses_chars(text), text
        assert header_text._collapse(text) == " ".join(
            header_text._HEADER_CONTROL_RE.sub(" ", text).split()
        ), text


def test_container_count_shortcut_matches_the_regex() -> None:
    """_too_many_containers' quick upper bound never changes its answer."""
    rng = random.Random(11)
    pieces = [b"boundary", b"BOUNDARY", b"Boundary =", b"boundary\t\r\n=", b"message/",
              b"MESSAGE/", b"messages/", b"bound", b"x", b" ", b"=", b"\n"]
    for _ in range(3_000):
        data = b"".join(rng.choice(pieces) for _ in range(rng.randrange(0, 120)))
        expected = len(mime._STRUCTURE_RE.findall(data)) > mime._MAX_MIME_CONTAINERS
        assert mime._too_many_containers(data) == expected, data
