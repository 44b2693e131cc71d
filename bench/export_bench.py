"""Benchmark the public export: full export of N complaints, then incremental after 10 new.

    /work/venv/bin/python bench/export_bench.py --n 100000 [--dir DIR]

Seeds N routed complaints (with a routing event, a sent forward and, for a third, an agency
answer) straight into a fresh SQLite store, then runs each phase in its own process so the
peak RSS (getrusage ru_maxrss) of each is its own.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from publicenv import add_complaint, make_desk

from lapakd.routing.kecamatan import KECAMATAN
from lapakd.store import iso

WORDS = [
    "jalan", "rusak", "berlubang", "lampu", "mati", "sampah", "menumpuk", "banjir", "saluran",
    "tersumbat", "pungli", "sekolah", "puskesmas", "antrean", "lama", "air", "PDAM", "keruh",
    "jembatan", "retak", "pohon", "tumbang",
]


def seed(root: Path, n: int) -> None:
    desk = make_desk(root)
    store = desk.store
    rng = random.Random(1)
    kecs = list(KECAMATAN)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    agencies = ["dpupr", "dlh", "inspektorat"]
    statuses = ["forwarded", "answered", "resolved", "triage", "rejected", "waiting_budget"]
    comp, events, outbox, updates = [], [], [], []
    for i in range(1, n + 1):
        received = start + timedelta(minutes=7 * i)
        agency = agencies[i % 3]
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(15, 60)))
        text += f" di Kec. {kecs[i % 27]}. Hubungi 0812{i:08d}."
        due = iso(received + timedelta(days=7))
        comp.append((i, f"LA-{received.year}-{i:06d}", ["email", "whatsapp", "x"][i % 3],
                     statuses[i % 6], "warga@example.com", "Warga", "Aduan", text,
                     iso(received), iso(received), "KATEGORI " + agency.upper(),
                     json.dumps([agency]), due, iso(received), iso(received)))
        sent = iso(received + timedelta(minutes=5))
        events.append((i, sent, "sent", "lapakd", json.dumps({"kind": "forward"}), i))
        outbox.append((i, i, json.dumps([f"{agency}@x"]), json.dumps({"agency": agency}),
                       f"forward:{i}", f"<{i}@x>", sent, sent, sent))
        if i % 3 == 0:
            updates.append((i, iso(received + timedelta(days=2)), agency, "Sudah ditangani."))
    with store.transaction() as conn:
        conn.executemany(
            "INSERT INTO complaints (id, ticket, channel, status, sender, sender_name, subject,"
            " text, received_at, route_after, category, agencies, due_at, created_at,"
            " updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", comp)
        conn.executemany(
            "INSERT INTO outbox (id, complaint_id, kind, transport, recipients, payload,"
            " dedupe_key, message_id, status, next_attempt_at, created_at, sent_at)"
            " VALUES (?, ?, 'forward', 'smtp', ?, ?, ?, ?, 'sent', ?, ?, ?)", outbox)
        conn.executemany(
            "INSERT INTO events (complaint_id, at, type, actor, data, outbox_id)"
            " VALUES (?,?,?,?,?,?)", events)
        if updates:
            conn.executemany(
                "INSERT INTO updates (complaint_id, at, source, agency, actor, text)"
                " VALUES (?, ?, 'agency', ?, 'dinas', ?)", updates)
            conn.executemany("UPDATE complaints SET first_answer_at = ? WHERE id = ?",
                             [(u[1], u[0]) for u in updates])
    desk.close()


def phase(root: Path, name: str) -> None:
    from lapakd.public import export

    desk = make_desk(root)
    if name == "incremental":
        for i in range(10):
            add_complaint(desk, f"Aduan baru {i}: jalan rusak di Kec. Wangon")
    t0 = time.perf_counter()
    result = export.export(desk)
    seconds = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # the export's worker processes (full export): the largest one's peak
    child_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({"phase": name, "seconds": round(seconds, 2), "peak_rss_mb": round(peak_mb),
                      "worker_peak_rss_mb": round(child_mb),
                      "complaints": result.complaints, "rebuilt": result.rebuilt,
                      "rendered": result.rendered, "reused": result.reused}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dir")
    ap.add_argument("--phase", choices=["full", "incremental"])
    args = ap.parse_args()
    root = Path(args.dir or tempfile.mkdtemp(prefix="lapakd-bench-"))
    if args.phase:
        phase(root, args.phase)
        return
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    seed(root, args.n)
    print(json.dumps({"phase": "seed", "seconds": round(time.perf_counter() - t0, 2),
                      "complaints": args.n, "dir": str(root)}))
    for name in ("full", "incremental"):
        subprocess.run([sys.executable, __file__, "--dir", str(root), "--phase", name],
                       check=True)
    size = subprocess.run(["du", "-sh", "--dereference-args", str(root / "var" / "public")],
                          capture_output=True, text=True).stdout.split()[0]
    print(json.dumps({"site_size": size}))
    print(json.dumps(sizes(root / "var" / "public")))


def sizes(site: Path) -> dict[str, object]:
    """What a browser downloads: the first page (index.html and what it loads), and the search
    data it fetches on demand (raw bytes and gzip level 6, as a web server would send it)."""
    def kb(path: Path) -> tuple[float, float]:
        data = path.read_bytes()
        return round(len(data) / 1024, 1), round(len(gzip.compress(data, 6)) / 1024, 1)

    first = [site / "index.html", site / "static" / "app.js", site / "static" / "style.css"]
    raw = sum(kb(p)[0] for p in first)
    wire = sum(kb(p)[1] for p in first)
    shards = sorted((site / "data" / "cari").glob("[0-9]*.json"), key=lambda p: p.stat().st_size)
    return {
        "first_page_kb": round(raw, 1), "first_page_gzip_kb": round(wire, 1),
        "search_index_kb": kb(site / "data" / "cari" / "index.json"),
        "shards": len(shards), "largest_shard_kb": kb(shards[-1]) if shards else None,
        "all_shards_mb": round(sum(p.stat().st_size for p in shards) / 2**20, 1),
        "aduan_json_mb": round((site / "aduan.json").stat().st_size / 2**20, 1),
    }


if __name__ == "__main__":
    main()
