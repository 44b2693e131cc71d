"""Compiled rules and their evaluation.

Rules are evaluated in file order; the first match decides unless it says `continue: true`.
To stay fast with thousands of rules, a rule is only evaluated when the text contains one of its
trigger words (the first word of an `any` keyword, else of its first `all` keyword); rules with
neither are evaluated for every text.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from lapakd.rules.text import Keyword, Words, words

_TOKEN_CACHE_SIZE = 50_000


def _bits(mask: int) -> Iterator[int]:
    """The positions of the set bits of mask, lowest first."""
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


_MISSING = object()


class KeywordList:
    """A rule's `any:` / `none:` list (or one `all:` keyword), compiled for fast matching.

    Identical lists in different rules (YAML anchors, shared exclusions) are one object in a
    RuleSet, and its result is remembered per text, so it is worked out once per text."""

    __slots__ = ("entries", "keywords", "multi", "plain")

    def __init__(self, keywords: list[Keyword]) -> None:
        self.keywords = tuple(keywords)
        # without prefix keywords, none can match unless one of these words is in the text
        # (or, for a phrase, a hashtag carries it)
        self.plain = (
            None if any(k.parts[0][1] for k in keywords if k.parts)
            else frozenset(k.parts[0][0] for k in keywords if k.parts)
        )
        self.multi = any(len(k.parts) > 1 for k in keywords)
        # (first word, is it a prefix, can it match through a hashtag, keyword)
        self.entries = tuple(
            (k.parts[0][0], k.parts[0][1], len(k.parts) > 1, k)
            if k.parts else ("", False, False, k)  # no words: never matches
            for k in keywords
        )

    def first(self, w: Words) -> Keyword | None:
        """The first keyword of the list, in list order, that the text matches."""
        memo = w._memo
        found = memo.get(self, _MISSING)
        if found is _MISSING:
            found = None
            positions, tags = w.positions, w.hashtags
            if (
                self.plain is not None and positions.keys().isdisjoint(self.plain)
                and not (self.multi and tags)
            ):
                memo[self] = None
                return None
            for first, prefix, multi, k in self.entries:
                # a keyword whose first word is not in the text cannot match (but a phrase
                # can still match through a hashtag): skip it without the call
                if not prefix and first not in positions and not (multi and tags):
                    continue
                if k.matches(w):
                    found = k
                    break
            memo[self] = found
        return found  # type: ignore[return-value]


Clauses = tuple[frozenset[str], ...]


def regex_needs(regex: re.Pattern[str]) -> Clauses:
    """What any match of `regex` must contain: clauses of lowercase ASCII strings, each clause
    satisfied when one of its strings occurs in the text (`(rusak|bolong)` -> {rusak, bolong}).

    A pre-filter for ASCII texts only (there, an ASCII literal matches under IGNORECASE only its
    own lower/upper case; the text is already lowercase): a text that fails a clause cannot
    match, so the regex need not run. Conservative: literals are taken only where the pattern
    requires them (not inside optional repeats, lookarounds, alternatives without a literal
    each); anything unexpected gives no clauses, i.e. no filtering."""
    try:
        from re import _constants as c
        from re import _parser

        tree = _parser.parse(regex.pattern, regex.flags)
    except Exception:  # noqa: BLE001 - a private module; without it, no pre-filter
        return ()

    def walk(items: Any) -> list[frozenset[str]]:
        out: list[frozenset[str]] = []
        run: list[str] = []

        def flush() -> None:
            if run:
                out.append(frozenset(("".join(run),)))
                run.clear()

        for op, av in items:
            if op is c.LITERAL and av < 128:
                run.append(chr(av).lower())
                continue
            flush()
            if op is c.SUBPATTERN:
                out.extend(walk(av[3]))
            elif op is c.ATOMIC_GROUP:
                out.extend(walk(av))
            elif op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT) and av[0] >= 1:
                out.extend(walk(av[2]))
            elif op is c.BRANCH:
                picks = [walk(alt) for alt in av[1]]
                if picks and all(picks):
                    out.append(frozenset().union(*(alt[0] for alt in picks)))
        flush()
        return out

    try:
        return tuple(walk(tree))
    except Exception:  # noqa: BLE001 - unexpected tree shape: no pre-filter
        return ()


def _compile(
    rule: Rule, interned: dict[tuple[str, ...], KeywordList]
) -> tuple[KeywordList | None, tuple[KeywordList, ...], KeywordList | None, Clauses]:
    def one(keywords: list[Keyword]) -> KeywordList:
        key = tuple(k.source for k in keywords)  # same sources, same parse, same result
        found = interned.get(key)
        if found is None:
            found = interned[key] = KeywordList(keywords)
        return found

    return (
        one(rule.any) if rule.any else None,
        tuple(one([k]) for k in rule.all),
        one(rule.none) if rule.none else None,
        regex_needs(rule.regex) if rule.regex is not None else (),
    )


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
    _compiled: Any = field(default=None, repr=False, compare=False)

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
        if self._compiled is None:  # RuleSet compiles its rules; this is for a lone Rule
            self._compiled = _compile(self, {})
        any_, all_, none, needs = self._compiled
        hits: list[str] = []
        if any_ is not None:
            found = any_.first(w)
            if found is None:
                return None
            hits.append(found.source)
        for one in all_:
            found = one.first(w)
            if found is None:
                return None
            hits.append(found.source)
        if none is not None and none.first(w) is not None:
            return None
        if self.regex is not None:
            text = w.normalized
            if needs and text.isascii() and not all(
                any(lit in text for lit in clause) for clause in needs
            ):
                return None  # a literal the pattern requires is missing: no match possible
            m = self.regex.search(text)
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
        # The index: trigger word -> bit mask of the rules it may wake (bit i = rules[i]).
        self._exact: dict[str, int] = {}
        self._prefix: dict[str, int] = {}
        self._always = 0
        interned: dict[tuple[str, ...], KeywordList] = {}
        for index, rule in enumerate(rules):
            rule._compiled = _compile(rule, interned)
            bit = 1 << index
            triggers = rule.any or rule.all[:1]
            if not triggers:
                self._always |= bit
                continue
            for kw in triggers:
                if not kw.parts:
                    continue
                word, prefix = kw.parts[0]
                table = self._prefix if prefix else self._exact
                table[word] = table.get(word, 0) | bit
        self._prefix_lengths = sorted({len(p) for p in self._prefix})
        # token -> mask of the rules it wakes; texts share most of their words, so this
        # turns the per-token prefix lookups into one dict lookup. Bounded; lives as long
        # as this RuleSet (a reload builds a new one).
        self._token_masks: dict[str, int] = {}

    def _token_mask(self, tok: str) -> int:
        mask = self._exact.get(tok, 0)
        prefix = self._prefix
        for length in self._prefix_lengths:
            if length > len(tok):
                break
            mask |= prefix.get(tok[:length], 0)
        return mask

    def _mask(self, w: Words) -> int:
        """The rules that can match this text, as a bit mask (a superset of the matches)."""
        found = self._always
        cache = self._token_masks
        for tok in w.positions:
            mask = cache.get(tok)
            if mask is None:
                mask = self._token_mask(tok)
                if len(cache) >= _TOKEN_CACHE_SIZE:
                    cache.clear()
                cache[tok] = mask
            found |= mask
        exact = self._exact
        for tag in w.hashtags:  # "#jalanrusak" starts with the trigger word "jalan"
            for end in range(1, len(tag)):
                found |= exact.get(tag[:end], 0)
        return found

    def _candidates(self, w: Words) -> list[int]:
        """Indexes of the rules worth trying for this text, in rule order."""
        return list(_bits(self._mask(w)))

    def evaluate(
        self, text: str, channel: str | None = None, sender: str | None = None
    ) -> Decision:
        w = words(text)
        decision: Decision | None = None
        rules = self.rules
        for index in _bits(self._mask(w)):
            rule = rules[index]
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
