"""Realistic Indonesian complaint texts for the benchmarks (deterministic for a given seed).

The core of each complaint is one of the `examples:` shipped with the default rules
(`rules/*.yaml`): real-sounding complaints, spelling and slang included, about every topic the
desk handles. Around it go what citizens add when they write an email: a greeting, the place,
how long it has been going on, a plea and thanks — so the texts run from about 10 to 80 words.
Cores are taken round-robin across the rules files, so consecutive complaints go to different
agencies.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parent.parent
DEFAULT_RULES = REPO / "rules"

OPENINGS = (
    "Selamat pagi admin,", "Selamat siang Bapak/Ibu,", "Assalamualaikum wr wb.",
    "Yth. petugas Lapak Aduan Banyumas,", "Min tolong dibantu ya.", "Permisi mau melapor.",
    "Dengan hormat,", "Halo min,", "Mohon izin menyampaikan aduan.", "Sugeng enjing,",
)
PLACES = (
    "Kejadiannya di Desa Karangsalam, Kecamatan Kedungbanteng.",
    "Lokasinya di RT 03 RW 02 Kelurahan Berkoh, Purwokerto Selatan.",
    "Ini di dusun kami, Desa Pageraji Kecamatan Cilongok.",
    "Tempatnya di dekat pasar Ajibarang.",
    "Alamat saya di Perumahan Griya Satria Mandalatama blok C.",
    "Di Desa Kaliori, Kalibagor.",
    "Sekitar pertigaan Desa Sokawera, Kecamatan Somagede.",
    "Kami warga Kelurahan Sumampir, Purwokerto Utara.",
    "Lokasi di Desa Kebocoran, Kecamatan Kedungbanteng.",
    "Di wilayah Kecamatan Wangon dekat balai desa Klapagading.",
)
DETAILS = (
    "Sudah berlangsung sejak dua minggu yang lalu.",
    "Warga sudah beberapa kali menyampaikan ke RT tetapi belum ada tindak lanjut.",
    "Kondisi ini sangat mengganggu aktivitas warga terutama anak-anak dan lansia.",
    "Saya sudah coba telepon tapi tidak ada yang mengangkat.",
    "Kejadian seperti ini bukan sekali dua kali, hampir setiap bulan terulang.",
    "Foto kondisinya bisa saya kirimkan kalau diperlukan.",
    "Tetangga saya juga mengalami hal yang sama.",
    "Kami sebagai warga merasa dirugikan dan bingung harus mengadu ke mana.",
    "Kemarin sore keadaannya malah semakin parah.",
    "Sudah ada yang jadi korban, jangan sampai terulang lagi.",
    "Sebelumnya sudah pernah dilaporkan lewat media sosial tapi belum direspon.",
    "Mohon petugas bisa datang langsung untuk melihat kondisinya.",
)
CLOSINGS = (
    "Mohon segera ditindaklanjuti, terima kasih.", "Terima kasih atas perhatiannya.",
    "Matur nuwun.", "Mohon bantuannya, terima kasih banyak.", "Wassalamualaikum.",
    "Semoga cepat ditangani.", "Ditunggu tindak lanjutnya min.", "Hormat saya, warga.",
)
SUBJECTS = (
    "Aduan warga", "Laporan", "Mohon bantuan", "Keluhan", "Pengaduan masyarakat",
    "Tolong ditindaklanjuti", "Aduan", "Lapor min",
)
NAMES = (
    "Budi Santoso", "Siti Aminah", "Agus Prasetyo", "Dewi Lestari", "Slamet Riyadi",
    "Sri Wahyuni", "Eko Purnomo", "Nur Hidayah", "Wahyu Nugroho", "Rina Marlina",
)


@dataclass(frozen=True)
class Complaint:
    subject: str
    body: str
    sender_name: str
    sender: str
    topic: str  # the rules file its core comes from, e.g. "20-infrastruktur"


def example_cores(rules_dir: Path = DEFAULT_RULES) -> dict[str, list[str]]:
    """The `examples:` texts of each rules file, by file stem (the files' own order)."""
    yaml = YAML(typ="safe")
    cores: dict[str, list[str]] = {}
    for path in sorted(rules_dir.glob("*.yaml")):
        doc = yaml.load(path.read_text(encoding="utf-8")) or {}
        texts = [ex["text"] for ex in doc.get("examples") or [] if isinstance(ex, dict)]
        if texts:
            cores[path.stem] = texts
    if not cores:
        raise SystemExit(f"no rule examples found in {rules_dir}")
    return cores


def round_robin(cores: dict[str, list[str]]) -> list[tuple[str, str]]:
    """(topic, text) pairs taking one example from each file in turn."""
    out: list[tuple[str, str]] = []
    longest = max(len(v) for v in cores.values())
    for i in range(longest):
        for topic, texts in cores.items():
            out.append((topic, texts[i % len(texts)]))
    return out


def compose(core: str, rng: random.Random, min_words: int = 10, max_words: int = 80) -> str:
    """Wrap a core complaint in greeting / place / details / closing up to a random length."""
    target = rng.randint(min_words, max_words)
    parts = [core]
    words = len(core.split())
    if rng.random() < 0.6:
        opening = rng.choice(OPENINGS)
        parts.insert(0, opening)
        words += len(opening.split())
    for extra in [rng.choice(PLACES), *rng.sample(DETAILS, k=len(DETAILS))]:
        n = len(extra.split())
        if words >= min_words and words + n > target:
            break
        if words + n > max_words:
            continue
        parts.append(extra)
        words += n
    closing = rng.choice(CLOSINGS)
    if words + len(closing.split()) <= max_words:
        parts.append(closing)
    return " ".join(parts)


def complaints(n: int, seed: int = 1, rules_dir: Path = DEFAULT_RULES) -> Iterator[Complaint]:
    rng = random.Random(seed)
    pool = round_robin(example_cores(rules_dir))
    for i in range(n):
        topic, core = pool[i % len(pool)]
        name = NAMES[i % len(NAMES)]
        user = name.lower().replace(" ", ".")
        yield Complaint(
            subject=rng.choice(SUBJECTS),
            body=compose(core, rng),
            sender_name=name,
            sender=f"{user}{i % 997}@warga.example",
            topic=topic,
        )
