"""Benchmark the rules engine: complaints evaluated per second with 1,000 rules.

    .venv/bin/python bench/rules_bench.py [--rules 1000] [--texts 20000] [--profile]

Generates RULES realistic rules (keyword lists drawn from an Indonesian complaint vocabulary:
single words, phrases, `*` prefixes, `all:` pairs, `none:` exclusions, a few `regex:`,
`channel:` and `sender:` rules, some `continue: true`, triage and ignore) as YAML files into a
temporary rules dir, loads them with `lapakd.rules.load_rules` and evaluates TEXTS realistic
complaints (10-80 words, bench/corpus.py). Does the same with the shipped default rules
(`rules/`) and with both together (shipped first, then the generated ones). Prints the load
time, complaints/s (best of 5 passes, CPU time of this process and wall time; and the median
pass, as this figure moves by 10-20% on a shared machine from one minute to the next) and the mean
number of candidate rules the trigger-word index hands to the matcher per text.
Target (issue): over 20,000 complaints/s with 1,000 rules.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import platform
import pstats
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from corpus import DEFAULT_RULES, complaints

from lapakd.rules import RuleSet, load_rules
from lapakd.rules.text import words

TARGET_PER_SECOND = 20_000

# Things complained about (with the slang and Banyumasan spellings citizens use)...
OBJECTS = (
    "jalan", "jln", "dalan", "jembatan", "trotoar", "selokan", "gorong", "drainase", "saluran",
    "irigasi", "talud", "lampu", "pju", "bangjo", "rambu", "halte", "terminal", "angkot",
    "bus", "parkir", "sampah", "tps", "limbah", "sungai", "kali", "pohon", "taman", "pasar",
    "kios", "pedagang", "pkl", "sekolah", "guru", "murid", "seragam", "buku", "beasiswa",
    "zonasi", "puskesmas", "rumah sakit", "rsud", "bidan", "dokter", "obat", "ambulans",
    "posyandu", "bpjs", "ktp", "kk", "akta", "kia", "disdukcapil", "bansos", "blt", "pkh",
    "rtlh", "dana desa", "bumdes", "kades", "perangkat desa", "camat", "kelurahan", "pdam",
    "air", "pipa", "meteran", "sumur", "listrik", "sinyal", "internet", "wifi", "menara",
    "sawah", "pupuk", "benih", "ternak", "sapi", "kambing", "ayam", "ikan", "kolam",
    "tambang", "galian", "pasir", "pabrik", "asap", "debu", "kebisingan", "karaoke",
    "minimarket", "gas", "elpiji", "minyak goreng", "beras", "harga", "timbangan", "wisata",
    "lapangan", "gor", "stadion", "perpustakaan", "makam", "tpu", "pemakaman", "rumah",
    "atap", "banjir", "longsor", "kebakaran", "damkar", "ular", "tawon", "anjing", "monyet",
    "pengamen", "pengemis", "odgj", "preman", "judi", "miras", "narkoba", "pungli", "calo",
    "pegawai", "pns", "honorer", "satpol", "linmas", "posko", "pelayanan", "antrean",
    "loket", "aplikasi", "website", "izin", "imb", "pbg", "pajak", "pbb", "retribusi",
)
# ...and what is wrong with them.
PROBLEMS = (
    "rusak", "berlubang", "bolong", "ambles", "retak", "hancur", "jebol", "ambrol", "putus",
    "mati", "padam", "bocor", "mampet", "tersumbat", "meluap", "banjir", "kotor", "bau",
    "menumpuk", "berserakan", "dibakar", "dibuang", "liar", "macet", "semrawut", "lambat",
    "lama", "mahal", "langka", "habis", "kosong", "hilang", "dicuri", "telat", "terlambat",
    "tidak datang", "tidak ada", "belum cair", "dipotong", "disunat", "ditolak", "dipersulit",
    "dimintai uang", "pungutan", "judes", "kasar", "bolos", "tidur", "main hp", "berisik",
    "bising", "berdebu", "tercemar", "keruh", "kering", "gelap", "rawan", "bahaya", "roboh",
    "miring", "tumbang", "longsor", "terbakar", "error", "gangguan", "lemot", "tutup",
)
PLACES = (
    "ajibarang", "cilongok", "wangon", "sokaraja", "baturraden", "sumpiuh", "kebasen",
    "patikraja", "rawalo", "gumelar", "lumbir", "pekuncen", "kalibagor", "somagede",
    "purwokerto", "karanglewas", "kedungbanteng", "jatilawang", "purwojati", "kemranjen",
)
CHANNELS = ("email", "twitter", "facebook", "instagram", "whatsapp", "walkin", "phone")
CATEGORIES = (
    "PEKERJAAN UMUM DAN PENATAAN RUANG", "PERHUBUNGAN", "LINGKUNGAN HIDUP", "KESEHATAN",
    "PENDIDIKAN", "ADMINISTRASI KEPENDUDUKAN", "SOSIAL", "PEMBANGUNAN DESA", "PERDAGANGAN",
    "PERTANIAN", "PARIWISATA", "KOMUNIKASI DAN INFORMATIKA", "KETENTRAMAN DAN KETERTIBAN UMUM",
    "PENANGGULANGAN BENCANA", "KEPEGAWAIAN", "PENGAWASAN",
)


def _keyword(rng: random.Random) -> str:
    obj, problem = rng.choice(OBJECTS), rng.choice(PROBLEMS)
    kind = rng.random()
    if kind < 0.35:
        return obj
    if kind < 0.50:
        return obj.split()[0] + "*" if len(obj) > 4 else obj
    if kind < 0.85:
        return f"{obj} {problem}"
    return f"{obj.split()[0]}* {problem}"


def _quoted(keywords: list[str]) -> str:
    return "[" + ", ".join(f'"{k}"' for k in keywords) + "]"


def generate_rules(rules_dir: Path, count: int, seed: int = 7, per_file: int = 100) -> None:
    """Write `count` rules (and 40 agencies) as YAML files into rules_dir."""
    rng = random.Random(seed)
    rules_dir.mkdir(parents=True, exist_ok=True)
    agencies = [f"dinas{i:02d}" for i in range(40)]
    lines = ["agencies:"]
    for i, key in enumerate(agencies):
        lines += [f"  {key}:", f"    name: Dinas Nomor {i}", f"    email: {key}@banyumas.example"]
        if i % 3 == 0:
            lines.append(f"    sla_days: {5 + i % 10}")
    (rules_dir / "agencies.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for start in range(0, count, per_file):
        out = ["rules:"]
        for n in range(start, min(start + per_file, count)):
            out += _rule(rng, n, agencies)
        name = f"{100 + start // per_file:03d}-generated.yaml"
        (rules_dir / name).write_text("\n".join(out) + "\n", encoding="utf-8")


def _rule(rng: random.Random, n: int, agencies: list[str]) -> list[str]:
    out = [f"  - name: gen-{n:04d}-{rng.choice(OBJECTS).split()[0]}",
           f"    category: {rng.choice(CATEGORIES)}", "    when:"]
    shape = rng.random()
    if shape < 0.01:  # a regex-only rule: evaluated for every text (like jalan-rusak-pola)
        obj, problem = rng.choice(OBJECTS).split()[0], rng.choice(PROBLEMS).split()[0]
        out.append(f"      regex: '\\b{obj}\\w*\\b(?:\\W+\\w+){{0,5}}?\\W+{problem}\\b'")
    else:
        if shape < 0.85:
            out.append(f"      any: {_quoted([_keyword(rng) for _ in range(rng.randint(2, 15))])}")
        if shape >= 0.70:  # all: a second condition (a place, or a second topic word)
            pool = PLACES if rng.random() < 0.5 else OBJECTS
            out.append(f"      all: {_quoted(rng.sample(pool, k=rng.randint(1, 2)))}")
        if rng.random() < 0.02:
            obj = rng.choice(OBJECTS).split()[0]
            out.append(f"      regex: '\\b{obj}\\w*\\s+(?:di|ke)\\s+\\w+'")
    if rng.random() < 0.30:
        out.append(f"      none: {_quoted([_keyword(rng) for _ in range(rng.randint(1, 5))])}")
    if rng.random() < 0.02:
        out.append(f"      channel: [{', '.join(rng.sample(CHANNELS, k=2))}]")
    if rng.random() < 0.01:
        out.append('      sender: ["*@banyumaskab.go.id"]')
    action = rng.random()
    if action < 0.03:
        out.append("    triage: true")
    elif action < 0.05:
        out.append("    ignore: true")
    else:
        fwd = rng.sample(agencies, k=1 if rng.random() < 0.9 else 2)
        out.append(f"    forward: [{', '.join(fwd)}]")
        if rng.random() < 0.05:
            out.append("    continue: true")
        if rng.random() < 0.2:
            out.append("    budget_dependent: true")
    return out


def evaluate_all(ruleset: RuleSet, texts: list[tuple[str, str]]) -> tuple[float, float]:
    """(wall, CPU) seconds to evaluate every (text, sender) once, as routing does (email).

    CPU time (this process only) is the figure to compare on a shared machine: it does not
    count the time spent waiting for a core."""
    evaluate = ruleset.evaluate
    t0, c0 = time.perf_counter(), time.process_time()
    for text, sender in texts:
        evaluate(text, "email", sender)
    return time.perf_counter() - t0, time.process_time() - c0


def measure(label: str, rules_dir: Path, texts: list[tuple[str, str]], profile: bool) -> dict:
    t0 = time.perf_counter()
    ruleset = load_rules(rules_dir)
    load_s = time.perf_counter() - t0
    evaluate_all(ruleset, texts[:500])  # warm up
    runs = [evaluate_all(ruleset, texts) for _ in range(5)]
    best = min(cpu for _, cpu in runs)
    median = statistics.median(cpu for _, cpu in runs)
    wall = min(wall for wall, _ in runs)
    actions = Counter(ruleset.evaluate(t, "email", s).action for t, s in texts)
    candidates = statistics.mean(len(ruleset._candidates(words(t))) for t, _ in texts[:2000])
    result = {
        "label": label, "rules": len(ruleset.rules), "load_s": load_s, "best_s": best,
        "wall_per_s": len(texts) / wall, "per_s": len(texts) / best,
        "median_per_s": len(texts) / median,
        "us_each": best / len(texts) * 1e6, "candidates": candidates, "actions": actions,
    }
    if profile:
        prof = cProfile.Profile()
        prof.enable()
        evaluate_all(ruleset, texts)
        prof.disable()
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(12)
        result["profile"] = buf.getvalue()
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rules", type=int, default=1000, help="generated rules (default 1000)")
    ap.add_argument("--texts", type=int, default=20_000, help="complaints (default 20000)")
    ap.add_argument("--profile", action="store_true", help="cProfile one pass of each set")
    ap.add_argument("--keep", type=Path, help="write the generated rules here and keep them")
    args = ap.parse_args(argv)

    texts = [
        (f"{c.subject}\n{c.body}", c.sender) for c in complaints(args.texts, seed=3)
    ]
    lengths = [len(t.split()) for t, _ in texts]
    print(f"python {platform.python_version()} on {platform.machine()}, "
          f"{len(texts)} complaints of {min(lengths)}-{max(lengths)} words "
          f"(mean {statistics.mean(lengths):.0f})")

    tmp = Path(tempfile.mkdtemp(prefix="lapakd-rules-bench-"))
    try:
        generated = args.keep or tmp / "generated"
        generate_rules(generated, args.rules)
        combined = tmp / "combined"
        shutil.copytree(DEFAULT_RULES, combined)
        for path in generated.glob("*-generated.yaml"):
            shutil.copy(path, combined / path.name)
        with open(combined / "agencies.yaml", "a", encoding="utf-8") as fh:  # both agency sets
            body = (generated / "agencies.yaml").read_text(encoding="utf-8")
            fh.write("\n" + body.split("\n", 1)[1])
        sets = [
            (f"generated ({args.rules})", generated),
            ("shipped default rules", DEFAULT_RULES),
            ("shipped + generated", combined),
        ]
        results = [measure(label, path, texts, args.profile) for label, path in sets]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print()
    print("| rule set | rules | load | complaints/s (CPU) | (wall) | (CPU, median pass) "
          "| µs/complaint (CPU) | candidates/text | forward / triage / ignore |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in results:
        a = r["actions"]
        print(f"| {r['label']} | {r['rules']} | {r['load_s']:.1f} s | {r['per_s']:,.0f} "
              f"| {r['wall_per_s']:,.0f} | {r['median_per_s']:,.0f} | {r['us_each']:.1f} "
              f"| {r['candidates']:.1f} "
              f"| {a['forward']} / {a['triage']} / {a['ignore']} |")
    for r in results:
        if "profile" in r:
            print(f"\n--- cProfile, {r['label']} ---\n{r['profile']}")
    ok = results[0]["per_s"] >= TARGET_PER_SECOND
    print(f"\ntarget: > {TARGET_PER_SECOND:,} complaints/s with {args.rules} rules: "
          f"{'met' if ok else 'MISSED'} ({results[0]['per_s']:,.0f}/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
