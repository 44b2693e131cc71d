"""Compiled rules and their evaluation.

Rules are evaluated in file order; the first match decides unless it says `continue: true`.
To stay fast with thousands of rules, a rule is only evaluated when the text contains one of its
trigger words (the first word of an `any` keyword, else of its first `all` keyword); rules with
neither are evaluated for every text.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import reduce
from operator import or_
from typing import Any

from lapakd.rules.language import language_of
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

    Every word of every keyword has a bit in its RuleSet (see RuleSet: a token sets the bits of
    the words it is, or starts with for `*` words). A one-word keyword matches exactly when its
    bit is among the text's bits; a phrase is only looked for (positions, gaps) when all of its
    words' bits are (or a hashtag may carry it). Identical lists in different rules (YAML
    anchors, shared exclusions) are one object in a RuleSet, and its result is remembered per
    text, so it is worked out once per text."""

    __slots__ = ("by_first", "entries", "keywords", "mask", "multi")

    def __init__(self, keywords: list[Keyword], bit_of: dict[tuple[str, bool], int]) -> None:
        self.keywords = tuple(keywords)
        # (bits of all its words, one word?, keyword); a keyword without words never matches
        entries = []
        self.mask = 0  # none of the list can match without one of these (or a hashtag)
        by_first: dict[int, list[int]] = {}  # first word's bit -> its keywords, in list order
        for index, k in enumerate(keywords):
            need = 0
            for part in k.parts:
                need |= bit_of[part]
            entries.append((need, len(k.parts) == 1, k) if k.parts else (0, True, k))
            if k.parts:
                self.mask |= bit_of[k.parts[0]]
                by_first.setdefault(bit_of[k.parts[0]], []).append(index)
        self.entries = tuple(entries)
        self.by_first = {bit: tuple(indexes) for bit, indexes in by_first.items()}
        self.multi = any(len(k.parts) > 1 for k in keywords)  # a hashtag may carry a phrase

    def first(self, w: Words, present: int) -> Keyword | None:
        """The first keyword of the list, in list order, that the text matches.

        `present`: the text's bits (RuleSet._present)."""
        memo = w._memo
        found = memo.get(self, _MISSING)
        if found is not _MISSING:
            return found  # type: ignore[return-value]
        found = None
        if w.hashtags and self.multi:  # a hashtag may carry any phrase: try them all, in order
            for need, single, k in self.entries:
                if present & need if single else k.matches(w):
                    found = k
                    break
        elif hits := present & self.mask:
            # only the keywords whose first word is in the text (lists run to 60 keywords, a
            # text has a few of their first words): their indexes, merged into list order
            by_first, entries = self.by_first, self.entries
            low = hits & -hits
            hits ^= low
            order: Sequence[int] = by_first[low]
            if hits:
                order = list(order)
                while hits:
                    low = hits & -hits
                    hits ^= low
                    order.extend(by_first[low])
                order.sort()
            for index in order:
                need, single, k = entries[index]
                if single or (present & need == need and k.matches(w)):
                    found = k
                    break
        memo[self] = found
        return found


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


@dataclass(frozen=True)
class Agency:
    key: str
    name: str
    email: str
    cc: tuple[str, ...] = ()
    sla_days: int | None = None
    # the resolution clock in calendar days (None: [desk] resolve_days)
    resolve_days: int | None = None

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
    language: tuple[str, ...] = ()  # lapakd.rules.language.LANGUAGES; empty = any
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
        """The keywords that made this rule match, or None when it does not match.

        The plain statement of a rule's meaning. RuleSet.evaluate gets the same answer from
        its compiled form (word bits, shared keyword lists, the regex pre-filter); the tests
        compare the two."""
        if self.channel and channel not in self.channel:
            return None
        if self.sender:
            who = (sender or "").lower()
            if not any(fnmatch.fnmatchcase(who, pat) for pat in self.sender):
                return None
        hits: list[str] = []
        if self.language:
            found_language = language_of(w)
            if found_language not in self.language:
                return None
            hits.append(f"language:{found_language}")
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
    # the model's say (lapakd.learn.consult): suggestions, its probability, a disagreement
    model: dict[str, Any] | None = None

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
        } | ({"model": self.model} if self.model is not None else {})


class _TokenBits(dict[str, int]):
    """token -> the bits it sets (see RuleSet), worked out on first sight of the token.

    Texts share most of their words, so this turns a token's trigger and prefix lookups into
    one dict lookup, done in C by `map`. Bounded; lives as long as its RuleSet (a reload
    builds a new one)."""

    __slots__ = ("exact", "lengths", "prefix")

    def __init__(self, exact: dict[str, int], prefix: dict[str, int]) -> None:
        super().__init__()
        self.exact = exact
        self.prefix = prefix
        self.lengths = sorted({len(p) for p in prefix})

    def __missing__(self, tok: str) -> int:
        bits = self.exact.get(tok, 0)
        prefix = self.prefix
        for length in self.lengths:
            if length > len(tok):
                break
            bits |= prefix.get(tok[:length], 0)
        if len(self) >= _TOKEN_CACHE_SIZE:
            self.clear()
        self[tok] = bits
        return bits


def _for_search(needs: Clauses) -> tuple[tuple[str, ...], ...]:
    """regex_needs clauses as RuleSet tests them on every candidate text: a literal containing
    another of its clause is left out (wherever it is, the other is too), the rest shortest
    first (likelier to be found early)."""
    return tuple(
        tuple(sorted(
            (lit for lit in clause if not any(other != lit and other in lit for other in clause)),
            key=lambda lit: (len(lit), lit),
        ))
        for clause in needs
    )


# A rule compiled for RuleSet.evaluate:
# (channel, sender, any, all, none, regex, the regex's required literals, language)
_Plan = tuple[
    tuple[str, ...], tuple[str, ...], KeywordList | None, tuple[KeywordList, ...],
    KeywordList | None, re.Pattern[str] | None, tuple[tuple[str, ...], ...], tuple[str, ...],
]


class RuleSet:
    """Agencies and rules, compiled once and swapped whole on reload.

    The index: every word of interest has an integer of bits. The low bits are "word" bits, one
    per distinct word of any keyword (a `*` word has its own, set by the tokens starting with
    it); above them, bit `words + i` is rules[i], set for the rule's trigger words (the first
    word of each `any` keyword, else of its first `all` keyword). A text's bits are the OR of
    its tokens' bits: the high ones are the candidate rules, in rule order; the low ones say
    which keywords can match at all, so one-word keywords (most of them) are decided without
    looking at the text again. (Word bits are low so that testing them, the frequent case,
    works on small ints.)"""

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
        exact: dict[str, int] = {}
        prefix: dict[str, int] = {}
        bit_of: dict[tuple[str, bool], int] = {}  # (first word, is prefix) -> word bit
        for rule in rules:
            for kw in (*rule.any, *rule.all, *rule.none):
                for part in kw.parts:
                    if part not in bit_of:
                        bit = bit_of[part] = 1 << len(bit_of)
                        word, is_prefix = part
                        table = prefix if is_prefix else exact
                        table[word] = table.get(word, 0) | bit
        self._shift = shift = len(bit_of)  # rules[i] is bit shift + i
        self._always = 0
        interned: dict[tuple[str, ...], KeywordList] = {}

        def one(keywords: list[Keyword]) -> KeywordList:
            key = tuple(k.source for k in keywords)  # same sources, same parse, same result
            found = interned.get(key)
            if found is None:
                found = interned[key] = KeywordList(keywords, bit_of)
            return found

        self._plans: list[_Plan] = []
        for index, rule in enumerate(rules):
            self._plans.append((
                rule.channel, rule.sender,
                one(rule.any) if rule.any else None,
                tuple(one([k]) for k in rule.all),
                one(rule.none) if rule.none else None,
                rule.regex, _for_search(regex_needs(rule.regex)) if rule.regex is not None else (),
                rule.language,
            ))
            bit = 1 << (shift + index)
            triggers = rule.any or rule.all[:1]
            if not triggers:
                self._always |= bit
                continue
            for kw in triggers:
                if not kw.parts:
                    continue
                word, is_prefix = kw.parts[0]
                table = prefix if is_prefix else exact
                table[word] = table.get(word, 0) | bit
        self._exact = exact
        self._token_bits = _TokenBits(exact, prefix)

    def _present(self, w: Words) -> int:
        """The text's bits: candidate rules (a superset of the matches) and word bits."""
        # most tokens set no bits: leave them out rather than OR big ints with 0
        found = reduce(
            or_, filter(None, map(self._token_bits.__getitem__, w.tokens)), self._always
        )
        if w.hashtags:  # "#jalanrusak" starts with the trigger word "jalan"
            exact, shift = self._exact, self._shift
            for tag in w.hashtags:
                for end in range(1, len(tag)):
                    # rule bits only: the token is "jalanrusak", the word "jalan" is absent
                    found |= exact.get(tag[:end], 0) >> shift << shift
        return found

    def _mask(self, w: Words) -> int:
        """The rules that can match this text, as a bit mask (a superset of the matches)."""
        return self._present(w) >> self._shift

    def _candidates(self, w: Words) -> list[int]:
        """Indexes of the rules worth trying for this text, in rule order."""
        return list(_bits(self._mask(w)))

    def _match(
        self, plan: _Plan, w: Words, present: int, channel: str | None, sender: str | None
    ) -> list[str] | None:
        """Rule.match, from the compiled rule."""
        channels, senders, any_, all_, none, regex, needs, languages = plan
        if channels and channel not in channels:
            return None
        if senders:
            who = (sender or "").lower()
            if not any(fnmatch.fnmatchcase(who, pat) for pat in senders):
                return None
        hits: list[str] = []
        if languages:
            found_language = w._memo.get(language_of)
            if found_language is None:
                found_language = w._memo[language_of] = language_of(w)
            if found_language not in languages:
                return None
            hits.append(f"language:{found_language}")
        if any_ is not None:
            found = any_.first(w, present)
            if found is None:
                return None
            hits.append(found.source)
        for one in all_:
            found = one.first(w, present)
            if found is None:
                return None
            hits.append(found.source)
        if none is not None and none.first(w, present) is not None:
            return None
        if regex is not None:
            text = w.normalized
            if needs and w.ascii:
                for clause in needs:
                    for lit in clause:
                        if lit in text:
                            break
                    else:
                        return None  # a literal the pattern requires is missing: no match
            m = regex.search(text)
            if m is None:
                return None
            hits.append(m.group(0))
        return hits

    def evaluate(
        self, text: str, channel: str | None = None, sender: str | None = None
    ) -> Decision:
        w = words(text)
        present = self._present(w)
        decision: Decision | None = None
        rules, plans, match = self.rules, self._plans, self._match
        for index in _bits(present >> self._shift):
            hits = match(plans[index], w, present, channel, sender)
            if hits is None:
                continue
            rule = rules[index]
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
