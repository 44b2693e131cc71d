"""The model's say in a routing decision, after the rules.

- Always: the top 3 agencies with their probabilities (`suggestions`), for the triage email,
  `lapakd show` and `Teruskan: 1`.
- A complaint no rule matched goes to the model's choice when its probability is at or above
  `[routing] auto_forward_confidence` (1.0: never), recorded as `rule: model`.
- A rule that forwards to A while the model gives B at DISAGREE_AT or more: `disagrees`, listed
  by `lapakd rules audit` so admins can fix the rule (or teach the model)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lapakd.rules import Decision

if TYPE_CHECKING:
    from lapakd.learn.predict import Model
    from lapakd.rules import RuleSet

MODEL_RULE = "model"
SUGGESTIONS = 3
DISAGREE_AT = 0.8  # the model's probability from which a disagreement with a rule is recorded


def category_of(rules: RuleSet, agency: str) -> str | None:
    """The category of the first rule that forwards to this agency (the model has none)."""
    return next((r.category for r in rules.rules if agency in r.forward and r.category), None)


def consult(decision: Decision, model: Model | None, text: str, rules: RuleSet,
            threshold: float) -> Decision:
    """The decision with the model's say (see the module); the rules' decision itself when
    there is no model."""
    if model is None:
        return decision
    ranked = model.ranked(text)
    agencies = rules.agencies
    suggestions = [(c, p) for c, p in ranked if c in agencies][:SUGGESTIONS]
    info: dict[str, Any] = {
        "suggestions": [[c, round(p, 4)] for c, p in suggestions],
        "trained_at": model.trained_at,
    }
    top, probability = ranked[0]
    if (decision.action == "triage" and decision.rule is None and top in agencies
            and threshold < 1.0 and probability >= threshold):
        decision = Decision(
            action="forward", agencies=[top], category=category_of(rules, top),
            rule=MODEL_RULE, matched=[],
            hits=[{"rule": MODEL_RULE, "where": "model", "matched": [],
                   "probability": round(probability, 4)}],
        )
        info["probability"] = round(probability, 4)
    elif (decision.action == "forward" and top in agencies and top not in decision.agencies
          and probability >= DISAGREE_AT):
        info["disagrees"] = {"agency": top, "probability": round(probability, 4)}
    decision.model = info
    return decision
