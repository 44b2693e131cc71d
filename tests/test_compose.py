"""compose.build writes plain-text mails straight to bytes; the result must be the message the
general `email.message` path builds — same headers, same decoded text — for every kind of mail
and for hostile citizen text (encoded words, injected line breaks, long lines, emoji)."""

from __future__ import annotations

import email
import email.policy
import re
from pathlib import Path

import pytest

from lapakd.app import Desk
from lapakd.cli.admin import add_complaint
from lapakd.delivery import compose
from lapakd.outbox import queue as outbox

FIXED_DATE = "Sat, 28 Nov 2026 21:30:29 +0000"

AGENCIES = """\
agencies:
  dpupr:
    name: Dinas Pekerjaan Umum dan Penataan Ruang
    email: dpupr@banyumas.example
    cc: [kabid.jalan@banyumas.example, seksi.pemeliharaan.jalan.dan.jembatan@banyumas.example,
         sekretariat.dinas.pekerjaan.umum@banyumas.example]
  dinkes:
    name: Dinas Kesehatan — Bidang Pelayanan
    email: dinkes@banyumas.example
"""
RULES = """\
rules:
  - name: jalan
    category: PEKERJAAN UMUM DAN PENATAAN RUANG
    when: {any: [jalan]}
    forward: dpupr
  - name: puskesmas
    category: KESEHATAN
    when: {any: [puskesmas]}
    forward: dinkes
"""

TEXTS = [
    "Jalan di Desa Karangsalam berlubang, mohon diperbaiki.",  # short ASCII: 7bit
    "jalan rusak 🔥🔥 parah bgt, gk ada perbaikan dr thn lalu. Mohon dicek 🙏",  # emoji: QP
    "Jalan " + "sangat " * 40 + "rusak",  # one ASCII line over 78 characters
    "Jalan rusak\r\nBcc: evil@attacker.example\r\nSubject: injected",  # header injection try
    "Jalan =?utf-8?q?=41?= rusak, tanda = di teks, tab\tdi tengah, spasi di akhir   ",
    "Jalan\n.\n..\nFrom the village\n.titik di awal baris",  # SMTP dot lines, mbox From
    "Puskesmas Kembaran antre lama sekali, petugas judes. Tolong ditindak. " * 6,
    "Pelayanan di puskesmas buruk\u2028baris\u2029paragraf\x0bvtab\x0cff",
    "jalan " + "x" * 1200,  # one word longer than a header or body line may be
    "Lampu PJU mati di perempatan Sokaraja — gelap sekali 😟",  # no rule: triage
]


def _desk(tmp_path: Path, desk_name: str = "Lapak Aduan Banyumas") -> Desk:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "agencies.yaml").write_text(AGENCIES)
    (rules / "10-rules.yaml").write_text(RULES)
    config = tmp_path / "lapakd.toml"
    config.write_text(
        "[desk]\n"
        f'name = "{desk_name}"\n'
        'email = "lapakaduanbms@banyumas.example"\n'
        'admin_email = "admin.lapakaduan@banyumas.example"\n'
        "[paths]\n"
        'data_dir = "var"\nrules_dir = "rules"\n'
        "[smtp]\n"
        'host = "127.0.0.1"\nport = 8025\n'
        "[channels.email]\nenabled = false\n"
    )
    return Desk.open(str(config))


def _parsed(data: bytes) -> email.message.EmailMessage:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(msg, email.message.EmailMessage)
    return msg


def _assert_same_mail(fast: bytes, general: bytes, *, eight_bit: bool = False) -> None:
    """The same headers and text; on the wire 7-bit clean (or, for an 8bit body, 8-bit text
    in lines of at most 998 octets: RFC 5321)."""
    a, b = _parsed(fast), _parsed(general)

    def headers(msg: email.message.EmailMessage) -> list[tuple[str, str]]:
        # email may pick base64 where the direct path keeps to quoted-printable
        return [(k, str(v)) for k, v in msg.items() if k != "Content-Transfer-Encoding"]

    assert headers(a) == headers(b)
    assert a["Content-Transfer-Encoding"] in (
        ("7bit", "quoted-printable", "8bit") if eight_bit else ("7bit", "quoted-printable"))
    assert b["Content-Transfer-Encoding"] in ("7bit", "quoted-printable", "base64")
    assert a.get_content_type() == b.get_content_type() == "text/plain"
    assert a.get_content() == b.get_content()
    assert not a.defects and not b.defects
    # On the wire: CRLF line ends, no line over 998 octets, ASCII only unless 8bit.
    head, _, _ = fast.partition(b"\r\n\r\n")
    assert head.isascii()
    if a["Content-Transfer-Encoding"] != "8bit":
        assert fast.isascii()
    assert b"\n" not in fast.replace(b"\r\n", b"")
    assert max(len(line) for line in fast.split(b"\r\n")) <= 998


@pytest.mark.parametrize("desk_name", ["Lapak Aduan Banyumas", "Lapak Aduan — Banyumas Satria"])
def test_plain_mails_written_as_bytes_equal_the_email_message_path(tmp_path, monkeypatch,
                                                                   desk_name):
    monkeypatch.setattr(compose, "_date_now", lambda: FIXED_DATE)
    desk = _desk(tmp_path, desk_name)
    try:
        for i, text in enumerate(TEXTS):
            add_complaint(desk, text=text, channel="walkin",
                          contact=f"warga{i}@example.com",
                          name="Sri Rahayu Ningsih" if i % 2 else "Ṣiti Ñur",
                          photos=[], actor="test")
        outbox.alert_admin(desk.store, "t", "Kanal email: login ditolak 🔒",
                           "Periksa kata sandi.\n" + "baris panjang " * 20)
        rows = desk.store.all("SELECT * FROM outbox ORDER BY id")
        kinds = {r["kind"] for r in rows}
        assert {"forward", "triage", "alert"} <= kinds
        encodings = set()
        eight_bits = 0
        for row in rows:
            parts = compose._parts(desk, row)
            assert not parts.attachments and not parts.extra.get("html")
            fast = compose.build(desk, row)
            assert (fast.data, fast.eight_bit) == compose._plain_bytes(parts)  # the direct path
            general = compose.build_message(desk, row).as_bytes(policy=compose._POLICY_SMTP)
            _assert_same_mail(fast.data, general)
            # For a server that offers 8BITMIME: the same mail, the body 8bit, fewer lines.
            eight = compose.build(desk, row, eight_bit=True)
            _assert_same_mail(eight.data, general, eight_bit=True)
            assert eight.recipients == fast.recipients
            longest = max(map(len, parts.body.encode().splitlines()), default=0)
            if _parsed(fast.data)["Content-Transfer-Encoding"] == "7bit" or longest > 998:
                assert eight == fast  # 7bit anyway, or a line too long for 8bit
            else:
                assert eight.eight_bit
                assert _parsed(eight.data)["Content-Transfer-Encoding"] == "8bit"
                assert eight.data.count(b"\r\n") < fast.data.count(b"\r\n")
                eight_bits += 1
            assert fast.recipients == parts.recipients
            encodings.add(_parsed(fast.data)["Content-Transfer-Encoding"])
            msg = _parsed(fast.data)
            assert "Bcc" not in msg and msg["From"].addresses[0].display_name == desk_name
        assert encodings == {"quoted-printable"}  # the templates have "·" and "—" in them
        assert eight_bits >= len(rows) - 1
        forward = next(r for r in rows if r["kind"] == "forward"
                       and "kabid.jalan@banyumas.example" in r["recipients"])
        msg = _parsed(compose.build(desk, forward).data)
        assert msg["To"] == "dpupr@banyumas.example"
        assert "sekretariat.dinas.pekerjaan.umum@banyumas.example" in msg["Cc"]
    finally:
        desk.close()


def test_mails_with_attachments_take_the_email_message_path(tmp_path, monkeypatch):
    from lapakd.embedded.media import TINY_JPEG

    monkeypatch.setattr(compose, "_date_now", lambda: FIXED_DATE)
    desk = _desk(tmp_path)
    try:
        add_complaint(desk, text="Jalan berlubang di depan pasar", channel="walkin",
                      contact=None, name=None, photos=[("lubang.jpg", TINY_JPEG)], actor="t")
        [row] = desk.store.all("SELECT * FROM outbox WHERE kind = 'forward'")
        mail = compose.build(desk, row)
        msg = _parsed(mail.data)
        assert msg.get_content_type() == "multipart/mixed"
        [photo] = list(msg.iter_attachments())
        assert photo.get_filename() == "lubang.jpg" and photo.get_content() == TINY_JPEG
        assert re.search(rb"\r\nX-Lapakd-Ticket: LA-\d{4}-000001\r\n", mail.data)
    finally:
        desk.close()


@pytest.mark.parametrize("body", [
    "Short ASCII text.\nSecond line.\n",  # 7bit
    "ASCII but one line is long: " + "kata " * 30 + "\n",  # quoted-printable (soft breaks)
    "Teks dengan emoji 🔥 dan tanda = serta spasi di akhir   \n.\nakhir",
    "",
])
@pytest.mark.parametrize("subject", [
    "Uji 🔥 " + "panjang " * 12,  # encoded words, folded
    "[LA-2026-000001] PEKERJAAN UMUM DAN PENATAAN RUANG: Jalan di Desa Karangsalam berlubang",
    "[LA-2026-000001] " + "a" * 90 + " akhir",  # a word longer than a line
    "x" * 70,  # exactly around the limit with "Subject: "
    "x" * 69,
])
def test_plain_bytes_for_any_body(body, subject):
    parts = compose._Parts(
        headers=[("From", "Lapak Aduan <desk@banyumas.example>"), ("To", "a@banyumas.example"),
                 ("Subject", subject), ("Date", FIXED_DATE)],
        body=body, attachments=[], extra={}, recipients=["a@banyumas.example"],
    )
    fast, is_8bit = compose._plain_bytes(parts)
    general = compose._message(parts).as_bytes(policy=compose._POLICY_SMTP)
    _assert_same_mail(fast, general)
    assert not is_8bit
    assert max(len(line) for line in fast.split(b"\r\n\r\n")[0].split(b"\r\n")) <= 78 \
        or "a" * 90 in subject
    short_lines = all(len(line) <= 78 for line in body.splitlines())
    expected = "7bit" if body.isascii() and short_lines else "quoted-printable"
    assert _parsed(fast)["Content-Transfer-Encoding"] == expected
    eight, is_8bit = compose._plain_bytes(parts, eight_bit=True)
    _assert_same_mail(eight, general, eight_bit=True)
    assert _parsed(eight)["Content-Transfer-Encoding"] == ("7bit" if expected == "7bit" else "8bit")
    assert is_8bit == (expected != "7bit")


@pytest.mark.parametrize("body", [
    "satu baris yang sangat panjang " * 40,  # 1,240 octets on one line: over SMTP's 998
    "nul \0 di tengah teks " * 3,  # ASCII, but NUL may go in neither 7bit nor 8bit
    "nul \0 di tengah teks — " * 3,
])
def test_an_8bit_capable_server_still_gets_quoted_printable_where_8bit_cannot_go(body):
    parts = compose._Parts(
        headers=[("From", "desk@banyumas.example"), ("To", "a@banyumas.example")],
        body=body, attachments=[], extra={}, recipients=["a@banyumas.example"],
    )
    data, is_8bit = compose._plain_bytes(parts, eight_bit=True)
    assert not is_8bit and _parsed(data)["Content-Transfer-Encoding"] == "quoted-printable"
    assert data.isascii() and max(len(line) for line in data.split(b"\r\n")) <= 78
