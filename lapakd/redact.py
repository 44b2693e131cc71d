"""Redaction of personal data in text that is published or relayed.

`redact(text)` is the ONE function for this: the public site, open data and agency answers all
pass citizen text through it. Each pattern replaces what it finds with a visible marker, so a
reader knows something was removed. Patterns err on the side of hiding: a long digit run that
might be an account number is hidden; dates, times, ticket numbers (LA-2026-000123), RT/RW,
postcodes and amounts with thousands dots (Rp 1.500.000) stay.
"""

from __future__ import annotations

import re
from collections.abc import Callable

NUMBER = "[nomor disembunyikan]"
EMAIL = "[email disembunyikan]"
HANDLE = "[akun disembunyikan]"
LINK = "[tautan disembunyikan]"

# Not preceded by a word character, '-', '+', '/' inside a word run or another digit group.
_START = r"(?<![\w+\-])"
_END = r"(?![\w\-])"

_DATE_LIKE = re.compile(r"^\d{1,4}-\d{1,2}-\d{1,4}$")


def _account(match: re.Match[str]) -> str:
    value = match.group(0)
    digits = sum(c.isdigit() for c in value)
    if _DATE_LIKE.match(value) or digits < 10:
        return value  # a date (2026-03-12, 12-03-2026) or a short code stays
    return NUMBER


_PATTERNS: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    # URLs carrying a query string (tracking ids, tokens, phone numbers in wa.me links).
    (re.compile(r"\b(?:https?://|www\.)[^\s<>\"']*\?[^\s<>\"']*", re.IGNORECASE), LINK),
    # Email addresses (also obfuscated "nama [at] domain.com").
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE), EMAIL),
    (re.compile(r"\b[\w.+-]+\s*[\[(]\s*at\s*[\])]\s*[\w-]+(?:\s*(?:\.|[\[(]\s*dot\s*[\])])\s*"
                r"[\w-]+)+", re.IGNORECASE), EMAIL),
    # Social handles: @name (after emails are gone).
    (re.compile(r"(?<![\w@])@[A-Za-z0-9_](?:[A-Za-z0-9_.]{0,28}[A-Za-z0-9_])?"), HANDLE),
    # NIK / KK: 16 digits, contiguous or in groups (3302 1234 5678 0001, 3302.1234.5678.0001).
    (re.compile(_START + r"\d{4}[ .\-]?\d{4}[ .\-]?\d{4}[ .\-]?\d{4}" + r"(?!\d)"), NUMBER),
    # Dash-grouped account numbers (BRI style 0123-01-012345-50-1); dates stay.
    (re.compile(_START + r"\d{2,6}(?:-\d{1,8}){2,}" + _END), _account),
    # Mobile phones: 08.., 628.., +62 8.. with spaces, dots or dashes; 10-14 digits in all.
    (re.compile(r"(?<![\w+\-])(?:\+\s?62|62|0)[\s.\-]?\(?8\d{1,2}\)?(?:[\s.\-]?\d){6,10}(?!\d)"),
     NUMBER),
    # Landlines: (0281) 635123, 0281-635123, +62 281 635123.
    (re.compile(r"(?<![\w+\-])(?:\(0\d{2,3}\)|0\d{2,3}|\+\s?62[\s.\-]?\(?\d{2,3}\)?)"
                r"[\s.\-]?\d{3,4}[\s.\-]?\d{2,4}(?!\d)"), NUMBER),
    # Account-like digit runs: 10+ contiguous digits. Ticket numbers (LA-2026-000123) are
    # protected by the look-behind.
    (re.compile(_START + r"\d{10,}" + r"(?!\d)"), NUMBER),
]


def redact(text: str) -> str:
    """Hide phone numbers, emails, handles, NIK/KK, account numbers and URLs with queries."""
    if not text:
        return ""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text
