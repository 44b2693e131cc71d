"""Citizens' photos on the public site (only with `[public] publish_photos = true`).

Only JPEG and PNG are published, named by their sha256 (never the original filename), and
with every metadata block removed: JPEG APP1..APP15 (EXIF, XMP, IPTC: GPS position, camera
serial, author) and comments; PNG text/time/EXIF chunks.
"""

from __future__ import annotations

import sqlite3
import struct
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lapakd.store import Store

VERSION = "1"
TYPES = {"image/jpeg": "jpg", "image/png": "png"}
_PNG_SIG = b"\x89PNG\r\n\x1a\n"
_PNG_DROP = {b"tEXt", b"iTXt", b"zTXt", b"eXIf", b"tIME"}


class NotAnImage(ValueError):
    pass


def rel_path(sha: str, ctype: str) -> str:
    return f"foto/{sha}.{TYPES[ctype]}"


def published(conn: sqlite3.Connection, complaint_ids: list[int]) -> Iterator[tuple[str, str]]:
    """(sha256, content_type) of the photos of published complaints."""
    wanted = set(complaint_ids)
    seen = set()
    for cid, sha, ctype in conn.execute(
        "SELECT complaint_id, sha256, content_type FROM attachments"
        " WHERE content_type IN ('image/jpeg', 'image/png') ORDER BY id"
    ):
        if cid in wanted and sha not in seen:
            seen.add(sha)
            yield sha, ctype


def stripped(store: Store, sha: str, ctype: str) -> bytes:
    data = store.attachment_path(sha).read_bytes()
    return strip_jpeg(data) if ctype == "image/jpeg" else strip_png(data)


def strip_jpeg(data: bytes) -> bytes:
    if data[:2] != b"\xff\xd8":
        raise NotAnImage("not a JPEG")
    out = bytearray(b"\xff\xd8")
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise NotAnImage("broken JPEG segment")
        marker = data[i + 1]
        if marker == 0xDA:  # start of scan: the rest is image data
            out += data[i:]
            return bytes(out)
        if marker in (0x01,) or 0xD0 <= marker <= 0xD7:
            out += data[i:i + 2]
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2:i + 4])
        segment = data[i:i + 2 + length]
        if not (0xE1 <= marker <= 0xEF or marker == 0xFE):  # keep APP0 (JFIF), drop the rest
            out += segment
        i += 2 + length
    raise NotAnImage("JPEG without image data")


def strip_png(data: bytes) -> bytes:
    if not data.startswith(_PNG_SIG):
        raise NotAnImage("not a PNG")
    out = bytearray(_PNG_SIG)
    i = len(_PNG_SIG)
    while i + 8 <= len(data):
        (length,) = struct.unpack(">I", data[i:i + 4])
        ctype = data[i + 4:i + 8]
        chunk = data[i:i + 12 + length]
        if ctype not in _PNG_DROP:
            out += chunk
        i += 12 + length
        if ctype == b"IEND":
            break
    return bytes(out)
