"""Measure routing quality of a rules directory on labelled complaints.

    .venv/bin/python bench/routing_eval.py [--rules rules] [--examples rules] [--csv out.csv]
    .venv/bin/python bench/routing_eval.py --file bench/data/routing_heldout.csv [--rules DIR]

Labels come from the `examples:` of the YAML files in --examples (default: the shipped `rules/`)
and are decided by the rules in --rules (default: the same dir). Pointing --rules at an older
copy of the rules (e.g. `git worktree` or `git archive main rules`) measures "before" on the same
labels as "after". Prints, for the examples that expect an agency:

- routed share: forwarded to some agency (not left to triage, not ignored);
- precision: of the routed ones, forwarded to an acceptable agency (one of `expect:`);
- exact: the example passes as `lapakd rules check` would judge it;

and, for the examples that expect `triage` or `ignore`, the share held back (not forwarded).
Per agency: labelled count, recall (routed to it) and precision (of what was routed to it).
`--csv` writes the labels as `text,agency` (first expected agency) for `lapakd rules eval`.
`--file` takes the labels from such a CSV instead (agency may list several, "a|b" as
`lapakd rules eval` reads them, any of them acceptable; `triage`/`ignore` as in examples):
bench/data/routing_heldout.csv is a held-out set written before the rules were tuned on the
examples and never used to tune them. Unlike `lapakd rules eval`, the routed share here is of
the complaints that expect an agency (not of all of them).
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import Counter
from pathlib import Path

from lapakd.rules import RuleSet, check_examples, load_rules

HELD = ("triage", "ignore")


def evaluate(rules: RuleSet, examples: list[dict]) -> dict:
    routable = [ex for ex in examples if not set(ex["expect"]) & set(HELD)]
    held = [ex for ex in examples if set(ex["expect"]) & set(HELD)]
    routed = correct = 0
    per_label: Counter[str] = Counter()
    per_hit: Counter[str] = Counter()  # routed to it and acceptable
    per_sent: Counter[str] = Counter()  # routed to it at all
    confusion: Counter[tuple[str, str]] = Counter()
    for ex in routable:
        d = rules.evaluate(ex["text"], ex.get("channel"), ex.get("sender"))
        for agency in ex["expect"]:
            per_label[agency] += 1
        if d.action != "forward":
            confusion[(ex["expect"][0], d.action)] += 1
            continue
        routed += 1
        ok = bool(set(d.agencies) & set(ex["expect"]))
        correct += ok
        for agency in d.agencies:
            per_sent[agency] += 1
            if agency in ex["expect"]:
                per_hit[agency] += 1
        if not ok:
            confusion[(ex["expect"][0], d.agencies[0])] += 1
    held_ok = sum(
        rules.evaluate(ex["text"], ex.get("channel"), ex.get("sender")).action != "forward"
        for ex in held
    )
    probe = RuleSet(rules.agencies, rules.rules, examples)
    failures = check_examples(probe)
    return {
        "examples": len(examples), "routable": len(routable), "held": len(held),
        "routed": routed, "correct": correct, "held_ok": held_ok,
        "exact": len(examples) - len(failures),
        "per_label": per_label, "per_hit": per_hit, "per_sent": per_sent,
        "confusion": confusion,
    }


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as fh:
        return [
            {"text": row["text"],
             "expect": [a.strip() for a in row["agency"].replace("|", ",").split(",")],
             "where": f"{path}:{n}"}
            for n, row in enumerate(csv.DictReader(fh), start=2)
        ]


def pct(a: int, b: int) -> str:
    return f"{100 * a / b:5.1f}%" if b else "   -  "


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rules", type=Path, default=Path("rules"), help="rules that decide")
    ap.add_argument("--examples", type=Path, default=None, help="dir whose examples: label")
    ap.add_argument("--file", type=Path, help="labels from a CSV with columns text,agency")
    ap.add_argument("--csv", type=Path, help="write the labels as text,agency")
    ap.add_argument("--per-agency", action="store_true", help="print the table per agency")
    ap.add_argument("--confusion", type=int, default=10, help="top confusion pairs to print")
    args = ap.parse_args()
    rules = load_rules(args.rules)
    if args.file:
        examples = read_csv(args.file)
        source = str(args.file)
    else:
        examples = (load_rules(args.examples) if args.examples else rules).examples
        source = str(args.examples or args.rules)
    r = evaluate(rules, examples)
    print(f"rules: {args.rules} ({len(rules.rules)} rules); labels: {source}")
    print(f"examples: {r['examples']} ({r['routable']} expect an agency, "
          f"{r['held']} triage/ignore)")
    print(f"routed share: {pct(r['routed'], r['routable'])} ({r['routed']}/{r['routable']})")
    print(f"precision:    {pct(r['correct'], r['routed'])} ({r['correct']}/{r['routed']})")
    print(f"held back:    {pct(r['held_ok'], r['held'])} ({r['held_ok']}/{r['held']}) "
          "of triage/ignore examples not forwarded")
    print(f"exact (rules check): {pct(r['exact'], r['examples'])} ({r['exact']}/{r['examples']})")
    if args.per_agency:
        print(f"\n{'agency':24} {'labels':>6} {'recall':>7} {'precision':>9}")
        for agency in sorted(rules.agencies):
            n = r["per_label"][agency]
            print(f"{agency:24} {n:6d} {pct(r['per_hit'][agency], n):>7} "
                  f"{pct(r['per_hit'][agency], r['per_sent'][agency]):>9}")
    if args.confusion and r["confusion"]:
        print("\nexpected -> got (top):")
        for (want, got), n in r["confusion"].most_common(args.confusion):
            print(f"  {n:4d}  {want} -> {got}")
    if args.csv:
        with args.csv.open("w", newline="", encoding="utf-8") as fh:
            out = csv.writer(fh, lineterminator="\n")
            out.writerow(["text", "agency"])
            for ex in examples:
                out.writerow([ex["text"], ex["expect"][0]])
    return 0


if __name__ == "__main__":
    sys.exit(main())
