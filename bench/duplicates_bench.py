"""Cross-channel duplicate suggestions (lapakd/routing/duplicates.py): how often the true twin
is suggested, and how often a suggestion is wrong.

Hand-written complaints (our own, not from any portal), in groups that share a kecamatan and a
category — the hard case: every complaint in a group is about the same kind of problem in the
same place. Each group has complaints already on the desk (`open`), and new ones (`new`): a
reworded report of one of them (the twin's index) as it would come from another channel, or a
different problem of the same kind (None). A suggestion for a `None` complaint, or any
suggestion other than the twin, is a false suggestion.

    .venv/bin/python bench/duplicates_bench.py            # the figures at THRESHOLD
    .venv/bin/python bench/duplicates_bench.py --sweep    # the figures at other thresholds
    .venv/bin/python bench/duplicates_bench.py --speed 20000  # ms per lookup on a big store
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from lapakd.routing import duplicates
from lapakd.store import Store, iso


@dataclass
class Group:
    kecamatan: str
    category: str
    open: list[str]
    new: list[tuple[str, int | None]]


GROUPS = [
    Group("Sokaraja", "jalan", [
        "Jalan berlubang besar di Jl. Jenderal Soedirman depan SPBU Sokaraja, sudah dua motor "
        "jatuh minggu ini",
        "Aspal Jl. Raya Sokaraja-Banyumas ambles di dekat jembatan Kali Pelus, retak memanjang",
        "Jalan desa Karangnanas rusak parah, batu makadam lepas semua, licin kalau hujan",
        "Trotoar di depan Pasar Sokaraja dipakai parkir, pejalan kaki harus turun ke jalan",
    ], [
        ("min lubang gede nang Jl Soedirman Sokaraja cedhak pom bensin, wis ana motor tiba "
         "loro", 0),
        ("Jalan Soedirman depan SPBU Sokaraja berlubang dalam, bahaya buat pengendara motor", 0),
        ("jembatan kali pelus jalan raya sokaraja banyumas aspalnya ambles retak", 1),
        ("Karangnanas dalane rusak banget, makadame pada ucul, lunyu nek udan", 2),
        ("Lampu lalu lintas perempatan Sokaraja Tengah mati sejak kemarin sore", None),
        ("Jalan di Desa Pamijen berlubang kecil-kecil sepanjang 200 meter", None),
        ("Drainase di pinggir Jl. Raya Sokaraja tersumbat, air meluber ke jalan", None),
        ("Marka jalan depan SD Negeri 1 Sokaraja Kulon sudah pudar, mohon dicat ulang", None),
    ]),
    Group("Purwokerto Barat", "sampah", [
        "Sampah menumpuk di TPS Pasar Wage belum diangkut tiga hari, bau sekali",
        "Ada orang buang sampah sembarangan di bantaran Kali Kranji dekat jembatan Pasirmuncang",
        "Kontainer sampah di Jl. Gatot Subroto penuh dan sampahnya tumpah ke jalan",
    ], [
        ("TPS pasar wage sampahe numpuk wis telung dina ora diangkut, mambu", 0),
        ("tolong sampah di tps pasar wage diangkut, udah 3 hari numpuk bau", 0),
        ("kontainer sampah jl gatot subroto luber sampai ke badan jalan", 2),
        ("Pembakaran sampah di pekarangan warga Kober asapnya masuk rumah", None),
        ("Bank sampah RW 05 Pasirkidul tidak pernah dijemput petugas lagi", None),
        ("Tempat sampah di taman Andhang Pangrenan rusak dan tidak diganti", None),
    ]),
    Group("Kembaran", "lampu", [
        "Lampu PJU di Jl. Raya Kembaran dekat balai desa mati sudah seminggu, gelap gulita",
        "Tiang lampu jalan di Desa Bojongsari miring hampir roboh kena angin",
    ], [
        ("pju mati nang jalan raya kembaran cedhak balai desa, peteng banget", 0),
        ("PJU depan balai desa Kembaran padam sejak minggu lalu", 0),
        ("tiang lampu bojongsari miring mau ambruk, bahaya", 1),
        ("Lampu PJU di Desa Ledug nyala terus siang hari, boros listrik", None),
        ("Kabel lampu jalan di Dukuhwaluh menjuntai rendah sekali", None),
        ("Lampu taman di alun-alun kecamatan Kembaran banyak yang mati", None),
    ]),
    Group("Cilongok", "air", [
        "Air PDAM di Desa Pageraji mati total sudah empat hari, warga beli air galon",
        "Pipa PDAM bocor di pinggir jalan Cilongok dekat pasar, air muncrat terus",
    ], [
        ("banyu pdam mati nang Pageraji wis patang dina, kudu tuku galon terus", 0),
        ("pipa bocor di jalan dekat pasar cilongok, airnya muncrat kebuang percuma", 1),
        ("Air PDAM di Desa Panembangan keruh dan berbau sejak kemarin", None),
        ("Tagihan PDAM bulan ini naik dua kali lipat padahal pemakaian sama", None),
        ("Sumur bor bantuan di Desa Sudimara tidak berfungsi", None),
    ]),
]


def build(store: Store) -> list[tuple[int, int | None, list[int]]]:
    """Store every group's complaints; return (new id, twin id or None, ids of its group)."""
    start = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    n = 0
    probes = []

    def add(g: Group, text: str, channel: str) -> int:
        nonlocal n
        n += 1
        at = iso(start + timedelta(hours=n))
        with store.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO complaints (ticket, channel, status, text, received_at,"
                " route_after, category, kecamatan, created_at, updated_at)"
                " VALUES (?, ?, 'forwarded', ?, ?, ?, ?, ?, ?, ?)",
                (f"LA-2026-{n:05d}", channel, text, at, at, g.category, g.kecamatan, at, at))
            return int(cur.lastrowid)

    for g in GROUPS:
        opened = [add(g, text, "email") for text in g.open]
        group_ids = list(opened)
        for text, twin in g.new:
            new_id = add(g, text, "whatsapp")
            group_ids.append(new_id)
            probes.append((new_id, opened[twin] if twin is not None else None, group_ids))
    return probes


def measure(store: Store, probes, threshold: float) -> dict[str, float]:
    tickets = {r["id"]: r["ticket"] for r in store.all("SELECT id, ticket FROM complaints")}
    twin_of = {new_id: twin for new_id, twin, _ in probes}
    twins = found = shown = false = different = different_flagged = 0
    for new_id, twin, _ in probes:
        row = store.one("SELECT * FROM complaints WHERE id = ?", (new_id,))
        got = [s.ticket for s in duplicates.similar_open(store, row, threshold=threshold)]
        shown += len(got)
        if twin is None:
            different += 1
            different_flagged += bool(got)
            false += len(got)
        else:
            twins += 1
            found += tickets[twin] in got
            # Another report of the same problem (e.g. a third channel) is right too.
            same = {tickets[twin]} | {tickets[i] for i, t in twin_of.items()
                                      if t == twin and i != new_id}
            false += sum(t not in same for t in got)
    return {"threshold": threshold, "twins": twins, "twin_found": found / twins,
            "suggestions": shown, "false_suggestions": false,
            "false_rate": false / shown if shown else 0.0,
            "different": different, "different_flagged": different_flagged / different}


KECAMATAN = ("Ajibarang", "Banyumas", "Baturraden", "Cilongok", "Kalibagor", "Kebasen",
             "Kedungbanteng", "Kembaran", "Patikraja", "Purwokerto Barat", "Purwokerto Selatan",
             "Purwokerto Timur", "Purwokerto Utara", "Sokaraja", "Sumbang", "Wangon")


def speed(n: int) -> None:
    """Lookups on a store of n complaints (bench/corpus.py texts) over 60 days."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from corpus import complaints

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp))
        start = datetime(2026, 9, 1, tzinfo=UTC)
        t0 = time.perf_counter()
        with store.transaction() as conn:
            for i, c in enumerate(complaints(n)):
                at = iso(start + timedelta(minutes=i * 60 * 24 * 60 // n))
                conn.execute(
                    "INSERT INTO complaints (ticket, channel, status, subject, text,"
                    " received_at, route_after, category, kecamatan, created_at, updated_at)"
                    " VALUES (?, 'email', 'forwarded', ?, ?, ?, ?, ?, ?, ?, ?)",
                    (f"LA-2026-{i:06d}", c.subject, c.body, at, at, c.topic,
                     KECAMATAN[i % len(KECAMATAN)], at, at))
        insert = time.perf_counter() - t0
        rows = store.all("SELECT * FROM complaints ORDER BY id DESC LIMIT 500")
        times, shown = [], 0
        for row in rows:
            t = time.perf_counter()
            shown += bool(duplicates.similar_open(store, row))
            times.append((time.perf_counter() - t) * 1000)
        times.sort()
        print(f"{n} complaints stored in {insert:.1f} s (FTS5 triggers included); "
              f"lookup median {statistics.median(times):.2f} ms, "
              f"p95 {times[int(len(times) * 0.95)]:.2f} ms over {len(times)}; "
              f"{shown} of them got a suggestion")
        store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", action="store_true")
    parser.add_argument("--speed", type=int, metavar="N", help="time lookups on N complaints")
    args = parser.parse_args()
    if args.speed:
        speed(args.speed)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp))
        # Each new complaint is measured against what was open before it and after it in
        # the bench (the twin came first; the others are its group's open complaints).
        probes = build(store)
        thresholds = ([0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6] if args.sweep
                      else [duplicates.THRESHOLD])
        print("threshold  twin found  suggestions  false  false rate  different flagged")
        for t in thresholds:
            m = measure(store, probes, t)
            print(f"{t:9.2f}  {m['twin_found']:9.0%}  {m['suggestions']:11d}  "
                  f"{m['false_suggestions']:5d}  {m['false_rate']:9.0%}  "
                  f"{m['different_flagged']:6.0%} of {m['different']}")
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
