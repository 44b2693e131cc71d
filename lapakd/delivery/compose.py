"""Build the emails the outbox sends, from Jinja2 templates in Bahasa Indonesia.

Headers built from citizen text go through `header_text`, which removes every line break and
control character, so a complaint cannot inject headers. From and Reply-To are always the desk
(never the citizen: DMARC), the Message-ID is the outbox row's, the same on every resend.
"""

from __future__ import annotations

import binascii
import json
import re
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.headerregistry import HeaderRegistry
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import format_datetime, formataddr
from time import time as epoch_seconds
from typing import TYPE_CHECKING, Any

from lapakd import channels
from lapakd.adapters.base import PermanentError
from lapakd.lifecycle.notices import payload_agency
from lapakd.links import ticket_url
from lapakd.mail.filenames import safe_filename
from lapakd.mail.text import (
    TZ_NAMES,
    contact_line,
    first_words,
    header_text,
    tanggal,
    templates,
)
from lapakd.routing import duplicates
from lapakd.store import parse_iso, utcnow

if TYPE_CHECKING:
    from lapakd.app import Desk

# Headers that repeat from mail to mail: the desk's From/Reply-To/X-Loop, the agency's To/Cc,
# Auto-Submitted, the Date of the current second and the MIME headers of the text body.
_REPEATED = frozenset((
    "from", "reply-to", "to", "cc", "x-loop", "auto-submitted", "date", "mime-version",
    "content-type", "content-transfer-encoding",
))
_PARSED: dict[tuple[str, str], tuple[str, Any]] = {}
_FOLDED: dict[tuple[Any, ...], bytes] = {}


def _remember(cache: dict[Any, Any], key: Any, make: Callable[[], Any]) -> Any:
    """A bounded memo: the repeating headers are few, so clearing at 1000 never bites."""
    value = cache.get(key)
    if value is None:
        value = make()
        if len(cache) >= 1000:
            cache.clear()
        cache[key] = value
    return value


class _Policy(EmailPolicy):
    """email.policy.default, remembering the parsed form of headers that repeat.

    Parsing a header (the address parser above all) is the dearest step of building a mail,
    about 0.1-0.2 ms each. Parsed headers are immutable, so sharing them between mails changes
    nothing in the bytes sent."""

    def header_store_parse(self, name: str, value: Any) -> tuple[str, Any]:
        if not isinstance(value, str) or name.lower() not in _REPEATED:
            return super().header_store_parse(name, value)
        parse = super().header_store_parse
        return _remember(_PARSED, (name, value), lambda: parse(name, value))

    def fold_binary(self, name: str, value: Any) -> bytes:
        """The header as sent; remembered for repeating ones (refolding is the next dearest)."""
        if not hasattr(value, "name") or name.lower() not in _REPEATED:
            return super().fold_binary(name, value)
        key = (name, str(value), self.linesep, self.max_line_length, self.utf8, self.cte_type)
        fold = super().fold_binary
        return _remember(_FOLDED, key, lambda: fold(name, value))


class _Registry(HeaderRegistry):
    """email's header registry, making each header class once.

    `HeaderRegistry[name]` builds a new class with type() on every call (~25 µs; 16 calls
    per mail); the class only depends on the name, so one per name is the same."""

    def __init__(self) -> None:
        super().__init__()
        self._classes: dict[str, type] = {}

    def __getitem__(self, name: str) -> type:
        key = name.lower()
        cls = self._classes.get(key)
        if cls is None:
            cls = self._classes[key] = super().__getitem__(name)
        return cls


# Otherwise the settings of email.policy.default, but 7-bit clean: a server without 8BITMIME
# takes every mail (non-ASCII text goes quoted-printable or base64, never raw 8-bit).
_POLICY = _Policy(header_factory=_Registry(), cte_type="7bit")
_POLICY_SMTP = _POLICY.clone(linesep="\r\n")  # what goes on the wire

@dataclass(frozen=True)
class Outgoing:
    """An email ready for SMTP: its bytes (CRLF line ends) and the envelope recipients."""

    data: bytes
    recipients: list[str]
    eight_bit: bool = False  # an 8bit body: to be sent with BODY=8BITMIME


@dataclass
class _Parts:
    headers: list[tuple[str, str]]
    body: str
    attachments: list[tuple[str, str, bytes]]
    extra: dict[str, Any]
    recipients: list[str]


# A mail's builder: (desk, outbox row, its complaint, payload) -> (subject, text body,
# attachments[, extras]); extras: {"headers": {...}, "html": str, "images": [(cid, png)]}.
Builder = Callable[["Desk", sqlite3.Row, "sqlite3.Row | None", dict], Any]


def build(
    desk: Desk, row: sqlite3.Row, builders: Mapping[str, Builder] | None = None, *,
    eight_bit: bool = False, complaint: sqlite3.Row | None = None,
) -> Outgoing:
    """The outbox row as the bytes to send, written by its kind's builder in `builders`
    (default this module's own; delivery.send passes every kind's, send.BUILDERS).

    A plain-text mail (forwards, triage notices, alerts... nearly all of them) is written
    straight to bytes: building an `EmailMessage` and flattening it cost ~0.7 ms a mail, most
    of the sender's time in a burst. Anything with attachments or an HTML part goes through
    `email.message`. Both give the same message (tests/test_compose.py).

    `eight_bit`: the server offers 8BITMIME, so a plain-text body with non-ASCII text goes as
    it is (`8bit`) instead of quoted-printable — the same text in fewer, shorter lines for the
    server to read (a forward's 52 lines become 45). Without it every body is 7-bit clean.
    `complaint`: the row's complaint, when the caller has read it already (the outbox reads a
    batch's in one query)."""
    parts = _parts(desk, row, complaint, builders)
    if parts.attachments or parts.extra.get("html"):
        return Outgoing(_message(parts).as_bytes(policy=_POLICY_SMTP), parts.recipients)
    data, is_8bit = _plain_bytes(parts, eight_bit)
    return Outgoing(data, parts.recipients, is_8bit)


def build_message(
    desk: Desk, row: sqlite3.Row, builders: Mapping[str, Builder] | None = None
) -> EmailMessage:
    """The outbox row as an `EmailMessage` (the general path of `build`)."""
    return _message(_parts(desk, row, builders=builders))


def _parts(
    desk: Desk, row: sqlite3.Row, complaint: sqlite3.Row | None = None,
    builders: Mapping[str, Builder] | None = None,
) -> _Parts:
    cfg = desk.config
    payload = json.loads(row["payload"])
    recipients: list[str] = json.loads(row["recipients"]) or [cfg.desk.admin_email]
    c = complaint
    if c is None and row["complaint_id"] is not None:
        c = desk.store.one("SELECT * FROM complaints WHERE id = ?", (row["complaint_id"],))
    builder = (BUILDERS if builders is None else builders).get(row["kind"])
    if builder is None:
        raise PermanentError(f"no email template for outbox kind {row['kind']!r}")
    # A builder may return a 4th item: {"headers": {...}, "html": str, "images": [(cid, png)]}.
    subject, body, attachments, *more = builder(desk, row, c, payload)
    extra: dict[str, Any] = more[0] if more else {}
    headers = [
        ("From", _desk_from(cfg.desk.name, cfg.desk.email)),
        ("Reply-To", cfg.desk.email),
    ]
    if row["kind"] == "forward" and len(recipients) > 1:
        headers += [("To", recipients[0]), ("Cc", ", ".join(recipients[1:]))]
    else:
        headers.append(("To", ", ".join(recipients)))
    headers += [
        ("Subject", header_text(subject, 250)),
        ("Date", _date_now()),
        ("Message-ID", f"<{row['message_id']}>"),
        ("X-Lapakd-Outbox", str(row["id"])),
        ("X-Loop", cfg.desk.email),
    ]
    if c is not None:
        headers.append(("X-Lapakd-Ticket", c["ticket"]))
    if row["kind"] != "forward" and "Auto-Submitted" not in extra.get("headers", {}):
        headers.append(("Auto-Submitted", "auto-generated"))
    for name, value in extra.get("headers", {}).items():
        if value:
            headers.append((name, header_text(value, 2000)))
    return _Parts(headers, body, attachments, extra, recipients)


def _message(parts: _Parts) -> EmailMessage:
    msg = EmailMessage(policy=_POLICY)
    for name, value in parts.headers:
        msg[name] = value
    msg.set_content(parts.body)
    extra = parts.extra
    if extra.get("html"):
        msg.add_alternative(extra["html"], subtype="html")
        html_part = msg.get_payload()[-1]
        for cid, data in extra.get("images", []):
            html_part.add_related(data, maintype="image", subtype="png", cid=f"<{cid}>")
    for filename, content_type, data in parts.attachments:
        maintype, _, subtype = content_type.partition("/")
        msg.add_attachment(
            data, maintype=maintype or "application", subtype=subtype or "octet-stream",
            filename=header_text(safe_filename(filename, "lampiran"), 150),
        )
    return msg


def _desk_from(name: str, address: str) -> str:
    return _remember(_FROM, (name, address), lambda: formataddr((header_text(name), address)))


def _date_now() -> str:
    """The Date header: the same string for every mail of one second."""
    second = int(epoch_seconds())
    return _remember(_DATES, second, lambda: format_datetime(utcnow().replace(microsecond=0)))


MAX_8BIT_LINE = 998  # octets, without the CRLF (RFC 5321 4.5.3.1.6)
_FROM: dict[tuple[str, str], str] = {}
_DATES: dict[int, str] = {}
_PLAIN_TAIL = {
    "7bit": b'Content-Type: text/plain; charset="utf-8"\r\n'
            b"Content-Transfer-Encoding: 7bit\r\nMIME-Version: 1.0\r\n\r\n",
    "8bit": b'Content-Type: text/plain; charset="utf-8"\r\n'
            b"Content-Transfer-Encoding: 8bit\r\nMIME-Version: 1.0\r\n\r\n",
    "quoted-printable": b'Content-Type: text/plain; charset="utf-8"\r\n'
                        b"Content-Transfer-Encoding: quoted-printable\r\n"
                        b"MIME-Version: 1.0\r\n\r\n",
}


def _plain_bytes(parts: _Parts, eight_bit: bool = False) -> tuple[bytes, bool]:
    """A single-part text/plain mail, written directly (what `_message` + flattening give;
    where `email` would pick base64 for text with many non-ASCII characters, this stays with
    quoted-printable), and whether its body is 8bit."""
    out = [_header_line(name, value) for name, value in parts.headers]
    encoded_body = parts.body.encode("utf-8")
    lines = encoded_body.splitlines()  # \r, \n and \r\n: no bare CR is left
    longest = max(map(len, lines), default=0)
    clean = b"\0" not in encoded_body  # NUL is allowed in neither 7bit nor 8bit
    if parts.body.isascii() and longest <= _POLICY.max_line_length and clean:
        cte = "7bit"
    elif eight_bit and longest <= MAX_8BIT_LINE and clean:
        cte = "8bit"
    else:
        cte = "quoted-printable"
    out.append(_PLAIN_TAIL[cte])
    if cte == "quoted-printable":
        # binascii's C encoder: soft breaks at 76, '=' / 8-bit bytes / trailing blanks quoted.
        encoded = binascii.b2a_qp(b"\n".join(lines) + b"\n", istext=True)
        out.append(encoded.replace(b"\n", b"\r\n"))
    else:
        out.append(b"\r\n".join(lines) + b"\r\n")
    return b"".join(out), cte == "8bit"


_PLAIN_VALUE = re.compile(r"[!-~]+(?: [!-~]+)*\Z")  # printable ASCII words, single spaces


def _header_line(name: str, value: str) -> bytes:
    """One header as the policy writes it; plain ASCII ones (most) without parsing."""
    if name.lower() in _REPEATED:
        return _remember(_LINES, (name, value), lambda: _folded(name, value))
    if "=?" not in value and _PLAIN_VALUE.match(value):
        line = f"{name}: {value}"
        if len(line) <= _POLICY.max_line_length:
            return f"{line}\r\n".encode("ascii")
        folded = _fold_at_spaces(name, value)
        if folded is not None:
            return folded
    return _folded(name, value)


def _fold_at_spaces(name: str, value: str) -> bytes | None:
    """Fold a plain ASCII header at its spaces into lines of at most 78 characters (RFC 5322
    2.2.3); None when a word is too long for that (the policy then encodes it)."""
    limit = _POLICY.max_line_length
    lines: list[str] = []
    line = f"{name}:"
    for word in value.split(" "):
        if len(line) + 1 + len(word) <= limit:
            line += " " + word
        elif lines or line != f"{name}:":
            lines.append(line)
            line = " " + word
            if len(line) > limit:
                return None
        else:
            return None
    lines.append(line)
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def _folded(name: str, value: str) -> bytes:
    return _POLICY_SMTP.fold_binary(name, _POLICY_SMTP.header_store_parse(name, value)[1])


_LINES: dict[tuple[str, str], bytes] = {}  # the repeating headers, as sent


def _common(desk: Desk, c: sqlite3.Row) -> dict[str, Any]:
    cfg = desk.config
    tz_name = TZ_NAMES.get(cfg.desk.timezone)
    return {
        "c": c,
        "desk": cfg.desk,
        "channel_label": channels.long_label(c["channel"]),
        "received": tanggal(parse_iso(c["received_at"]), cfg.tz, tz_name),
        "text": c["text"],  # agencies get the full, unredacted text
        "contact": contact_line(c),
        "public_link": ticket_url(cfg.desk.public_url, c["ticket"]),
        # Open complaints that may be the same problem (routing/duplicates.py): a hint only.
        "similar": [s.ticket for s in duplicates.similar_open(desk.store, c)],
    }


def _forward(desk: Desk, row: sqlite3.Row, c: sqlite3.Row | None, payload: dict) -> Any:
    if c is None:
        raise PermanentError("forward without a complaint")
    agency = payload_agency(desk, payload)
    cfg = desk.config
    limit = cfg.smtp.max_attachments_bytes
    attachments, skipped, total = [], [], 0
    for a in desk.store.all(
        "SELECT * FROM attachments WHERE complaint_id = ? ORDER BY id", (c["id"],)
    ):
        if total + a["size"] > limit:
            skipped.append(a["filename"])
            continue
        path = desk.store.attachment_path(a["sha256"])
        try:
            data = path.read_bytes()
        except OSError:
            skipped.append(a["filename"])
            continue
        total += a["size"]
        attachments.append((a["filename"], a["content_type"], data))
    due = parse_iso(c["due_at"])
    sla_days = c["sla_days"] if due else None
    ctx = _common(desk, c) | {
        "agency": agency,
        "budget_dependent": bool(c["budget_dependent"]),
        "due": tanggal(due, cfg.tz, TZ_NAMES.get(cfg.desk.timezone), time=False),
        "sla_days": sla_days,
        "sla_unit": "hari kerja" if cfg.desk.sla_calendar == "working" else "hari",
        "attachments": [{"filename": f} for f, _, _ in attachments],
        "skipped": skipped,
    }
    summary = first_words(c["subject"] or c["text"])
    subject = f"[{c['ticket']}] {c['category'] or 'Aduan'}: {summary}"
    return subject, templates.get_template("forward.txt.j2").render(ctx), attachments


def _triage(desk: Desk, row: sqlite3.Row, c: sqlite3.Row | None, payload: dict) -> Any:
    if c is None:
        raise PermanentError("triage without a complaint")
    subject = f"[{c['ticket']}] Perlu verifikasi: {first_words(c['subject'] or c['text'])}"
    agencies = desk.rules.agencies
    suggestions = [  # the model's, recorded when it was routed (lapakd.learn.consult)
        {"key": key, "name": agencies[key].name if key in agencies else key,
         "percent": round(float(p) * 100)}
        for key, p in payload.get("suggestions") or []
    ]
    body = templates.get_template("triage.txt.j2").render(
        _common(desk, c) | {"suggestions": suggestions})
    return subject, body, []


def _alert(desk: Desk, row: sqlite3.Row, c: sqlite3.Row | None, payload: dict) -> Any:
    body = templates.get_template("alert.txt.j2").render(
        desk=desk.config.desk, body=payload["body"]
    )
    return f"[lapakd] {payload['subject']}", body, []


# The mails of intake and routing; the follow-up mails (relay, receipt, reminder, escalation,
# digest) are lifecycle.notices.BUILDERS, and delivery.send composes with both.
BUILDERS: dict[str, Builder] = {"forward": _forward, "triage": _triage, "alert": _alert}
