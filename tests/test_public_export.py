"""The public site export: pages, open data, privacy, atomic swap, incremental builds."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from deskenv import make_mail
from publicenv import add_complaint, make_desk

from lapakd.public import export, model, photos, stats

SECRETS = [
    "081234567890", "0812-3456-7890", "+62 812 9999 8888", "budi.warga@example.com",
    "siti@mail.co.id", "@budi_bms", "3302123456780001", "3302 1234 5678 0002",
    "1370012345678", "Budi Santoso", "rahasia-token",
]
SECRET_TEXT = (
    "Jalan rusak di Kec. Sokaraja. Hubungi 081234567890 atau 0812-3456-7890 atau "
    "+62 812 9999 8888, email siti@mail.co.id, IG @budi_bms, NIK 3302123456780001, "
    "KK 3302 1234 5678 0002, rek 1370012345678, form https://x.example/f?t=rahasia-token"
)


@pytest.fixture
def desk(tmp_path):
    d = make_desk(tmp_path)
    yield d
    d.close()


def all_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def site(desk) -> Path:
    return desk.config.public_dir.resolve()


def test_pages_and_open_data(desk):
    t1 = add_complaint(desk, "Jalan berlubang di Kecamatan Sokaraja", answer="Akan diperbaiki.")
    t2 = add_complaint(desk, "Sampah menumpuk di Wangon", agencies=("dlh",),
                       category="LINGKUNGAN", status="resolved", channel="whatsapp")
    result = export.export(desk)
    root = desk.config.public_dir
    assert root.is_symlink() and result.complaints == 2
    for rel in ("index.html", "statistik.html", "aduan.json", "aduan.csv", "feed.xml",
                "instansi.json", "data/cari/index.json", "data/cari/1.json", "halaman/1.html",
                "static/app.js", "static/style.css", f"aduan/{t1}.html", f"aduan/{t2}.html"):
        assert (root / rel).is_file(), rel
    index = (root / "index.html").read_text()
    assert 'http-equiv="Content-Security-Policy"' in index and "script-src 'self'" in index
    assert index.index(t2) < index.index(t1)  # newest first
    assert 'lang="id"' in index and "Daftar aduan" in index

    data = json.loads((root / "aduan.json").read_text())
    assert [r["id"] for r in data] == [t2, t1]
    assert all(list(r) == model.COLUMNS for r in data)
    first = data[1]
    assert first["kecamatan"] == "Sokaraja" and first["agencies"] == ["dpupr"]
    assert first["updates"][0]["text"] == "Akan diperbaiki."
    assert first["overdue"] is False and first["due_at"]

    rows = list(csv.reader(io.StringIO((root / "aduan.csv").read_text(encoding="utf-8"))))
    assert rows[0] == model.COLUMNS and len(rows) == 3
    assert rows[2][0] == t1 and rows[2][5] == "Sokaraja"
    assert json.loads(rows[2][10])[0]["text"] == "Akan diperbaiki."

    feed = ET.parse(root / "feed.xml").getroot()
    ns = {"a": "http://www.w3.org/2005/Atom"}
    assert len(feed.findall("a:entry", ns)) == 2

    detail = (root / "aduan" / f"{t1}.html").read_text()
    for words in ("Jalan berlubang", "Diteruskan ke Dinas Pekerjaan Umum", "Akan diperbaiki",
                  "Tenggat jawaban", "Aduan diterima melalui Email"):
        assert words in detail, words
    stats_page = (root / "statistik.html").read_text()
    assert "<svg" in stats_page and "Sokaraja" in stats_page and "Median hari" in stats_page


def test_overdue_and_statistics(desk):
    from datetime import UTC, datetime, timedelta

    old = datetime.now(UTC) - timedelta(days=30)
    late = add_complaint(desk, "Lampu jalan mati di Kec. Wangon", received=old, due_days=7)
    add_complaint(desk, "Jalan rusak di Kec. Wangon", received=old, answer="Sudah diperbaiki",
                  status="answered")
    export.export(desk)
    data = {r["id"]: r for r in json.loads((desk.config.public_dir / "aduan.json").read_text())}
    assert data[late]["overdue"] is True
    rows = [json.loads(r[0]) for r in desk.store.all("SELECT row FROM public_cache")]
    st = stats.compute(rows, {"dpupr": "DPUPR"}, desk.config.tz)
    assert st["overdue"] == 1 and st["answered"] == 1
    (resp,) = st["response"]
    assert resp["agency"] == "DPUPR" and resp["median_days"] == 2.0 and resp["overdue"] == 1
    assert st["per_kecamatan"] == [("Wangon", 2)]
    assert "lewat tenggat" in (desk.config.public_dir / "aduan" / f"{late}.html").read_text()


def test_nothing_private_anywhere_in_the_output(desk):
    tickets = [add_complaint(desk, SECRET_TEXT, answer="Hubungi petugas 0812 1111 2222")
               for _ in range(3)]
    add_complaint(desk, "hidden-by-rule kekerasan", public=False)
    add_complaint(desk, "spam-ignored beli obat", status="ignored")
    add_complaint(desk, "quarantined-broken", status="quarantined")
    add_complaint(desk, "not-routed-yet", status="new")
    export.export(desk)
    root = site(desk)
    files = all_files(root)
    assert len(files) > 10
    for path in files:
        blob = path.read_bytes()
        for secret in [*SECRETS, "0812 1111 2222", "hidden-by-rule", "spam-ignored",
                       "quarantined-broken", "not-routed-yet"]:
            assert secret.encode() not in blob, f"{secret!r} leaked into {path}"
    detail = (root / "aduan" / f"{tickets[0]}.html").read_text()
    assert "[nomor disembunyikan]" in detail and "[email disembunyikan]" in detail
    assert "[akun disembunyikan]" in detail and "[tautan disembunyikan]" in detail


def test_hide_and_publish_text_keep_the_original_and_log(desk, tmp_path):
    t1 = add_complaint(desk, "Teks asli dengan nama Pak Joko di Kec. Rawalo")
    t2 = add_complaint(desk, "Laporan yang nanti disembunyikan")
    cfg = str(tmp_path / "lapakd.toml")

    def cli(*args: str) -> str:
        proc = subprocess.run([sys.executable, "-m", "lapakd.cli", *args, "--config", cfg],
                              capture_output=True, text=True, timeout=60, check=True)
        return proc.stdout

    assert "public text replaced" in cli("publish-text", t1, "Jalan rusak di Rawalo, "
                                         "hubungi 081234567890", "--by", "admin1")
    assert "hidden" in cli("hide", t2, "--by", "admin1", "--reason", "nama orang")
    out = cli("export")
    assert "1 complaints published" in out
    root = site(desk)
    text = (root / "aduan" / f"{t1}.html").read_text()
    assert "Pak Joko" not in text and "Jalan rusak di Rawalo" in text
    assert "081234567890" not in text  # an admin's text is redacted too
    assert not (root / "aduan" / f"{t2}.html").exists()
    row = desk.store.complaint(t1)
    assert row["text"] == "Teks asli dengan nama Pak Joko di Kec. Rawalo"
    events = {r["type"]: r["actor"] for r in desk.store.all(
        "SELECT type, actor FROM events WHERE type LIKE 'public_%'")}
    assert events == {"public_text_set": "admin1", "public_hidden": "admin1"}
    cli("hide", t2, "--undo")
    cli("publish-text", t1, "--reset")
    cli("export")
    root = site(desk)
    assert (root / "aduan" / f"{t2}.html").exists()
    assert "Pak Joko" in (root / "aduan" / f"{t1}.html").read_text()


def test_failed_export_leaves_the_last_good_site(desk, monkeypatch):
    add_complaint(desk, "Jalan rusak pertama")
    export.export(desk)
    target = desk.config.public_dir
    before = target.resolve()
    index = (target / "index.html").read_text()
    add_complaint(desk, "Jalan rusak kedua")

    def boom(*_a, **_k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(stats, "compute", boom)
    with pytest.raises(RuntimeError):
        export.export(desk)
    assert target.resolve() == before and (target / "index.html").read_text() == index
    builds = sorted(p.name for p in target.parent.glob(".public.lapakd-build-*"))
    assert builds == [before.name]  # the failed build was removed
    monkeypatch.undo()
    export.export(desk)
    assert "Jalan rusak kedua" in (target / "aduan.json").read_text()


def test_a_real_directory_is_refused_and_one_previous_build_is_kept(desk):
    target = desk.config.public_dir
    target.mkdir(parents=True)
    (target / "old.html").write_text("old")
    add_complaint(desk, "Jalan rusak")
    with pytest.raises(export.ExportRefused, match="not replace it"):
        export.export(desk)  # not lapakd's: never moved aside, never deleted
    assert (target / "old.html").read_text() == "old" and not target.is_symlink()
    (target / "old.html").unlink()  # the operator moves it away: an empty folder is taken
    for _ in range(4):
        export.export(desk)
    assert target.is_symlink() and (target / "index.html").is_file()
    assert len(list(target.parent.glob(".public.lapakd-build-*"))) == export.KEEP_BUILDS


def test_incremental_rebuilds_only_what_changed(desk):
    for i in range(250):
        add_complaint(desk, f"Aduan nomor {i} jalan rusak")
    first = export.export(desk)
    assert first.rebuilt == 250 and first.reused == 0
    root1 = site(desk)
    old_ticket = json.loads((root1 / "aduan.json").read_text())[-1]["id"]
    new = [add_complaint(desk, f"Aduan baru {i}") for i in range(3)]
    second = export.export(desk)
    root2 = site(desk)
    assert root2 != root1 and second.rebuilt == 3
    # 250 detail pages + archive pages 1-2 + static files reused, not rendered again
    assert second.reused >= 250 + 2 + 2
    same = (root1 / "aduan" / f"{old_ticket}.html").stat()
    assert (root2 / "aduan" / f"{old_ticket}.html").stat().st_ino == same.st_ino
    for t in new:
        assert (root2 / "aduan" / f"{t}.html").exists()
    # a status change rebuilds that complaint only
    with desk.store.transaction() as conn:
        conn.execute("UPDATE complaints SET status = 'resolved', updated_at = '2099-01-01'"
                     " WHERE ticket = ?", (old_ticket,))
    third = export.export(desk)
    assert third.rebuilt == 1
    detail = (site(desk) / "aduan" / f"{old_ticket}.html").read_text()
    assert "Selesai" in detail
    full = export.export(desk, full=True)
    assert full.rebuilt == 253 and full.reused == 0


def test_search_data_in_shards_only_the_changed_shard_rewritten(desk, monkeypatch):
    monkeypatch.setattr(export, "SHARD_BLOCKS", 1)  # shards of 100 complaints: 3 for 250
    tickets = []
    for i in range(250):
        tickets.append(add_complaint(
            desk, f"Aduan nomor {i} jalan rusak", agencies=(("dpupr",), ("dlh",))[i < 100],
            kecamatan=("Wangon" if i < 100 else "Sokaraja"),
            status=("resolved" if i == 7 else "forwarded")))
    export.export(desk)
    root1 = site(desk)
    index = json.loads((root1 / "data/cari/index.json").read_text())
    assert [e["n"] for e in index["shards"]] == [3, 2, 1]  # newest first
    assert [e["count"] for e in index["shards"]] == [50, 100, 100]
    assert index["total"] == 250 and index["fields"] == model.ROW_FIELDS
    oldest = index["shards"][2]
    assert oldest["has"]["agency"] == ["dlh"] and oldest["has"]["kecamatan"] == ["Wangon"]
    assert oldest["has"]["status"] == ["forwarded", "resolved"]
    assert index["shards"][0]["has"]["agency"] == ["dpupr"]
    ids = [r[0] for n in (3, 2, 1)
           for r in json.loads((root1 / f"data/cari/{n}.json").read_text())["rows"]]
    assert ids == list(reversed(tickets))  # every complaint once, newest first
    assert not (root1 / "data" / "cari.json").exists()

    add_complaint(desk, "Aduan baru lampu mati", agencies=("dinhub",))
    export.export(desk)
    root2 = site(desk)
    for n in (1, 2):  # untouched shards are the same files (hard links), the newest is new
        assert (root2 / f"data/cari/{n}.json").stat().st_ino == \
            (root1 / f"data/cari/{n}.json").stat().st_ino
    assert (root2 / "data/cari/3.json").stat().st_ino != \
        (root1 / "data/cari/3.json").stat().st_ino
    index2 = json.loads((root2 / "data/cari/index.json").read_text())
    assert index2["shards"][0]["count"] == 51
    assert "dinhub" in index2["shards"][0]["has"]["agency"]
    assert index2["shards"][1:] == index["shards"][1:]


def test_export_to_out_dir(desk, tmp_path):
    add_complaint(desk, "Jalan rusak")
    out = tmp_path / "www" / "lapak"
    export.export(desk, out)
    assert (out / "index.html").is_file() and out.is_symlink()


def _jpeg_with_exif(jpeg: bytes) -> bytes:
    exif = b"Exif\x00\x00" + b"GPS-SECRET-LOCATION" * 3
    app1 = b"\xff\xe1" + (len(exif) + 2).to_bytes(2, "big") + exif
    return jpeg[:2] + app1 + jpeg[2:]


def test_photos_only_when_enabled_and_without_exif(tmp_path):
    from deskenv import TINY_JPEG

    for enabled in (False, True):
        root = tmp_path / str(enabled)
        root.mkdir()
        desk = make_desk(root, publish_photos=enabled)
        ticket = add_complaint(desk, "Foto jalan rusak")
        c = desk.store.complaint(ticket)
        raw = _jpeg_with_exif(TINY_JPEG)
        sha = desk.store.save_blob(raw)
        with desk.store.transaction() as conn:
            mid = conn.execute(
                "INSERT INTO messages (channel, external_id, raw, raw_format, received_at,"
                " stored_at, complaint_id) VALUES ('email', 'x', x'00', 'rfc822', '', '', ?)",
                (c["id"],)).lastrowid
            conn.execute(
                "INSERT INTO attachments (message_id, complaint_id, sha256, filename,"
                " content_type, size) VALUES (?, ?, ?, 'budi-santoso.jpg', 'image/jpeg', ?)",
                (mid, c["id"], sha, len(raw)))
        export.export(desk)
        out = desk.config.public_dir
        published = list((out / "foto").iterdir())
        detail = (out / "aduan" / f"{ticket}.html").read_text()
        if not enabled:
            assert published == [] and "<img" not in detail
        else:
            (photo,) = published
            data = photo.read_bytes()
            assert b"GPS-SECRET" not in data and data == photos.strip_jpeg(raw)
            assert data.startswith(b"\xff\xd8") and b"\xff\xda" in data
            assert f"../foto/{sha}.jpg" in detail and "budi-santoso" not in detail
        desk.close()


def test_png_metadata_is_removed():
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body))

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
           + chunk(b"tEXt", b"Author\x00Budi") + chunk(b"IDAT", zlib.compress(b"\x00\x00"))
           + chunk(b"IEND", b""))
    out = photos.strip_png(png)
    assert b"Budi" not in out and b"IDAT" in out and out.endswith(chunk(b"IEND", b""))


def test_routing_sets_kecamatan_and_pipeline_export_is_private(desk_env):
    desk_env.append(make_mail(
        "Jalan rusak", "Jalan di Desa Karangsalam Kec. Baturraden berlubang besar. "
        "WA saya 0812-7777-6666", sender="Siti Aminah <siti.aminah@example.com>"))
    desk_env.run_once()
    (row,) = desk_env.db().execute("SELECT ticket, kecamatan FROM complaints").fetchall()
    assert row["kecamatan"] == "Baturraden"
    desk_env.cli("export")
    root = (desk_env.data_dir / "public").resolve()
    assert (root / "aduan" / f"{row['ticket']}.html").is_file()
    for path in all_files(root):
        blob = path.read_bytes()
        for secret in (b"siti.aminah", b"Siti Aminah", b"0812-7777-6666"):
            assert secret not in blob, (secret, path)
    assert os.path.islink(desk_env.data_dir / "public")


def test_config_keeps_public_dir_as_the_symlink(desk, tmp_path):
    from lapakd.app import Desk
    from lapakd.config import load_config

    add_complaint(desk, "Jalan rusak")
    export.export(desk)
    again = Desk(load_config(tmp_path / "lapakd.toml"))  # a fresh CLI run after the swap
    try:
        assert again.config.public_dir == desk.config.public_dir
        assert again.config.public_dir.is_symlink()
        add_complaint(again, "Jalan rusak lagi")
        result = export.export(again)
        assert result.target == desk.config.public_dir and result.complaints == 2
    finally:
        again.close()
