"""Deciding by evidence: scores, `weight:`, `context:`, the lead, `continue`, runners-up; the
shipped rules on the issue's hard cases; `lapakd rules eval` on a CSV file and on a store.

Engine tests load real YAML with the real loader (tests/test_rules.py's `load`); the CLI ones
run `lapakd` as a subprocess (tests/test_rules_cli.py's helpers).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_rules import load
from test_rules_cli import TRACEBACK, lapakd, make_desk

from lapakd.errors import RulesError
from lapakd.rules import check_examples, load_rules
from lapakd.rules.measure import Case, measure, rules_predictor

SHIPPED = Path(__file__).resolve().parent.parent / "rules"

TWO = """\
rules:
  - name: sekolah
    when: {any: [sekolah, siswa, guru]}
    forward: dinkes
  - name: jalan
    when: {any: [jalan rusak, jalan, rusak]}
    forward: dpupr
"""


# -- the engine's scoring --------------------------------------------------------------------


def test_a_phrase_beats_a_single_word(tmp_path: Path) -> None:
    rs = load(tmp_path, {"10-x.yaml": TWO})
    d = rs.evaluate("siswa lewat jalan rusak tiap hari")
    # "jalan rusak" (a phrase, absorbing its own words) 3 > "siswa" 1.5, though sekolah is first
    assert (d.rule, d.score) == ("jalan", 3.0)
    assert d.runners_up == [{"rule": "sekolah", "where": "rules/10-x.yaml:2", "score": 1.5,
                             "action": "forward", "agencies": ["dinkes"]}]


def test_several_distinct_hits_beat_one(tmp_path: Path) -> None:
    rs = load(tmp_path, {"10-x.yaml": TWO})
    d = rs.evaluate("jalan di depan sekolah, siswa dan guru susah")
    assert (d.rule, d.score, d.matched) == ("sekolah", 4.5, ["sekolah", "siswa", "guru"])
    # one hit each: the earlier rule wins the tie
    assert rs.evaluate("jalan sekolah").rule == "sekolah"


def test_a_hit_in_the_lead_beats_one_in_a_later_sentence(tmp_path: Path) -> None:
    rs = load(tmp_path, {"10-x.yaml": TWO})
    d = rs.evaluate("Jalan di kampung kami. Dekat sekolah.")
    assert (d.rule, d.score) == ("jalan", 1.5)
    assert d.runners_up[0]["score"] == 1.0
    d = rs.evaluate("Dekat sekolah. Jalan di kampung kami.")
    assert (d.rule, d.score) == ("sekolah", 1.5)
    # the subject is part of the lead, and so is the body's first sentence after it
    d = rs.evaluate("Mohon dibantu. Dekat sekolah.", subject="Jalan")
    assert (d.rule, d.score) == ("jalan", 1.5)
    d = rs.evaluate("Jalan di kampung. Dekat sekolah.", subject="Laporan warga")
    assert d.rule == "jalan"


def test_none_still_vetoes_the_strongest_rule(tmp_path: Path) -> None:
    rs = load(tmp_path, {"10-x.yaml": """\
        rules:
          - name: banyak
            when: {any: [sampah, bau, lalat, numpuk], none: [hoaks]}
            forward: dlh
          - name: sedikit
            when: {any: [sampah]}
            forward: dpupr
        """})
    assert rs.evaluate("sampah numpuk bau banyak lalat").rule == "banyak"
    d = rs.evaluate("sampah numpuk bau banyak lalat, tapi hoaks")
    assert (d.rule, d.runners_up) == ("sedikit", [])


def test_weight_scales_a_rule_and_context_counts_only_beside_its_own_words(
    tmp_path: Path,
) -> None:
    rs = load(tmp_path, {"10-x.yaml": """\
        rules:
          - name: sekolah
            when: {any: [sekolah, siswa]}
            forward: dinkes
          - name: jalan
            when: {any: [jalan rusak], context: [sekolah, siswa, dilewati]}
            forward: dpupr
          - name: pungli
            when: {any: [pungli]}
            forward: satpol
            weight: 3
        """})
    d = rs.evaluate("jalan rusak dilewati siswa ke sekolah")
    assert (d.rule, d.score, d.matched) == ("jalan", 7.5, ["jalan rusak", "sekolah", "siswa",
                                                           "dilewati"])
    assert d.runners_up[0]["rule"] == "sekolah"
    # context words alone never make the rule match
    d = rs.evaluate("siswa ke sekolah dilewati")
    assert (d.rule, [r["rule"] for r in d.runners_up]) == ("sekolah", [])
    # one pungli word weighs 3 x 1.5
    d = rs.evaluate("pungli di sekolah, siswa dimintai uang")
    assert (d.rule, d.score) == ("pungli", 4.5)


def test_continue_rules_add_their_agencies_to_the_winner(tmp_path: Path) -> None:
    rs = load(tmp_path, {"10-x.yaml": """\
        rules:
          - name: banjir
            category: BENCANA
            when: {any: [banjir]}
            forward: satpol
            continue: true
          - name: jembatan
            category: PU
            when: {any: [jembatan, jembatan putus, putus]}
            forward: dpupr
          - name: sampah
            when: {any: [sampah]}
            forward: dlh
        """})
    # the strongest rule (jembatan) decides; the matching continue rule adds its agency
    d = rs.evaluate("jembatan putus diterjang banjir")
    assert (d.rule, d.category, d.agencies) == ("jembatan", "PU", ["dpupr", "satpol"])
    assert [h["rule"] for h in d.hits] == ["jembatan", "banjir"]
    # the continue rule wins: the strongest rule without continue adds its agencies (once)
    d = rs.evaluate("banjir bawa sampah")
    assert (d.rule, d.category, d.agencies) == ("banjir", "BENCANA", ["satpol", "dlh"])


def test_the_index_skips_nothing_the_plain_rules_would_score(tmp_path: Path) -> None:
    # a keyword list shared by two rules (a YAML anchor) is worked out once per text, and both
    # rules still get its evidence
    rs = load(tmp_path, {"10-x.yaml": """\
        rules:
          - name: a
            when: {any: &w [jalan rusak, lubang, "aspal*"]}
            forward: dpupr
            weight: 0.5
          - name: b
            when: {any: *w}
            forward: dinkes
        """})
    d = rs.evaluate("jalan rusak, lubang, aspalnya hilang")
    assert (d.rule, d.score, d.runners_up[0]["score"]) == ("b", 6.0, 3.0)


# -- YAML validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("    weight: 0", "`weight:` must be a number from 0.1 to 10 (default 1), got 0"),
        ("    weight: 11", "`weight:` must be a number from 0.1 to 10 (default 1), got 11"),
        ("    weight: banyak", "`weight:` must be a number from 0.1 to 10 (default 1), "
                               "got 'banyak'"),
        ("    weight: true", "`weight:` must be a number from 0.1 to 10 (default 1), got True"),
        ("    context: [sekolah]", "`context:` belongs under `when:`"),
    ],
)
def test_bad_weight_or_context_is_one_line_with_file_and_line(
    tmp_path: Path, line: str, message: str
) -> None:
    text = f"rules:\n  - name: r\n    when: {{any: [jalan]}}\n    forward: dpupr\n{line}\n"
    with pytest.raises(RulesError) as err:
        load(tmp_path, {"10-x.yaml": text})
    assert err.value.problems == [f"rules/10-x.yaml:5: {message}"]


def test_context_needs_the_rules_own_evidence(tmp_path: Path) -> None:
    text = "rules:\n  - name: r\n    when:\n      channel: [email]\n      context: [sekolah]\n" \
           "    forward: dpupr\n"
    with pytest.raises(RulesError) as err:
        load(tmp_path, {"10-x.yaml": text})
    assert err.value.problems == [
        "rules/10-x.yaml:5: `context:` words only count beside the rule's own evidence: add "
        "`any:` (or `all:`, `regex:`) to this rule"
    ]


def test_a_good_weight_loads(tmp_path: Path) -> None:
    rs = load(tmp_path, {"10-x.yaml": "rules:\n  - name: r\n    when: {any: [jalan]}\n"
                                      "    forward: dpupr\n    weight: 2.5\n"})
    assert rs.rules[0].weight == 2.5
    assert rs.evaluate("jalan").score == 3.75


# -- the shipped rules ------------------------------------------------------------------------

HARD_CASES = [
    # a place next to the real topic
    ("Jalan menuju SD N 2 Karanglewas rusak parah, tiap hari dilewati anak sekolah, siswa "
     "sering jatuh", "dpupr"),
    ("Banyak PKL jualan di trotoar depan RSUD Banyumas, pasien dan ambulans susah lewat",
     "satpolpp"),
    ("lampu jalan di perempatan Sokaraja konslet, kabel terbakar tiap hujan", "dinhub"),
    ("Lampu PJU di Jl. Gatot Subroto mati, kabelnya korslet sampai keluar percikan api",
     "dinhub"),
    ("Saya guru honorer di SD, mau tanya kenapa bansos PKH ibu saya tidak cair lagi",
     "dinsospermades"),
    ("Pelayanan di kantor Bapenda lambat sekali, bayar PBB antri 3 jam", "bpkpad"),
    # an audit is the Inspektorat's job (it audits village funds); not the irrigation rule
    ("Mohon audit dana desa Kemranjen, pembangunan saluran irigasi desa tidak jelas "
     "anggarannya", "inspektorat"),
]


@pytest.mark.parametrize(("text", "agency"), HARD_CASES)
def test_shipped_rules_route_the_hard_cases(text: str, agency: str) -> None:
    d = load_rules(SHIPPED).evaluate(text)
    assert d.action == "forward" and d.agencies[0] == agency, d.as_dict()


def test_an_organisations_ranting_is_not_a_tree_branch() -> None:
    d = load_rules(SHIPPED).evaluate(
        "Kami dari ranting Muhammadiyah Cilongok ingin tanya prosedur pengajuan hibah untuk "
        "kegiatan penanaman pohon"
    )
    assert "dlh" not in d.agencies, d.as_dict()


def test_shipped_examples_all_pass() -> None:
    assert check_examples(load_rules(SHIPPED)) == []


# -- rules eval ------------------------------------------------------------------------------


def test_measure_counts_routed_share_precision_and_confusions(tmp_path: Path) -> None:
    rs = load(tmp_path, {"10-x.yaml": TWO})
    cases = [
        Case("jalan rusak parah", ("dpupr",), "a"),
        Case("guru galak", ("dinkes",), "b"),
        Case("jalan berlubang", ("dinkes",), "c"),  # routed to the wrong agency
        Case("selamat pagi", ("dpupr",), "d"),  # not routed
        Case("pungutan di sekolah", (), "e"),  # labelled triage, routed: wrong
        Case("terima kasih", (), "f"),  # labelled triage, kept back
    ]
    report = measure(cases, rules_predictor(rs))
    out = report.as_dict()
    assert (out["cases"], out["routed"], out["routed_right"]) == (6, 4, 2)
    assert (out["routed_share"], out["precision"]) == (0.6667, 0.5)
    assert out["labelled_triage_kept_back"] == 1
    assert out["per_agency"]["dpupr"] == {"precision": 0.5, "recall": 0.5, "routed": 2,
                                          "labelled": 2}
    assert out["per_agency"]["dinkes"] == {"precision": 0.5, "recall": 0.5, "routed": 2,
                                           "labelled": 2}
    assert {(c["labelled"], c["got"]) for c in out["confusions"]} == {
        ("dinkes", "dpupr"), ("dpupr", "triage"), ("triage", "dinkes"),
    }


def test_rules_eval_file_text_and_json(tmp_path: Path) -> None:
    make_desk(tmp_path, {"10-x.yaml": TWO})
    labelled = tmp_path / "labelled.csv"
    labelled.write_text(
        "text,agency\n"
        '"Jalan rusak parah, banyak lubang",dpupr\n'
        '"guru di sekolah galak",dinkes|dpupr\n'
        '"jalan berlubang depan rumah",dinkes\n'
        '"selamat pagi min",triage\n',
        encoding="utf-8",
    )
    proc = lapakd(tmp_path, "rules", "eval", "--file", str(labelled))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == ("4 complaints: routed 3 (75.0%), precision 66.7% (2 of the routed at an "
                        "acceptable agency); labelled triage and kept back: 1")
    assert any(line.split()[:3] == ["dpupr", "50%", "100%"] for line in lines)
    assert "     1 × dinkes → dpupr" in lines
    proc = lapakd(tmp_path, "rules", "eval", "--file", str(labelled), "--json")
    out = json.loads(proc.stdout)
    assert (out["routed"], out["precision"]) == (3, 0.6667)
    assert out["mistakes"][0]["labelled"] == "dinkes"


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ("teks,agency\nx,dpupr\n", "labelled.csv:1: the header must name the columns text and "
                                   "agency (found: teks, agency)"),
        ("text,agency\njalan rusak,dpurp\n", "labelled.csv:2: unknown agency 'dpurp'"),
        ("text,agency\njalan rusak,\n", "labelled.csv:2: empty agency"),
        ("text,agency\n", "labelled.csv: no labelled rows"),
    ],
)
def test_rules_eval_bad_file_is_one_line(tmp_path: Path, content: str, error: str) -> None:
    make_desk(tmp_path, {"10-x.yaml": TWO})
    (tmp_path / "labelled.csv").write_text(content, encoding="utf-8")
    proc = lapakd(tmp_path, "rules", "eval", "--file", "labelled.csv")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1
    assert error in proc.stderr
    assert not TRACEBACK.search(proc.stderr)


def test_rules_eval_history_uses_what_people_confirmed(tmp_path: Path) -> None:
    make_desk(tmp_path, {"10-x.yaml": TWO})

    def add(text: str) -> str:
        proc = lapakd(tmp_path, "add", "--text", text, "--json")
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)["id"]

    routed_right = add("jalan rusak parah depan sekolah")  # rules: dpupr, resolved
    triaged = add("mohon info jadwal posyandu")  # rules: triage; admin: dinkes
    pasar = add("lubang besar dekat pasar")  # rules: triage; admin: dinkes
    add("jalan rusak lagi")  # rules: dpupr, nobody confirmed it: not counted
    rejected = add("promo kredit motor murah")  # rules: triage; rejected by the desk
    assert lapakd(tmp_path, "assign", triaged, "dinkes").returncode == 0
    assert lapakd(tmp_path, "assign", pasar, "dinkes").returncode == 0
    assert lapakd(tmp_path, "set-status", routed_right, "resolved",
                  "--note", "sudah diperbaiki").returncode == 0
    assert lapakd(tmp_path, "set-status", rejected, "rejected",
                  "--note", "bukan aduan").returncode == 0
    # the rules change afterwards: eval measures what they say now
    (tmp_path / "rules" / "10-x.yaml").write_text(TWO.replace("rusak]", "rusak, lubang]"),
                                                  encoding="utf-8")

    proc = lapakd(tmp_path, "rules", "eval", "--history", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    # confirmed: routed_right (resolved), triaged and pasar (assigned), rejected (triage)
    assert out["cases"] == 4
    assert (out["routed"], out["routed_right"]) == (2, 1)
    assert out["labelled_triage_kept_back"] == 1
    assert {(c["labelled"], c["got"]) for c in out["confusions"]} == {
        ("dinkes", "dpupr"), ("dinkes", "triage"),
    }
    proc = lapakd(tmp_path, "rules", "eval", "--history")
    assert proc.stdout.startswith("4 complaints: routed 2 (50.0%), precision 50.0%")

    # and `lapakd show` tells the rules' score and the runner-up
    proc = lapakd(tmp_path, "show", routed_right)
    assert "by rule jalan at rules/10-x.yaml:5 score 3" in proc.stdout
    assert "runners-up: sekolah 1.5 → dinkes" in proc.stdout


def test_rules_eval_needs_one_source(tmp_path: Path) -> None:
    make_desk(tmp_path, {"10-x.yaml": TWO})
    proc = lapakd(tmp_path, "rules", "eval")
    assert proc.returncode == 2
    assert "give --file labelled.csv or --history" in proc.stderr
