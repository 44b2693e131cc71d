"""Body text: the lazily decoded body piece, control characters, format=flowed, binary sniffing."""

import re
from dataclasses import dataclass
from email.message import Message

_BODY_CONTROL_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufeff]")


def _clean_body(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = text.replace("\u2028", "\n").replace("\u2029", "\n\n")
    text = _BODY_CONTROL_RE.sub("", text)
    # rstrip per line rather than a "[ \t]+$" regex, which is quadratic on long blank runs
    return "\n".join(line.rstrip() for line in text.split("\n")).strip("\n")


def _unflow(text: str, delsp: bool) -> str:
    """Undo RFC 3676 format=flowed soft line breaks."""
    out: list[str] = []
    buf: list[str] = []
    buf_depth = -1
    for line in text.split("\n"):
        depth = len(line) - len(line.lstrip(">"))
        content = line[depth:]
        if content.startswith(" "):
            content = content[1:]  # space-stuffing
        flowed = content.endswith(" ") and content != "-- "
        if flowed and delsp:
            content = content[:-1]
        if buf and depth != buf_depth:
            out.append(">" * buf_depth + (" " if buf_depth else "") + "".join(buf))
            buf = []
        buf.append(content)
        buf_depth = depth
        if not flowed:
            out.append(">" * depth + (" " if depth else "") + "".join(buf))
            buf = []
    if buf:
        out.append(">" * buf_depth + (" " if buf_depth else "") + "".join(buf))
    return "\n".join(out)


def _looks_binary(raw: bytes) -> bool:
    sample = raw[:65_536]
    if b"\x00" in sample:
        return True
    text = sample.decode("utf-8", "replace")
    bad = len(re.findall("[\x01-\x08\x0b\x0e-\x1f\x7f-\x9f\ufffd]", text))
    return bad > len(text) * 0.1




@dataclass
class _Piece:
    """A body text part, decoded lazily so unused alternatives cost nothing."""

    part: Message | None  # None when the fast path already decoded the bytes (data)
    kind: str  # "plain", "html" or "raw" (unparsed MIME body)
    charset: str | None = None
    flowed: bool = False
    delsp: bool = False
    text: str | None = None
    cut: bool = False
    data: bytes | None = None
