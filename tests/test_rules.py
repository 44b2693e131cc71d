"""The rules engine: keyword matching, evaluation order, decisions, the trigger index, examples.

Everything runs on real YAML files written into tmp_path and loaded by the real loader.
"""

from __future__ import annotations

import json
import random
import re
import textwrap
from pathlib import Path

import pytest

from lapakd.errors import RulesError
from lapakd.rules import Decision, RuleSet, check_examples, load_rules
from lapakd.rules.engine import _for_search, _has_literals, decide, lead_of, regex_needs
from lapakd.rules.text import MAX_GAP, Keyword, words

AGENCIES = """\
agencies:
  dpupr: {name: Dinas PUPR, email: dpupr@banyumas.example, cc: [kabid.jalan@banyumas.example], sla_days: 7}
  dinkes: {name: Dinas Kesehatan, email: dinkes@banyumas.example}
  dlh: {name: Dinas Lingkungan Hidup, email: dlh@banyumas.example}
  satpol: {name: Satpol PP, email: satpolpp@banyumas.example}
"""  # noqa: E501


def load(tmp_path: Path, files: dict[str, str], agencies: str = AGENCIES) -> RuleSet:
    """Write rules/<name> for every file (plus agencies.yaml) and load them for real."""
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir(exist_ok=True)
    (rules_dir / "agencies.yaml").write_text(agencies, encoding="utf-8")
    for name, text in files.items():
        (rules_dir / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return load_rules(rules_dir, display_root=tmp_path)


def line_of(text: str, snippet: str, nth: int = 1) -> int:
    """1-based line number of the nth line containing snippet (after dedent)."""
    found = [i for i, ln in enumerate(textwrap.dedent(text).splitlines(), 1) if snippet in ln]
    assert len(found) >= nth, f"{snippet!r} not in text"
    return found[nth - 1]


def kw(keyword: str, text: str) -> bool:
    return Keyword.parse(keyword).matches(words(text))


# -- keyword matching ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keyword", "text", "expected"),
    [
        # whole words only
        ("aspal", "aspal di jalan ini mengelupas", True),
        ("aspal", "aspalan di jalan ini mengelupas", False),
        ("aspal", "jalan beraspal", False),
        ("aspal*", "aspalan di jalan ini mengelupas", True),
        ("aspal*", "aspal", True),
        ("aspal*", "beraspal", False),
        ("jalan rusak", "jalanan rusak", False),
        # NFKC + case folding, on both sides
        ("jalan", "ＪＡＬＡＮ di desa", True),  # full-width letters
        ("jalan rusak", "ＪＡＬＡＮ　ＲＵＳＡＫ", True),  # full-width + ideographic space
        ("ＬＵＢＡＮＧ*", "lubangnya dalam", True),
        ("jalan rusak", "JALAN RUSAK parah", True),
        ("JALAN Rusak", "jalan rusak", True),
        ("strasse", "Die STRASSE ist kaputt", True),
        ("strasse", "Die Straße ist kaputt", True),  # casefold, not just lower()
        ("rt 05", "RT ０５ kebanjiran", True),  # full-width digits
        # punctuation separates words
        ("jalan rusak", "jalan-rusak", True),
        ("jalan rusak", "jalan,rusak", True),
        ("jalan rusak", "jalan...rusak!!!", True),
        ("jalan rusak", "(jalan) [rusak]", True),
        ("jalan rusak", "jalan_rusak", True),
        ("jalan-rusak", "jalan rusak", True),
        ("jalan rusak", "jalanrusak", False),  # one word, not a hashtag
        # phrase order matters
        ("jalan rusak", "rusak jalan", False),
        ("jalan rusak", "rusak jalannya", False),
        ("jalan rusak", "rusak, jalan", False),
        # gap between phrase words: at most MAX_GAP other words
        ("jalan rusak", "jalan rusak", True),
        ("jalan rusak", "jalan di desa karangsalam rusak", True),  # 3 between
        ("jalan rusak", "jalan di desa karangsalam sangat rusak", False),  # 4 between
        ("jalan rusak", "jalan a b c d rusak jalan x rusak", True),  # a later start fits
        ("jalan rusak", "jalan a b c d rusak rusak", False),
        ("jalan di desa", "jalan x x x di y y y desa", True),  # each gap 3
        ("jalan di desa", "jalan x x x di y y y y desa", False),
        ("jalan di desa", "jalan desa di", False),
        # trailing * makes a prefix word
        ("lubang*", "lubangnya besar sekali", True),
        ("lubang*", "ada lubang", True),
        ("lubang*", "jalan berlubang", False),
        ("lubang", "lubangnya besar", False),
        ("lampu* mati", "lampunya sudah mati", True),
        ("lampu* mati", "lampu mati", True),
        ("lampu* mati", "lampu matinya", False),
        ("lampu mati*", "lampu matinya", True),
        # hashtags carry the words of a phrase
        ("jalan rusak", "tolong #JalanRusak", True),
        ("jalan rusak", "#jalanrusak", True),
        ("jalan rusak", "#jalanrusakparah di desa", True),
        ("jalan rusak", "＃ＪａｌａｎＲｕｓａｋ", True),  # full-width hash sign
        ("jalan rusak", "#rusakjalan", False),
        ("jalan rusak", "#jalan", False),
        ("jalan rusak", "#xjalanrusak", False),
        ("jalan", "#jalan kaki", True),
        # nothing to match with
        ("!!!", "!!!", False),
    ],
)
def test_keyword_matching(keyword: str, text: str, expected: bool) -> None:
    assert kw(keyword, text) is expected


def test_max_gap_is_three() -> None:
    assert MAX_GAP == 3
    for gap in range(8):
        text = " ".join(["jalan", *["kata"] * gap, "rusak"])
        assert kw("jalan rusak", text) is (gap <= 3), gap


def test_words_normalises_once_for_regex_and_tokens() -> None:
    w = words("ＪＡＬＡＮ-Rusak, #LampuMati RT.05")
    assert w.tokens == ("jalan", "rusak", "lampumati", "rt", "05")
    assert w.hashtags == ("lampumati",)
    assert w.normalized == "jalan-rusak, #lampumati rt.05"


# -- evaluation through loaded rules ------------------------------------------------------------


def test_whole_words_through_the_engine(tmp_path: Path) -> None:
    rs = load(tmp_path, {"10-x.yaml": """\
        rules:
          - name: aspal
            when: {any: [aspal]}
            forward: dpupr
          - name: lubang
            when: {any: ["lubang*"]}
            forward: dpupr
        """})
    assert rs.evaluate("aspalan mengelupas").action == "triage"
    assert rs.evaluate("Aspal mengelupas").rule == "aspal"
    assert rs.evaluate("LUBANGNYA dalam").rule == "lubang"
    assert rs.evaluate("jalan berlubang").rule is None


def test_hashtag_reaches_a_phrase_rule_through_the_index(tmp_path: Path) -> None:
    rs = load(tmp_path, {"10-x.yaml": """\
        rules:
          - name: jalan-rusak
            when: {any: [jalan rusak]}
            forward: dpupr
          - name: lampu
            when: {any: ["lampu* mati"]}
            forward: dpupr
        """})
    for text in ("Pak, #JalanRusak lagi!", "#jalanrusakparah", "tolong #jalanrusak."):
        d = rs.evaluate(text)
        assert (d.action, d.rule, d.agencies) == ("forward", "jalan-rusak", ["dpupr"]), text
    assert rs.evaluate("#LampuMati sejak kemarin").rule == "lampu"
    assert rs.evaluate("#rusakjalan").rule is None



def test_hashtag_wakes_a_rule_but_does_not_make_its_one_word_keyword_match(
    tmp_path: Path,
) -> None:
    # "#jalanrusak" wakes rules triggered by "jalan" (for phrases), yet the token is
    # "jalanrusak": the whole word "jalan" is not in the text
    rs = load(tmp_path, {"10-x.yaml": """\
        rules:
          - name: jalan
            when: {any: [jalan]}
            forward: dpupr
          - name: jalan-rusak
            when: {any: [jalan rusak]}
            forward: dpupr
        """})
    assert rs.evaluate("#jalanrusak").rule == "jalan-rusak"
    assert rs.evaluate("#jalan kaki").rule == "jalan"


def test_phrase_needs_its_words_in_order_not_just_present(tmp_path: Path) -> None:
    # every word of "lampu mati" is in the text, but not in order: the phrase must not match
    rs = load(tmp_path, {"10-x.yaml": """\
        rules:
          - name: lampu-mati
            when: {any: ["lampu mati", "lampu* padam"]}
            forward: dpupr
        """})
    assert rs.evaluate("mati lampu").rule is None
    assert rs.evaluate("padam lampunya").rule is None
    assert rs.evaluate("lampunya padam").matched == ["lampu* padam"]
    assert rs.evaluate("lampu padam lagi").matched == ["lampu* padam"]
    assert rs.evaluate("lampu jalan sudah mati").matched == ["lampu mati"]



def test_matched_lists_every_keyword_that_hit_in_list_order(tmp_path: Path) -> None:
    # the engine looks only at keywords whose first word is in the text, grouped by that
    # word; what a decision shows is still every keyword that hit, in list order
    rs = load(tmp_path, {"10-x.yaml": """\
        rules:
          - name: r
            when: {any: ["lampu mati", "rusak", "jalan", "lampu", "jalan* rusak"]}
            forward: dpupr
        """})
    assert rs.evaluate("jalan rusak").matched == ["rusak", "jalan", "jalan* rusak"]
    assert rs.evaluate("lampu di jalan").matched == ["jalan", "lampu"]
    assert rs.evaluate("lampu jalan mati").matched == ["lampu mati", "jalan", "lampu"]
    assert rs.evaluate("lampunya").rule is None
    assert rs.evaluate("jalanan yang rusak").matched == ["rusak", "jalan* rusak"]
    assert rs.evaluate("#jalanrusak lampu").matched == ["lampu", "jalan* rusak"]
    # a phrase absorbs its own words: "jalan rusak" is one phrase hit (3 in the lead), not 3 hits
    assert rs.evaluate("jalan rusak").score == 3.0
    assert rs.evaluate("lampu jalan mati").score == 4.5  # "lampu mati" 3 + "jalan" 1.5


def test_token_cache_is_bounded_and_decisions_survive_its_clearing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lapakd.rules import engine

    monkeypatch.setattr(engine, "_TOKEN_CACHE_SIZE", 3)
    rs = load(tmp_path, {"10-x.yaml": """\
        rules:
          - name: lubang
            when: {any: ["lubang*", "jalan rusak"]}
            forward: dpupr
        """})
    texts = ["jalan yang rusak parah sekali", "ada lubangnya di sana", "jalan aman", "x y z"]
    for _ in range(3):
        assert [rs.evaluate(t).rule for t in texts] == ["lubang", "lubang", None, None]
        assert len(rs._token_bits) <= 3


def test_words_works_out_positions_on_demand() -> None:
    w = words("jalan rusak, jalan berlubang; jalanan")
    assert w.vocab == {"jalan", "rusak", "berlubang", "jalanan"}
    assert w.positions == {"jalan": [0, 2], "rusak": [1], "berlubang": [3], "jalanan": [4]}
    assert w.positions_of("jalan") == [0, 2]
    assert w.positions_of("aspal") == []
    assert sorted(w.starting_with("jalan")) == [0, 2, 4]
    assert w.starting_with("zz") == []
    assert w.ascii and not words("jalan rusák").ascii

def test_all_and_none(tmp_path: Path) -> None:
    rs = load(tmp_path, {"10-x.yaml": """\
        rules:
          - name: jembatan
            when: {any: [jembatan], all: [rusak, "desa*"], none: [hoaks, "bohong*"]}
            forward: dpupr
        """})
    assert rs.evaluate("jembatan di desa itu rusak").rule == "jembatan"
    assert rs.evaluate("jembatan di desanya rusak").rule == "jembatan"
    assert rs.evaluate("jembatan itu rusak").rule is None  # `all` needs desa*
    assert rs.evaluate("jembatan di desa itu").rule is None  # `all` needs rusak
    assert rs.evaluate("jembatan di desa itu rusak, hoaks").rule is None
    assert rs.evaluate("HOAKS: jembatan di desa rusak").rule is None
    assert rs.evaluate("jembatan di desa rusak, pembohong").rule == "jembatan"  # whole word
    assert rs.evaluate("jembatan di desa rusak, bohongan").rule is None
    d = rs.evaluate("jembatan di desa itu rusak")
    assert d.matched == ["jembatan", "rusak", "desa*"]


def test_all_only_rule_uses_first_all_word_as_trigger(tmp_path: Path) -> None:
    rs = load(tmp_path, {"10-x.yaml": """\
        rules:
          - name: both
            when: {all: [sampah, "numpuk*"]}
            forward: dlh
        """})
    assert rs.evaluate("sudah menumpuk, sampah di pasar").rule is None
    assert rs.evaluate("numpuknya sampah di pasar").rule == "both"
    assert rs.evaluate("sampah di pasar").rule is None


def test_regex_is_case_insensitive_and_sees_punctuation(tmp_path: Path) -> None:
    rs = load(tmp_path, {"10-x.yaml": r"""
        rules:
          - name: km
            when: {any: [jalan], regex: 'KM\s*\d+'}
            forward: dpupr
          - name: rt-only
            when: {regex: 'RT\.0?5\b'}
            forward: satpol
        """})
    d = rs.evaluate("Jalan km 12 rusak")
    assert (d.rule, d.matched) == ("km", ["jalan", "km 12"])
    assert rs.evaluate("Jalan KM12 rusak").rule == "km"
    assert rs.evaluate("Jalan ＫＭ１２ rusak").rule == "km"  # regex sees the NFKC text
    assert rs.evaluate("Jalan rusak").rule is None
    # regex-only rule (no any/all): evaluated for every text
    d = rs.evaluate("warga rt.05 resah")
    assert (d.rule, d.agencies, d.matched) == ("rt-only", ["satpol"], ["rt.05"])
    assert rs.evaluate("warga rt 05 resah").rule is None


def test_channel_and_sender_conditions(tmp_path: Path) -> None:
    rs = load(tmp_path, {"10-x.yaml": """\
        rules:
          - name: wa-jalan
            when: {any: [jalan], channel: [whatsapp, twitter]}
            forward: dpupr
          - name: internal
            when: {sender: ["*@banyumaskab.go.id", "+62812*"]}
            ignore: true
          - name: walkin-only
            when: {channel: walkin}
            triage: true
          - name: budi
            when: {sender: ["BUDI@*"], any: [sampah]}
            forward: dlh
        """})
    assert rs.evaluate("jalan rusak", channel="whatsapp").rule == "wa-jalan"
    assert rs.evaluate("jalan rusak", channel="twitter").rule == "wa-jalan"
    assert rs.evaluate("jalan rusak", channel="email").rule is None
    assert rs.evaluate("jalan rusak").rule is None  # no channel given
    # sender globs, matched case-insensitively, on a rule with no words at all
    d = rs.evaluate("laporan harian", sender="Humas@BanyumasKab.go.id")
    assert (d.action, d.rule) == ("ignore", "internal")
    assert rs.evaluate("laporan harian", sender="+6281234567").rule == "internal"
    assert rs.evaluate("laporan harian", sender="humas@banyumaskab.go.id.evil").rule is None
    assert rs.evaluate("laporan harian", sender="x@evil.example").rule is None
    assert rs.evaluate("laporan harian").rule is None
    # channel-only rule
    d = rs.evaluate("apa saja", channel="walkin")
    assert (d.action, d.rule, d.agencies) == ("triage", "walkin-only", [])
    # uppercase glob in the file still matches
    assert rs.evaluate("sampah", sender="budi@warga.example").rule == "budi"
    assert rs.evaluate("sampah", sender="Budi@Warga.example").rule == "budi"
    assert rs.evaluate("sampah", sender="andi@warga.example").rule is None


def test_equal_scores_go_to_the_first_rule_in_file_then_list_order(tmp_path: Path) -> None:
    rs = load(tmp_path, {
        "20-b.yaml": """\
            rules:
              - name: b-first
                when: {any: [jalan]}
                forward: dinkes
            """,
        "10-a.yaml": """\
            rules:
              - name: a-prefix
                when: {any: ["jal*"]}
                forward: dpupr
              - name: a-exact
                when: {any: [jalan]}
                forward: dlh
              - name: a-regex
                when: {regex: jalan}
                forward: satpol
                weight: 0.5  # a regex alone is a phrase's worth (3 here): halved, a tie
            """,
        "05-c.yml": """\
            rules:
              - name: c-sender
                when: {sender: ["*@first.example"]}
                forward: satpol
            """,
    })
    assert [r.name for r in rs.rules] == ["c-sender", "a-prefix", "a-exact", "a-regex", "b-first"]
    d = rs.evaluate("jalan rusak")
    assert (d.rule, d.agencies, [h["rule"] for h in d.hits]) == (
        "a-prefix", ["dpupr"], ["a-prefix"]
    )
    assert rs.evaluate("jalan rusak", sender="x@first.example").rule == "c-sender"


def test_continue_accumulates_agencies_and_keeps_first_category(tmp_path: Path) -> None:
    text = """\
        rules:
          - name: banjir
            category: BENCANA
            when: {any: [banjir]}
            forward: dpupr
            continue: true
          - name: banjir-sampah
            category: LINGKUNGAN
            when: {any: [sampah]}
            forward: [dlh, dpupr]
            budget_dependent: true
            continue: true
          - name: no-match
            when: {any: [jembatan]}
            forward: satpol
          - name: penyakit
            category: KESEHATAN
            when: {any: ["diare*"]}
            forward: dinkes
          - name: banjir-late
            when: {any: [banjir]}
            forward: satpol
        """
    rs = load(tmp_path, {"10-x.yaml": text})
    d = rs.evaluate("banjir membawa sampah, warga diare")
    assert d.action == "forward"
    assert d.agencies == ["dpupr", "dlh", "dinkes"]
    assert d.category == "BENCANA"
    assert d.rule == "banjir"
    assert d.budget_dependent is True
    assert d.matched == ["banjir", "sampah", "diare*"]
    assert d.hits == [
        {"rule": "banjir", "where": f"rules/10-x.yaml:{line_of(text, 'name: banjir')}",
         "matched": ["banjir"], "score": 1.5},
        {"rule": "banjir-sampah", "where": f"rules/10-x.yaml:{line_of(text, 'banjir-sampah')}",
         "matched": ["sampah"], "score": 1.5},
        {"rule": "penyakit", "where": f"rules/10-x.yaml:{line_of(text, 'penyakit')}",
         "matched": ["diare*"], "score": 1.5},
    ]
    # `penyakit` (no continue) stopped the chain above; here `banjir-late` is reached
    d = rs.evaluate("banjir lagi")
    assert (d.agencies, d.category, [h["rule"] for h in d.hits]) == (
        ["dpupr", "satpol"], "BENCANA", ["banjir", "banjir-late"]
    )
    # a continue rule with nothing after it decides alone
    d = rs.evaluate("sampah saja")
    assert (d.rule, d.agencies, d.category) == ("banjir-sampah", ["dlh", "dpupr"], "LINGKUNGAN")


def test_continue_then_later_category_fills_a_missing_one(tmp_path: Path) -> None:
    rs = load(tmp_path, {"10-x.yaml": """\
        rules:
          - name: first
            when: {any: [banjir]}
            forward: dpupr
            continue: true
          - name: second
            category: LINGKUNGAN
            when: {any: [banjir]}
            forward: dlh
        """})
    d = rs.evaluate("banjir")
    assert (d.rule, d.category, d.agencies) == ("first", "LINGKUNGAN", ["dpupr", "dlh"])


def test_after_continue_an_ignore_rule_stops_the_chain(tmp_path: Path) -> None:
    rs = load(tmp_path, {"10-x.yaml": """\
        rules:
          - name: first
            when: {any: [banjir]}
            forward: dpupr
            continue: true
          - name: spam
            when: {any: [promo]}
            ignore: true
          - name: later
            when: {any: [banjir]}
            forward: dlh
        """})
    d = rs.evaluate("banjir promo")
    assert (d.action, d.agencies, [h["rule"] for h in d.hits]) == ("forward", ["dpupr"], ["first"])


def test_ignore_and_triage_actions(tmp_path: Path) -> None:
    rs = load(tmp_path, {"10-x.yaml": """\
        rules:
          - name: spam
            category: SPAM
            when: {any: [promo, "judi*"]}
            ignore: true
          - name: unclear
            when: {any: [tolong]}
            triage: true
            public: false
          - name: forward-too
            when: {any: [promo, tolong]}
            forward: dpupr
        """})
    d = rs.evaluate("PROMO judi online")
    assert (d.action, d.agencies, d.rule, d.category) == ("ignore", [], "spam", "SPAM")
    d = rs.evaluate("tolong pak")
    assert (d.action, d.agencies, d.rule, d.public) == ("triage", [], "unclear", False)
    assert d.hits[0]["rule"] == "unclear"


def test_no_match_is_triage_without_rule(tmp_path: Path) -> None:
    rs = load(tmp_path, {"10-x.yaml": """\
        rules:
          - name: jalan
            when: {any: [jalan]}
            forward: dpupr
        """})
    d = rs.evaluate("selamat pagi")
    assert d == Decision(action="triage")
    assert (d.rule, d.agencies, d.matched, d.hits, d.category) == (None, [], [], [], None)


def test_decision_records_matched_hits_and_rule_fields(tmp_path: Path) -> None:
    text = """\
        # comment lines count too
        rules:
          - name: other
            when: {any: [air]}
            forward: dlh

          - name: jalan-rusak
            category: PEKERJAAN UMUM DAN PENATAAN RUANG
            when: {any: [jembatan, jalan rusak, "lubang*"], none: [hoaks]}
            forward: dpupr
            budget_dependent: true
            sla_days: 5
        """
    rs = load(tmp_path, {"10-x.yaml": text})
    d = rs.evaluate("Jalan di desa rusak, lubangnya besar")
    assert d.as_dict() == {
        "action": "forward",
        "agencies": ["dpupr"],
        "category": "PEKERJAAN UMUM DAN PENATAAN RUANG",
        "rule": "jalan-rusak",
        "matched": ["jalan rusak", "lubang*"],  # every keyword that hit
        # a phrase in the lead 3, a word after the first sentence end... none here: one
        # sentence, so "lubangnya" is in the lead too (1.5)
        "score": 4.5,
        "runners_up": [],
        "hits": [{"rule": "jalan-rusak", "where": "rules/10-x.yaml:7",
                  "matched": ["jalan rusak", "lubang*"], "score": 4.5}],
        "budget_dependent": True,
        "public": True,
        "sla_days": 5,
    }
    assert line_of(text, "name: jalan-rusak") == 7
    assert rs.rules[1].where == "rules/10-x.yaml:7"
    assert rs.agencies["dpupr"].addresses == (
        "dpupr@banyumas.example", "kabid.jalan@banyumas.example"
    )
    assert rs.agencies["dpupr"].sla_days == 7


def test_file_without_examples_or_rules_key_loads(tmp_path: Path) -> None:
    # regression: a file with only `rules:` (or only `examples:`) was reported as
    # "`examples:` must be a list" / "`rules:` must be a list of rules" at line 1
    rs = load(tmp_path, {
        "10-rules.yaml": """\
            rules:
              - name: jalan
                when: {any: [jalan]}
                forward: dpupr
            """,
        "90-examples.yaml": """\
            examples:
              - text: jalan rusak
                expect: dpupr
            """,
        "95-empty.yaml": "",
    })
    assert [r.name for r in rs.rules] == ["jalan"]
    assert len(rs.examples) == 1
    assert check_examples(rs) == []


# -- the trigger index gives the same decisions as trying every rule ---------------------------

VOCAB = [
    "jalan", "rusak", "lubang", "lubangnya", "berlubang", "aspal", "aspalan", "air", "banjir",
    "sampah", "sampahnya", "lampu", "lampunya", "mati", "desa", "di", "rt", "km", "parah",
    "hoaks", "jembatan", "besar", "menumpuk", "bersih", "jal", "a", "lu",
]
FILLER = ["yang", "sangat", "dan", "pak", "tolong", "05", "12"]
KEYWORDS = [
    *VOCAB[:20], "lubang*", "asp*", "sam*", "l*", "jalan*", "ai*", "a*", "jal*",
    "jalan rusak", "lampu mati", "lampu* mati", "lubang* besar", "sampah* menumpuk",
    "jalan di desa", "air* bersih", "air mati*", "jembatan rusak parah", "jalan-rusak",
    "rt 05", "Jalan Rusak",
]
REGEXES = [r"km\s*\d+", r"rt\.?\s*0?5", "JALAN", r"#\w+rusak", "^tolong"]
SENDER_GLOBS = ["*@banyumaskab.go.id", "+6281*", "BUDI@*", "*@warga.example"]
CHANNELS = ["email", "twitter", "whatsapp", "walkin"]
SENDERS = [None, "budi@warga.example", "Humas@BanyumasKab.go.id", "+6281234", "x@y.example"]
AGENCY_KEYS = ["dpupr", "dinkes", "dlh", "satpol"]


def _random_rule(rnd: random.Random, n: int) -> dict:
    when: dict = {}
    shape = rnd.random()
    if shape < 0.75:
        when["any"] = rnd.sample(KEYWORDS, rnd.randint(1, 3))
        if rnd.random() < 0.3:
            when["all"] = rnd.sample(KEYWORDS, rnd.randint(1, 2))
    elif shape < 0.88:
        when["all"] = rnd.sample(KEYWORDS, rnd.randint(1, 2))
    # else: no any/all at all — regex, channel or sender only (or nothing)
    if rnd.random() < 0.2:
        when["none"] = rnd.sample(KEYWORDS, 1)
    if rnd.random() < 0.12 or not when:
        when["regex"] = rnd.choice(REGEXES)
    if rnd.random() < 0.12:
        when["channel"] = rnd.sample(CHANNELS, rnd.randint(1, 2))
    if rnd.random() < 0.12:
        when["sender"] = rnd.sample(SENDER_GLOBS, 1)
    rule: dict = {"name": f"r{n}", "when": when}
    if rnd.random() < 0.5:
        rule["category"] = rnd.choice(["A", "B", "C"])
    action = rnd.random()
    if action < 0.8:
        rule["forward"] = rnd.sample(AGENCY_KEYS, rnd.randint(1, 2))
    elif action < 0.9:
        rule["ignore"] = True
    else:
        rule["triage"] = True
    if rnd.random() < 0.5:
        rule["continue"] = True
    if rnd.random() < 0.2:
        rule["budget_dependent"] = True
    if rnd.random() < 0.1:
        rule["public"] = False
    return rule


def _random_text(rnd: random.Random) -> str:
    parts = []
    for _ in range(rnd.randint(0, 12)):
        r = rnd.random()
        if r < 0.06:  # a phrase as a hashtag, maybe with more after it: #jalanrusakparah
            phrase = rnd.choice([k for k in KEYWORDS if " " in k])
            tag = phrase.replace(" ", "").replace("*", "") + rnd.choice(["", "", *VOCAB])
            parts.append("#" + (tag.title() if rnd.random() < 0.5 else tag))
        elif r < 0.12:
            tag = "".join(rnd.sample(VOCAB, rnd.randint(1, 3)))
            parts.append("#" + (tag.title() if rnd.random() < 0.5 else tag))
        elif r < 0.25:
            parts.append(rnd.choice(FILLER))
        else:
            word = rnd.choice(VOCAB)
            if rnd.random() < 0.15:
                word = word.upper()
            if rnd.random() < 0.05:  # full-width
                word = "".join(chr(ord(c) + 0xFEE0) if c.isascii() and c.isalnum() else c
                               for c in word)
            parts.append(word)
    seps = [" ", " ", " ", "-", ", ", ". ", "!", "_"]
    return "".join(p + rnd.choice(seps) for p in parts).strip()


def brute_force(rs: RuleSet, text: str, channel: str | None, sender: str | None) -> Decision:
    """The documented semantics, judging every rule plainly (no index, no bits, no memo)."""
    w = words(text)
    lead = lead_of(w)
    judged, hits = [], {}
    for index, rule in enumerate(rs.rules):
        found = rule.judge(w, channel, sender, lead)
        if found is not None:
            judged.append((index, found[0]))
            hits[index] = found[1]
    return decide(rs.rules, judged, hits.__getitem__)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_index_gives_the_same_decision_as_brute_force(tmp_path: Path, seed: int) -> None:
    rnd = random.Random(seed)
    rules = [_random_rule(rnd, n) for n in range(300)]
    files = {}
    for i, chunk in enumerate((rules[:100], rules[100:220], rules[220:])):
        # JSON is YAML: one flow mapping per rule, one per line
        body = "".join(f"  - {json.dumps(r)}\n" for r in chunk)
        files[f"{(3 - i) * 10}-rand.yaml"] = "rules:\n" + body
    rs = load(tmp_path, files)
    assert len(rs.rules) == 300
    assert rs.rules[0].name == "r220"  # 10-rand.yaml holds the last chunk
    assert any(not r.any and not r.all for r in rs.rules)

    decided = chained = hashtag_decided = 0
    for _ in range(700):
        text = _random_text(rnd)
        channel = rnd.choice([None, *CHANNELS])
        sender = rnd.choice(SENDERS)
        got = rs.evaluate(text, channel, sender)
        want = brute_force(rs, text, channel, sender)
        assert got.as_dict() == want.as_dict(), (text, channel, sender)
        decided += want.rule is not None
        chained += len(want.hits) > 1
        hashtag_decided += want.rule is not None and "#" in text
    # the comparison is not vacuous: many texts match, some through `continue` and hashtags
    assert decided > 300
    assert chained > 20
    assert hashtag_decided > 20

    # and the index really skips work: a text with none of the trigger words is only
    # tried against the rules that have no trigger at all
    w = words("zzz qqq")
    always = [i for i, r in enumerate(rs.rules) if not r.any and not r.all]
    assert rs._candidates(w) == always


# -- examples -------------------------------------------------------------------------------------


def test_check_examples_pass(tmp_path: Path) -> None:
    rs = load(tmp_path, {"10-x.yaml": """\
        rules:
          - name: jalan-rusak
            category: PEKERJAAN UMUM DAN PENATAAN RUANG
            when: {any: [jalan rusak, "lubang*"], all: [], none: [hoaks], regex: "", channel: [], sender: []}
            forward: dpupr
            budget_dependent: true
            continue: true
          - name: sampah
            when: {any: [sampah]}
            forward: dlh
          - name: spam
            when: {any: [promo]}
            ignore: true
          - name: wa
            when: {channel: [whatsapp]}
            forward: satpol
        examples:
          - text: "Jalan di Desa Karangsalam rusak, lubangnya besar"
            expect: dpupr
          - text: "Jalan rusak penuh sampah"
            expect: [dlh, dpupr]
          - text: "jalan rusak dan sampah"
            expect: dlh
          - text: "PROMO murah"
            expect: ignore
          - text: "selamat pagi"
            expect: triage
          - text: "selamat pagi"
            channel: whatsapp
            expect: satpol
        """})  # noqa: E501
    assert len(rs.examples) == 6
    assert check_examples(rs) == []


def test_check_examples_failures_name_file_line_and_rule(tmp_path: Path) -> None:
    text = """\
        rules:
          - name: kesehatan
            when: {any: ["diare*", demam]}
            forward: dinkes
          - name: jalan
            when: {any: [jalan]}
            forward: dpupr
            continue: true
          - name: sampah
            when: {any: [sampah]}
            forward: dlh
        examples:
          - text: "warga diare massal"
            expect: dpupr
          - text: "selamat pagi"
            expect: dinkes
          - text: "warga demam"
            expect: ignore
          - text: "jalan dan sampah"
            expect: [dpupr]
          - text: "jalan dan sampah"
            expect: [dpupr, dinkes]
        """
    rs = load(tmp_path, {"10-x.yaml": text})
    failures = check_examples(rs)
    assert failures == [
        f"rules/10-x.yaml:{line_of(text, 'warga diare')}: expected dpupr, got dinkes "
        "(rule 'kesehatan') for 'warga diare massal'",
        f"rules/10-x.yaml:{line_of(text, 'selamat pagi')}: expected dinkes, got triage "
        "(no rule matched) for 'selamat pagi'",
        f"rules/10-x.yaml:{line_of(text, 'warga demam')}: expected ignore, got dinkes "
        "(rule 'kesehatan') for 'warga demam'",
        f"rules/10-x.yaml:{line_of(text, 'jalan dan sampah', 2)}: expected dpupr, dinkes, "
        "got dpupr, dlh (rule 'jalan') for 'jalan dan sampah'",
    ]


def test_loader_problems_are_all_collected(tmp_path: Path) -> None:
    text = """\
        rules:
          - name: a
            when: {any: [jalan]}
            forward: dpurp
          - name: b
            when: {anyy: [jalan]}
            forward: dpupr
        """
    with pytest.raises(RulesError) as err:
        load(tmp_path, {"10-x.yaml": text})
    assert err.value.problems == [
        f"rules/10-x.yaml:{line_of(text, 'dpurp')}: unknown agency 'dpurp' in rule 'a' "
        "(did you mean 'dpupr'?) (agencies are defined in agencies.yaml)",
        f"rules/10-x.yaml:{line_of(text, 'anyy')}: unknown condition 'anyy' "
        "(did you mean 'any'?)",
    ]


def test_regex_literals_are_tested_minimal_and_shortest_first() -> None:
    from lapakd.rules.engine import _for_search

    # "pingping" and "ping" contain "p": wherever they are, "p" is too
    clauses = (frozenset({"ping", "p", "halo", "pingping"}), frozenset({"rusak"}))
    assert _for_search(clauses) == (("p", "halo"), ("rusak",))
    assert _for_search(()) == ()


def _dense_rule(rnd: random.Random, n: int) -> dict:
    """A rule for the dense comparison below: mostly keyword lists (the rules the engine ranks
    in bulk), with weights, context words, up to three `all:` keywords, `continue`."""
    when: dict = {"any": rnd.sample(KEYWORDS, rnd.randint(1, 6))}
    if rnd.random() < 0.3:
        when["all"] = rnd.sample(KEYWORDS, rnd.randint(1, 3))
    if rnd.random() < 0.15:
        when["none"] = rnd.sample(KEYWORDS, 1)
    if rnd.random() < 0.2:
        when["context"] = rnd.sample(KEYWORDS, rnd.randint(1, 3))
    if rnd.random() < 0.05:
        when["regex"] = rnd.choice(REGEXES)
    if rnd.random() < 0.05:
        when["channel"] = rnd.sample(CHANNELS, rnd.randint(1, 2))
    rule: dict = {"name": f"d{n}", "when": when}
    action = rnd.random()
    if action < 0.85:
        rule["forward"] = rnd.sample(AGENCY_KEYS, 1)
    elif action < 0.92:
        rule["ignore"] = True
    else:
        rule["triage"] = True
    if rnd.random() < 0.1:
        rule["continue"] = True
    if rnd.random() < 0.15:
        rule["weight"] = rnd.choice([0.5, 1.5, 2, 3])
    return rule


@pytest.mark.parametrize("seed", [11, 12])
def test_bulk_ranking_gives_the_same_decision_as_brute_force_with_many_matches(
    tmp_path: Path, seed: int
) -> None:
    """Many rules match each text (as in the benchmark's dense rule set): the engine ranks the
    keyword-only rules all at once and keeps only those that can show in the decision; the
    winner, the chained rules and the runners-up must still be the brute force's."""
    rnd = random.Random(seed)
    rules = [_dense_rule(rnd, n) for n in range(400)]
    body = "".join(f"  - {json.dumps(r)}\n" for r in rules)
    rs = load(tmp_path, {"10-dense.yaml": "rules:\n" + body})
    many = full_runners_up = 0
    for _ in range(400):
        text = _random_text(rnd)
        if rnd.random() < 0.5:  # a lead and a later sentence, both with words of the rules
            text = f"{_random_text(rnd)}. {text}"
        channel = rnd.choice([None, *CHANNELS])
        got = rs.evaluate(text, channel, None)
        want = brute_force(rs, text, channel, None)
        assert got.as_dict() == want.as_dict(), (text, channel)
        w = words(text)
        matching = sum(
            rule.judge(w, channel, None, lead_of(w)) is not None for rule in rs.rules
        )
        many += matching > 20
        full_runners_up += len(want.runners_up) == 3
    # not vacuous: most texts wake many rules, so most rules are left out of the ranking
    assert many > 200
    assert full_runners_up > 200


def test_starting_with_finds_every_token_with_the_prefix() -> None:
    """Words.starting_with searches a joined string in C; its answer is the plain one: the
    positions of the tokens that start with the prefix, in order."""
    rnd = random.Random(5)
    pool = ["jalan", "jalanan", "jl", "j", "lan", "an", "jalanrusak", "rusak", "ña", "ñoño", "5"]
    for _ in range(500):
        text = " ".join(rnd.choice(pool) for _ in range(rnd.randint(0, 15)))
        w = words(text)
        for prefix in ("jalan", "j", "lan", "an", "ña", "5", "jalanrusak", "zz"):
            want = [i for i, tok in enumerate(w.tokens) if tok.startswith(prefix)]
            assert w.starting_with(prefix) == want, (text, prefix)


# required literals in 1 to 5 clauses, with and without letters-and-digits-only literals
PREFILTER_REGEXES = [
    r"\bjalan\w*\b(?:\W+\w+){0,5}?\W+rusak\b", r"\blampu\w*\s+(?:di|ke)\s+\w+",
    r"km\s*\d+", r"rt\.?\s*0?5", r"air.{0,20}mati.{0,20}desa", r"a.b.c.d", r"sampah-\w+",
    r"(?:jalan|lampu) (?:rusak|mati) (?:di|ke) (?:desa|km) \d", r"\bl\w+ m\w+",
]


@pytest.mark.parametrize("seed", [21, 22])
def test_regex_prefilter_bits_give_the_same_decision_as_brute_force(
    tmp_path: Path, seed: int
) -> None:
    """The regex pre-filter, worked out from the text's bits for rules whose literals are
    letters and digits in at most three clauses and literal by literal for the rest, lets
    through every rule the brute force finds."""
    rnd = random.Random(seed)
    rules = []
    for n in range(120):
        when: dict = {"regex": rnd.choice(PREFILTER_REGEXES)}
        if rnd.random() < 0.4:
            when["any"] = rnd.sample(KEYWORDS, rnd.randint(1, 4))
        if rnd.random() < 0.1:
            when["sender"] = rnd.sample(SENDER_GLOBS, 1)
        rule: dict = {"name": f"x{n}", "when": when, "forward": rnd.sample(AGENCY_KEYS, 1)}
        if rnd.random() < 0.1:
            rule["continue"] = True
        rules.append(rule)
    body = "".join(f"  - {json.dumps(r)}\n" for r in rules)
    rs = load(tmp_path, {"10-regex.yaml": "rules:\n" + body})
    # all three paths used: bits only, bits then literals (clauses left out), literals only
    assert rs._literal_filtered & ~rs._literal_partial
    assert rs._literal_partial
    assert len(rs._literal_rules) < len(rs.rules)
    extra = ["a b c d", "km 12", "rt. 05", "sampah-nya", "lampu ke pasar", "jalan di desa"]
    decided = 0
    for _ in range(400):
        text = _random_text(rnd)
        if rnd.random() < 0.5:
            text += " " + rnd.choice(extra)
        if rnd.random() < 0.1:
            text += " ñ"  # not ASCII: every regex rule is tried
        sender = rnd.choice(SENDERS)
        got = rs.evaluate(text, "email", sender)
        want = brute_force(rs, text, "email", sender)
        assert got.as_dict() == want.as_dict(), (text, sender)
        decided += want.rule is not None
    assert decided > 100


def test_regex_needs_are_required_and_telling() -> None:
    """regex_needs: every match holds a literal of each clause (checked on texts built to
    match), and of an alternative it takes its most telling clause, not its first."""
    needs = _for_search(regex_needs(re.compile(
        r"\b(kec(amatan)?|desa|ds)\W*sumbang\b|\b(kotayasa|banjarsari\W*(kulon|wetan))\b",
        re.IGNORECASE,
    )))
    assert needs == (("sumbang", "kotayasa", "banjarsari"),)
    rnd = random.Random(8)
    for pattern in [*PREFILTER_REGEXES, *REGEXES, r"\bs[ou]ma\W*gede\b|\bkemawi\b"]:
        regex = re.compile(pattern, re.IGNORECASE)
        clauses = _for_search(regex_needs(regex))
        found = 0
        for _ in range(300):
            text = " ".join(rnd.choice([*VOCAB, *FILLER, "soma gede", "suma-gede", "kemawi",
                                        "a b c d", "km 5", "sampah-x", "lampu ke x", "rt. 05",
                                        "#jalanrusak", "jalan rusak di desa 5", "air mati di desa"])
                            for _ in range(rnd.randint(1, 8))).lower()
            if regex.search(text):
                found += 1
                assert _has_literals(clauses, text), (pattern, text)
        assert found, pattern  # the check saw matches


def _plain_phrase_match(parts: tuple[tuple[str, bool], ...], tokens: tuple[str, ...]) -> bool:
    """A phrase's meaning, stated plainly: its words in order, each within MAX_GAP other words
    of the previous one (a `*` word: any token starting with it)."""
    def fits(tok: str, part: tuple[str, bool]) -> bool:
        return tok.startswith(part[0]) if part[1] else tok == part[0]

    def rest(at: int, k: int) -> bool:
        if k == len(parts):
            return True
        return any(
            fits(tokens[i], parts[k]) and rest(i, k + 1)
            for i in range(at + 1, min(at + 2 + MAX_GAP, len(tokens)))
        )

    return any(fits(tok, parts[0]) and rest(i, 1) for i, tok in enumerate(tokens))


def test_phrases_match_as_stated_plainly() -> None:
    rnd = random.Random(9)
    pool = ["jalan", "jalanan", "rusak", "rusaknya", "di", "desa", "x", "y", "parah"]
    phrases = ["jalan rusak", "jalan* rusak*", "jalan di desa", "di desa", "rusak* parah",
               "jalan rusak parah", "jalan* di* desa", "desa desa", "x y x"]
    seen = 0
    for _ in range(2000):
        w = words(" ".join(rnd.choice(pool) for _ in range(rnd.randint(0, 14))))
        for source in phrases:
            k = Keyword.parse(source)
            want = _plain_phrase_match(k.parts, w.tokens)
            assert k.matches(w) == want, (w.tokens, source)
            seen += want
    assert seen > 2000
