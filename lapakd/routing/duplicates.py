"""Cross-channel duplicates: the same pothole reported by WhatsApp and by X within a day.

For a complaint, find the open complaints of the same kecamatan and category (any category for
one in triage, which has none yet) received within WINDOW_DAYS of it whose text is similar:
SQLite FTS5 (`complaint_fts`, migration 0015) ranks them with bm25 over the salient words of
this complaint's text (the rarest RARE_TERMS of them: bm25 reads the whole list of complaints
holding each word it is asked about), and a candidate is shown when its bm25 is at least
THRESHOLD of what this complaint scores against itself (bm25 alone depends on the corpus; the
ratio does not).

Only a suggestion: the forward, the triage mail and `lapakd show` say "mungkin sama dengan
LA-..."; merging stays the admin's decision (`lapakd merge`). Figures: docs/benchmarks.md
(bench/duplicates_bench.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from lapakd import statuses
from lapakd.store import iso, parse_iso

if TYPE_CHECKING:
    from lapakd.store import Store

WINDOW_DAYS = 14
# Share of the complaint's own bm25 a candidate must reach; chosen from
# bench/duplicates_bench.py (docs/benchmarks.md): the lowest value with no false suggestion on
# the bench's different-but-similar complaints.
THRESHOLD = 0.35
MAX_SUGGESTIONS = 3
MAX_TERMS = 24
RARE_TERMS = 12  # the rarest salient words asked about
COMMON_SHARE = 0.05  # a word in more than this share of all complaints is too common to ask
COMMON_MIN_DOCS = 50  # ... unless the store is small
WORD = re.compile(r"[^\W_]+", re.UNICODE)
# Words that say nothing about which problem it is: function words (Indonesian, Banyumasan),
# politeness, the desk's and the citizen's own words for complaining.
_STOPWORD_TEXT = """
    ada adalah agar akan aku anda apa atau bagaimana bahwa banget banyak bapak baru belum beliau
    bisa bu buat cepat dalam dan dari dengan depan di dia dong ga gak gimana hal hari harus ibu
    ini itu jadi jam juga kak kalau kami kamu karena kasih ke kemarin kenapa kepada ki kok kami
    lagi lah lebih lewat mas masih mbak mau min minggu mohon mulai nggak nggih ngga nya nyong
    oleh ora pada pak para pun saat sama sampai sangat saya segera sejak seperti sering sudah
    supaya tadi tahun tapi telah terima tersebut tidak tolong untuk warga wis ya yang yg
    aduan lapor laporan melapor mengadu admin lapak banyumas kabupaten pemkab mohon ditindaklanjuti
    tindak lanjut segera terimakasih makasih matur nuwun sembah suwun
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


@dataclass(frozen=True)
class Similar:
    """An open complaint that may be the same problem, and how close its text is (0..1)."""

    ticket: str
    score: float
    status: str
    channel: str


def salient_words(text: str) -> list[str]:
    """The words of `text` that can tell one problem from another, first seen first."""
    out: list[str] = []
    for word in WORD.findall(text.lower()):
        if len(word) < 3 or word in STOPWORDS:
            continue
        if word not in out:
            out.append(word)
    return out[:MAX_TERMS]


# Asked as prefixes without these endings, so that `sampahe`, `sampahnya` and `sampah` meet
# (Indonesian -nya, Banyumasan -ne/-e); 8 → 9 of 12 twins found on the bench, none false.
SUFFIXES = ("nya", "ne", "e")


def _stem(word: str) -> str:
    for suffix in SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


def _match_query(words: list[str]) -> str:
    return " OR ".join('"' + _stem(w).replace('"', '""') + '"*' for w in words)


def similar_open(store: Store, complaint: Any, limit: int = MAX_SUGGESTIONS,
                 threshold: float = THRESHOLD) -> list[Similar]:
    """Open complaints that may be the same as `complaint` (a complaints row), best first."""
    if not complaint["kecamatan"]:
        return []  # without a place there is nothing to say "the same" about
    words = salient_words(f"{complaint['subject'] or ''} {complaint['text'] or ''}")
    if not words:
        return []
    received = parse_iso(complaint["received_at"])
    if received is None:
        return []
    window = timedelta(days=WINDOW_DAYS)
    where = ["c.id != ?", "c.kecamatan = ?", f"c.status IN ({statuses.sql_list(statuses.OPEN)})",
             "c.merged_into IS NULL", "c.received_at BETWEEN ? AND ?"]
    params: list[Any] = [complaint["id"], complaint["kecamatan"], iso(received - window),
                         iso(received + window)]
    if complaint["category"]:
        where.append("c.category = ?")
        params.append(complaint["category"])
    where_sql = " AND ".join(where)
    # Nothing open nearby (the usual case): no full-text work at all.
    if store.one(f"SELECT 1 FROM complaints c WHERE {where_sql} LIMIT 1", tuple(params)) is None:
        return []
    words = rare_words(store, words)
    if not words:
        return []
    query = _match_query(words)
    own = store.one("SELECT bm25(complaint_fts) FROM complaint_fts"
                    " WHERE complaint_fts MATCH ? AND rowid = ?", (query, complaint["id"]))
    if own is None or not own[0]:
        return []
    rows = store.all(
        "SELECT c.ticket, c.status, c.channel, bm25(complaint_fts) AS rank FROM complaint_fts"
        f" JOIN complaints c ON c.id = complaint_fts.rowid WHERE complaint_fts MATCH ?"
        f" AND {where_sql} ORDER BY rank LIMIT ?", (query, *params, limit * 4))
    out = [Similar(r["ticket"], round(r["rank"] / own[0], 3), r["status"], r["channel"])
           for r in rows]
    return [s for s in out if s.score >= threshold][:limit]


def rare_words(store: Store, words: list[str]) -> list[str]:
    """The RARE_TERMS words held by the fewest complaints, without the very common ones.

    bm25 reads the whole list of complaints holding each word it is asked about: a word in a
    third of the store costs much and says little (`bench/duplicates_bench.py --speed`)."""
    marks = ",".join("?" * len(words))
    docs = {r["term"]: r["doc"] for r in store.all(
        f"SELECT term, doc FROM complaint_fts_terms WHERE term IN ({marks})", tuple(words))}
    total = store.one("SELECT count(*) FROM complaints")[0]
    common = max(COMMON_MIN_DOCS, total * COMMON_SHARE)
    kept = [w for w in words if 0 < docs.get(w, 0) <= common]
    kept.sort(key=lambda w: docs[w])
    return kept[:RARE_TERMS]
