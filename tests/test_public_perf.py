"""The fast export paths give the same site as the straightforward ones: statistics in SQL,
cached open-data blocks, the worker pool, the detail-pages token."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from publicenv import add_complaint, make_desk

from lapakd.public import export, stats

NOW = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
def desk(tmp_path):
    d = make_desk(tmp_path)
    yield d
    d.close()


def seed(desk, n: int = 230) -> list[str]:
    tickets = []
    kecs = [None, "Wangon", "Sokaraja", "Rawalo"]
    agencies = [("dpupr",), ("dlh",), ("dpupr", "dlh"), (), ("unknown-agency",)]
    statuses = ["forwarded", "answered", "resolved", "triage", "rejected", "waiting_budget"]
    for i in range(n):
        received = NOW - timedelta(days=400 - i, hours=i % 7)
        tickets.append(add_complaint(
            desk, f"Aduan {i} jalan rusak" + (" di Kec. Wangon" if i % 5 == 0 else ""),
            status=statuses[i % 6], agencies=agencies[i % 5],
            category=[None, "", "PEKERJAAN UMUM", "LINGKUNGAN"][i % 4],
            kecamatan=kecs[i % 4], received=received, due_days=[7, None, 3][i % 3],
            answer="Sudah ditangani." if i % 4 == 1 and agencies[i % 5] else None,
            channel=["email", "whatsapp", "x"][i % 3]))
    return tickets


def files(root: Path) -> dict[str, bytes]:
    root = root.resolve()
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_file() and ".manifest" not in rel and not any(
                name in rel for name in (export.PAGES_TOKEN, export.BUILD_MARKER,
                                         export.PAGES_MARKER)):
            out[rel] = p.read_bytes()
    return out


def test_statistics_in_sql_equal_the_row_computation(desk):
    seed(desk)
    export.export(desk, now=NOW)
    conn = desk.store.conn
    rows = [json.loads(r[0]) for r in conn.execute(
        "SELECT row FROM public_cache ORDER BY complaint_id")]
    names = {"dpupr": "Dinas Pekerjaan Umum", "dlh": "Dinas Lingkungan Hidup"}
    assert stats.compute(conn, names, desk.config.tz) == stats.compute(
        rows, names, desk.config.tz)
    same_name = {"dpupr": "Dinas", "dlh": "Dinas"}  # two keys, one name: counted together
    assert stats.compute(conn, same_name, desk.config.tz) == stats.compute(
        rows, same_name, desk.config.tz)


def test_pool_and_incremental_give_the_same_site_as_a_full_build(desk, tmp_path, monkeypatch):
    # The agencies' figures are kept for up to an hour on purpose (their own test in
    # test_public_accountability.py); here every export computes them, as a full one does.
    monkeypatch.setattr(export, "RANKING_MINUTES", 0)
    tickets = seed(desk)
    export.export(desk, now=NOW)
    # change things in the middle: a status, a hidden complaint, new ones at the end
    with desk.store.transaction() as conn:
        conn.execute("UPDATE complaints SET status = 'resolved', updated_at = '2099-01-01'"
                     " WHERE ticket = ?", (tickets[40],))
        conn.execute("UPDATE complaints SET hidden = 1, updated_at = '2099-01-01'"
                     " WHERE ticket = ?", (tickets[120],))
    for i in range(5):
        add_complaint(desk, f"Aduan baru {i}", received=NOW - timedelta(hours=i))
    inc = export.export(desk, now=NOW)
    assert inc.rebuilt == 1 + 5 and inc.reused > 200
    assert not (desk.config.public_dir / "aduan" / f"{tickets[120]}.html").exists()
    incremental = files(desk.config.public_dir)

    serial = export.export(desk, tmp_path / "serial" / "site", full=True, now=NOW)
    monkeypatch.setattr(export, "POOL_MIN", 1)
    monkeypatch.setattr(export, "TASK_BLOCKS", 1)
    pooled = export.export(desk, tmp_path / "pooled" / "site", full=True, now=NOW)
    assert serial.rebuilt == pooled.rebuilt == 230 - 1 + 5
    assert files(tmp_path / "serial" / "site") == incremental
    assert files(tmp_path / "pooled" / "site") == incremental
    data = json.loads((desk.config.public_dir / "aduan.json").read_text())
    assert len(data) == 234 and data[0]["id"] != tickets[120]
    assert tickets[120] not in {r["id"] for r in data}


def test_lost_pages_directory_is_rebuilt(desk):
    tickets = seed(desk, 30)
    export.export(desk, now=NOW)
    pages = desk.config.public_dir.parent / f".{desk.config.public_dir.name}-aduan"
    shutil.rmtree(pages)
    again = export.export(desk, now=NOW)
    assert again.rebuilt == 30
    assert all((desk.config.public_dir / "aduan" / f"{t}.html").is_file() for t in tickets)
    quiet = export.export(desk, now=NOW)
    assert quiet.rebuilt == 0 and quiet.rendered <= 4  # index, statistics, feed, instansi
