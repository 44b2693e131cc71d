"""Compiled rules and their evaluation.

Rules are evaluated in file order; the first match decides unless it says `continue: true`.
To stay fast with thousands of rules, a rule is only evaluated when the text contains one of its
trigger words (the first word of an `any` keyword, else of its first `all` keyword); rules with
neither are evaluated for every text.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Any

from lapakd.rules.text import Keyword, Words, words


@dataclass(frozen=True)
class Agency:
    key: str
    name: str
    email: str
    cc: tuple[str, ...] = ()
    sla_days: int | None = None

    @property
    def addresses(self) -> tuple[str, ...]:
        return (self.email, *self.cc)


@dataclass
class Rule:
    name: str
    file: str
    line: int
    category: str | None = None
    any: list[Keyword] = field(default_factory=list)
    all: list[Keyword] = field(default_factory=list)
    none: list[Keyword] = field(default_factory=list)
    regex: re.Pattern[str] | None = None
    channel: tuple[str, ...] = ()
    sender: tuple[str, ...] = ()
    action: str = "forward"  # forward | triage | ignore
    forward: tuple[str, ...] = ()
    budget_dependent: bool = False
    public: bool = True
    sla_days: int | None = None
    continue_: bool = False

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def match(self, w: Words, channel: str | None, sender: str | None) -> list[str] | None:
        """The keywords that made this rule match, or None when it does not match."""
        if self.channel and channel not in self.channel:
            return None
        if self.sender:
            who = (sender or "").lower()
            if not any(fnmatch.fnmatchcase(who, pat) for pat in self.sender):
                return None
        hits: list[str] = []
        if self.any:
            found = next((k for k in self.any if k.matches(w)), None)
            if found is None:
                return None
            hits.append(found.source)
        for k in self.all:
            if not k.matches(w):
                return None
            hits.append(k.source)
        if any(k.matches(w) for k in self.none):
            return None
        if self.regex is not None:
            m = self.regex.search(w.normalized)
            if m is None:
                return None
            hits.append(m.group(0))
        return hits


@dataclass
class Decision:
    action: str  # forward | triage | ignore
    agencies: list[str] = field(default_factory=list)
    category: str | None = None
    rule: str | None = None  # the rule that decided; None when nothing matched
    matched: list[str] = field(default_factory=list)
    hits: list[dict[str, Any]] = field(default_factory=list)  # every rule that hit, in order
    budget_dependent: bool = False
    public: bool = True
    sla_days: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "agencies": self.agencies,
            "category": self.category,
            "rule": self.rule,
            "matched": self.matched,
            "hits": self.hits,
            "budget_dependent": self.budget_dependent,
            "public": self.public,
            "sla_days": self.sla_days,
        }


class RuleSet:
    """Agencies and rules, compiled once and swapped whole on reload."""

    def __init__(
        self,
        agencies: dict[str, Agency],
        rules: list[Rule],
        examples: list[dict[str, Any]] | None = None,
        signature: Any = None,
    ) -> None:
        self.agencies = agencies
        self.rules = rules
        self.examples = examples or []
        self.signature = signature
        self._exact: dict[str, list[int]] = {}
        self._prefix: dict[str, list[int]] = {}
        self._always: list[int] = []
        for index, rule in enumerate(rules):
            triggers = rule.any or rule.all[:1]
            if not triggers:
                self._always.append(index)
                continue
            for kw in triggers:
                if not kw.parts:
                    continue
                word, prefix = kw.parts[0]
                (self._prefix if prefix else self._exact).setdefault(word, []).append(index)
        self._prefix_lengths = sorted({len(p) for p in self._prefix})

    def _candidates(self, w: Words) -> list[int]:
        found = set(self._always)
        exact, prefix, lengths = self._exact, self._prefix, self._prefix_lengths
        for tok in w.positions:
            hit = exact.get(tok)
            if hit:
                found.update(hit)
            for length in lengths:
                if length > len(tok):
                    break
                hit = prefix.get(tok[:length])
                if hit:
                    found.update(hit)
        for tag in w.hashtags:  # "#jalanrusak" starts with the trigger word "jalan"
            for end in range(1, len(tag)):
                hit = exact.get(tag[:end])
                if hit:
                    found.update(hit)
        return sorted(found)

    def evaluate(
        self, text: str, channel: str | None = None, sender: str | None = None
    ) -> Decision:
        w = words(text)
        decision: Decision | None = None
        for index in self._candidates(w):
            rule = self.rules[index]
            hits = rule.match(w, channel, sender)
            if hits is None:
                continue
            if decision is None:
                decision = Decision(
                    action=rule.action,
                    category=rule.category,
                    rule=rule.name,
                    budget_dependent=rule.budget_dependent,
                    public=rule.public,
                    sla_days=rule.sla_days,
                )
            elif rule.action != "forward":
                break  # after a `continue`, only forwarding rules add anything
            decision.hits.append({"rule": rule.name, "where": rule.where, "matched": hits})
            decision.matched.extend(h for h in hits if h not in decision.matched)
            for key in rule.forward:
                if key not in decision.agencies:
                    decision.agencies.append(key)
            decision.budget_dependent = decision.budget_dependent or rule.budget_dependent
            decision.public = decision.public and rule.public
            if decision.category is None:
                decision.category = rule.category
            if not rule.continue_:
                break
        if decision is None:
            return Decision(action="triage")
        if decision.agencies:
            decision.action = "forward"
        return decision
