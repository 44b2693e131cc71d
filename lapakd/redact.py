"""Redaction of personal data in text that is published or relayed.

`redact(text, names)` is the ONE function for this: the public site, open data and agency
answers all pass citizen text through it. Each pattern replaces what it finds with a visible
marker, so a reader knows something was removed. Patterns err on the side of hiding: a long
digit run that might be an account number is hidden; dates, times, ticket numbers
(LA-2026-000123), RT/RW, postcodes and amounts with thousands dots (Rp 1.500.000) stay.

What is removed: phone numbers in every usual notation (regexes first, then the
`phonenumbers` matcher for region ID as a second pass), emails, handles, NIK/KK and account
numbers, URLs with a query, coordinates in any notation and map links, and the sender's known
names (the full name and each of its words of 4+ letters, in any case). `complaint=True` also
cuts a sign-off block ("Hormat saya,\\nRahmat Hidayat") from the end of a complaint.

`extract_location(text)` finds the coordinates a text carries (a decimal pair, DMS, a map
link, a geo: URI) so that they can be kept as fields instead.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable

from phonenumbers import Leniency, PhoneNumberMatcher

NUMBER = "[nomor disembunyikan]"
EMAIL = "[email disembunyikan]"
HANDLE = "[akun disembunyikan]"
LINK = "[tautan disembunyikan]"
LOCATION = "[lokasi disembunyikan]"
NAME = "[nama disembunyikan]"
_MARKER_WORDS = {"nomor", "email", "akun", "tautan", "lokasi", "nama", "disembunyikan"}

# Not preceded by a word character, '-', '+', '/' inside a word run or another digit group.
_START = r"(?<![\w+\-])"
_END = r"(?![\w\-])"

_DATE_LIKE = re.compile(r"^\d{1,4}[-./]\d{1,2}[-./]\d{1,4}$")
_AMOUNT = re.compile(r"^[1-9]\d{0,2}(?:\.\d{3})+(?:,\d+)?$")  # 1.500.000 / 62.500.000,00


def _account(match: re.Match[str]) -> str:
    value = match.group(0)
    digits = sum(c.isdigit() for c in value)
    if _DATE_LIKE.match(value) or digits < 10:
        return value  # a date (2026-03-12, 12-03-2026) or a short code stays
    return NUMBER


# -- coordinates --------------------------------------------------------------------------------

# Map services whose links carry (or lead to) a position: the whole link goes.
_MAP_HOSTS = (
    r"(?:[\w-]+\.)*google\.[a-z.]+/maps|maps\.google\.[a-z.]+|goo\.gl/maps|maps\.app\.goo\.gl"
    r"|g\.co/kgs|(?:[\w-]+\.)*openstreetmap\.org|osm\.org|maps\.apple\.com|(?:[\w-]+\.)*waze\.com"
    r"|bing\.com/maps|(?:[\w-]+\.)*here\.com|share\.here\.com"
)
_MAP_URL = re.compile(
    rf"(?:https?://)?(?:www\.)?(?:{_MAP_HOSTS})[^\s<>\"'\])]*", re.IGNORECASE
)
# Cheap test first: the map-link pattern is costly to try at every position of every text.
_MAP_HINT = re.compile(r"google|goo\.gl|g\.co/|openstreetmap|osm\.org|maps\.apple|waze|bing\.com"
                       r"|here\.com", re.IGNORECASE)


def _map_links(text: str) -> str:
    return _MAP_URL.sub(LOCATION, text) if _MAP_HINT.search(text) else text


_GEO_URI = re.compile(r"\bgeo:\s*-?\d{1,3}(?:\.\d+)?\s*,\s*-?\d{1,3}(?:\.\d+)?[^\s<>\"']*",
                      re.IGNORECASE)
_NUM = r"-?\d{1,3}(?:[.,]\d+)?"
# lat: -7.42 long: 109.23 / lintang -7,42 bujur 109,23 / lat=-7.42&lng=109.23
_LABELLED = re.compile(
    rf"\b(?:lat(?:itude)?|lintang)\s*[:=]?\s*(?P<lat>{_NUM})\s*[,;&/]?\s*"
    rf"(?:lon(?:g(?:itude)?)?|lng|bujur)\s*[:=]?\s*(?P<lon>{_NUM})",
    re.IGNORECASE,
)
# 7°25'28.2"S 109°14'02.4"E, 7° 25' LS, 109° 14' BT: any degree-minute value.
_DMS = re.compile(
    r"(?<![\w.])\d{1,3}\s*°\s*\d{1,2}(?:[.,]\d+)?\s*['′’]\s*(?:\d{1,2}(?:[.,]\d+)?\s*(?:[\"″”]|''|′′))?"
    r"(?:\s*(?:[NSEW]|LU|LS|BT|BB)\b)?",
    re.IGNORECASE,
)
# 7.4245°S 109.2340°E, 7.4245 LS 109.2340 BT, -7.4245° 109.2340°
_DEG_HEMI = re.compile(
    r"(?<![\w.])-?\d{1,3}(?:[.,]\d+)?\s*(?:°\s*(?:[NSEW]|LU|LS|BT|BB)?|(?:[NSEW]|LU|LS|BT|BB)\b)"
    r"(?=[\s,;]*-?\d{1,3}(?:[.,]\d+)?\s*(?:°|[NSEW]\b|LU\b|LS\b|BT\b|BB\b))"
    r"[\s,;]*-?\d{1,3}(?:[.,]\d+)?\s*°?\s*(?:[NSEW]|LU|LS|BT|BB)?\b",
)
# Bare decimal pairs: -7.4245, 109.2340 / -7,4245 109,2340 / (-7.42,109.23)
_PAIR_DOT = re.compile(
    r"(?<![\w.,\-])(?P<lat>-?\d{1,2}\.(?P<lad>\d+))(?:\s*[,;]\s*|\s+)(?P<lon>-?\d{1,3}\.(?P<lod>\d+))"
    r"(?!\w|[.,]\d)"
)
_PAIR_COMMA = re.compile(
    r"(?<![\w.,\-])(?P<lat>-?\d{1,2},(?P<lad>\d+))\s*[;\s]\s*(?P<lon>-?\d{1,3},(?P<lod>\d+))"
    r"(?!\w|[.,]\d)"
)


def _is_coordinate_pair(m: re.Match[str]) -> bool:
    """A decimal pair is taken for coordinates only when it cannot be something else: a signed
    latitude with 2+ decimals each (Indonesia is south of the equator), or 4+ decimals each.
    Times (10.30, 16.00) and amounts (7.500, 10.000) stay."""
    try:
        lat = float(m.group("lat").replace(",", "."))
        lon = float(m.group("lon").replace(",", "."))
    except ValueError:
        return False
    if abs(lat) > 90 or abs(lon) > 180:
        return False
    lad, lod = len(m.group("lad")), len(m.group("lod"))
    signed = m.group("lat").startswith("-") or m.group("lon").startswith("-")
    return (signed and lad >= 2 and lod >= 2) or (lad >= 4 and lod >= 4)


def _pair(m: re.Match[str]) -> str:
    return LOCATION if _is_coordinate_pair(m) else m.group(0)


_COORD_PATTERNS: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    (_LABELLED, LOCATION),
    (_DMS, LOCATION),
    (_DEG_HEMI, LOCATION),
    (_PAIR_DOT, _pair),
    (_PAIR_COMMA, _pair),
]

# Positions inside map links: !3d<lat>!4d<lon> (the place itself), q=/query=/ll=/mlat&mlon,
# /@lat,lon, #map=zoom/lat/lon, geo:lat,lon.
_LINK_POSITIONS = [
    re.compile(r"!3d(?P<lat>-?\d+\.\d+)!4d(?P<lon>-?\d+\.\d+)"),
    re.compile(r"[?&](?:q|query|ll|destination|daddr|center|sll)=(?:loc:)?"
               r"(?P<lat>-?\d+(?:\.\d+)?)(?:,|%2C)\s*(?P<lon>-?\d+(?:\.\d+)?)", re.IGNORECASE),
    re.compile(r"[?&]mlat=(?P<lat>-?\d+(?:\.\d+)?)&mlon=(?P<lon>-?\d+(?:\.\d+)?)"),
    re.compile(r"/@(?P<lat>-?\d+(?:\.\d+)?),(?P<lon>-?\d+(?:\.\d+)?)"),
    re.compile(r"#map=\d+/(?P<lat>-?\d+(?:\.\d+)?)/(?P<lon>-?\d+(?:\.\d+)?)"),
    re.compile(r"^geo:\s*(?P<lat>-?\d+(?:\.\d+)?)\s*,\s*(?P<lon>-?\d+(?:\.\d+)?)", re.IGNORECASE),
]
_HEMI = re.compile(r"([NSEW]|LU|LS|BT|BB)\s*$", re.IGNORECASE)


def _valid(lat: float, lon: float) -> tuple[float, float] | None:
    if abs(lat) <= 90 and abs(lon) <= 180 and (lat, lon) != (0.0, 0.0):
        return lat, lon
    return None


def _dms_value(token: str) -> float | None:
    nums = [float(x.replace(",", ".")) for x in re.findall(r"\d+(?:[.,]\d+)?", token)]
    if not nums:
        return None
    value = nums[0] + (nums[1] / 60 if len(nums) > 1 else 0) + (nums[2] / 3600 if len(nums) > 2
                                                                 else 0)
    hemi = _HEMI.search(token.strip().rstrip("\"″”'′"))
    if token.strip().startswith("-") or (hemi and hemi.group(1).upper() in ("S", "W", "LS",
                                                                             "BB")):
        value = -value
    return value


def extract_location(text: str) -> tuple[float, float] | None:
    """The first position written in `text` (a map link, geo: URI, labelled or bare decimal
    pair, DMS), as (lat, lon); None when there is none. Short links (maps.app.goo.gl/...) hide
    their position and are not followed."""
    if not text:
        return None
    links = [*_MAP_URL.finditer(text)] if _MAP_HINT.search(text) else []
    for link in [*links, *_GEO_URI.finditer(text)]:
        for pattern in _LINK_POSITIONS:
            m = pattern.search(link.group(0))
            if m and (found := _valid(float(m.group("lat")), float(m.group("lon")))):
                return found
    m = _LABELLED.search(text)
    if m:
        found = _valid(float(m.group("lat").replace(",", ".")),
                       float(m.group("lon").replace(",", ".")))
        if found:
            return found
    dms = list(_DMS.finditer(text))
    if len(dms) >= 2:
        a, b = _dms_value(dms[0].group(0)), _dms_value(dms[1].group(0))
        if a is not None and b is not None and (found := _valid(a, b)):
            return found
    m = _DEG_HEMI.search(text)
    if m:
        parts = re.findall(r"-?\d{1,3}(?:[.,]\d+)?\s*°?\s*(?:[NSEW]|LU|LS|BT|BB)?", m.group(0))
        values = [_dms_value(p) for p in parts if p.strip()]
        if len(values) >= 2 and None not in values[:2]:
            found = _valid(values[0], values[1])  # type: ignore[arg-type]
            if found:
                return found
    for pattern in (_PAIR_DOT, _PAIR_COMMA):
        for m in pattern.finditer(text):
            if _is_coordinate_pair(m):
                found = _valid(float(m.group("lat").replace(",", ".")),
                               float(m.group("lon").replace(",", ".")))
                if found:
                    return found
    return None


# -- phone numbers, emails, handles, ids --------------------------------------------------------

# +62 in the ways people write it: +62, (+62), +62 (0), 62 (no plus, only before a separator
# or an 8 for mobiles), or the trunk 0.
_CC = r"(?:\(\s?\+?\s?62\s?\)|\+\s?62(?:[\s.\-]?\(0\))?)"
_LABEL = (
    r"\b(?:no\.?\s*)?(?:tel(?:p|pon|epon|ephone|f)?|phone|ph|hp|handphone|ponsel|mobile|mob|cell"
    r"|fax|faks|wa|whatsapp|kontak|contact)\b\.?\s*[:=]?\s*"
)

_PATTERNS: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    # URLs carrying a query string (tracking ids, tokens, phone numbers in wa.me links).
    (re.compile(r"\b(?:https?://|www\.)[^\s<>\"']*\?[^\s<>\"']*", re.IGNORECASE), LINK),
    # wa.me/6281234567890 and api.whatsapp.com links carry a phone number in the path.
    (re.compile(r"\b(?:https?://)?(?:wa\.me|api\.whatsapp\.com|t\.me)/[^\s<>\"']*",
                re.IGNORECASE), LINK),
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
    # Numbers after a phone label (Tel/HP/Mobile/Fax/WA), foreign ones included: the label stays.
    (re.compile(rf"(?i)(?P<label>{_LABEL})(?P<num>(?:\+|\(\+?)?\d(?:[\s.\-()/]{{0,2}}\d){{6,16}})"
                r"(?!\d)"),
     lambda m: m.group("label") + NUMBER),
    # Mobile phones: 08.., 628.., +62 8.., (+62) 8.., +62 (0) 8.. with any single separators
    # between the digits (08 12 34 56 78 90); 10-14 digits in all.
    (re.compile(rf"(?<![\w+\-])(?:{_CC}|62|0)[\s.\-]?\(?8\)?(?:[\s.\-]?\(?\d\)?){{7,12}}(?!\d)"),
     NUMBER),
    # Landlines: (0281) 635123, 0281-635123, +62 281 635123, 62 281 635123.
    (re.compile(rf"(?<![\w+\-])(?:\(0\d{{2,3}}\)|0\d{{2,3}}|{_CC}[\s.\-]?\(?\d{{2,3}}\)?"
                r"|62[\s.\-]\(?[1-9]\d{1,2}\)?)"
                r"[\s.\-]?\d{3,4}[\s.\-]?\d{2,4}(?!\d)"), NUMBER),
    # Account-like digit runs: 10+ contiguous digits. Ticket numbers (LA-2026-000123) are
    # protected by the look-behind.
    (re.compile(_START + r"\d{10,}" + r"(?!\d)"), NUMBER),
]

_AMOUNT_BEFORE = re.compile(r"(?:\bRp|\bIDR|\$|€)\.?\s*$", re.IGNORECASE)


_DIGIT_RUN = re.compile(r"\d(?:[\s.\-()/]{0,3}\d){5,}")  # 6+ digits: could be a number


def _phonenumbers_pass(text: str) -> str:
    """Second pass: what the regexes missed but libphonenumber calls a valid number (region ID,
    Leniency.VALID). Amounts, dates, document numbers (027/123/2025) and parts of codes stay."""
    if not any(not _AMOUNT.match(m.group(0)) and not _DATE_LIKE.match(m.group(0))
               for m in _DIGIT_RUN.finditer(text)):
        return text  # nothing but amounts and dates: libphonenumber would find nothing to hide
    out, last = [], 0
    for match in PhoneNumberMatcher(text, "ID", leniency=Leniency.VALID):
        raw = match.raw_string
        start = match.start
        before = text[max(0, start - 6):start]
        if ("/" in raw or _AMOUNT.match(raw) or _DATE_LIKE.match(raw)
                or _AMOUNT_BEFORE.search(before)
                or (start > 0 and (text[start - 1].isalnum() or text[start - 1] in "-_/"))):
            continue
        out.append(text[last:start])
        out.append(NUMBER)
        last = match.end
    if not out:
        return text
    out.append(text[last:])
    return "".join(out)


# -- names and sign-offs ------------------------------------------------------------------------

HONORIFICS = {
    "bpk", "bapak", "pak", "ibu", "bu", "sdr", "sdri", "saudara", "saudari", "mas", "mbak", "mba",
    "h", "hj", "haji", "hajjah", "dr", "drs", "dra", "ir", "prof", "kh", "ust", "ustadz", "tn",
    "ny", "nn", "mr", "mrs", "ms", "miss", "sir", "kang", "teh", "cak", "bang", "om", "tante",
    "st", "sh", "se", "spd", "mpd", "skom", "mm", "mt", "msi", "amd", "sm", "ssos", "sag", "ssi",
}
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?", re.UNICODE)


def name_terms(names: Iterable[str | None]) -> list[str]:
    """The strings to hide for known names: each full name without honorifics and degrees,
    and each of its words of 4+ letters. Handles (@budi_santoso88) give their words too."""
    terms: set[str] = set()
    for name in names:
        if not name:
            continue
        name = name.strip()
        if re.fullmatch(r"@[\w.]+", name):  # a handle: hidden whole, its words are not names
            if len(name) > 3:
                terms.add(name[1:])
            continue
        if "@" in name:  # a display name that is an address: its local part
            name = name.split("@", 1)[0]
        name = name.split(",")[0] if re.search(r",\s*[A-Z]\.?\s*[A-Za-z]", name) else name
        words = [w for w in _WORD.findall(name) if w.lower().replace("'", "") not in HONORIFICS]
        if not words:
            continue
        full = " ".join(words)
        if len(full) >= 3 and full.lower() not in _MARKER_WORDS:
            terms.add(full)
        for w in words:
            if len(w) >= 4 and w.lower() not in _MARKER_WORDS:
                terms.add(w)
    return sorted(terms, key=len, reverse=True)


def known_names(sender_name: str | None, sender: str | None = None) -> list[str]:
    """The names a complaint's sender is known by: the display/profile name and, for the
    social channels, the handle (@budi_bms)."""
    names = [sender_name] if sender_name else []
    if sender and sender.startswith("@"):
        names.append(sender)
    return names


@functools.lru_cache(maxsize=256)
def _name_pattern(names: tuple[str | None, ...]) -> re.Pattern[str] | None:
    terms = name_terms(names)
    if not terms:
        return None
    alts = [r"[\s.\-_]+".join(re.escape(w) for w in t.split()) for t in terms]
    return re.compile(r"(?<!\w)(?:" + "|".join(alts) + r")(?!\w)", re.IGNORECASE)


_SIGNOFF = re.compile(
    r"^\s*(?:hormat\s+(?:saya|kami)|salam(?:\s+(?:hormat|saya|sejahtera|kenal))?|wassalam\w*"
    r"|wa?s+alamu\W?alaikum\w*|terima\s*kasih|trima\s*kasih|makasih|trims|thx|thanks|thank\s+you"
    r"|matur\s+(?:nuwun|suwun)|nuwun|suwun|regards|best\s+regards|kind\s+regards"
    r"|tabik|salam\s+hangat)\b(?P<rest>[^\n]{0,80})$",
    re.IGNORECASE,
)
_TAIL_LINES = 4  # a sign-off block is followed by at most this many short lines
_TAIL_CHARS = 60


def cut_signoff(text: str) -> str:
    """Cut a sign-off block from the end of a complaint: a line like "Hormat saya,", "Salam,",
    "Wassalam", "Terima kasih," or "Nuwun," followed by a short name-like line (or with the
    name after the comma on the same line) and whatever few short lines follow. A greeting
    that opens the text ("Salam,\\nJalan rusak ...") is never cut."""
    lines = text.split("\n")
    content = [i for i, line in enumerate(lines) if line.strip()]
    if len(content) < 2:
        return text
    first = content[0]
    for i in content[1:]:
        m = _SIGNOFF.match(lines[i])
        if not m:
            continue
        tail = [lines[j].strip() for j in content if j > i]
        if len(tail) > _TAIL_LINES or any(len(t) > _TAIL_CHARS for t in tail):
            continue
        rest = m.group("rest").strip()
        name_on_line = bool(re.match(r"^[,.!:;\-–—]+\s*\S", rest)) and len(rest) <= 50
        if not tail and not name_on_line:
            continue  # "Terima kasih." alone at the end: no name to cut
        if i == first:
            continue
        return "\n".join(lines[:i]).rstrip()
    return text


# -- the one function ---------------------------------------------------------------------------


def redact(text: str, names: Iterable[str | None] = (), *, complaint: bool = False) -> str:
    """Hide phone numbers, emails, handles, NIK/KK, account numbers, URLs with queries,
    coordinates and map links, and the known `names` (the sender's display/profile name and
    handle). `complaint=True` also cuts a sign-off block at the end."""
    if not text:
        return ""
    if complaint:
        text = cut_signoff(text)
    text = _GEO_URI.sub(LOCATION, _map_links(text))  # before the generic URL rule
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    for pattern, replacement in _COORD_PATTERNS:
        text = pattern.sub(replacement, text)
    text = _phonenumbers_pass(text)
    name_re = _name_pattern(tuple(names))
    if name_re is not None:
        text = name_re.sub(NAME, text)
    return text

