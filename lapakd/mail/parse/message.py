"""parse_email: one raw message to a ParsedEmail, its steps in order."""

from email.message import Message

from lapakd.mail.parse import fastpath
from lapakd.mail.parse.addresses import _address_list, parse_address
from lapakd.mail.parse.autoreply import _auto_submitted
from lapakd.mail.parse.body import _looks_binary, _Piece
from lapakd.mail.parse.bounces import _bounce, _is_daemon
from lapakd.mail.parse.headers import _header_map, _header_text, _HeaderIndex
from lapakd.mail.parse.ids import _msg_ids, _parse_date
from lapakd.mail.parse.limits import _MAX_PARTS, _MAX_REFERENCES, _MAX_SUBJECT
from lapakd.mail.parse.mime import _params, _parse_bytes
from lapakd.mail.parse.model import MailParseError, ParsedEmail, _Notes
from lapakd.mail.parse.walk import _Walker

_KNOWN_HEADERS = frozenset(
    {"from", "to", "cc", "subject", "date", "message-id", "received", "return-path",
     "mime-version", "content-type", "reply-to", "sender", "delivered-to", "in-reply-to",
     "references", "x-mailer", "user-agent", "dkim-signature", "x-original-to",
     "envelope-to", "content-transfer-encoding", "auto-submitted", "list-id", "precedence",
     "x-received", "authentication-results", "arc-seal"}
)  # fmt: skip


def parse_email(
    raw: bytes,
    *,
    max_text_chars: int = 50_000,
    max_attachments: int = 20,
    max_attachment_bytes: int = 15 * 1024 * 1024,
) -> ParsedEmail:
    """Parse raw RFC 5322 bytes; raises only :class:`MailParseError` for unusable input."""
    if isinstance(raw, (bytearray, memoryview)):
        raw = bytes(raw)
    if not isinstance(raw, bytes):
        raise TypeError(f"raw must be bytes, not {type(raw).__name__}")
    if not raw.strip():
        raise MailParseError("empty message")
    try:
        return _parse(
            raw, max(1, max_text_chars), max(0, max_attachments), max(0, max_attachment_bytes)
        )
    except MailParseError:
        raise
    except Exception as exc:  # last-resort guard: callers rely on one exception type
        raise MailParseError(f"unparseable message ({type(exc).__name__})") from exc


def _parse(raw: bytes, max_text_chars: int, max_attachments: int, max_bytes: int) -> ParsedEmail:
    notes = _Notes()
    # The common shape skips email's parser and the MIME walk; the result is the same (tests
    # run both paths on the same mails).
    simple = fastpath._simple_text(raw)  # looked up here so tests can switch it off
    msg: Message | None = None
    structured = False
    if simple is not None:
        headers, piece = simple
    else:
        msg, structured = _parse_bytes(raw, notes)
        headers = _HeaderIndex(msg.raw_items())
    headerless = not any(name in _KNOWN_HEADERS for name in headers.map)

    from_raw = headers.first("from")
    from_name, from_addr = parse_address(from_raw) if from_raw is not None else (None, None)
    if from_raw is not None and from_addr is None:
        notes.add("From header has no usable address")
    daemon = _is_daemon(from_addr, from_raw)
    is_report = msg is not None and msg.get_content_type() == "multipart/report"
    report_type = ""
    if msg is not None and is_report:
        report_type = _params(msg).get("report-type", "").strip().lower()

    walker = _Walker(
        max_text_chars=max_text_chars,
        max_attachments=max_attachments,
        max_attachment_bytes=max_bytes,
        bounce_context=is_report or daemon,
        notes=notes,
    )
    pieces: list[_Piece] = []
    if simple is not None:
        walker.parts = 1  # the one part, as visit() would count it
        pieces.append(piece)
    elif structured and msg is not None:
        walker.visit(msg, pieces)
    else:
        pieces.append(_Piece(msg, "raw"))
    text = walker.assemble(pieces)

    if headerless:
        if _looks_binary(raw) and not walker.attachments:
            raise MailParseError("no email headers and no readable text")
        notes.add("no email headers found; content treated as plain text")
    if walker.parts_skipped:
        notes.add(f"{walker.parts_skipped} MIME parts beyond the first {_MAX_PARTS} ignored")
    if walker.over_count:
        names = ", ".join(walker.over_names) + (", ..." if walker.over_count > 5 else "")
        notes.add(
            f"{walker.over_count} attachments over the limit of {max_attachments} not kept: {names}"
        )
    if walker.defects:
        notes.add("MIME defects tolerated: " + ", ".join(sorted(walker.defects)[:10]))

    subject = _header_text(headers.first("subject") or "", notes, "Subject")
    if len(subject) > _MAX_SUBJECT:
        notes.add(f"subject truncated to {_MAX_SUBJECT} characters")
        subject = subject[:_MAX_SUBJECT]

    message_ids = _msg_ids(headers.first("message-id"))
    if headers.has("message-id") and not message_ids:
        notes.add("Message-ID header unusable")
    date_raw = headers.first("date")
    date = _parse_date(date_raw) if date_raw is not None else None
    if date_raw is not None and date is None:
        notes.add("Date header unparseable")
    references = _msg_ids(" ".join(headers.all("references")))
    if len(references) > _MAX_REFERENCES:  # keep the thread root and the newest ancestors
        references = references[:1] + references[-(_MAX_REFERENCES - 1) :]
    reply_to_raw = headers.first("reply-to")

    bounce = _bounce(
        text,
        report=is_report,
        report_type=report_type,
        daemon=daemon,
        dsn_seen=walker.dsn_seen,
        dsn_status=walker.dsn_status,
        originals=walker.originals,
    )

    return ParsedEmail(
        message_id=message_ids[0] if message_ids else None,
        from_addr=from_addr,
        from_name=from_name,
        to=_address_list(headers.all("to")),
        cc=_address_list(headers.all("cc")),
        reply_to=parse_address(reply_to_raw)[1] if reply_to_raw is not None else None,
        subject=subject,
        date=date,
        text=text,
        attachments=walker.attachments,
        in_reply_to=next(iter(_msg_ids(headers.first("in-reply-to"))), None),
        references=references,
        headers=_header_map(headers),
        auto_submitted=_auto_submitted(headers, subject, is_report or bounce.is_bounce, notes),
        x_loop=[_header_text(value).lower() for value in headers.all("x-loop")],
        is_bounce=bounce.is_bounce,
        bounced_message_ids=bounce.message_ids,
        bounce_headers=bounce.headers,
        bounce_status=bounce.status,
        notes=notes.result(),
    )
