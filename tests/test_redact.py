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


# -- issue 10: every phone notation, names, sign-offs, coordinates ------------------------------

from lapakd.redact import LOCATION, NAME, cut_signoff, extract_location, name_terms  # noqa: E402


@pytest.mark.parametrize("phone", [
    "(+62) 812 3456 7890", "+62 (0) 812 3456 7890", "62 281 635123", "0812.9876.5432",
    "08 12 34 56 78 90", "(+62)81234567890", "+62(0)8123456789", "(0281) 635-123",
    "021-5551234", "+62 21 5551 234",
])
def test_every_way_people_write_a_phone_number(phone: str) -> None:
    assert redact(f"Hubungi saya di {phone} ya") == f"Hubungi saya di {NUMBER} ya"


@pytest.mark.parametrize(("label", "number"), [
    ("Tel:", "+1 (415) 555-0132"), ("HP", "+60 12-345 6789"), ("Mobile", "+44 7700 900123"),
    ("Fax", "+61 2 9876 5432"), ("WA:", "+31 6 1234 5678"), ("telp.", "0281-635123"),
    ("No. HP", "0857 1234 567"),
])
def test_foreign_and_labelled_numbers(label: str, number: str) -> None:
    assert redact(f"{label} {number}.") == f"{label} {NUMBER}."


def test_phonenumbers_pass_catches_what_the_patterns_miss() -> None:
    # a US number without a label: only libphonenumber knows it is one
    assert redact("anak saya di +1 415 555 0132 juga") == f"anak saya di {NUMBER} juga"


@pytest.mark.parametrize("text", [
    "jam 10.30, 11.45 dan 16.00 WIB", "harga 7.500, 10.000, 20.000", "Rp. 2.000.000,00",
    "kontrak 027/123/2025", "SK 800/123/2026", "suhu 30°C", "jarak 2.5 km 3.75 km",
    "Perda No. 12 Tahun 2020", "Rp 62.500.000", "tanggal 12.03.2026", "WA 2 kali tidak dibalas",
    "pukul 21.00-23.30", "SK Bupati Nomor 100.3.3.2/123/2025", "ruas km 12+400 sampai km 13+250",
    "Jl. Gatot Subroto No. 21 Purwokerto 53116", "dana desa sebesar 1.234.567.890",
])
def test_more_things_that_stay(text: str) -> None:
    assert redact(text) == text


@pytest.mark.parametrize(("written", "lat", "lon"), [
    ("-7.4245, 109.2340", -7.4245, 109.234),
    ("-7,4245 109,2340", -7.4245, 109.234),
    ("(-7.4245,109.2340)", -7.4245, 109.234),
    ("7°25'28.2\"S 109°14'02.4\"E", -7.4245, 109.234),
    ("7.4245°S 109.2340°E", -7.4245, 109.234),
    ("lat: -7.4245 long: 109.2340", -7.4245, 109.234),
    ("Lat -7.4245, Lng 109.2340", -7.4245, 109.234),
    ("https://www.google.com/maps/@-7.4245,109.234,17z", -7.4245, 109.234),
    ("https://www.google.com/maps?q=-7.4245,109.234", -7.4245, 109.234),
    ("https://maps.google.com/?q=-7.4245,109.234&z=17", -7.4245, 109.234),
    ("https://www.google.com/maps/place/Pasar+Wage/@-7.42,109.23,17z/data=!3m1!4b1!8m2"
     "!3d-7.4245!4d109.234", -7.4245, 109.234),
    ("geo:-7.4245,109.234?z=17", -7.4245, 109.234),
    ("https://www.openstreetmap.org/?mlat=-7.4245&mlon=109.234", -7.4245, 109.234),
])
def test_coordinates_in_any_notation_are_hidden_and_found(written: str, lat: float,
                                                          lon: float) -> None:
    out = redact(f"Lokasinya {written} ya")
    assert LOCATION in out and "7.42" not in out and "7,42" not in out and "109" not in out
    found = extract_location(f"Lokasinya {written} ya")
    assert found is not None
    assert found == pytest.approx((lat, lon), abs=1e-4)


def test_short_map_links_are_hidden_but_not_followed() -> None:
    text = "lihat https://maps.app.goo.gl/Qw3rTy9UiOp2 dan https://goo.gl/maps/AbC123"
    assert redact(text) == f"lihat {LOCATION} dan {LOCATION}"
    assert extract_location(text) is None


def test_no_location_in_ordinary_numbers() -> None:
    for text in ("jam 10.30, 11.45", "harga 7.500, 10.000", "RT 03/RW 05", "2.5 km"):
        assert extract_location(text) is None, text


@pytest.mark.parametrize(("name", "text"), [
    ("Bpk. Rahmat Hidayat", "Hormat saya, Rahmat Hidayat"),
    ("Dewi Lestari", "Terima kasih, DEWI LESTARI"),
    ("Agus Prasetyo", "saya agus prasetyo dari Sokaraja"),
    ("Ibu Endang Sulistyowati, S.Pd.", "Bu Endang bilang"),
    ("Hj. Siti Aminah", "kata Aminah"),
])
def test_known_names_are_hidden_in_any_case(name: str, text: str) -> None:
    out = redact(text, [name])
    assert NAME in out
    for word in name.replace(",", " ").replace(".", " ").split():
        if len(word) >= 4 and word.lower() not in ("bapak",):
            assert word.lower() not in out.lower(), (word, out)


def test_name_terms_drop_honorifics_and_short_words() -> None:
    assert name_terms(["Bpk. Rahmat Hidayat"]) == ["Rahmat Hidayat", "Hidayat", "Rahmat"]
    assert "Bapak" not in name_terms(["Bapak Joko"]) and "Joko" in name_terms(["Bapak Joko"])
    assert name_terms(["@budi_bms"]) == ["budi_bms"]  # a handle is hidden whole
    assert redact("jalan di depan rumah Pak Budi", []) == "jalan di depan rumah Pak Budi"


def test_name_words_inside_other_words_stay() -> None:
    assert redact("Agustus kemarin Agus lapor", ["Agus Prasetyo"]) == \
        f"Agustus kemarin {NAME} lapor"


@pytest.mark.parametrize(("text", "kept"), [
    ("Jalan rusak parah.\nMohon ditindaklanjuti.\n\nHormat saya,\nRahmat Hidayat\n"
     "RT 03 RW 05\n0812 3456 7890", "Jalan rusak parah.\nMohon ditindaklanjuti."),
    ("Lampu PJU mati sudah seminggu.\nTerima kasih, Dewi Lestari",
     "Lampu PJU mati sudah seminggu."),
    ("Niki badhe lapor dalan rusak.\nNuwun,\nAgus", "Niki badhe lapor dalan rusak."),
    ("Sampah numpuk di TPS.\nWassalam\nPak RT", "Sampah numpuk di TPS."),
    ("Selamat pagi\nMau lapor jalan rusak\nMakasih\nBudi", "Selamat pagi\nMau lapor jalan rusak"),
])
def test_signoff_blocks_are_cut(text: str, kept: str) -> None:
    assert cut_signoff(text) == kept
    assert redact(text, complaint=True).startswith(kept.split("\n")[0])


@pytest.mark.parametrize("text", [
    "Salam,\nJalan di depan balai desa rusak parah sejak Januari, mohon segera diperbaiki.",
    "Salam,\nRahmat",  # nothing would be left
    "Sampah numpuk.\nTerima kasih.",  # no name after it
    "Terima kasih sudah memperbaiki lampu kemarin, tapi sekarang jalan di depan rumah "
    "berlubang lagi dan airnya menggenang setiap hujan turun.\nMohon dicek lagi.",
    "Jalan rusak.\nTerima kasih,\nini daftar titiknya: satu di depan pasar yang sudah lama "
    "berlubang besar, dua di tikungan dekat masjid, tiga dekat sekolah\nempat di jembatan",
])
def test_greetings_and_bodies_are_not_cut(text: str) -> None:
    assert cut_signoff(text) == text
