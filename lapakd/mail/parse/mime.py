"""The stdlib MIME parser behind a bounding policy, and helpers that read its parts safely."""

import binascii
import re
from email.message import Message
from email.parser import BytesParser
from email.policy import Compat32
from email.utils import collapse_rfc2231_value

from lapakd.mail.parse.decoding import _B64_JUNK_RE, _b64_lenient, _str_to_bytes
from lapakd.mail.parse.limits import (
    _MAX_CONTENT_HEADER,
    _MAX_CONTENT_PARAMS,
    _MAX_DEPTH,
    _MAX_HEADER_NAME,
    _MAX_HEADER_VALUE,
    _MAX_MIME_CONTAINERS,
)
from lapakd.mail.parse.model import _Notes


class _BoundedPolicy(Compat32):
    """compat32 that caps header sizes while the MIME parser reads them.

    email's parameter parser (``_parseparam``) is quadratic in the number of ';' inside quotes
    and already runs during parsing (boundary lookup), so Content-* headers are cut early.
    """

    def header_source_parse(self, sourcelines: list[str]) -> tuple[str, str]:
        return _bound_header(*super().header_source_parse(sourcelines))

    def header_fetch_parse(self, name: str, value: str) -> str:
        # Keep raw 8-bit bytes (as surrogates) instead of compat32's lossy Header objects;
        # this module decodes header text itself (e.g. UTF-8 filenames in parameters).
        return value


def _bound_header(name: str, value: str) -> tuple[str, str]:
    """The caps _BoundedPolicy puts on one header (shared with the fast path)."""
    name = name[:_MAX_HEADER_NAME]
    if name.strip().lower().startswith("content-"):
        value = value[:_MAX_CONTENT_HEADER]
        if value.count(";") > _MAX_CONTENT_PARAMS:
            cut = -1
            for _ in range(_MAX_CONTENT_PARAMS + 1):
                cut = value.find(";", cut + 1)
            value = value[:cut]
    else:
        value = value[:_MAX_HEADER_VALUE]
    return name, value


_POLICY = _BoundedPolicy()
# Each nesting level costs the MIME parser a check per line, so containers are counted first.
_STRUCTURE_RE = re.compile(rb"(?i)boundary\s*=|message/")


def _too_many_containers(data: bytes) -> bool:
    lower = data.lower()
    if lower.count(b"boundary") + lower.count(b"message/") <= _MAX_MIME_CONTAINERS:
        # An upper bound on the matches, found much faster than by the case-blind regex.
        return False
    for count, _ in enumerate(_STRUCTURE_RE.finditer(data), 1):
        if count > _MAX_MIME_CONTAINERS:
            return True
    return False


def _parse_bytes(data: bytes, notes: _Notes) -> tuple[Message, bool]:
    """Parse with the stdlib parser; returns (message, MIME structure was parsed)."""
    parser = BytesParser(policy=_POLICY)
    if _too_many_containers(data):
        notes.add(
            f"more than {_MAX_MIME_CONTAINERS} MIME containers; structure not parsed, "
            "body kept as raw text"
        )
        return parser.parsebytes(data, headersonly=True), False
    return parser.parsebytes(data), True




def _payload(part: Message) -> object:
    """The stored payload: a list of sub-messages or the body text.

    compat32's get_payload() re-decodes 8-bit text with "replace", destroying the bytes the
    charset repair needs, so the stored value is read directly (email's generator does too).
    """
    return getattr(part, "_payload", None)


def _raw_get(part: Message, name: str) -> str | None:
    """First raw header value of a part (part.get() may return Header objects)."""
    for key, value in part.raw_items():
        if key.strip().lower() == name:
            return str(value)
    return None


def _main_value(value: str | None) -> str:
    if not value:
        return ""
    return value.split(";", 1)[0].strip().strip('"').lower()


def _params(part: Message, header: str = "content-type") -> dict[str, str]:
    """Header parameters with RFC 2231 continuations/charsets collapsed; never raises."""
    try:
        plist = part.get_params(failobj=None, header=header)
    except Exception:  # noqa: BLE001 - malformed parameters are simply absent
        return {}
    result: dict[str, str] = {}
    for key, value in (plist or [])[1:]:
        name = str(key).strip().lower()
        if not name or name in result:
            continue
        try:
            result[name] = str(collapse_rfc2231_value(value))
        except Exception:  # noqa: BLE001
            result[name] = str(value[2] if isinstance(value, tuple) else value)
    return result


_UU_ENCODINGS = frozenset({"x-uuencode", "uuencode", "uue", "x-uue"})


def _leaf_bytes(part: Message, max_size: int | None = None) -> tuple[bytes | None, int]:
    """Decoded content of a leaf part: (data, size); data is None when over max_size."""
    payload = _payload(part)
    if isinstance(payload, list):
        return b"", 0
    data = _str_to_bytes(payload if isinstance(payload, str) else str(payload or ""))
    cte = _main_value(_raw_get(part, "content-transfer-encoding"))
    if cte in _UU_ENCODINGS:
        try:
            decoded = part.get_payload(decode=True)
            data = decoded if isinstance(decoded, bytes) else data
        except Exception:  # noqa: BLE001 - keep the raw text
            pass
        if max_size is not None and len(data) > max_size:
            return None, len(data)
        return data, len(data)
    return _transfer_decode(data, cte, max_size)


def _transfer_decode(
    data: bytes, cte: str, max_size: int | None = None
) -> tuple[bytes | None, int]:
    """Undo base64 / quoted-printable (anything else is kept as is): (data, size); data is
    None when over max_size.  uuencode needs the part and is _leaf_bytes' job."""
    if cte == "base64":
        compact = _B64_JUNK_RE.sub(b"", data)
        estimate = len(compact) * 3 // 4
        if max_size is not None and estimate - 3 > max_size:
            return None, estimate  # clearly too big: do not even decode it
        data = _b64_lenient(compact)
    elif cte == "quoted-printable":
        data = binascii.a2b_qp(data)
    if max_size is not None and len(data) > max_size:
        return None, len(data)
    return data, len(data)


def _serialize(msg: Message, chunks: list[bytes], depth: int = 0) -> None:
    """Re-serialize a parsed message without email.generator (its folding is quadratic)."""
    for name, value in msg.raw_items():
        chunks.append(_str_to_bytes(f"{name}: {value}\r\n"))
    chunks.append(b"\r\n")
    payload = _payload(msg)
    if not isinstance(payload, list):
        chunks.append(_str_to_bytes(str(payload or "")))
        return
    if depth >= _MAX_DEPTH:
        return
    if msg.get_content_maintype() == "multipart":
        boundary = _str_to_bytes(msg.get_boundary() or "lapakd-boundary")
        if msg.preamble:
            chunks.append(_str_to_bytes(msg.preamble) + b"\r\n")
        for sub in payload:
            if isinstance(sub, Message):
                chunks += [b"--", boundary, b"\r\n"]
                _serialize(sub, chunks, depth + 1)
                chunks.append(b"\r\n")
        chunks += [b"--", boundary, b"--\r\n"]
        if msg.epilogue:
            chunks.append(_str_to_bytes(msg.epilogue))
    else:
        for sub in payload:
            if isinstance(sub, Message):
                _serialize(sub, chunks, depth + 1)


def _encoded_copy(inner: Message, cte: str) -> Message:
    """A leaf holding the encoded text of a wrongly parsed encoded message/rfc822."""
    copy = Message(policy=_POLICY)
    copy["Content-Transfer-Encoding"] = cte
    payload = _payload(inner)
    copy.set_payload(payload if isinstance(payload, str) else "")
    return copy
