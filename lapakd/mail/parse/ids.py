"""Message-IDs, dates, the de-duplication id and the raw header block."""

import hashlib
import re
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_tz

from lapakd.mail.parse.decoding import _decode_8bit
from lapakd.mail.parse.headers import _collapse
from lapakd.mail.parse.limits import _HEADER_BLOCK_CAP, _MAX_HEADER_VALUE

_MSGID_IN_ANGLES_RE = re.compile(r"<\s*([^<>\s]{1,250})\s*>")
_MSGID_OK_RE = re.compile(r"[!-;=?-~]{1,250}")  # printable ASCII without '<' and '>'


def _msg_ids(value: str | None) -> list[str]:
    if not value:
        return []
    value = value[:_MAX_HEADER_VALUE]
    seen: dict[str, None] = {}
    for match in _MSGID_IN_ANGLES_RE.finditer(value):
        if _MSGID_OK_RE.fullmatch(match.group(1)):
            seen.setdefault(match.group(1), None)
    if not seen:  # bare ids without brackets, as some mailers write them
        for token in value.split():
            token = token.strip("<>,;")
            if "@" in token and _MSGID_OK_RE.fullmatch(token):
                seen.setdefault(token, None)
    return list(seen)


def _parse_date(value: str) -> datetime | None:
    text = _collapse(_decode_8bit(value[:256]))
    if not text:
        return None
    try:
        parts = parsedate_tz(text)
        if parts is not None:
            offset = parts[9]
            tz = timezone(timedelta(seconds=offset)) if offset and abs(offset) < 86_400 else UTC
            return datetime(*parts[:6], tzinfo=tz)  # type: ignore[misc]
    except (ValueError, TypeError, OverflowError, IndexError):
        pass
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def external_id_for(raw: bytes, message_id: str | None) -> str:
    """Stable id of a message for de-duplication across IMAP rescans.

    ``mid:<message-id>`` when the id looks like ``left@right`` (printable ASCII, at most 250
    characters); otherwise ``sha256:<hex digest of the raw bytes>``.
    """
    if message_id:
        mid = message_id.strip()
        if mid.startswith("<") and mid.endswith(">"):
            mid = mid[1:-1].strip()
        left, at, right = mid.rpartition("@")
        if at and left and right and _MSGID_OK_RE.fullmatch(mid):
            return f"mid:{mid}"
    return "sha256:" + hashlib.sha256(bytes(raw)).hexdigest()


def headers_only(raw: bytes) -> bytes:
    """The header block of a raw message (line endings kept, blank line excluded).

    Used for oversized mails.  Without a blank line the message is all header, up to 1 MB
    and the last complete line.
    """
    data = bytes(raw[: _HEADER_BLOCK_CAP + 4])
    if data.startswith((b"\n", b"\r\n")):
        return b""
    match = re.search(rb"\n\r?\n", data)
    if match:
        return data[: match.start() + 1]
    if len(data) <= _HEADER_BLOCK_CAP:
        return data
    cut = data.rfind(b"\n", 0, _HEADER_BLOCK_CAP)
    return data[: cut + 1] if cut >= 0 else data[:_HEADER_BLOCK_CAP]
