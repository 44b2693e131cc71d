"""Bytes to text without raising: charset labels, lenient base64, raw 8-bit header bytes."""

import binascii
import codecs
import re

_CHARSET_ALIASES: dict[str, str | None] = {
    "x-unknown": None,
    "unknown": None,
    "unknown-8bit": None,
    "x-user-defined": None,
    "default": None,
    "us-ascii": "ascii",
    "ansi_x3.4-1968": "ascii",
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "gb2312": "gb18030",  # superset; mailers label GBK/GB18030 text as gb2312
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "iso-8859-8-i": "iso-8859-8",
    "windows-874": "cp874",
    "x-sjis": "shift_jis",
    "shift-jis": "shift_jis",
    "unicode-1-1-utf-7": "utf-7",
}
# Text codecs that are not charsets; a hostile label must not pick them.
_REFUSED_CODECS = frozenset(
    {"undefined", "unicode-escape", "raw-unicode-escape", "idna", "punycode", "palmos"}
)
_REAL_NON_ASCII_RE = re.compile("[^\x00-\x7f\ufffd]")


def _codec_for(label: str | None) -> str | None:
    if not label:
        return None
    name = label.strip().strip("\"'").lower()
    if not name or len(name) > 40:
        return None
    alias = _CHARSET_ALIASES.get(name, name)
    if alias is None:
        return None
    try:
        info = codecs.lookup(alias)
    except (LookupError, ValueError, TypeError):
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in _REFUSED_CODECS:
        return None
    return info.name


def _decode(data: bytes, codec: str, errors: str, final: bool) -> str | None:
    """Decode or return None; odd codecs may raise more than UnicodeDecodeError."""
    try:
        # The incremental decoder tolerates a multibyte sequence cut by our own size caps.
        return codecs.getincrementaldecoder(codec)(errors).decode(data, final)
    except Exception:  # noqa: BLE001 - any codec failure means "does not fit"
        return None


def _decode_bytes(data: bytes, label: str | None, *, final: bool = True) -> tuple[str, str | None]:
    """Decode bytes in a declared charset, never raising.  Returns (text, repair note)."""
    shown = (label or "").strip().strip("\"'")[:40]
    codec = _codec_for(label)
    if codec == "iso8859-1":
        # As browsers do: "latin-1" mail is windows-1252 in practice (curly quotes, euro).
        text = _decode(data, "cp1252", "strict", final)
        return (text if text is not None else data.decode("iso8859-1")), None
    if codec is not None and codec != "ascii":
        text = _decode(data, codec, "strict", final)
        if text is not None:
            return text, None
        if codec == "utf-8":
            return data.decode("utf-8", "replace"), "invalid UTF-8 bytes replaced"
        text = _decode(data, "utf-8", "strict", final)
        if text is not None:
            return text, f"charset {shown} did not fit, decoded as UTF-8"
        text = _decode(data, codec, "replace", final)
        if text is not None:
            return text, f"charset {shown} decoded with replacement"
    # us-ascii, missing or unknown label (or a codec that failed): UTF-8 if it fits, else guess.
    text = _decode(data, "utf-8", "strict", final)
    if text is not None:
        if shown and codec is None and not data.isascii():
            return text, f"unknown charset {shown} decoded as UTF-8"
        return text, None
    what = f"charset {shown}" if shown else "missing charset"
    text = data.decode("utf-8", "replace")
    if _REAL_NON_ASCII_RE.search(text):
        # Genuine multibyte sequences: damaged UTF-8 rather than a legacy 8-bit charset.
        return text, f"{what} decoded with replacement"
    return data.decode("cp1252", "replace"), f"{what}: 8-bit text decoded as windows-1252"


def _str_to_bytes(text: str) -> bytes:
    """Undo the parser's surrogateescape (raw 8-bit bytes) without ever raising."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace")


def _decode_8bit(text: str) -> str:
    """Raw 8-bit header text (RFC 6532 UTF-8 or a legacy charset) to real characters."""
    if text.isascii():
        return text
    raw = _str_to_bytes(text)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", "replace")
_B64_JUNK_RE = re.compile(rb"[^A-Za-z0-9+/]")


def _b64_lenient(data: bytes) -> bytes:
    compact = _B64_JUNK_RE.sub(b"", data)
    if len(compact) % 4 == 1:
        compact = compact[:-1]  # a lone trailing sextet carries no full byte
    try:
        return binascii.a2b_base64(compact + b"=" * (-len(compact) % 4))
    except binascii.Error:
        return b""
