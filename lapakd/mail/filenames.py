"""Attachment names from outside (mail parts, WhatsApp documents, Graph/X media), made safe.

A name reaches the store, the forward mail's Content-Disposition and an agency's disk, so every
name goes through `safe_filename` (mailparse, the channel adapters, the store and the forward
composer call it): the last path component only, no control or bidi characters, no characters
Windows refuses, no leading dots (hidden files), no device names, at most `MAX_FILENAME`
characters with the extension kept.
"""

from __future__ import annotations

import re
import unicodedata

MAX_FILENAME = 150
_DROP_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_RESERVED_NAME = re.compile(r"(?i)(con|prn|aux|nul|com\d|lpt\d)(\..*)?")
_MAX_INPUT = 1000


def clean_filename(raw: str | None) -> str | None:
    """The safe form of `raw`, or None when nothing usable is left."""
    if not raw:
        return None
    name = str(raw)[:_MAX_INPUT].replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(
        "_" if ch in '<>:"|?*' else ch
        for ch in name
        if unicodedata.category(ch) not in _DROP_CATEGORIES
    )
    name = " ".join(name.split()).strip(" .")
    if not name:
        return None
    if _RESERVED_NAME.fullmatch(name):
        name = "_" + name  # Windows device names
    if len(name) > MAX_FILENAME:
        stem, dot, ext = name.rpartition(".")
        if dot and stem and 0 < len(ext) <= 16:
            name = stem[: MAX_FILENAME - len(ext) - 1].rstrip(" .") + "." + ext
        else:
            name = name[:MAX_FILENAME].rstrip(" .")
    return name or None


def safe_filename(raw: str | None, fallback: str) -> str:
    """`clean_filename(raw)`, else the (cleaned) `fallback` — a name lapakd made up."""
    return clean_filename(raw) or clean_filename(fallback) or "lampiran"
