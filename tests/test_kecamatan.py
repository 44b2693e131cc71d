"""Kecamatan detection in complaint text."""

from __future__ import annotations

import pytest

from lapakd.kecamatan import KECAMATAN, detect


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
