"""Every redaction pattern, and what must stay readable."""

from __future__ import annotations

import pytest

from lapakd.redact import EMAIL, HANDLE, LINK, NUMBER, redact


@pytest.mark.parametrize("phone", [
    "081234567890", "0812-3456-7890", "0812 3456 7890", "0812.3456.7890", "+6281234567890",
    "+62 812 3456 7890", "+62-812-3456-7890", "6281234567890", "0857 1234 567",
    "(0281) 635123", "0281-635123", "0281 635 123", "+62 281 635123",
])
def test_phone_numbers(phone: str) -> None:
    out = redact(f"Hubungi saya di {phone} ya")
    assert out == f"Hubungi saya di {NUMBER} ya"


@pytest.mark.parametrize("email", [
    "budi.warga@example.com", "siti_aminah+aduan@mail.co.id", "a@b.id",
])
def test_emails(email: str) -> None:
    assert redact(f"email: {email}.") == f"email: {EMAIL}."


def test_obfuscated_email() -> None:
    assert EMAIL in redact("kirim ke budi [at] gmail [dot] com")


@pytest.mark.parametrize("handle", ["@budi_bms", "@Siti.Aminah", "@x"])
def test_handles(handle: str) -> None:
    assert redact(f"akun saya {handle} di IG") == f"akun saya {HANDLE} di IG"


@pytest.mark.parametrize("nik", [
    "3302123456780001", "3302 1234 5678 0001", "3302.1234.5678.0001", "3302-1234-5678-0001",
])
def test_nik_and_kk(nik: str) -> None:
    assert redact(f"NIK {nik}, KK sama") == f"NIK {NUMBER}, KK sama"


@pytest.mark.parametrize("account", [
    "1234567890", "0123-01-012345-50-1", "123456789012345", "1370-0123-4567",
])
def test_account_numbers(account: str) -> None:
    assert redact(f"transfer ke rek {account} ya") == f"transfer ke rek {NUMBER} ya"


@pytest.mark.parametrize("url", [
    "https://example.com/form?nama=budi&hp=0812", "http://bit.ly/x?ref=abc",
    "www.example.com/a?b=c",
])
def test_urls_with_query(url: str) -> None:
    assert redact(f"lihat {url} ini") == f"lihat {LINK} ini"


@pytest.mark.parametrize("text", [
    "Kejadian tanggal 12-03-2026 jam 10.30",
    "tanggal 2026-03-12 dan 12/03/2026",
    "Nomor aduan LA-2026-000123 belum dijawab",
    "RT 03/RW 05 Desa Karangsalam",
    "Biaya Rp 1.500.000 dan Rp 150.000.000",
    "kode pos 53111, jalan sepanjang 2 km, tahun 2024",
    "lihat https://banyumaskab.go.id/page/123 untuk info",
    "tiga tahun: 2020 2021 2022",
    "jam 08.00 sampai 16.00",
    "Desa Karangsalam, Kecamatan Baturraden",
])
def test_things_that_stay(text: str) -> None:
    assert redact(text) == text


def test_several_in_one_text_and_empty() -> None:
    text = "Saya Budi (0812-3456-7890, budi@example.com, @budi) NIK 3302123456780001"
    out = redact(text)
    for secret in ("0812", "budi@", "@budi", "3302123456780001"):
        assert secret not in out
    assert redact("") == ""


def test_markers_are_stable_under_repeat() -> None:
    once = redact("hp 081234567890 email a@b.id")
    assert redact(once) == once
