"""The attacker's view of the public site: plant identities across channels, export, read every
published byte.

Complaints arrive the real way — an email in Dovecot (display name with an honorific, a sign-off
block), WhatsApp through lapakd's signed webhook on the Graph replica (profile name, chat lines,
a location message), an X mention on the X replica (profile name, handle, a tagged place), a
walk-in added by an admin — and `lapakd run --once` processes and routes them; a desk reply
names the citizen; `lapakd export --out DIR` writes the site. Then every file under DIR (HTML,
JSON, CSV, Atom, JS, the search index, anything; .gz decoded) is searched for each planted
identifier in every form: as written, HTML-/JSON-unescaped, case-insensitive names and their
words of 4+ letters, phone and NIK digits inside any number-like run, coordinates to 4
decimals, map links.
"""

from __future__ import annotations

import contextlib
import gzip
import html
import json
import re
from pathlib import Path

import pytest
from deskenv import make_mail
from metaenv import WA, configure, start_webhook

from lapakd.embedded.replica.graph import send_webhook

# -- what the citizens wrote -------------------------------------------------------------------

EMAIL_FROM = "Bpk. Rahmat Hidayat <rahmat.hidayat77@example.com>"
EMAIL_BODY = """\
Selamat siang Bapak/Ibu,

Jalan rusak parah di Desa Pliken, Kecamatan Kembaran, lubangnya dalam sekali. Sudah tiga
motor jatuh minggu ini. Titiknya di https://www.google.com/maps/@-7.41837,109.27461,17z
atau https://maps.google.com/?q=-7.41893,109.27512 (juga https://maps.app.goo.gl/Qw3rTy9UiOp2 )
dan geo:-7.41958,109.27583?z=18. Kalau dari GPS: -7.42016, 109.27644 atau -7,42077 109,27705,
DMS 7°25'14.7"S 109°16'39.1"E, lat: -7.42139 long: 109.27766, 7.42193°S 109.27829°E.

Nomor saya (+62) 812 3456 7891, istri +62 (0) 813 2468 1357, kantor 62 281 635127,
rumah 0281-637219, adik 0856.9876.5432, bapak 08 12 34 56 78 93.
Saudara di luar negeri Tel: +1 (415) 555-0132, Mobile +44 7700 900123, Fax +61 2 9876 5432.
NIK 3302121505870004, KK 3302 1215 0587 0009, email lain rahmat.h@kantor.co.id, IG @rahmat_hdy.
Biaya tambal katanya Rp 1.500.000, kejadian 12-03-2026 jam 10.30, RT 03/RW 05.

Hormat saya,
Rahmat Hidayat
Warga RT 03 RW 05 Pliken
HP 0812 3456 7891
"""

WA_PHONE = "6285712345678"
WA_NAME = "Sri Wahyuningsih"
WA_LINES = [
    "Sugeng enjing, kula Sri Wahyuningsih saking Karanglewas",
    "Dalan rusak parah, lubange gedhe banget ning ngarep SD. WA kula 0857-1234-5678",
    "Nomer liyane 0857 1234 5678 lan 6285712345678",
]
WA_LOCATION = (-7.43472, 109.20183)  # published as -7.435, 109.202

X_HANDLE = "agus_prasetyo_bms"
X_NAME = "Agus Prasetyo"
X_TEXT = ("Lampu PJU mati sebulan, jalan rusak gelap gulita. Saya Agus Prasetyo, WA "
          "(+62) 819 0123 4567, lokasi -7.44519, 109.24788")
X_PLACE = {"id": "01a9a39529b27f36", "full_name": "Alun-alun Purwokerto", "place_type": "poi",
           "bbox": [109.2391, -7.4246, 109.2411, -7.4226]}  # centre -7.4236, 109.2401

WALKIN_NAME = "Ibu Endang Sulistyowati"
WALKIN_TEXT = ("Jalan rusak di depan pasar Sokaraja, saya Endang Sulistyowati dari Sokaraja Kulon, "
               "telp 0813 9988 7766")

DESK_REPLY = ("Yth. Bapak Rahmat Hidayat, jalan akan ditambal minggu depan. Petugas akan "
              "menghubungi Bapak di 0812 3456 7891.")

NAMES = ["Rahmat Hidayat", "Sri Wahyuningsih", "Agus Prasetyo", "Endang Sulistyowati"]
PHONES = [
    "(+62) 812 3456 7891", "+62 (0) 813 2468 1357", "62 281 635127", "0281-637219",
    "0856.9876.5432", "08 12 34 56 78 93", "+1 (415) 555-0132", "+44 7700 900123",
    "+61 2 9876 5432", "0857-1234-5678", "0857 1234 5678", "6285712345678", "0812 3456 7891",
    "(+62) 819 0123 4567", "0813 9988 7766",
]
NIKS = ["3302121505870004", "3302 1215 0587 0009"]
EMAILS = ["rahmat.hidayat77@example.com", "rahmat.h@kantor.co.id"]
HANDLES = ["@rahmat_hdy", "rahmat_hdy", "@agus_prasetyo_bms", "agus_prasetyo_bms"]
# every planted position, to 4 decimals (the site may only carry 3)
COORDS = [
    "7.4183", "109.2746", "7.4189", "109.2751", "7.4195", "109.2758", "7.4201", "109.2764",
    "7,4207", "109,2770", "7.4213", "109.2776", "7.4219", "109.2782", "7.4347", "109.2018",
    "7.4451", "109.2478", "25'14", "16'39", "°25", "°16",
]
MAP_BITS = ["google.com/maps", "maps.google", "goo.gl", "Qw3rTy9UiOp2", "geo:", "openstreetmap",
            "mlat=", "/@-7", "?q=-7"]
LINE_NOT_NAME = "Warga RT 03 RW 05 Pliken"  # the sign-off block's lines after the name


def _core(number: str) -> str:
    """The digits a number keeps in any notation (+62, 0, (0), spaces, dots): its last 9."""
    return re.sub(r"\D", "", number)[-9:]


def _published_texts(root: Path) -> dict[Path, str]:
    """Every file under root, as text in the forms a reader sees it."""
    out = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        blob = path.read_bytes()
        if path.suffix == ".gz" or blob[:2] == b"\x1f\x8b":
            blob = gzip.decompress(blob)
        text = blob.decode("utf-8", "replace")
        if path.suffix == ".json":  # JSON escapes (\u00b0, \") as the reader decodes them
            with contextlib.suppress(ValueError):
                text = text + "\n" + json.dumps(json.loads(text), ensure_ascii=False)
        text = text.replace('\\"', '"').replace("\\/", "/")
        out[path] = text + "\n" + html.unescape(text)
    return out


def test_an_attacker_finds_no_identity_in_any_published_file(desk_env, replica, x, tmp_path):
    configure(desk_env, replica, email=True, whatsapp=WA)
    desk_env.write_config(**{"channels.twitter": x.channel_config(page_size=10)})
    hook = start_webhook(desk_env)
    try:
        desk_env.append(make_mail("Jalan rusak di Pliken", EMAIL_BODY, sender=EMAIL_FROM))
        for line in WA_LINES:
            status, answer = send_webhook(hook.url, replica.whatsapp_text_body(
                WA_PHONE, WA_NAME, line))
            assert status == 200, answer
        status, answer = send_webhook(hook.url, replica.whatsapp_location_body(
            WA_PHONE, WA_NAME, *WA_LOCATION, "Depan SD Negeri 1 Karanglewas", "Karanglewas"))
        assert status == 200, answer
        status, answer = send_webhook(hook.url, replica.whatsapp_text_body(
            WA_PHONE, WA_NAME, "Matur nuwun\nSri Wahyuningsih"))
        assert status == 200, answer
    finally:
        hook.stop()
    x.add_user(X_HANDLE, X_NAME)
    x.add_mention(X_TEXT, X_HANDLE, place=X_PLACE)
    desk_env.run_once()
    desk_env.cli("add", "--text", WALKIN_TEXT, "--name", WALKIN_NAME, "--contact",
                 "0813 9988 7766", "--by", "admin")

    with desk_env.db() as db:
        rows = {r["channel"]: dict(r) for r in db.execute(
            "SELECT ticket, channel, status, sender_name, lat, lon FROM complaints")}
    assert set(rows) == {"email", "whatsapp", "twitter", "walkin"}, rows
    assert all(r["status"] not in ("new", "quarantined", "ignored") for r in rows.values())
    assert rows["email"]["sender_name"] == "Bpk. Rahmat Hidayat"
    assert (rows["whatsapp"]["lat"], rows["whatsapp"]["lon"]) == WA_LOCATION
    assert (rows["email"]["lat"], rows["email"]["lon"]) == (-7.41837, 109.27461)  # first link
    assert rows["twitter"]["lat"] == pytest.approx(-7.4236)
    assert rows["twitter"]["lon"] == pytest.approx(109.2401)
    desk_env.cli("reply", rows["email"]["ticket"], DESK_REPLY, "--by", "admin")

    out = tmp_path / "situs"
    desk_env.cli("export", "--out", str(out))
    files = _published_texts(out)
    assert len(files) > 10 and any(p.name == "aduan.json" for p in files)

    leaks = []
    for path, text in files.items():
        lower = text.lower()
        for name in NAMES:
            for term in [name, *[w for w in name.split() if len(w) >= 4]]:
                if re.search(rf"(?<!\w){re.escape(term.lower())}(?!\w)", lower):
                    leaks.append((path.name, term))
        for secret in [*EMAILS, *HANDLES, *MAP_BITS, *COORDS, LINE_NOT_NAME, *PHONES, *NIKS]:
            if secret.lower() in lower:
                leaks.append((path.name, secret))
        # digits of phones and NIKs inside any number-like run, whatever the separators
        runs = {re.sub(r"\D", "", r) for r in re.findall(r"[\d+][\d\s.\-()+/]*\d", text)}
        for secret in [*PHONES, *NIKS]:
            core = _core(secret)
            if any(core in run for run in runs):
                leaks.append((path.name, f"digits of {secret}"))
    assert not leaks, sorted(set(leaks))

    data = {r["id"]: r for r in json.loads((out / "aduan.json").read_text(encoding="utf-8"))}
    wa = data[rows["whatsapp"]["ticket"]]
    assert (wa["lat"], wa["lon"]) == (-7.435, 109.202)
    assert (data[rows["twitter"]["ticket"]]["lat"],
            data[rows["twitter"]["ticket"]]["lon"]) == (-7.424, 109.24)
    assert (data[rows["email"]["ticket"]]["lat"],
            data[rows["email"]["ticket"]]["lon"]) == (-7.418, 109.275)
    assert data[rows["walkin"]["ticket"]]["lat"] is None
    csv_text = (out / "aduan.csv").read_text(encoding="utf-8")
    assert ",lat,lon," in csv_text.splitlines()[0] + ","  # the rounded position, in columns
    assert "-7.435,109.202" in csv_text
    # the complaint is still readable: what was not personal stays
    email_text = data[rows["email"]["ticket"]]["text"]
    for kept in ("Jalan rusak parah di Desa Pliken", "Rp 1.500.000", "12-03-2026", "RT 03/RW 05",
                 "[nomor disembunyikan]", "[lokasi disembunyikan]", "[email disembunyikan]"):
        assert kept in email_text, kept
    assert "Hormat saya" not in email_text
    assert "[nama disembunyikan]" in data[rows["twitter"]["ticket"]]["text"]
    assert "[nama disembunyikan]" in data[rows["email"]["ticket"]]["updates"][0]["text"]


def test_x_coordinates_and_small_places_give_a_location_a_city_does_not(desk_env, x):
    desk_env.write_config(**{"channels.twitter": x.channel_config(page_size=10)})
    exact = x.add_mention("Jalan berlubang di depan Pasar Wage", "budi.santoso88",
                          coordinates=(-7.42412, 109.23187))
    city = x.add_mention("Jalan rusak di Purwokerto", "budi.santoso88", place={
        "id": "0f1c2b3a4d5e6f70", "full_name": "Purwokerto, Jawa Tengah", "place_type": "city",
        "bbox": [109.18, -7.47, 109.28, -7.38]})
    desk_env.run_once()
    with desk_env.db() as db:
        got = {r[0]: (r[1], r[2]) for r in db.execute(
            "SELECT m.external_id, c.lat, c.lon FROM messages m JOIN complaints c"
            " ON c.id = m.complaint_id")}
    assert got[f"tweet:{exact}"] == (-7.42412, 109.23187)
    assert got[f"tweet:{city}"] == (None, None)  # a city's centre is not where the hole is
    mentions = [r for r in x.requests if r["endpoint"] == "mentions"]
    assert "geo.place_id" in mentions[0]["query"].get("expansions", "")


def test_open_data_carries_the_location_rounded_and_only_there(tmp_path):
    from publicenv import add_complaint, make_desk

    from lapakd.public import export

    desk = make_desk(tmp_path)
    try:
        ticket = add_complaint(desk, "Jalan berlubang di Kec. Sokaraja")
        other = add_complaint(desk, "Sampah menumpuk", agencies=("dlh",))
        with desk.store.transaction() as conn:
            conn.execute("UPDATE complaints SET lat = -7.456789, lon = 109.287654"
                         " WHERE ticket = ?", (ticket,))
        export.export(desk)
        root = desk.config.public_dir.resolve()
        data = {r["id"]: r for r in json.loads((root / "aduan.json").read_text())}
        assert (data[ticket]["lat"], data[ticket]["lon"]) == (-7.457, 109.288)
        assert data[other]["lat"] is None and data[other]["lon"] is None
        lines = (root / "aduan.csv").read_text(encoding="utf-8").splitlines()
        # lat/lon follow `updates`; the resolution columns (0011) come after them
        assert lines[0].split(",")[-6:-4] == ["lat", "lon"]
        assert any(",-7.457,109.288," in line for line in lines)
        assert any(line.startswith(other) and ",,," in line for line in lines)
        for path in root.rglob("*"):
            if path.is_file():
                blob = path.read_bytes()
                assert b"456789" not in blob and b"287654" not in blob, path
                if path.name not in ("aduan.json", "aduan.csv"):
                    assert b"-7.457" not in blob, path  # fields in the open data only
    finally:
        desk.close()
