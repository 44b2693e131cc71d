"""Tiny PNG bar images for the digest email, with zlib and struct only (no image library).

Mail clients do not show inline SVG and must not fetch images from the web, so each bar of a
chart is a small PNG embedded in the email (`cid:`), drawn at its exact pixel width. Labels and
numbers stay in the HTML next to the bars, where they are crisp and translatable.
"""

from __future__ import annotations

import struct
import zlib

Color = tuple[int, int, int]

GREEN: Color = (46, 139, 87)
RED: Color = (200, 55, 45)
AMBER: Color = (230, 160, 30)
BLUE: Color = (45, 110, 190)
GREY: Color = (150, 150, 150)
TRACK: Color = (236, 236, 236)


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(
        ">I", zlib.crc32(tag + data) & 0xFFFFFFFF
    )


def png(width: int, height: int, row: bytes) -> bytes:
    """An RGB PNG whose every scanline is `row` (width * 3 bytes)."""
    raw = b"".join(b"\x00" + row for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + _chunk(b"IDAT", zlib.compress(raw, 9))
        + _chunk(b"IEND", b"")
    )


def bar(segments: list[tuple[int, Color]], width: int, height: int = 14) -> bytes:
    """A horizontal bar: coloured segments (pixel widths) from the left, then a light track."""
    width = max(width, 1)
    row = bytearray()
    for px, color in segments:
        row += bytes(color) * max(px, 0)
    row = row[: width * 3]
    row += bytes(TRACK) * (width - len(row) // 3)
    return png(width, height, bytes(row))


def scale(values: list[float], max_px: int) -> list[int]:
    """Pixel widths for values, the largest at max_px; a non-zero value is at least 2 px."""
    top = max(values, default=0) or 1
    return [0 if v <= 0 else max(2, round(v * max_px / top)) for v in values]
