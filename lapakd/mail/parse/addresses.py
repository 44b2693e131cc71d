"""Mailbox and address-list parsing, linear and tolerant of garbage."""

import re

from lapakd.mail.parse.decoding import _decode_8bit
from lapakd.mail.parse.headers import _UNFOLD_RE, _header_text
from lapakd.mail.parse.limits import _MAX_ADDRESS_CHARS, _MAX_ADDRESSES, _MAX_DISPLAY_NAME

_ADDR_CHARS = r"[^\s@<>()\[\],;:\\\"]"
_ADDR_RE = re.compile(
    rf"{_ADDR_CHARS}{{1,64}}@(?:{_ADDR_CHARS}{{1,253}}|\[[0-9A-Fa-f:.]{{1,45}}\])"
)


def _clean_addr(text: str) -> str | None:
    addr = _decode_8bit(text).strip()
    if addr[:7].lower() == "mailto:":
        addr = addr[7:]
    if addr.startswith("@") and ":" in addr:
        addr = addr.rsplit(":", 1)[1]  # obsolete source route "@relay:user@host"
    addr = addr.strip().rstrip(".")
    if not _ADDR_RE.fullmatch(addr):
        return None
    local, _, domain = addr.rpartition("@")
    if domain.startswith(".") or ".." in domain:
        return None
    return f"{local}@{domain}".lower()


def _scan_mailbox(text: str) -> tuple[str, str | None, list[str]]:
    """One pass over a mailbox: (display phrase, angle-addr or None, comments)."""
    if '"' not in text and "(" not in text:
        # No quoting or comments: only the first '<' ... '>' matters, so str.find does the
        # character loop's work (the usual "Name <addr>" and bare addresses).
        lt = text.find("<")
        if lt < 0:
            return text, None, []
        gt = text.find(">", lt + 1)
        if gt < 0:
            return text[:lt], text[lt + 1 :], []
        return text[:lt] + text[gt + 1 :], text[lt + 1 : gt], []
    return _scan_mailbox_chars(text)


def _scan_mailbox_chars(text: str) -> tuple[str, str | None, list[str]]:
    """_scan_mailbox's general case, character by character."""
    phrase: list[str] = []
    angle: list[str] | None = None
    comments: list[str] = []
    comment: list[str] = []
    depth = 0
    quoted = escaped = angle_open = angle_done = False
    for ch in text:
        if depth:  # inside (comment), nesting counted, not recursed
            if escaped:
                escaped = False
                comment.append(ch)
            elif ch == "\\":
                escaped = True
            elif ch == "(":
                depth += 1
                comment.append(ch)
            elif ch == ")":
                depth -= 1
                if depth:
                    comment.append(ch)
                else:
                    comments.append("".join(comment))
                    comment = []
            else:
                comment.append(ch)
            continue
        buf = angle if angle_open and angle is not None else phrase
        if quoted:
            if escaped:
                escaped = False
                buf.append(ch)
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
            else:
                buf.append(ch)
            continue
        if ch == '"':
            quoted = True
        elif ch == "(":
            depth = 1
        elif angle_open:
            if ch == ">":
                angle_open = False
                angle_done = True
            else:
                buf.append(ch)
        elif ch == "<" and not angle_done:
            angle_open = True
            angle = []
        else:
            phrase.append(ch)
    if depth and comment:
        comments.append("".join(comment))
    return "".join(phrase), ("".join(angle) if angle is not None else None), comments


def _parse_mailbox(text: str) -> tuple[str | None, str | None]:
    phrase, angle, comments = _scan_mailbox(text)
    if angle is not None:
        addr = _clean_addr(angle)
        name_raw = phrase
    else:
        tokens = phrase.split()
        at = next((i for i, token in enumerate(tokens) if "@" in token), None)
        addr = _clean_addr(tokens[at]) if at is not None else None
        name_raw = " ".join(t for i, t in enumerate(tokens) if i != at)
    if not name_raw.strip() and comments:
        name_raw = comments[0]
    name = _header_text(name_raw).strip("\"' ")[:_MAX_DISPLAY_NAME]
    if not any(ch.isalnum() for ch in name):
        name = ""  # only punctuation left from a garbage header
    return (name or None), addr


_ADDR_LIST_SPECIAL_RE = re.compile(r'[",;:(]')


def _split_addresses(value: str) -> list[str]:
    """Split an address list at top-level ',' / ';', dropping group names ("Warga: ...;")."""
    if _ADDR_LIST_SPECIAL_RE.search(value) is None:  # nothing to split at: one mailbox
        piece = value.strip()
        return [piece] if piece else []
    return _split_addresses_chars(value)


def _split_addresses_chars(value: str) -> list[str]:
    """_split_addresses' general case, character by character."""
    pieces: list[str] = []
    current: list[str] = []
    depth = 0
    quoted = escaped = angle = False

    def flush() -> None:
        piece = "".join(current).strip()
        if piece:
            pieces.append(piece)
        current.clear()

    for ch in value:
        if len(pieces) >= _MAX_ADDRESSES:
            break
        if escaped:
            escaped = False
            current.append(ch)
            continue
        if quoted or depth:
            current.append(ch)
            if ch == "\\":
                escaped = True
            elif quoted and ch == '"':
                quoted = False
            elif depth and ch == "(":
                depth += 1
            elif depth and ch == ")":
                depth -= 1
            continue
        if ch == '"':
            quoted = True
        elif ch == "(":
            depth = 1
        elif ch == "<":
            angle = True
        elif ch == ">":
            angle = False
        elif not angle and ch in ",;":
            flush()
            continue
        elif not angle and ch == ":":
            current.clear()  # group display name
            continue
        current.append(ch)
    flush()
    return pieces[:_MAX_ADDRESSES]


def parse_address(value: str) -> tuple[str | None, str | None]:
    """Parse one mailbox header value into (decoded display name, lowercase address).

    Tolerates garbage: returns (None, None) when nothing is found and (name, None) when
    only a name is found.  With several mailboxes the first one with an address wins.
    """
    if not isinstance(value, str) or not value.strip():
        return None, None
    text = _UNFOLD_RE.sub("", value[:_MAX_ADDRESS_CHARS])
    phrase, angle, _ = _scan_mailbox(text)
    if angle is not None and "@" not in phrase:
        # One angle-addr: everything else is the name, even an unquoted "Budi, S.T.".
        name, addr = _parse_mailbox(text)
        if addr:
            return name, addr
    first_name: str | None = None
    for piece in _split_addresses(text):
        name, addr = _parse_mailbox(piece)
        if addr:
            return name, addr
        first_name = first_name or name
    return first_name, None


def _address_list(values: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    budget = _MAX_ADDRESS_CHARS  # shared by all To/Cc occurrences, not per header
    for value in values:
        if budget <= 0:
            break
        value = value[:budget]
        budget -= len(value)
        for piece in _split_addresses(_UNFOLD_RE.sub("", value)):
            _, addr = _parse_mailbox(piece)
            if addr:
                seen.setdefault(addr, None)
            if len(seen) >= _MAX_ADDRESSES:
                return list(seen)
    return list(seen)
