"""The rules engine: YAML routing rules loaded, validated, compiled and evaluated."""

from __future__ import annotations

from lapakd.rules.engine import Agency, Decision, Rule, RuleSet
from lapakd.rules.loader import load_rules, rules_signature

__all__ = [
    "Agency", "Decision", "Rule", "RuleSet", "check_examples", "load_rules", "rules_signature",
]


def check_examples(ruleset: RuleSet) -> list[str]:
    """Run every `examples:` case; return one line per failure (`file:line: ...`)."""
    failures = []
    for ex in ruleset.examples:
        decision = ruleset.evaluate(ex["text"], ex.get("channel"), ex.get("sender"))
        expected = ex["expect"]
        if expected in (["ignore"], ["triage"]):
            ok = decision.action == expected[0]
        elif len(expected) == 1:
            ok = decision.action == "forward" and expected[0] in decision.agencies
        else:
            ok = decision.action == "forward" and set(expected) == set(decision.agencies)
        if not ok:
            got = ", ".join(decision.agencies) if decision.action == "forward" else decision.action
            by = f"rule {decision.rule!r}" if decision.rule else "no rule matched"
            failures.append(
                f"{ex['where']}: expected {', '.join(expected)}, got {got} ({by}) "
                f"for {ex['text'][:60]!r}"
            )
    return failures
