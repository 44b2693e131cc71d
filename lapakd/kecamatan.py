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


def detect(text: str | None) -> str | None:
    """The canonical kecamatan first named in `text`, or None."""
    if not text:
        return None
    match = _RX.search(text)
    if match is None:
        return None
    return _NAMES[match.lastgroup] if match.lastgroup else None
