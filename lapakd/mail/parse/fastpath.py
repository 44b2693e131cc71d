"""The fast path: a plain single-part text/plain mail read without email's parser."""

import re

from lapakd.mail.parse.body import _Piece
from lapakd.mail.parse.headers import _HeaderIndex
from lapakd.mail.parse.limits import _MAX_CONTENT_HEADER, _MAX_CONTENT_PARAMS
from lapakd.mail.parse.mime import (
    _bound_header,
    _main_value,
    _too_many_containers,
    _transfer_decode,
)

# One header with its continuation lines, as email's feedparser reads it (name: printable ASCII
# without ':'; a lone CR would split lines differently, so it is not accepted).
_SIMPLE_HEADER_RE = re.compile(r"([!-9;-~]{1,200}):([^\r\n]*\r?\n(?:[ \t][^\r\n]*\r?\n)*)")
_SIMPLE_BLANK_RE = re.compile(rb"\n\r?\n")
# "text/plain" and simple name=value parameters only: anything email's parameter parser could
# read differently (RFC 2231 names with '*', escapes, bare attributes, <...>, ';' in quotes)
# falls back to the full path.  Values: an RFC 2045 token or a plain quoted string.
_SIMPLE_PARAM = (
    r"[ \t\r\n]*([A-Za-z0-9!#$%&'+.^_`{|}~-]+)[ \t\r\n]*=[ \t\r\n]*"
    r"(?:([A-Za-z0-9!#$%&'*+.^_`{|}~-]+)|\"([ !#-:=?-\[\]-~]*)\")[ \t\r\n]*"
)
_SIMPLE_CTYPE_RE = re.compile(
    rf"(?i)[ \t\r\n]*text/plain[ \t\r\n]*((?:;{_SIMPLE_PARAM})*);?[ \t\r\n]*"
)
_SIMPLE_PARAM_RE = re.compile(_SIMPLE_PARAM)
_SIMPLE_CTES = frozenset({"", "7bit", "8bit", "binary", "quoted-printable", "base64"})
_SIMPLE_MAX_HEADERS = 200


def _simple_text(raw: bytes) -> tuple[_HeaderIndex, _Piece] | None:
    """(headers, body piece) for a plain single-part text/plain mail, else None.

    Most complaints are exactly that, and email's parser plus our MIME walk cost more than the
    rest of parsing.  Only input whose headers and body the full path would read in exactly the
    same way is accepted (no defects, no Content-Disposition, simple Content-Type parameters);
    everything else returns None and goes through the full path."""
    blank = _SIMPLE_BLANK_RE.search(raw)
    if blank is None or blank.start() == 0 or _too_many_containers(raw):
        return None
    block = raw[: blank.start() + 1].decode("ascii", "surrogateescape")  # as BytesParser does
    index = _HeaderIndex(())
    headers = index.map
    pos = count = 0
    match = _SIMPLE_HEADER_RE.match
    while pos < len(block):
        found = match(block, pos)
        count += 1
        if found is None or count > _SIMPLE_MAX_HEADERS:
            return None
        # compat32's header_source_parse: value after ':' left-stripped, line ends removed
        name, value = found.group(1), found.group(2).lstrip(" \t").rstrip("\r\n")
        if len(value) > _MAX_CONTENT_HEADER or value.count(";") > _MAX_CONTENT_PARAMS:
            name, value = _bound_header(name, value)  # below both, the caps change nothing
        # as _HeaderIndex fills its map (the name has no whitespace to strip)
        values = headers.setdefault(name.lower(), [])
        if len(values) < 50:
            values.append(value)
        pos = found.end()
    if index.has("content-disposition"):
        return None
    cte = _main_value(index.first("content-transfer-encoding"))
    if cte not in _SIMPLE_CTES:
        return None
    params: dict[str, str] = {}
    ctype = index.first("content-type")
    if ctype is not None:
        if not (full := _SIMPLE_CTYPE_RE.fullmatch(ctype)):
            return None
        for param in _SIMPLE_PARAM_RE.finditer(full.group(1)):
            token, quoted = param.group(2), param.group(3)
            params.setdefault(param.group(1).lower(), token if token is not None else quoted)
    if "name" in params:
        return None  # a named text part is an attachment
    data, _ = _transfer_decode(raw[blank.end() :], cte)
    piece = _Piece(
        None,
        "plain",
        charset=params.get("charset"),
        flowed=params.get("format", "").lower() == "flowed",
        delsp=params.get("delsp", "").lower() == "yes",
        data=data,
    )
    return index, piece
