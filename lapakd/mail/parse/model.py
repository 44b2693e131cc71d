"""What parsing returns: ParsedEmail, Attachment, MailParseError, the cut marker and notes."""

from dataclasses import dataclass, field
from datetime import datetime

from lapakd.mail.parse.limits import _MAX_NOTES

#: Appended (on its own line) to any text that was cut.
CUT_MARKER = "[... dipotong]"


class MailParseError(Exception):
    """Raised when the raw bytes contain nothing usable as an email."""


@dataclass(frozen=True)
class Attachment:
    filename: str  # sanitized, unique within the message
    content_type: str  # lowercase, e.g. "image/jpeg"
    data: bytes
    inline: bool  # Content-Disposition inline, or a cid-referenced resource


@dataclass
class ParsedEmail:
    message_id: str | None = None
    from_addr: str | None = None
    from_name: str | None = None
    to: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)
    reply_to: str | None = None
    subject: str = ""
    date: datetime | None = None
    text: str = ""
    attachments: list[Attachment] = field(default_factory=list)
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    auto_submitted: bool = False
    x_loop: list[str] = field(default_factory=list)
    is_bounce: bool = False
    bounced_message_ids: list[str] = field(default_factory=list)
    bounce_headers: dict[str, str] = field(default_factory=dict)
    bounce_status: str | None = None
    notes: list[str] = field(default_factory=list)


class _Notes:
    """Deduplicated, capped list of human-readable notes."""

    def __init__(self) -> None:
        self._items: list[str] = []
        self._seen: set[str] = set()
        self._overflow = 0

    def add(self, note: str) -> None:
        if note in self._seen:
            return
        if len(self._items) >= _MAX_NOTES:
            self._overflow += 1
            return
        self._seen.add(note)
        self._items.append(note)

    def result(self) -> list[str]:
        out = list(self._items)
        if self._overflow:
            out.append(f"{self._overflow} more notes omitted")
        return out


def _cap_with_marker(text: str, limit: int) -> str:
    room = limit - len(CUT_MARKER) - 1
    if room <= 0:
        return CUT_MARKER[: max(limit, 0)]
    kept = text[:room].rstrip()
    return f"{kept}\n{CUT_MARKER}" if kept else CUT_MARKER
