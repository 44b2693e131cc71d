"""Kecamatan detection in complaint text."""

from __future__ import annotations

import pytest

from lapakd.routing.kecamatan import KECAMATAN, detect


def test_all_27() -> None:
    assert len(KECAMATAN) == 27
    for name in KECAMATAN:
        assert detect(f"Jalan rusak di Kecamatan {name}.") == name
        assert detect(f"jalan rusak di kec. {name.lower()}") == name


@pytest.mark.parametrize(("text", "expected"), [
    ("Macet di Baturaden tiap minggu", "Baturraden"),
    ("banjir di pwt utara", "Purwokerto Utara"),
    ("lampu mati, Purwokerto-Selatan", "Purwokerto Selatan"),
    ("Kedung Banteng longsor", "Kedungbanteng"),
    ("SOKARAJA macet", "Sokaraja"),
    ("Pemkab Kabupaten Banyumas lambat", None),  # the regency, not the kecamatan
    ("tambak ikan tercemar", None),  # a fish pond
    ("mohon sumbang saran", None),
    ("Purwokerto macet", None),  # four kecamatan: unknown
    ("", None),
    ("Jalan Kec. Tambak rusak", "Tambak"),
    ("desa X kecamatan Banyumas", "Banyumas"),
])
def test_spellings_and_ambiguity(text: str, expected: str | None) -> None:
    assert detect(text) == expected


def test_ascii_fast_path_finds_what_the_regex_finds() -> None:
    import random

    from lapakd.routing.kecamatan import _RX, _search_ascii

    pieces = [
        "kec", "Kec.", "KECAMATAN", "kec ", "kecamatan_", "aji", "Aji Barang", "ajibarang",
        "xajibarang", "_", "-", " ", ".", "9", "pwt", "PWK-utara", "purwo", "purwokerto",
        "Purwokerto  Barat", "kali", "bagor", "karang lewas", "jati", "lawang", "soka", "raja",
        "banyumas", "tambak", "Sumbang", "kembaran", "batur", "raden", "r", "kemrajen",
        "cilongkok", "di", "desa", "jalan", "\n",
    ]
    rnd = random.Random(4)
    found = 0
    for _ in range(20_000):
        text = "".join(rnd.choice(pieces) + rnd.choice(["", " ", "  ", "-", ",", "_"])
                       for _ in range(rnd.randint(0, 8)))
        want = _RX.search(text)
        got = _search_ascii(text)
        assert (got and (got.span(), got.lastgroup)) == (
            want and (want.span(), want.lastgroup)
        ), text
        found += want is not None
    assert found > 5_000  # not vacuous
