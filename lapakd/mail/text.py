"""What every outgoing mail's text is made with: the templates, dates as Indonesians write them,
header-safe text and Message-IDs.

Shared by the intake and routing mails (`delivery.compose`) and the follow-up mails
(`lifecycle.notices`); imports nothing of lapakd, so any stage may use it.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from datetime import datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from lapakd import channels

# The plain-text mail templates (lapakd/mail/templates/*.txt.j2).
templates = Environment(
    loader=PackageLoader("lapakd.mail", "templates"),
    autoescape=False,  # plain-text mail; nothing here is HTML
    undefined=StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    auto_reload=False,  # package files: no stat() of the template on every mail
)

_DAYS = ("Senin", "Selasa", "Rabu", "Kamis", "Jumat", "Sabtu", "Minggu")
_MONTHS = (
    "Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus", "September",
    "Oktober", "November", "Desember",
)
TZ_NAMES = {"Asia/Jakarta": "WIB", "Asia/Makassar": "WITA", "Asia/Jayapura": "WIT"}


def tanggal(dt: datetime | None, tz: Any, tz_name: str | None = None, time: bool = True) -> str:
    """`Sabtu, 28 November 2026 18.43 WIB` — dates as Indonesians write them."""
    if dt is None:
        return "-"
    local = dt.astimezone(tz)
    text = f"{_DAYS[local.weekday()]}, {local.day} {_MONTHS[local.month - 1]} {local.year}"
    if time:
        text += f" {local:%H.%M} {tz_name or local.tzname()}"
    return text


_CONTROLS = re.compile("[\x00-\x1f\x7f]")


def header_text(value: str, limit: int = 200) -> str:
    """One line, no control characters: safe to put into a header."""
    return " ".join(_CONTROLS.sub(" ", value).split())[:limit]


def first_words(text: str, count: int = 8) -> str:
    words = header_text(text, 400).split()
    short = " ".join(words[:count])
    return short + ("…" if len(words) > count else "")


def contact_line(c: sqlite3.Row) -> str:
    """The forward's "Kontak pengadu" line; lifecycle.add_update keeps it out of every answer."""
    who = c["sender"] or "-"
    name = c["sender_name"]
    label = channels.long_label(c["channel"])
    return f"{name} <{who}> ({label})" if name else f"{who} ({label})"


def make_message_id(dedupe_key: str, ticket: str | None, domain: str) -> str:
    """An outbox row's Message-ID: derived from its dedupe key, so every resend bears the same."""
    digest = hashlib.sha256(dedupe_key.encode()).hexdigest()[:16]
    return f"{ticket or 'lapakd'}.{digest}@{domain}"


def message_ids(value: Any) -> list[str]:
    """The ids of a References / In-Reply-To value (a header string or a list of them),
    without their angle brackets."""
    if not value:
        return []
    if isinstance(value, str):
        found = re.findall(r"<([^<>\s]+)>", value)
        return found or [v.strip("<> ") for v in value.split() if v.strip("<> ")]
    out: list[str] = []
    for v in value:
        out.extend(message_ids(v))
    return out
