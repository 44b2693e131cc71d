"""How well a router does on labelled complaints: routed share, precision, per-agency precision
and recall, the commonest confusions (`lapakd rules eval`).

A router is any function from a labelled case to a (action, agencies) pair, so the same
measure serves the rules (`rules_predictor`), and later other predictors (a model, the rules
then the model) without changing this module. Labels come from a CSV file (`read_labelled`)
or from the store's own decided complaints (lapakd.routing.history).
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lapakd.errors import LapakdError
from lapakd.rules.engine import RuleSet

NOT_ROUTED = ("triage", "ignore")  # labels (and actions) that name no agency
TOP_CONFUSIONS = 10


@dataclass(frozen=True)
class Case:
    """A complaint and the agencies that would be acceptable for it (empty: it must not be
    routed — labelled `triage` or `ignore`). `where`: the file:line or ticket it came from."""

    text: str
    acceptable: tuple[str, ...]
    where: str
    subject: str | None = None
    channel: str | None = None
    sender: str | None = None


# (action, agencies) for a case: "forward" with agencies, or "triage" / "ignore"
Predictor = Callable[[Case], tuple[str, list[str]]]


def rules_predictor(rules: RuleSet) -> Predictor:
    """The rules' answer for a case (the subject, when known, is read as the daemon reads it)."""

    def predict(case: Case) -> tuple[str, list[str]]:
        d = rules.evaluate(case.text, case.channel, case.sender, subject=case.subject)
        return d.action, list(d.agencies)

    return predict


def read_labelled(path: Path, agencies: Iterable[str]) -> list[Case]:
    """Cases from a CSV file with the columns `text,agency` (more columns are ignored).
    `agency`: an agency key, several acceptable ones separated by `|`, or `triage`/`ignore`.
    Raises LapakdError naming the file and line of the first problem."""
    known = set(agencies)
    try:
        handle = open(path, encoding="utf-8-sig", newline="")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise LapakdError(f"{path}: cannot read: {exc.strerror} (give a CSV file)") from None
    cases: list[Case] = []
    with handle:
        try:
            reader = csv.DictReader(handle)
            columns = [c.strip().lower() for c in reader.fieldnames or []]
            if "text" not in columns or "agency" not in columns:
                raise LapakdError(
                    f"{path}:1: the header must name the columns text and agency "
                    f"(found: {', '.join(columns) or 'nothing'})"
                )
            reader.fieldnames = columns
            for row in reader:
                line = reader.line_num
                text = (row.get("text") or "").strip()
                label = (row.get("agency") or "").strip().lower()
                if not text:
                    raise LapakdError(f"{path}:{line}: empty text")
                if not label:
                    raise LapakdError(
                        f"{path}:{line}: empty agency (an agency key, a|b, or triage)"
                    )
                keys = tuple(k.strip() for k in label.split("|") if k.strip())
                if len(keys) == 1 and keys[0] in NOT_ROUTED:
                    keys = ()
                else:
                    for key in keys:
                        if key not in known:
                            raise LapakdError(
                                f"{path}:{line}: unknown agency {key!r} "
                                "(agencies are the keys of rules/agencies.yaml, or triage)"
                            )
                cases.append(Case(text, keys, f"{path}:{line}"))
        except UnicodeDecodeError:
            raise LapakdError(f"{path}: not UTF-8 text (save the file as UTF-8 CSV)") from None
        except csv.Error as exc:
            raise LapakdError(f"{path}: not a readable CSV file: {exc}") from None
    if not cases:
        raise LapakdError(f"{path}: no labelled rows (columns text,agency)")
    return cases


@dataclass
class Report:
    """What `rules eval` prints. Precision counts a routed case as right when one of its
    agencies is acceptable; a case labelled triage that is routed counts as wrong."""

    cases: int = 0
    routed: int = 0  # the predictor forwarded it
    routed_right: int = 0  # ... to an acceptable agency
    should_route: int = 0  # labelled with an agency
    kept_back_right: int = 0  # labelled triage/ignore and not routed
    # agency -> [routed there and acceptable, routed there, labelled acceptable, ... and routed
    # to an acceptable agency]
    per_agency: dict[str, list[int]] = field(default_factory=dict)
    confusions: Counter[tuple[str, str]] = field(default_factory=Counter)
    mistakes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def routed_share(self) -> float:
        return self.routed / self.cases if self.cases else 0.0

    @property
    def precision(self) -> float:
        return self.routed_right / self.routed if self.routed else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "cases": self.cases,
            "routed": self.routed,
            "routed_share": round(self.routed_share, 4),
            "precision": round(self.precision, 4),
            "routed_right": self.routed_right,
            "labelled_triage_kept_back": self.kept_back_right,
            "per_agency": {
                key: {
                    "precision": round(right / predicted, 4) if predicted else None,
                    "recall": round(found / labelled, 4) if labelled else None,
                    "routed": predicted, "labelled": labelled,
                }
                for key, (right, predicted, labelled, found) in sorted(self.per_agency.items())
            },
            "confusions": [
                {"labelled": want, "got": got, "count": n}
                for (want, got), n in self.confusions.most_common(TOP_CONFUSIONS)
            ],
            "mistakes": self.mistakes,
        }


def measure(cases: Iterable[Case], predict: Predictor, *, keep_mistakes: int = 20) -> Report:
    """Run `predict` on every case and count (see Report)."""
    report = Report()
    for case in cases:
        action, agencies = predict(case)
        report.cases += 1
        routed = action == "forward" and bool(agencies)
        acceptable = set(case.acceptable)
        right = routed and bool(acceptable & set(agencies))
        if acceptable:
            report.should_route += 1
        elif not routed:
            report.kept_back_right += 1
        if routed:
            report.routed += 1
            report.routed_right += right
            for key in agencies:
                row = report.per_agency.setdefault(key, [0, 0, 0, 0])
                row[1] += 1
                row[0] += key in acceptable
        for key in acceptable:
            row = report.per_agency.setdefault(key, [0, 0, 0, 0])
            row[2] += 1
            row[3] += right
        wrong = (routed and not right) or (not routed and bool(acceptable))
        if wrong:
            want = "|".join(case.acceptable) or "triage"
            got = ",".join(agencies) if routed else action
            report.confusions[(want, got)] += 1
            if len(report.mistakes) < keep_mistakes:
                report.mistakes.append({
                    "where": case.where, "labelled": want, "got": got, "text": case.text[:120],
                })
    return report


def format_report(report: Report) -> str:
    """The report as `rules eval` prints it."""
    lines = [
        f"{report.cases} complaints: routed {report.routed} ({report.routed_share:.1%}), "
        f"precision {report.precision:.1%} ({report.routed_right} of the routed at an "
        f"acceptable agency); labelled triage and kept back: {report.kept_back_right}",
        "",
        f"{'agency':<24} {'precision':>9} {'recall':>7} {'routed':>7} {'labelled':>9}",
    ]
    for key, (right, predicted, labelled, found) in sorted(report.per_agency.items()):
        precision = f"{right / predicted:.0%}" if predicted else "-"
        recall = f"{found / labelled:.0%}" if labelled else "-"
        lines.append(f"{key:<24} {precision:>9} {recall:>7} {predicted:>7} {labelled:>9}")
    if report.confusions:
        lines += ["", "most common confusions (labelled → got):"]
        for (want, got), n in report.confusions.most_common(TOP_CONFUSIONS):
            lines.append(f"  {n:>4} × {want} → {got}")
    return "\n".join(lines)
