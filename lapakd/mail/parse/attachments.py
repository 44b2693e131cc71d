"""Attachment types, extensions, magic-byte sniffing, filenames and sizes."""

import re

from lapakd.mail.filenames import clean_filename
from lapakd.mail.parse.decoding import _decode_8bit
from lapakd.mail.parse.headers import _decode_header

_TYPE_EXT = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/gif": "gif",
    "image/webp": "webp",
    "image/heic": "heic",
    "image/heif": "heif",
    "image/bmp": "bmp",
    "image/tiff": "tif",
    "image/svg+xml": "svg",
    "application/pdf": "pdf",
    "video/mp4": "mp4",
    "video/quicktime": "mov",
    "video/3gpp": "3gp",
    "audio/mpeg": "mp3",
    "audio/ogg": "ogg",
    "audio/mp4": "m4a",
    "audio/amr": "amr",
    "audio/aac": "aac",
    "audio/x-wav": "wav",
    "application/msword": "doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "application/vnd.ms-powerpoint": "ppt",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "pptx",
    "application/zip": "zip",
    "text/plain": "txt",
    "text/html": "html",
    "text/csv": "csv",
    "text/calendar": "ics",
    "text/vcard": "vcf",
    "text/x-vcard": "vcf",
    "message/rfc822": "eml",
    "application/octet-stream": "bin",
}
_EXT_TYPE = {ext: ctype for ctype, ext in _TYPE_EXT.items() if ext != "bin"}
_EXT_TYPE.update({"jpeg": "image/jpeg", "jpe": "image/jpeg", "tiff": "image/tiff"})
_CTYPE_ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "image/x-png": "image/png",
    "application/x-pdf": "application/pdf",
}
_GENERIC_TYPES = frozenset(
    {"application/octet-stream", "application/x-octet-stream", "application/binary",
     "binary/octet-stream", "application/unknown", "application/download",
     "application/force-download"}
)  # fmt: skip
_CTYPE_RE = re.compile(r"[a-z0-9][a-z0-9!#$&.+^_-]{0,63}/[a-z0-9][a-z0-9!#$&.+^_-]{0,126}")
_SIMPLE_SUBTYPE_RE = re.compile(r"[a-z0-9]{1,8}")


def _ext_for(ctype: str) -> str:
    ext = _TYPE_EXT.get(ctype)
    if ext:
        return ext
    subtype = ctype.partition("/")[2]
    return subtype if _SIMPLE_SUBTYPE_RE.fullmatch(subtype) else "bin"


def _sniff(data: bytes) -> str | None:
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in (b"heic", b"heix", b"mif1", b"msf1", b"heim", b"heis"):
            return "image/heic"
        return "video/quicktime" if brand == b"qt  " else "video/mp4"
    return None


def _refine_ctype(ctype: str, filename: str | None, data: bytes) -> str:
    ctype = _CTYPE_ALIASES.get(ctype, ctype)
    if not _CTYPE_RE.fullmatch(ctype):
        ctype = "application/octet-stream"
    if ctype in _GENERIC_TYPES:
        ext = filename.rpartition(".")[2].lower() if filename and "." in filename else ""
        ctype = _EXT_TYPE.get(ext) or _sniff(data) or "application/octet-stream"
    return ctype


def _sanitize_filename(raw: str | None) -> str | None:
    """The decoded name made safe by `lapakd.filenames.clean_filename` (the one sanitiser)."""
    if not raw:
        return None
    name = raw[:1000]
    name = _decode_header(name) if "=?" in name else _decode_8bit(name)
    return clean_filename(name)


def _human_size(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB"
    if size >= 1024:
        return f"{size // 1024} KB"
    return f"{size} bytes"
