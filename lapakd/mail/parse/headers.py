"""Header text: RFC 2047 encoded words, unfolding, control characters, the bounded header index."""

import binascii
import re
from collections.abc import Iterable

from lapakd.mail.parse.decoding import _b64_lenient, _decode_8bit, _decode_bytes, _str_to_bytes
from lapakd.mail.parse.limits import (
    _MAX_DECODE_CHARS,
    _MAX_HEADER_MAP,
    _MAX_HEADER_MAP_VALUE,
    _MAX_HEADERS_SCANNED,
)
from lapakd.mail.parse.model import _Notes

# Linear: charset and text stop at the next '?', so a failed start never rescans far.
_EW_RE = re.compile(r"=\?([^?\s]{1,64})\?([bBqQ])\?([^?]*)\?=")
_UNFOLD_RE = re.compile(r"\r?\n(?=[ \t])")
_HEADER_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _encoded_word_bytes(encoding: str, text: str) -> bytes | None:
    raw = _str_to_bytes(text)
    try:
        if encoding in "bB":
            return _b64_lenient(raw)
        return binascii.a2b_qp(raw, header=True)
    except (binascii.Error, ValueError):
        return None


def _decode_header(value: str, notes: _Notes | None = None, what: str = "header") -> str:
    """Decode RFC 2047 encoded words and raw 8-bit text; CR/LF are left for _collapse."""
    value = value[:_MAX_DECODE_CHARS]
    if "\n" in value:
        value = _UNFOLD_RE.sub("", value)
    if "=?" not in value:  # no encoded word can match: skip the scan (most headers)
        return _decode_8bit(value)
    out: list[str] = []
    pending = bytearray()
    pending_charset: str | None = None

    def flush() -> None:
        nonlocal pending_charset
        if pending_charset is not None:
            text, note = _decode_bytes(bytes(pending), pending_charset)
            if note and notes is not None:
                notes.add(f"{what}: {note}")
            out.append(text)
        pending.clear()
        pending_charset = None

    pos = 0
    for match in _EW_RE.finditer(value):
        gap = value[pos : match.start()]
        # Whitespace between two encoded words is not part of the text (RFC 2047 6.2).
        if gap and not (pending_charset is not None and not gap.strip()):
            flush()
            out.append(_decode_8bit(gap))
        charset = match.group(1).split("*", 1)[0].lower()  # drop an RFC 2231 language tag
        raw = _encoded_word_bytes(match.group(2), match.group(3))
        if raw is None:
            flush()
            out.append(match.group(0))
        elif pending_charset == charset:
            pending.extend(raw)  # joined first: one character may be split across words
        else:
            flush()
            pending_charset = charset
            pending.extend(raw)
        pos = match.end()
    flush()
    out.append(_decode_8bit(value[pos:]))
    return "".join(out)


def _collapse(text: str) -> str:
    """Single-line text: control characters (including decoded CR/LF) become spaces."""
    if not text.isprintable():  # printable text has none of _HEADER_CONTROL_RE's characters
        text = _HEADER_CONTROL_RE.sub(" ", text)
    return " ".join(text.split())


def _header_text(value: str, notes: _Notes | None = None, what: str = "header") -> str:
    return _collapse(_decode_header(value, notes, what))


class _HeaderIndex:
    """Lowercase header name -> raw values, in order; bounded."""

    def __init__(self, items: Iterable[tuple[str, object]]) -> None:
        self.map: dict[str, list[str]] = {}
        for count, (name, value) in enumerate(items):
            if count >= _MAX_HEADERS_SCANNED:
                break
            key = str(name).strip().lower()
            if key:
                values = self.map.setdefault(key, [])
                if len(values) < 50:
                    values.append(str(value))

    def first(self, name: str) -> str | None:
        values = self.map.get(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return self.map.get(name, [])

    def has(self, name: str) -> bool:
        return name in self.map


_HEADER_NAME_RE = re.compile(r"[!-9;-~]{1,200}")


def _header_map(index: _HeaderIndex) -> dict[str, str]:
    result: dict[str, str] = {}
    for key, values in index.map.items():
        if len(result) >= _MAX_HEADER_MAP:
            break
        if _HEADER_NAME_RE.fullmatch(key):
            result[key] = _header_text(values[0])[:_MAX_HEADER_MAP_VALUE]
    return result
