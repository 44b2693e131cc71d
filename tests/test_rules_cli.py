"""`lapakd rules check` and `lapakd rules test`, run as real subprocesses on files in tmp_path."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

AGENCIES = """\
agencies:
  dpupr: {name: Dinas PUPR, email: dpupr@banyumas.example, cc: [kabid.jalan@banyumas.example], sla_days: 7}
  dinkes: {name: Dinas Kesehatan, email: dinkes@banyumas.example}
"""  # noqa: E501

GOOD = """\
rules:
  - name: jalan-rusak
    category: PEKERJAAN UMUM DAN PENATAAN RUANG
    when: {any: [jalan rusak, "lubang*"], all: [], none: [hoaks], regex: "", channel: [], sender: []}
    forward: dpupr
    budget_dependent: true
    continue: false
  - name: kesehatan
    category: KESEHATAN
    when: {any: ["diare*", demam berdarah]}
    forward: dinkes
  - name: spam
    when: {any: [promo]}
    ignore: true
examples:
  - text: "Jalan di Desa Karangsalam berlubang besar"
    expect: triage
  - text: "Jalan di Desa Karangsalam rusak, lubangnya besar"
    expect: dpupr
  - text: "Warga diare"
    expect: dinkes
"""  # noqa: E501

TRACEBACK = re.compile(r"Traceback \(most recent call last\)|^\s+File \".*\", line \d+", re.M)


def make_desk(tmp_path: Path, files: dict[str, str], agencies: str | None = AGENCIES) -> Path:
    """A minimal lapakd.toml in tmp_path with rules/<files>; returns the config path."""
    cfg = tmp_path / "lapakd.toml"
    cfg.write_text(textwrap.dedent("""\
        [desk]
        email = "lapakaduan@banyumas.example"
        admin_email = "admin@banyumas.example"

        [paths]
        rules_dir = "rules"
        data_dir = "var"
        """), encoding="utf-8")
    rules = tmp_path / "rules"
    rules.mkdir()
    if agencies is not None:
        (rules / "agencies.yaml").write_text(agencies, encoding="utf-8")
    for name, text in files.items():
        (rules / name).write_text(text, encoding="utf-8")
    return cfg


def start(cwd: Path, *args: str, stdin: str | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "lapakd.cli", *args, "--config", str(cwd / "lapakd.toml")],
        cwd=cwd, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
    )


def finish(
    proc: subprocess.Popen[str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    stdout, stderr = proc.communicate(stdin, timeout=60)
    assert not TRACEBACK.search(stdout + stderr), stdout + stderr
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def lapakd(cwd: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return finish(start(cwd, *args, stdin=stdin), stdin)


def line_of(text: str, snippet: str, nth: int = 1) -> int:
    found = [i for i, ln in enumerate(text.splitlines(), 1) if snippet in ln]
    assert len(found) >= nth, f"{snippet!r} not in text"
    return found[nth - 1]


# Each case: files, then (file, the text on the offending line, what the message must say).
# The line number is computed from the file text, so it is checked exactly.
RULE = "rules:\n  - name: r\n    when: {any: [jalan]}\n    forward: dpupr\n"
ERRORS: dict[str, tuple[dict[str, str], list[tuple[str, str, str]]]] = {
    "yaml-syntax": (
        {"10-x.yaml": "rules:\n  - name: r\n    when: {any: [jalan]}\n      forward: dpupr\n"},
        [("10-x.yaml", "      forward: dpupr", "YAML syntax error")],
    ),
    "yaml-unclosed-quote": (
        {"10-x.yaml": 'rules:\n  - name: r\n    when: {any: [jalan]}\n    forward: dpupr\n'
                      '  - name: "s\n    when: {any: [x]}\n'},
        # regression: was reported at line 7, past the end of the 6-line file
        [("10-x.yaml", 'name: "s', "YAML syntax error: found unexpected end of stream "
                                   "while scanning a quoted scalar")],
    ),
    "yaml-unclosed-bracket": (
        {"10-x.yaml": "rules:\n  - name: r\n    when: {any: [jalan\n"},
        [("10-x.yaml", "when:", "while parsing a flow sequence")],
    ),
    "yaml-tab": (
        {"10-x.yaml": "rules:\n  - name: r\n\twhen: {any: [jalan]}\n"},
        [("10-x.yaml", "\twhen", "YAML syntax error")],
    ),
    "yaml-duplicate-key": (
        {"10-x.yaml": "rules:\n  - name: r\n    when: {any: [jalan]}\n    name: s\n"
                      "    forward: dpupr\n"},
        [("10-x.yaml", "name: s", "duplicate key")],
    ),
    "unknown-agency": (
        {"10-x.yaml": "rules:\n  - name: r\n    when: {any: [jalan]}\n    forward: dpurp\n"},
        [("10-x.yaml", "forward: dpurp", "unknown agency 'dpurp' in rule 'r' "
                                          "(did you mean 'dpupr'?)")],
    ),
    "unknown-agency-in-list": (
        {"10-x.yaml": "rules:\n  - name: r\n    when: {any: [jalan]}\n"
                      "    forward: [dpupr, dinkez]\n"},
        [("10-x.yaml", "forward: [dpupr", "unknown agency 'dinkez' in rule 'r' "
                                           "(did you mean 'dinkes'?)")],
    ),
    "bad-regex": (
        {"10-x.yaml": "rules:\n  - name: r\n    when:\n      any: [jalan]\n"
                      "      regex: 'km(\\d+'\n    forward: dpupr\n"},
        [("10-x.yaml", "regex:", "bad regex")],
    ),
    "unknown-rule-key": (
        {"10-x.yaml": "rules:\n  - name: r\n    when: {any: [jalan]}\n    forward: dpupr\n"
                      "    categori: X\n"},
        [("10-x.yaml", "categori", "unknown rule key 'categori' (did you mean 'category'?)")],
    ),
    "unknown-when-key": (
        {"10-x.yaml": "rules:\n  - name: r\n    when:\n      any: [jalan]\n      nonee: [x]\n"
                      "    forward: dpupr\n"},
        [("10-x.yaml", "nonee", "unknown condition 'nonee' (did you mean 'none'?)")],
    ),
    "continue-not-bool": (
        {"10-x.yaml": RULE + '    continue: "yes"\n'},
        [("10-x.yaml", "continue:", "`continue:` must be true or false")],
    ),
    "any-not-list": (
        {"10-x.yaml": "rules:\n  - name: r\n    when:\n      any: 5\n    forward: dpupr\n"},
        [("10-x.yaml", "any: 5", "`any:` must be a list")],
    ),
    "sla-not-number": (
        {"10-x.yaml": RULE + "    sla_days: seven\n"},
        [("10-x.yaml", "sla_days", "`sla_days:` must be a number")],
    ),
    "unknown-channel": (
        {"10-x.yaml": "rules:\n  - name: r\n    when:\n      channel: [whatsap]\n"
                      "    forward: dpupr\n"},
        [("10-x.yaml", "channel:", "unknown channel 'whatsap'")],
    ),
    "duplicate-name-across-files": (
        {"10-a.yaml": RULE, "20-b.yaml": "# second file\n" + RULE},
        [("20-b.yaml", "- name: r", "duplicate rule name 'r' (first at rules/10-a.yaml:2)")],
    ),
    "forward-and-ignore": (
        {"10-x.yaml": "rules:\n  - name: ok\n    when: {any: [a]}\n    forward: dpupr\n"
                      "  - name: both\n    when: {any: [jalan]}\n    forward: dpupr\n"
                      "    ignore: true\n"},
        [("10-x.yaml", "name: both", "needs exactly one of")],
    ),
    "no-action": (
        {"10-x.yaml": "rules:\n  - name: none\n    when: {any: [jalan]}\n"},
        [("10-x.yaml", "name: none", "needs exactly one of")],
    ),
    "example-unknown-agency": (
        {"10-x.yaml": RULE + "examples:\n  - text: jalan\n    expect: dpuprr\n"},
        [("10-x.yaml", "expect: dpuprr", "example expects unknown agency 'dpuprr' "
                                          "(did you mean 'dpupr'?)")],
    ),
    "bad-agency": (
        {"10-x.yaml": RULE},
        [("agencies.yaml", "dinkes:", "agency 'dinkes' needs a valid `email:`")],
    ),
}
BAD_AGENCIES = AGENCIES.replace("dinkes@banyumas.example", "dinkes-at-banyumas")


# Single-file cases checked together in one run (each as rules/<case>.yaml), to save start-ups;
# the others get a desk of their own.
SHARED = (
    "yaml-unclosed-quote", "yaml-unclosed-bracket", "yaml-tab", "yaml-duplicate-key",
    "unknown-agency-in-list", "sla-not-number", "unknown-channel", "no-action",
)
Run = tuple[Path, subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def error_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """`lapakd rules check` on the ERRORS cases, run side by side to keep the suite fast."""
    started = {}
    for case, (files, _) in ERRORS.items():
        if case in SHARED:
            continue
        desk = tmp_path_factory.mktemp(case)
        make_desk(desk, files, BAD_AGENCIES if case == "bad-agency" else AGENCIES)
        started[case] = (desk, start(desk, "rules", "check"))
    desk = tmp_path_factory.mktemp("shared")
    make_desk(desk, {f"{case}.yaml": ERRORS[case][0]["10-x.yaml"] for case in SHARED})
    started["shared"] = (desk, start(desk, "rules", "check"))
    return {case: (desk, finish(proc)) for case, (desk, proc) in started.items()}


@pytest.mark.parametrize("case", ERRORS)
def test_rules_check_reports_file_and_line(error_runs: dict[str, Run], case: str) -> None:
    files, expected = ERRORS[case]
    agencies = BAD_AGENCIES if case == "bad-agency" else AGENCIES
    desk, proc = error_runs["shared" if case in SHARED else case]
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    # every problem line has the file:line: form, then one summary line
    summary = f"in {desk / 'rules'}"
    problems = [ln for ln in lines if not ln.endswith(summary)]
    assert problems and all(re.match(r"rules/[\w.-]+\.yaml:\d+: \S", ln) for ln in problems)
    assert lines[-1] == f"{len(problems)} problem(s) {summary}"
    if case in SHARED:
        problems = [ln for ln in problems if ln.startswith(f"rules/{case}.yaml:")]
    # exactly the expected problems: nothing missing, nothing spurious
    assert len(problems) == len(expected), problems
    for file, snippet, message in expected:
        source = agencies if file == "agencies.yaml" else files[file]
        shown = f"{case}.yaml" if case in SHARED else file
        prefix = f"rules/{shown}:{line_of(source, snippet)}: "
        assert any(ln.startswith(prefix) and message in ln for ln in problems), (prefix, lines)


def test_missing_agencies_file(tmp_path: Path) -> None:
    make_desk(tmp_path, {"10-x.yaml": RULE}, agencies=None)
    proc = lapakd(tmp_path, "rules", "check")
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("rules/agencies.yaml: missing")
    assert f"rules/10-x.yaml:{line_of(RULE, 'forward: dpupr')}: unknown agency 'dpupr'" in (
        proc.stderr
    )


def test_all_problems_of_several_files_are_reported_together(error_runs: dict[str, Run]) -> None:
    _, proc = error_runs["shared"]
    files = [ln.split(":")[0] for ln in proc.stderr.splitlines()[:-1]]
    assert files == sorted(files)  # file by file, in the order they are loaded
    assert sorted(set(files)) == sorted(f"rules/{case}.yaml" for case in SHARED)


def test_failing_examples_name_line_and_deciding_rule(tmp_path: Path) -> None:
    text = GOOD + (
        "  - text: \"promo obat diare\"\n    expect: ignore\n"
        "  - text: selamat pagi\n    expect: [dpupr, dinkes]\n"
    )
    make_desk(tmp_path, {"10-x.yaml": text})
    proc = lapakd(tmp_path, "rules", "check")
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"rules/10-x.yaml:{line_of(text, 'promo obat diare')}: expected ignore, got dinkes "
        "(rule 'kesehatan') for 'promo obat diare'",
        f"rules/10-x.yaml:{line_of(text, 'selamat pagi')}: expected dpupr, dinkes, got triage "
        "(no rule matched) for 'selamat pagi'",
    ]
    assert proc.stdout.strip() == "3 rules, 2 agencies, 3/5 examples pass"


def test_valid_rules_pass(tmp_path: Path) -> None:
    make_desk(tmp_path, {"10-x.yaml": GOOD, "20-empty.yaml": "# nothing yet\n"})
    proc = lapakd(tmp_path, "rules", "check")
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout.strip() == "3 rules, 2 agencies, 3/3 examples pass"


def test_valid_rules_pass_json(tmp_path: Path) -> None:
    make_desk(tmp_path, {"10-x.yaml": GOOD})
    proc = lapakd(tmp_path, "rules", "check", "--json")
    assert proc.returncode == 0
    assert json.loads(proc.stdout) == {
        "ok": True, "problems": [], "failures": [], "rules": 3, "agencies": 2, "examples": 3,
    }


def test_rules_check_json_lists_problems(tmp_path: Path) -> None:
    make_desk(tmp_path, ERRORS["unknown-agency"][0])
    proc = lapakd(tmp_path, "rules", "check", "--json")
    assert proc.returncode == 1
    out = json.loads(proc.stdout)
    assert out["ok"] is False
    assert [p.split(": ")[0] for p in out["problems"]] == ["rules/10-x.yaml:4"]


def test_rules_test_text(tmp_path: Path) -> None:
    make_desk(tmp_path, {"10-x.yaml": GOOD})
    proc = lapakd(tmp_path, "rules", "test", "Jalan", "di", "desa", "RUSAK!")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.strip()
    assert out.startswith("forward → dpupr · PEKERJAAN UMUM DAN PENATAAN RUANG · ")
    assert "rule 'jalan-rusak' (rules/10-x.yaml:2) score 3 matched jalan rusak" in out

    texts = tmp_path / "texts.txt"
    texts.write_text("promo murah\nselamat pagi\n", encoding="utf-8")
    proc = lapakd(tmp_path, "rules", "test", "--file", str(texts))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("'promo murah': ignore → ignore · - · rule 'spam' (rules/10-x.yaml:")
    assert lines[1] == "'selamat pagi': triage → triage · - · no rule matched"


def test_rules_test_file_json(tmp_path: Path) -> None:
    make_desk(tmp_path, {"10-x.yaml": GOOD})
    texts = tmp_path / "texts.txt"
    texts.write_text(
        "Jalan rusak di desa\n\nwarga diare, demam berdarah\nselamat pagi\n#JalanRusak lagi\n",
        encoding="utf-8",
    )
    proc = lapakd(tmp_path, "rules", "test", "--file", str(texts), "--json")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(rows) == 4  # the blank line is skipped
    for row in rows:
        assert {"action", "agencies", "category", "rule", "matched"} <= row.keys()
    assert [(r["action"], r["agencies"], r["rule"]) for r in rows] == [
        ("forward", ["dpupr"], "jalan-rusak"),
        ("forward", ["dinkes"], "kesehatan"),
        ("triage", [], None),
        ("forward", ["dpupr"], "jalan-rusak"),
    ]
    assert rows[0]["category"] == "PEKERJAAN UMUM DAN PENATAAN RUANG"
    assert rows[0]["matched"] == ["jalan rusak"]
    assert rows[1]["matched"] == ["diare*", "demam berdarah"]
    assert rows[1]["score"] == 4.5
    assert rows[2] == {
        "text": "selamat pagi", "action": "triage", "agencies": [], "category": None,
        "rule": None, "matched": [], "score": None, "runners_up": [],
    }


def test_rules_test_stdin_channel_and_sender(tmp_path: Path) -> None:
    make_desk(tmp_path, {"10-x.yaml": "rules:\n  - name: wa\n    when: {channel: [whatsapp]}\n"
                                      "    forward: dinkes\n  - name: humas\n"
                                      "    when: {sender: ['*@banyumaskab.go.id']}\n"
                                      "    ignore: true\n"})
    proc = lapakd(tmp_path, "rules", "test", "--file", "-", "--json", "--channel", "whatsapp",
                  stdin="apa saja\n")
    assert json.loads(proc.stdout)["rule"] == "wa"
    proc = lapakd(tmp_path, "rules", "test", "--json", "--sender", "Humas@BanyumasKab.go.id",
                  "apa", "saja")
    assert json.loads(proc.stdout)["action"] == "ignore"


def test_rules_test_with_broken_rules_exits_2_with_file_line(tmp_path: Path) -> None:
    make_desk(tmp_path, ERRORS["unknown-agency"][0])
    proc = lapakd(tmp_path, "rules", "test", "jalan")
    assert proc.returncode == 2
    assert proc.stderr.startswith("lapakd: rules/10-x.yaml:4: unknown agency 'dpurp'")
    assert proc.stdout == ""


def test_rules_check_with_bad_config_exits_2(tmp_path: Path) -> None:
    cfg = make_desk(tmp_path, {"10-x.yaml": GOOD})
    cfg.write_text(cfg.read_text() + "bogus = 1\n", encoding="utf-8")
    proc = lapakd(tmp_path, "rules", "check")
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"lapakd: {cfg}: unknown key paths.bogus "
                                        "(known: data_dir, rules_dir, public_dir)"]
