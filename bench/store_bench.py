"""Store benchmark: insert and look up complaints in lapakd's SQLite store at 50,000 complaints.

The README compares this with TinyDB (0.42 s per insert, 0.21 s per lookup at 50k complaints).
Usage: .venv/bin/python bench/store_bench.py [--n 50000] [--samples 200]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from lapakd.store import Store, dumps, now_iso


def insert_complaint(store: Store, i: int) -> None:
    """One complaint the way intake stores it: its own transaction, a fresh ticket."""
    now = now_iso()
    with store.transaction():
        ticket = store.next_ticket("LA", 2026)
        store.conn.execute(
            "INSERT INTO complaints (ticket, channel, status, sender, subject, text, notes,"
            " received_at, route_after, agencies, created_at, updated_at)"
            " VALUES (?, 'email', 'forwarded', ?, ?, ?, '[]', ?, ?, ?, ?, ?)",
            (ticket, f"warga{i}@example.com", f"Aduan {i}",
             f"Jalan rusak di desa nomor {i}, mohon segera diperbaiki", now, now,
             dumps(["dpupr"]), now, now),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp))
        start = time.perf_counter()
        for i in range(args.n):
            insert_complaint(store, i)
        fill = time.perf_counter() - start
        inserts, lookups = [], []
        rng = random.Random(1)
        for j in range(args.samples):
            t = time.perf_counter()
            insert_complaint(store, args.n + j)
            inserts.append(time.perf_counter() - t)
            ticket = f"LA-2026-{rng.randint(1, args.n):06d}"
            t = time.perf_counter()
            store.complaint(ticket)
            lookups.append(time.perf_counter() - t)
        store.close()
    print(f"filled {args.n} complaints in {fill:.1f} s ({args.n / fill:,.0f}/s)")
    print(f"at {args.n} complaints: insert median {statistics.median(inserts) * 1e3:.3f} ms, "
          f"lookup by ticket median {statistics.median(lookups) * 1e3:.3f} ms "
          f"(TinyDB: 420 ms / 210 ms)")


if __name__ == "__main__":
    main()
