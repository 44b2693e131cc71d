"""Bounces: delivery-status reports, returned headers, mailer-daemon senders, qmail-style text."""

import re
from email.message import Message
from email.parser import BytesParser
from typing import NamedTuple

from lapakd.mail.parse.decoding import _str_to_bytes
from lapakd.mail.parse.headers import _header_map, _HeaderIndex
from lapakd.mail.parse.ids import _msg_ids
from lapakd.mail.parse.limits import _DSN_TEXT_CAP, _HEADER_BLOCK_CAP, _MAX_HEADERS_SCANNED
from lapakd.mail.parse.mime import _POLICY, _leaf_bytes, _payload

_STATUS_RE = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")
_TEXT_STATUS_RE = re.compile(r"(?i)(?:\b[245]\d\d[ -]|#|status:\s*)([245]\.\d{1,3}\.\d{1,3})\b")
_DAEMON_LOCALS = frozenset({"mailer-daemon", "postmaster", "mailerdaemon", "mail-daemon"})
_INLINE_MSGID_RE = re.compile(r"(?im)^message-id:[ \t]*(<[^<>\s]{1,250}>)")
_INLINE_HEADERS_RE = re.compile(
    r"(?im)^(?:return-path|received|from|message-id|date|subject|to|x-lapakd-[a-z-]+):[ \t]"
)

# Header lines of one returned original message, as the MIME parser gives them.
_Original = list[tuple[str, str]]


class _Bounce(NamedTuple):
    """ParsedEmail's bounce fields (all empty when the mail is no bounce)."""

    is_bounce: bool
    message_ids: list[str]
    headers: dict[str, str]
    status: str | None


def _is_daemon(from_addr: str | None, from_raw: str | None) -> bool:
    if from_addr and from_addr.partition("@")[0] in _DAEMON_LOCALS:
        return True
    return bool(from_raw) and "mailer-daemon" in (from_raw or "")[:500].lower()


def _delivery_status(part: Message, payload: object) -> str | None:
    """The status a message/delivery-status part reports (see _dsn_status)."""
    if isinstance(payload, list):
        blocks = []
        for block in payload:
            if isinstance(block, Message):
                lines = [f"{name}: {value}" for name, value in block.raw_items()]
                body = _payload(block)
                if isinstance(body, str):
                    lines.append(body)
                blocks.append("\n".join(lines))
        text = "\n\n".join(blocks)
    else:
        data, _ = _leaf_bytes(part)
        text = (data or b"")[:_DSN_TEXT_CAP].decode("utf-8", "replace")
    return _dsn_status(text[:_DSN_TEXT_CAP])


def _dsn_status(text: str) -> str | None:
    """Status of the first failed recipient (else the first status) in a delivery-status."""
    first: str | None = None
    action = status = None
    for line in [*text.splitlines()[:5_000], ""]:
        if not line.strip():
            if status and first is None:
                first = status
            if status and action in ("failed", "delayed"):
                return status
            action = status = None
            continue
        name, sep, value = line.partition(":")
        if not sep:
            continue
        name = name.strip().lower()
        if name == "action":
            action = value.strip().lower()
        elif name == "status":
            match = _STATUS_RE.match(value.strip())
            status = match.group(0) if match else status
    return first


def _returned_headers(part: Message, payload: object) -> _Original:
    """The original's headers from a text/rfc822-headers (or message/global-headers) part."""
    if isinstance(payload, list):
        inner = next((item for item in payload if isinstance(item, Message)), None)
        items = list(inner.raw_items()) if inner is not None else []
    else:
        data, _ = _leaf_bytes(part)
        parsed = BytesParser(policy=_POLICY).parsebytes(
            (data or b"").lstrip(b"\r\n"), headersonly=True
        )
        items = list(parsed.raw_items())
    return items[:_MAX_HEADERS_SCANNED]


def _bounce(
    text: str,
    *,
    report: bool,
    report_type: str,
    daemon: bool,
    dsn_seen: bool,
    dsn_status: str | None,
    originals: list[_Original],
) -> _Bounce:
    """Whether the mail is a bounce, and which message it returns (ids, headers, status).

    ``report``/``report_type``: a top-level multipart/report and its report-type; ``daemon``:
    a mailer-daemon sender; the rest is what the MIME walk collected.
    """
    is_bounce = (report and (report_type.endswith("delivery-status") or dsn_seen)) or (
        daemon and (dsn_seen or bool(originals))
    )
    bounce_status = dsn_status
    if not is_bounce and daemon and not report and _INLINE_MSGID_RE.search(text):
        is_bounce = True  # qmail-style bounce quoting the original headers in its text
        start = _INLINE_HEADERS_RE.search(text)
        if start:
            block = text[start.start() : start.start() + _HEADER_BLOCK_CAP]
            quoted = BytesParser(policy=_POLICY).parsebytes(_str_to_bytes(block), headersonly=True)
            originals = [list(quoted.raw_items())[:_MAX_HEADERS_SCANNED]]
    bounced_ids: list[str] = []
    bounce_headers: dict[str, str] = {}
    if not is_bounce:
        return _Bounce(False, bounced_ids, bounce_headers, None)
    for items in originals:
        for name, value in items:
            if name.strip().lower() == "message-id":
                bounced_ids.extend(m for m in _msg_ids(str(value)) if m not in bounced_ids)
                break
    if originals:
        bounce_headers = _header_map(_HeaderIndex(originals[0]))
    if bounce_status is None:
        match = _TEXT_STATUS_RE.search(text)
        bounce_status = match.group(1) if match else None
    return _Bounce(True, bounced_ids, bounce_headers, bounce_status)
