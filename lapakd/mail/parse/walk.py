"""The MIME walk: body pieces and attachments collected from the parsed tree."""

from email.message import Message

from lapakd.mail.filenames import MAX_FILENAME
from lapakd.mail.parse.attachments import (
    _CTYPE_RE,
    _ext_for,
    _human_size,
    _refine_ctype,
    _sanitize_filename,
)
from lapakd.mail.parse.body import _clean_body, _Piece, _unflow
from lapakd.mail.parse.bounces import _delivery_status, _returned_headers
from lapakd.mail.parse.decoding import _decode_bytes, _str_to_bytes
from lapakd.mail.parse.htmltext import _html_input_limit, _html_to_text
from lapakd.mail.parse.limits import _MAX_DEPTH, _MAX_HEADERS_SCANNED, _MAX_PARTS
from lapakd.mail.parse.mime import (
    _encoded_copy,
    _leaf_bytes,
    _main_value,
    _params,
    _parse_bytes,
    _payload,
    _raw_get,
    _serialize,
)
from lapakd.mail.parse.model import Attachment, _cap_with_marker, _Notes

_SKIP_TYPES = frozenset(
    {"application/pgp-signature", "application/pkcs7-signature",
     "application/x-pkcs7-signature", "application/pgp-encrypted"}
)  # fmt: skip
_DSN_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
_MDN_TYPES = frozenset(
    {"message/disposition-notification", "message/global-disposition-notification"}
)
_RETURNED_HEADER_TYPES = frozenset({"text/rfc822-headers", "message/global-headers"})
_ORIGINAL_TYPES = frozenset({"message/rfc822", "message/global"})


def _alternative_rank(part: Message) -> int:
    ctype = part.get_content_type()
    if ctype == "text/plain":
        return 0
    if ctype.startswith("multipart/"):
        return 1
    return 2 if ctype == "text/html" else 3


class _Walker:
    def __init__(
        self,
        *,
        max_text_chars: int,
        max_attachments: int,
        max_attachment_bytes: int,
        bounce_context: bool,
        notes: _Notes,
    ) -> None:
        self.max_text_chars = max_text_chars
        self.max_attachments = max_attachments
        self.max_attachment_bytes = max_attachment_bytes
        self.bounce_context = bounce_context
        self.notes = notes
        self.attachments: list[Attachment] = []
        self._names: set[str] = set()
        self.over_count = 0
        self.over_names: list[str] = []
        self.parts = 0
        self.parts_skipped = 0
        self.defects: set[str] = set()
        self.dsn_seen = False
        self.dsn_status: str | None = None
        self.originals: list[list[tuple[str, str]]] = []

    # -- tree

    def visit(
        self, part: Message, texts: list[_Piece] | None, depth: int = 0, *, resource: bool = False
    ) -> None:
        """Collect body pieces into ``texts`` (None: text not wanted here) and attachments."""
        if self.parts >= _MAX_PARTS:
            self.parts_skipped += 1
            return
        self.parts += 1
        for defect in part.defects[:5]:
            self.defects.add(type(defect).__name__)
        if depth > _MAX_DEPTH:
            self.notes.add("MIME nesting too deep; inner parts ignored")
            return
        ctype = part.get_content_type()
        payload = _payload(part)
        if ctype in _DSN_TYPES:
            self._collect_dsn(payload, part)
        elif ctype in _MDN_TYPES or ctype in _SKIP_TYPES:
            return
        elif ctype in _RETURNED_HEADER_TYPES:
            self._collect_returned_headers(part, payload)
        elif isinstance(payload, list) and ctype.startswith("multipart/"):
            children = [child for child in payload if isinstance(child, Message)]
            self._multipart(part, ctype, children, texts, depth)
        elif isinstance(payload, list):
            self._message(part, ctype, payload, depth, resource)
        else:
            self._leaf(part, ctype, texts, resource)

    def _multipart(
        self,
        part: Message,
        ctype: str,
        children: list[Message],
        texts: list[_Piece] | None,
        depth: int,
    ) -> None:
        subtype = ctype.partition("/")[2]
        if subtype == "alternative":
            self._alternative(children, texts, depth)
        elif subtype == "related":
            root = self._related_root(part, children)
            for child in children:
                is_root = child is root
                self.visit(child, texts if is_root else None, depth + 1, resource=not is_root)
        elif subtype == "encrypted":
            self.notes.add("message is encrypted (multipart/encrypted); content not readable")
        elif subtype in ("signed", "report"):
            # first part is the content / the human-readable report; the rest is machinery
            for index, child in enumerate(children):
                self.visit(child, texts if index == 0 else None, depth + 1)
        else:  # mixed, digest, parallel and unknown subtypes
            for child in children:
                self.visit(child, texts, depth + 1)

    def _alternative(self, children: list[Message], texts: list[_Piece] | None, depth: int) -> None:
        # Every branch is walked (inline photos may sit in the HTML branch); text is chosen after.
        branches: list[list[_Piece]] = []
        for child in children:
            branch: list[_Piece] = []
            self.visit(child, branch, depth + 1)
            branches.append(branch)
        if texts is None:
            return
        order = sorted(range(len(children)), key=lambda i: (_alternative_rank(children[i]), i))
        for index in order:
            if any(self.piece_text(piece).strip() for piece in branches[index]):
                texts.extend(branches[index])
                return

    @staticmethod
    def _related_root(part: Message, children: list[Message]) -> Message | None:
        start = _params(part).get("start", "").strip().strip("<>")
        if start:
            for child in children:
                if (_raw_get(child, "content-id") or "").strip().strip("<>") == start:
                    return child
        return children[0] if children else None

    def _message(
        self, part: Message, ctype: str, payload: list[object], depth: int, resource: bool
    ) -> None:
        inner = next((item for item in payload if isinstance(item, Message)), None)
        if inner is None:
            return
        cte = _main_value(_raw_get(part, "content-transfer-encoding"))
        if cte in ("base64", "quoted-printable") and not inner.keys():
            # Illegal but seen: an encoded message/rfc822; decode and parse it again.
            data, _ = _leaf_bytes(_encoded_copy(inner, cte))
            inner, _ = _parse_bytes(data or b"", self.notes)
        if ctype in _ORIGINAL_TYPES and self.bounce_context:
            self.originals.append(list(inner.raw_items())[:_MAX_HEADERS_SCANNED])
            return
        if ctype not in _ORIGINAL_TYPES:
            return  # message/partial, message/external-body: nothing usable
        if len(self.attachments) >= self.max_attachments:
            self._over_limit("forwarded message")
            return
        chunks: list[bytes] = []
        _serialize(inner, chunks, depth)
        data = b"".join(chunks)
        filename = self._filename(part)
        if len(data) > self.max_attachment_bytes:
            self._too_big(filename or "forwarded message", len(data))
            return
        disposition = _main_value(_raw_get(part, "content-disposition"))
        self._keep(filename, "message/rfc822", data, disposition == "inline" or resource)

    def _leaf(self, part: Message, ctype: str, texts: list[_Piece] | None, resource: bool) -> None:
        params = _params(part)
        disposition = _main_value(_raw_get(part, "content-disposition"))
        raw_name = _params(part, "content-disposition").get("filename") or params.get("name")
        has_name = bool(raw_name)
        broken_multipart = ctype.startswith("multipart/")
        is_text = ctype in ("text/plain", "text/html") or broken_multipart
        if is_text and not has_name and disposition != "attachment":
            if broken_multipart:
                self.notes.add("multipart without usable boundary; body kept as plain text")
            if texts is not None:
                texts.append(
                    _Piece(
                        part,
                        "html" if ctype == "text/html" else "plain",
                        charset=params.get("charset"),
                        flowed=params.get("format", "").lower() == "flowed",
                        delsp=params.get("delsp", "").lower() == "yes",
                    )
                )
            return
        declared = _main_value(_raw_get(part, "content-type"))
        if declared and not _CTYPE_RE.fullmatch(declared):
            ctype = "application/octet-stream"  # email falls back to text/plain; guess instead
        filename = _sanitize_filename(raw_name)
        label = filename or ctype
        if len(self.attachments) >= self.max_attachments:
            self._over_limit(label)
            return
        data, size = _leaf_bytes(part, self.max_attachment_bytes)
        if data is None:
            self._too_big(label, size)
            return
        if not data:
            self.notes.add(f"empty attachment {label} skipped")
            return
        inline = (
            disposition == "inline"
            or resource
            or (ctype.startswith("image/") and _raw_get(part, "content-id") is not None)
        )
        self._keep(filename, _refine_ctype(ctype, filename, data), data, inline)

    # -- attachments

    @staticmethod
    def _filename(part: Message) -> str | None:
        raw = _params(part, "content-disposition").get("filename") or _params(part).get("name")
        return _sanitize_filename(raw)

    def _keep(self, filename: str | None, ctype: str, data: bytes, inline: bool) -> None:
        name = filename or f"lampiran-{len(self.attachments) + 1}.{_ext_for(ctype)}"
        self.attachments.append(Attachment(self._unique(name), ctype, data, inline))

    def _unique(self, name: str) -> str:
        if name.lower() not in self._names:
            self._names.add(name.lower())
            return name
        stem, dot, ext = name.rpartition(".")
        if not dot or not stem:
            stem, ext = name, ""
        for number in range(2, _MAX_PARTS + 3):
            suffix = f"-{number}" + (f".{ext}" if ext else "")
            candidate = stem[: MAX_FILENAME - len(suffix)] + suffix
            if candidate.lower() not in self._names:
                self._names.add(candidate.lower())
                return candidate
        return name  # unreachable: fewer attachments than candidates

    def _over_limit(self, label: str) -> None:
        self.over_count += 1
        if len(self.over_names) < 5:
            self.over_names.append(label)

    def _too_big(self, label: str, size: int) -> None:
        limit = _human_size(self.max_attachment_bytes)
        self.notes.add(
            f"attachment {label} ({_human_size(size)}) over the limit of {limit}, not kept"
        )

    # -- bounces

    def _collect_dsn(self, payload: object, part: Message) -> None:
        self.dsn_seen = True
        status = _delivery_status(part, payload)
        if status and self.dsn_status is None:
            self.dsn_status = status

    def _collect_returned_headers(self, part: Message, payload: object) -> None:
        self.originals.append(_returned_headers(part, payload))

    # -- text

    def piece_text(self, piece: _Piece) -> str:
        if piece.text is not None:
            return piece.text
        if piece.data is not None:
            data = piece.data
        elif piece.kind == "raw":
            payload = _payload(piece.part) if piece.part is not None else None
            data = _str_to_bytes(payload if isinstance(payload, str) else "")
        else:
            data = (_leaf_bytes(piece.part)[0] if piece.part is not None else None) or b""
        if piece.kind == "html":
            byte_cap = 4 * _html_input_limit(self.max_text_chars)
        else:
            byte_cap = 4 * self.max_text_chars + 4
        cut = len(data) > byte_cap
        text, note = _decode_bytes(data[:byte_cap], piece.charset, final=not cut)
        if note:
            self.notes.add(f"body: {note}")
        if piece.kind == "html":
            text, cut_input, cut_output = _html_to_text(text, self.max_text_chars)
            if cut or cut_input:
                self.notes.add("HTML body too large; only its beginning was converted")
            cut = cut or cut_input or cut_output
        elif piece.flowed:
            text = _unflow(text.replace("\r\n", "\n").replace("\r", "\n"), piece.delsp)
        piece.text = _clean_body(text)
        piece.cut = cut
        return piece.text

    def assemble(self, pieces: list[_Piece]) -> str:
        out: list[str] = []
        total = 0
        cut = False
        for piece in pieces:
            if total > self.max_text_chars:
                cut = True
                break
            text = self.piece_text(piece)
            cut = cut or piece.cut
            if text.strip():
                out.append(text)
                total += len(text) + 2
        text = "\n\n".join(out)
        if cut or len(text) > self.max_text_chars:
            self.notes.add(f"body truncated to {self.max_text_chars} characters")
            text = _cap_with_marker(text, self.max_text_chars)
        return text
