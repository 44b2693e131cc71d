"""The 27 kecamatan of Kabupaten Banyumas, found in complaint text.

`detect(text)` returns the canonical name of the first kecamatan mentioned, or None. Names that
are also ordinary words or the regency's own name (Banyumas, Tambak = fish pond, Sumbang =
to donate, Kembaran = twin) count only after "kecamatan"/"kec." — so "Kabupaten Banyumas" is
not the kecamatan Banyumas. "Purwokerto" alone names four kecamatan and so names none.
"""

from __future__ import annotations

import re

# canonical name -> spellings seen in complaints (lower case; spaces match any separator)
KECAMATAN: dict[str, tuple[str, ...]] = {
    "Ajibarang": ("ajibarang", "aji barang"),
    "Banyumas": (),
    "Baturraden": ("baturraden", "baturaden", "batur raden"),
    "Cilongok": ("cilongok", "cilongkok"),
    "Gumelar": ("gumelar",),
    "Jatilawang": ("jatilawang", "jati lawang"),
    "Kalibagor": ("kalibagor", "kali bagor"),
    "Karanglewas": ("karanglewas", "karang lewas"),
    "Kebasen": ("kebasen",),
    "Kedungbanteng": ("kedungbanteng", "kedung banteng"),
    "Kembaran": (),
    "Kemranjen": ("kemranjen", "kemrajen"),
    "Lumbir": ("lumbir",),
    "Patikraja": ("patikraja", "patik raja"),
    "Pekuncen": ("pekuncen",),
    "Purwojati": ("purwojati", "purwo jati"),
    "Purwokerto Barat": ("purwokerto barat", "pwt barat", "pwk barat"),
    "Purwokerto Selatan": ("purwokerto selatan", "pwt selatan", "pwk selatan"),
    "Purwokerto Timur": ("purwokerto timur", "pwt timur", "pwk timur"),
    "Purwokerto Utara": ("purwokerto utara", "pwt utara", "pwk utara"),
    "Rawalo": ("rawalo",),
    "Sokaraja": ("sokaraja", "soka raja"),
    "Somagede": ("somagede", "sumagede", "soma gede"),
    "Sumbang": (),
    "Sumpiuh": ("sumpiuh",),
    "Tambak": (),
    "Wangon": ("wangon",),
}

_PREFIX = r"(?:kecamatan|kec\.?|kec\b)\s*"


def _spelling(s: str) -> str:
    return r"[\s\-_]*".join(re.escape(part) for part in s.split())


def _build() -> tuple[re.Pattern[str], dict[str, str]]:
    alternatives: list[tuple[str, str]] = []  # (regex, group name)
    names: dict[str, str] = {}
    for i, (name, spellings) in enumerate(KECAMATAN.items()):
        group = f"k{i}"
        names[group] = name
        own = [_spelling(name.lower())]
        free = [_spelling(s) for s in spellings]
        parts = [f"{_PREFIX}(?:{'|'.join(own)})", *free]
        alternatives.append(("|".join(parts), group))
    body = "|".join(f"(?P<{g}>{rx})" for rx, g in alternatives)
    return re.compile(rf"(?<![a-z0-9])(?:{body})(?![a-z0-9])", re.IGNORECASE), names


_RX, _NAMES = _build()


def _build_starts() -> re.Pattern[str]:
    """The lowercase literals every match of _RX starts with: "kec" (every `kecamatan X` form)
    and the first word of each spelling. Those that begin with a shorter one are left out (the
    shorter one finds the same places)."""
    literals = {"kec"} | {s.split()[0] for spellings in KECAMATAN.values() for s in spellings}
    literals = {
        lit for lit in literals
        if not any(other != lit and lit.startswith(other) for other in literals)
    }
    return re.compile("|".join(sorted(map(re.escape, literals))))


_STARTS = _build_starts()


def _search_ascii(text: str) -> re.Match[str] | None:
    """_RX.search(text) for an ASCII text, faster: _RX (a look-behind, then 27 groups of
    case-insensitive alternatives) is tried at every position of the text by `search`; here
    only where one of _STARTS begins. In ASCII, IGNORECASE is plain ASCII case folding, so
    those places are found in text.lower() (same length, same positions); tried in order, the
    first that matches is the leftmost match, the one `search` returns."""
    lower = text.lower()
    start = _STARTS.search(lower)
    while start is not None:
        match = _RX.match(text, start.start())  # the look-behind still sees text before it
        if match is not None:
            return match
        start = _STARTS.search(lower, start.start() + 1)
    return None


def detect(text: str | None) -> str | None:
    """The canonical kecamatan first named in `text`, or None."""
    if not text:
        return None
    match = _search_ascii(text) if text.isascii() else _RX.search(text)
    if match is None:
        return None
    return _NAMES[match.lastgroup] if match.lastgroup else None
