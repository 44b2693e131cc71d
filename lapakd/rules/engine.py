"""Compiled rules and their evaluation.

Every rule that matches a text is scored by its evidence, and the strongest decides (rule order
breaks ties); `continue: true` rules add their agencies (see RuleSet.evaluate and
docs/routing.md). To stay fast with thousands of rules, a rule is only evaluated when the text
contains one of its trigger words (the first word of an `any` keyword, else of its first `all`
keyword); rules with neither are evaluated for every text.

Evidence is counted in integer units (half points) so that the compiled path and the plain
statement of a rule (Rule.judge) add up exactly the same numbers: a word 2, a phrase 4; one in
the lead (the subject and the first sentence) counts half as much again (3, 6).

Most rules are "simple" (keyword lists, maybe `channel:` and `regex:`; no sender, no language).
Those are not judged one by one: whether each matched is worked out for all of them at once, as
bit masks over the rules (see RuleSet: a token sets the bits of the rules whose `any`/`none`/`all`
keywords it is, a phrase that is found sets those of the rules it belongs to); their evidence
is a few popcounts each, and those with one-word evidence only are scored all at once and only
the few that can show in the decision are kept (RuleSet._rank_plain). The other rules, and
every rule for texts with hashtags (which can carry any phrase), are judged one by one
(RuleSet._judge). The decisions are the same as judging every rule plainly (Rule.judge); the
tests compare the two.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial, reduce
from operator import or_
from typing import Any, NamedTuple

from lapakd.rules.language import language_of
from lapakd.rules.text import Keyword, Words, count_tokens, lead_end, normalize, words

_TOKEN_CACHE_SIZE = 50_000

# Evidence units (half points; see the module's docstring).
WORD, WORD_LEAD = 2, 3  # a one-word keyword (also: a `regex:` next to any/all)
# RuleSet._rank_plain adds these as bit patterns 0b10 and 0b11: change both together
assert (WORD, WORD_LEAD) == (0b10, 0b11)
PHRASE, PHRASE_LEAD = 4, 6  # a phrase (also: a rule's only condition is its `regex:`; `sender:`)
LANGUAGE = PHRASE_LEAD  # `language:` is about the whole text: a lead phrase's worth
WEIGHT_RANGE = (0.1, 10.0)  # `weight:` bounds: a rule can be favoured or damped, never muted
RUNNERS_UP = 3  # how many losing rules a decision records
# How many of the best rules without `continue` a decision can show: the winner, the main rule
# (when the winner continues), the runners-up.
DECISION_DEPTH = RUNNERS_UP + 2
# A simple rule has at most this many `all:` keywords (each needs its own region of rule bits
# in a token's bits; rules with more are judged one by one).
MAX_SIMPLE_ALL = 2
# A `regex:` whose required literals come in at most this many clauses is pre-filtered through
# the text's bits (RuleSet._compile_literals); others literal by literal.
MAX_LITERAL_CLAUSES = 3


def _bits(mask: int) -> Iterator[int]:
    """The positions of the set bits of mask, lowest first."""
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


_MISSING = object()
_SOURCES_CACHE_SIZE = 256  # per keyword list: KeywordList.sources_of
# bytes.translate table: b"0" -> 0, b"1" -> 1 (a rule mask as one 0/1 byte per rule)
_ZERO_ONE = bytes.maketrans(b"01", b"\x00\x01")


class KeywordList:
    """A rule's `any:` / `none:` list (or one `all:` keyword), compiled for fast matching.

    Every word of every keyword has a bit in its RuleSet (see RuleSet: a token sets the bits of
    the words it is, or starts with for `*` words). A one-word keyword matches exactly when its
    bit is among the text's bits; a phrase is only looked for (positions, gaps) when all of its
    words' bits are (or a hashtag may carry it). Identical lists in different rules (YAML
    anchors, shared exclusions) are one object in a RuleSet, and its result is remembered per
    text, so it is worked out once per text."""

    __slots__ = ("by_first", "entries", "evidence_key", "keywords", "mask", "multi",
                 "phrase_key_of", "phrase_needs", "phrases", "phrases_mask", "singles_mask",
                 "sources_of")

    def __init__(
        self, keywords: list[Keyword], bit_of: dict[tuple[str, bool], int],
        phrase_keys: dict[tuple[tuple[str, bool], ...], object] | None = None,
    ) -> None:
        self.keywords = tuple(keywords)
        # (bits of all its words, one word?, keyword); a keyword without words never matches
        entries = []
        self.mask = 0  # none of the list can match without one of these (or a hashtag)
        # first word's bit position -> its keywords, in list order (positions, not bits: a
        # long int is hashed digit by digit)
        by_first: dict[int, list[int]] = {}
        for index, k in enumerate(keywords):
            need = 0
            for part in k.parts:
                need |= bit_of[part]
            entries.append((need, len(k.parts) == 1, k) if k.parts else (0, True, k))
            if k.parts:
                self.mask |= bit_of[k.parts[0]]
                by_first.setdefault(bit_of[k.parts[0]].bit_length() - 1, []).append(index)
        self.entries = tuple(entries)
        # the bits of each phrase's words: one missing, that phrase cannot match
        self.phrase_needs = tuple(need for need, single, _k in entries if not single)
        self.by_first = {bit: tuple(indexes) for bit, indexes in by_first.items()}
        self.multi = any(len(k.parts) > 1 for k in keywords)  # a hashtag may carry a phrase
        # a phrase's result is remembered per text under one key per distinct phrase of the
        # RuleSet (`phrase_keys`): the same phrase in many lists is searched for once
        if phrase_keys is None:
            phrase_keys = {}
        # list index of a phrase -> its key in a text's memo
        self.phrase_key_of = {
            index: phrase_keys.setdefault(k.parts, object())
            for index, k in enumerate(keywords) if len(k.parts) > 1
        }
        # Evidence (see evidence_singles, evidence_phrases): each distinct one-word keyword is
        # one bit; each phrase is tried when its first word is present (or the text has
        # hashtags), with its group and the bits of the one-word keywords it absorbs.
        singles = evidence_singles(keywords)
        self.singles_mask = 0
        for k in singles:
            self.singles_mask |= bit_of[k.parts[0]]
        phrases: list[tuple[int, int, tuple[str, ...], int, object, Keyword]] = []
        self.phrases_mask = 0
        for k, group, absorbs in evidence_phrases(keywords, singles):
            first = bit_of[k.parts[0]]
            need = absorb = 0
            for part in k.parts:
                need |= bit_of[part]
            for single in absorbs:
                absorb |= bit_of[single.parts[0]]
            key = phrase_keys.setdefault(k.parts, object())
            phrases.append((need, first, group, absorb, key, k))
            self.phrases_mask |= first
        self.phrases = tuple(phrases)
        self.evidence_key = object()  # this list's evidence in a text's memo
        # without phrases that can match, `sources` depends only on which of the list's words
        # are present: (present & mask) -> its answer, as texts share their words (bounded)
        self.sources_of: dict[int, tuple[str, ...]] = {}

    def first(self, w: Words, present: int) -> Keyword | None:
        """The first keyword of the list, in list order, that the text matches.

        `present`: the text's bits (RuleSet._present)."""
        entries = self.entries
        if len(entries) == 1 and entries[0][1]:  # one one-word keyword (an `all:` keyword)
            need, _single, k = entries[0]
            return k if present & need else None
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
        else:
            # only the keywords whose first word is in the text (lists run to 60 keywords, a
            # text has a few of their first words)
            for index in self._ordered_hits(present):
                need, single, k = entries[index]
                if single or (present & need == need and self._phrase_hit(w, index, k)):
                    found = k
                    break
        memo[self] = found
        return found

    def _phrase_hit(self, w: Words, index: int, k: Keyword) -> bool:
        """Does the phrase at `index` of the list match (remembered in the text's memo)?"""
        memo, key = w._memo, self.phrase_key_of[index]
        hit = memo.get(key)
        if hit is None:
            hit = memo[key] = k.matches(w)
        return hit  # type: ignore[return-value]

    def _ordered_hits(self, present: int) -> Sequence[int]:
        """The indexes of the keywords whose first word is in the text, in list order."""
        hits = present & self.mask
        if not hits:
            return ()
        by_first = self.by_first
        low = hits & -hits
        hits ^= low
        order: Sequence[int] = by_first[low.bit_length() - 1]
        if hits:
            order = list(order)
            while hits:
                low = hits & -hits
                hits ^= low
                order.extend(by_first[low.bit_length() - 1])
            order.sort()
        return order

    def evidence(self, w: Words, present: int, lead: int) -> int:
        """Evidence units of the list's keywords found in the text (see the module's
        docstring); `lead`: the word bits of the text's lead."""
        memo = w._memo
        key = self.evidence_key
        found = memo.get(key)
        if found is not None:
            return found  # type: ignore[return-value]
        units = absorbed = 0
        if self.phrases and (w.hashtags or present & self.phrases_mask):
            # a list has a few phrases: try each whose words are all present (any, with
            # hashtags: a hashtag may carry a phrase)
            hashtags = bool(w.hashtags)
            groups: dict[tuple[str, ...], int] = {}
            for need, first, group, absorb, phrase, k in self.phrases:
                if not hashtags and present & need != need:
                    continue
                hit = memo.get(phrase)
                if hit is None:
                    hit = memo[phrase] = k.matches(w)
                if hit:
                    found = PHRASE_LEAD if lead & first else PHRASE
                    if groups.get(group, 0) < found:
                        groups[group] = found
                    absorbed |= absorb
            units = sum(groups.values())
        singles = present & self.singles_mask & ~absorbed
        units += singles.bit_count() * WORD + (singles & lead).bit_count() * (WORD_LEAD - WORD)
        memo[key] = units
        return units

    def sources(self, w: Words, present: int) -> Sequence[str]:
        """Every keyword of the list the text matches, in list order (what a decision shows;
        a shared tuple when it comes from the cache: copy it before changing it)."""
        if self.multi:
            if w.hashtags:  # a hashtag may carry any phrase: try them all
                return [
                    k.source for need, single, k in self.entries
                    if (present & need if single else k.matches(w))
                ]
            if present & self.phrases_mask:
                for need in self.phrase_needs:
                    if present & need == need:  # a phrase may match
                        return self._sources_with_phrases(w, present)
        # no phrase can match: the answer depends only on which first words are present
        key = present & self.mask
        found = self.sources_of.get(key)
        if found is None:
            if len(self.sources_of) >= _SOURCES_CACHE_SIZE:
                self.sources_of.clear()
            found = self.sources_of[key] = tuple(
                k.source for need, single, k in self.entries if single and present & need
            )
        return found

    def _sources_with_phrases(self, w: Words, present: int) -> list[str]:
        """sources, for a text without hashtags: only the keywords whose first word is in the
        text; a one-word keyword among them matched, a phrase did when its words are all
        there and it is found."""
        entries, out = self.entries, []
        for index in self._ordered_hits(present):
            need, single, k = entries[index]
            if single or (present & need == need and self._phrase_hit(w, index, k)):
                out.append(k.source)
        return out


def evidence_singles(keywords: Sequence[Keyword]) -> list[Keyword]:
    """The one-word keywords that count as evidence, once each: an exact word that a `*` word of
    the same list covers (`bencana` beside `bencana*`) counts only through the `*` word."""
    seen: set[tuple[str, bool]] = set()
    prefixes = [k.parts[0][0] for k in keywords if len(k.parts) == 1 and k.parts[0][1]]
    out = []
    for k in keywords:
        if len(k.parts) != 1 or k.parts[0] in seen:
            continue
        word, is_prefix = k.parts[0]
        if not is_prefix and any(word.startswith(p) for p in prefixes):
            continue
        seen.add(k.parts[0])
        out.append(k)
    return out


def evidence_phrases(
    keywords: Sequence[Keyword], singles: Sequence[Keyword]
) -> list[tuple[Keyword, tuple[str, ...], list[Keyword]]]:
    """The phrases of a list, each with its group and the one-word keywords (of `singles`) it
    absorbs. Phrases with the same words but for `*` (`jalan rusak`, `jalan* rusak`) are one
    group: a group counts once. A phrase that hits absorbs the one-word keywords that are its
    own words (`pasar*` beside `pasar wage`): "Pasar Wage" is one hit, not two."""
    out = []
    for k in keywords:
        if len(k.parts) < 2:
            continue
        absorbs = [
            single for single in singles
            if any(
                word.startswith(single.parts[0][0]) if single.parts[0][1]
                else word == single.parts[0][0]
                for word, _ in k.parts
            )
        ]
        out.append((k, tuple(word for word, _ in k.parts), absorbs))
    return out


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
                # each alternative's most telling clause (its shortest literal the longest:
                # "sumbang" rather than "ds" in `(kec|desa|ds)\W*sumbang`); any one is required
                picks = [walk(alt) for alt in av[1]]
                if picks and all(picks):
                    out.append(frozenset().union(*(
                        max(alt, key=lambda clause: min(map(len, clause))) for alt in picks
                    )))
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


class Lead(NamedTuple):
    """The lead of a text (subject and first sentence): its first `tokens` tokens, its first
    `chars` characters of Words.normalized. (A named tuple: built for every text, and a frozen
    dataclass costs three times as much to build.)"""

    tokens: int
    chars: int


def lead_of(w: Words, body_start: int = 0) -> Lead:
    """The lead of `w`; `body_start`: where the body starts in w.normalized after a subject."""
    cut = lead_end(w.normalized, body_start)
    if cut >= len(w.normalized):
        return Lead(len(w.tokens), cut)
    return Lead(count_tokens(w.normalized[:cut], w.ascii), cut)


def _plain_evidence(keywords: Sequence[Keyword], w: Words, lead: Lead) -> int:
    """KeywordList.evidence, stated plainly (no bits)."""
    head = w.tokens[:lead.tokens]

    def in_lead(word: str, is_prefix: bool) -> bool:
        return any(t.startswith(word) for t in head) if is_prefix else word in head

    singles = evidence_singles(keywords)
    groups: dict[tuple[str, ...], int] = {}
    absorbed: set[Keyword] = set()
    for k, group, absorbs in evidence_phrases(keywords, singles):
        if k.matches(w):
            found = PHRASE_LEAD if in_lead(*k.parts[0]) else PHRASE
            groups[group] = max(groups.get(group, 0), found)
            absorbed.update(absorbs)
    units = sum(groups.values())
    for k in singles:
        if k not in absorbed and k.matches(w):
            units += WORD_LEAD if in_lead(*k.parts[0]) else WORD
    return units


@dataclass
class Rule:
    name: str
    file: str
    line: int
    category: str | None = None
    any: list[Keyword] = field(default_factory=list)
    all: list[Keyword] = field(default_factory=list)
    none: list[Keyword] = field(default_factory=list)
    context: list[Keyword] = field(default_factory=list)  # evidence only beside an `any` hit
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
    weight: float = 1.0

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def score(self, units: int) -> float:
        """A rule's score from its evidence units: points (units / 2) times its weight."""
        return units * self.weight / 2

    def judge(
        self, w: Words, channel: str | None, sender: str | None, lead: Lead
    ) -> tuple[int, list[str]] | None:
        """(evidence units, the keywords that hit) when this rule matches, else None.

        The plain statement of a rule's meaning. RuleSet.evaluate gets the same answer from
        its compiled form (word bits, shared keyword lists, the regex pre-filter); the tests
        compare the two."""
        if self.channel and channel not in self.channel:
            return None
        units = 0
        if self.sender:
            who = (sender or "").lower()
            if not any(fnmatch.fnmatchcase(who, pat) for pat in self.sender):
                return None
            units += PHRASE
        hits: list[str] = []
        if self.language:
            found_language = language_of(w)
            if found_language not in self.language:
                return None
            hits.append(f"language:{found_language}")
            units += LANGUAGE
        if self.any:
            found = [k.source for k in self.any if k.matches(w)]
            if not found:
                return None
            hits.extend(found)
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
            hits.append(m.group(0) or "regex")  # a lookahead-only pattern matches ""
            alone = not self.any and not self.all
            if m.start() < lead.chars:
                units += PHRASE_LEAD if alone else WORD_LEAD
            else:
                units += PHRASE if alone else WORD
        units += _plain_evidence(self.any, w, lead)
        for k in self.all:
            units += _plain_evidence([k], w, lead)
        if self.context:
            hits.extend(k.source for k in self.context if k.matches(w))
            units += _plain_evidence(self.context, w, lead)
        return units, hits

    def match(self, w: Words, channel: str | None, sender: str | None) -> list[str] | None:
        """The keywords that made this rule match, or None when it does not match."""
        judged = self.judge(w, channel, sender, Lead(len(w.tokens), len(w.normalized)))
        return None if judged is None else judged[1]


@dataclass
class Decision:
    action: str  # forward | triage | ignore
    agencies: list[str] = field(default_factory=list)
    category: str | None = None
    rule: str | None = None  # the rule that decided; None when nothing matched
    matched: list[str] = field(default_factory=list)
    hits: list[dict[str, Any]] = field(default_factory=list)  # the rules that decided, winner 1st
    budget_dependent: bool = False
    public: bool = True
    sla_days: int | None = None
    score: float | None = None  # the winning rule's score; None when nothing matched
    # the strongest rules that matched but did not decide: {rule, where, score, action, agencies}
    runners_up: list[dict[str, Any]] = field(default_factory=list)
    # the model's say (lapakd.learn.consult): suggestions, its probability, a disagreement
    model: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "agencies": self.agencies,
            "category": self.category,
            "rule": self.rule,
            "matched": self.matched,
            "score": self.score,
            "runners_up": self.runners_up,
            "hits": self.hits,
            "budget_dependent": self.budget_dependent,
            "public": self.public,
            "sla_days": self.sla_days,
        } | ({"model": self.model} if self.model is not None else {})


def decide(
    rules: Sequence[Rule], judged: Sequence[tuple[int, int]], hits_of: Callable[[int], list[str]]
) -> Decision:
    """The decision from the rules that matched a text: (rule index, evidence units) each;
    `hits_of(index)`: the keywords that hit for that rule (asked only for the contributors).

    The highest score wins; on a tie the earlier rule. The winner gives the action, the category
    (else the first contributor's that has one), the sla_days; if it forwards, these rules add
    their agencies: when the winner itself says `continue: true`, the strongest matching rule
    without `continue` (if it forwards: a triage or ignore rule adds nothing, as it ended the
    chain before); and every other matching forward rule with `continue: true`. Agencies come
    winner first, then the other contributors in rule order."""
    if not judged:
        return Decision(action="triage")
    return _decide_ranked(
        rules, sorted([(-rules[index].score(units), index, units) for index, units in judged]),
        hits_of, _chaining(rules), _shown(rules),
    )


def _chaining(rules: Sequence[Rule]) -> frozenset[int]:
    """The indexes of the rules that add their agencies to another's: forward + continue."""
    return frozenset(
        index for index, rule in enumerate(rules) if rule.continue_ and rule.action == "forward"
    )


# What a decision shows of a rule, read once per rule set rather than once per decision:
# (name, where, action, forward, weight, continue_, category, budget_dependent, public)
_Shown = tuple[str, str, str, tuple[str, ...], float, bool, str | None, bool, bool]


def _shown(rules: Sequence[Rule]) -> list[_Shown]:
    return [
        (rule.name, rule.where, rule.action, rule.forward, rule.weight, rule.continue_,
         rule.category, rule.budget_dependent, rule.public)
        for rule in rules
    ]


def _decide_ranked(
    rules: Sequence[Rule], ranked: list[tuple[float, int, int]],
    hits_of: Callable[[int], list[str]], chaining: frozenset[int], shown: list[_Shown],
) -> Decision:
    """decide, from the matching rules already ranked: (-score, index, units) tuples in
    ascending order, i.e. by score, then rule order (tuples sort in C: a key function per rule
    cost more than the rest of the decision with ~40 matching rules). `chaining`: _chaining;
    `shown`: _shown.

    `ranked` may leave out rules that cannot show in the decision: those without `continue`
    below the five best rules without `continue` (the winner, the main rule, three runners-up
    at most)."""
    _, winner, winner_units = ranked[0]
    top = rules[winner]
    contributors = [(winner, winner_units)]
    if top.action == "forward":
        if top.continue_:
            for _, index, units in ranked:
                if not shown[index][5]:
                    if shown[index][2] == "forward":
                        contributors.append((index, units))
                    break
        if chaining:
            # (loops rather than comprehensions here: a comprehension is a call of its own)
            chained = []
            for _, index, units in ranked[1:]:
                if index in chaining:
                    chained.append((index, units))
            if chained or len(contributors) > 1:
                contributors[1:] = sorted(contributors[1:] + chained)
    matched: list[str] = []
    agencies: list[str] = []
    hits: list[dict[str, Any]] = []
    category = top.category
    budget_dependent = top.budget_dependent
    public = top.public
    for index, units in contributors:
        # (the winner's own category, budget, public change nothing here: they are the start)
        name, where, _action, forward, weight, _continue, its_category, budget, its_public = (
            shown[index]
        )
        found = hits_of(index)
        hits.append({
            "rule": name, "where": where, "matched": found,
            # units / 2 is exact (a half at most): only a weight needs rounding
            "score": units / 2 if weight == 1.0 else round(units * weight / 2, 2),
        })
        for hit in found:
            if hit not in matched:
                matched.append(hit)
        for key in forward:
            if key not in agencies:
                agencies.append(key)
        if budget:
            budget_dependent = True
        if not its_public:
            public = False
        if category is None:
            category = its_category
    runners_up: list[dict[str, Any]] = []
    if len(ranked) > len(contributors):
        taken = dict(contributors)  # index -> units: the contributors' indexes, made in C
        for _, index, units in ranked:
            if index in taken:
                continue
            name, where, action, forward, weight, _c, _g, _b, _p = shown[index]
            runners_up.append({
                "rule": name, "where": where,
                "score": units / 2 if weight == 1.0 else round(units * weight / 2, 2),
                "action": action, "agencies": list(forward),
            })
            if len(runners_up) == RUNNERS_UP:
                break
    return Decision(
        action="forward" if agencies else top.action, agencies=agencies, category=category,
        rule=top.name, matched=matched, hits=hits, budget_dependent=budget_dependent,
        public=public, sla_days=top.sla_days, score=hits[0]["score"], runners_up=runners_up,
    )


class _TokenBits(dict[str, int]):
    """token -> the bits it sets (see RuleSet), worked out on first sight of the token.

    Texts share most of their words, so this turns a token's trigger and prefix lookups into
    one dict lookup, done in C by `map`. Bounded; lives as long as its RuleSet (a reload
    builds a new one)."""

    __slots__ = ("contained", "exact", "lengths", "prefix")

    def __init__(
        self, exact: dict[str, int], prefix: dict[str, int],
        contained: dict[str, int] | None = None,
    ) -> None:
        super().__init__()
        self.exact = exact
        self.prefix = prefix
        self.lengths = sorted({len(p) for p in prefix})
        # literal -> the bits a token containing it sets (RuleSet._compile_literals)
        self.contained = tuple((contained or {}).items())

    def __missing__(self, tok: str) -> int:
        bits = self.exact.get(tok, 0)
        prefix = self.prefix
        for length in self.lengths:
            if length > len(tok):
                break
            bits |= prefix.get(tok[:length], 0)
        for literal, literal_bits in self.contained:
            if literal in tok:
                bits |= literal_bits
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


def _has_literals(needs: tuple[tuple[str, ...], ...], text: str) -> bool:
    """Does `text` hold one literal of every clause (the regex pre-filter, literal by literal)?
    (Loops rather than all/any over generators: called for every regex rule of every text.)"""
    for clause in needs:
        for lit in clause:
            if lit in text:
                break
        else:
            return False
    return True


# A rule compiled for RuleSet.evaluate: (channel, sender, any, all, none, regex, the regex's
# required literals, language, context, the regex's evidence units (outside / inside the lead))
_Plan = tuple[
    tuple[str, ...], tuple[str, ...], KeywordList | None, tuple[KeywordList, ...],
    KeywordList | None, re.Pattern[str] | None, tuple[tuple[str, ...], ...], tuple[str, ...],
    KeywordList | None, tuple[int, int],
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
    works on small ints.) Between the word bits and the rule bits, a few bits per `regex:` rule
    say which of the literals its regex requires the text has (see _compile_literals). Above
    the rule bits, more regions of one bit per rule say which simple rules' keywords the text
    has (see _compile_simple)."""

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
            for kw in (*rule.any, *rule.all, *rule.none, *rule.context):
                for part in kw.parts:
                    if part not in bit_of:
                        bit = bit_of[part] = 1 << len(bit_of)
                        word, is_prefix = part
                        table = prefix if is_prefix else exact
                        table[word] = table.get(word, 0) | bit
        self._words = len(bit_of)  # word bits: the lowest
        needs_of = [
            _for_search(regex_needs(rule.regex)) if rule.regex is not None else ()
            for rule in rules
        ]
        contained = self._compile_literals(needs_of)
        # rules[i] is bit shift + i
        self._shift = shift = self._words + self._literal_clauses * len(self._literal_rules)
        self._always = 0
        interned: dict[tuple[str, ...], KeywordList] = {}
        phrase_keys: dict[tuple[tuple[str, bool], ...], object] = {}

        def one(keywords: list[Keyword]) -> KeywordList:
            key = tuple(k.source for k in keywords)  # same sources, same parse, same result
            found = interned.get(key)
            if found is None:
                found = interned[key] = KeywordList(keywords, bit_of, phrase_keys)
            return found

        self._plans: list[_Plan] = []
        for index, rule in enumerate(rules):
            self._plans.append((
                rule.channel, rule.sender,
                one(rule.any) if rule.any else None,
                tuple(one([k]) for k in rule.all),
                one(rule.none) if rule.none else None,
                rule.regex, needs_of[index], rule.language,
                one(rule.context) if rule.context else None,
                (PHRASE, PHRASE_LEAD) if not rule.any and not rule.all else (WORD, WORD_LEAD),
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
        self._words_mask = (1 << self._words) - 1
        self._weights = [rule.weight for rule in rules]
        self._chaining = _chaining(rules)
        self._shown = _shown(rules)
        self._continuing = frozenset(i for i, rule in enumerate(rules) if rule.continue_)
        # -(the best score) a rule without `continue` and without keyword lists can reach (its
        # evidence is only its regex, sender, language), else None
        self._bounds: list[float | None] = [
            None if rule.continue_ or rule.any or rule.all or rule.context else -rule.score(
                (PHRASE_LEAD if rule.regex is not None else 0)
                + (PHRASE if rule.sender else 0) + (LANGUAGE if rule.language else 0)
            )
            for rule in rules
        ]
        self._needs = [plan[6] for plan in self._plans]  # the regex pre-filter's literals
        self._compile_simple(bit_of, exact, prefix, phrase_keys)
        self._token_bits = _TokenBits(exact, prefix, contained)

    def _compile_literals(self, needs_of: list[tuple[tuple[str, ...], ...]]) -> dict[str, int]:
        """The regex pre-filter as bits: literal -> the bits a token containing it sets.

        A rule whose regex requires literals (regex_needs) gets a number j and one bit per
        clause c at `words + c * R + j` (R such rules), set by every token that contains a
        literal of that clause. Only clauses of letters and digits count, at most
        MAX_LITERAL_CLAUSES of them (the most telling): in an ASCII text such a literal occurs
        exactly when a token contains it (a token is a whole run of letters and digits). So a
        text's bits say which of these rules the pre-filter lets through, for all of them at
        once (_literals_failed). A rule with clauses left out (`_literal_partial`) is tested
        literal by literal as well once its bits let it through; a rule without such clauses
        only literal by literal."""
        kept: dict[int, list[tuple[str, ...]]] = {}
        self._literal_partial = 0
        for index, needs in enumerate(needs_of):
            usable = [
                clause for clause in needs
                if all(lit.isascii() and lit.isalnum() for lit in clause)
            ]
            usable.sort(key=lambda clause: -min(map(len, clause)))
            if usable:
                kept[index] = usable[:MAX_LITERAL_CLAUSES]
                if len(kept[index]) < len(needs):
                    self._literal_partial |= 1 << index
        filtered = list(kept)
        self._literal_rules = filtered
        self._literal_clauses = clauses = max(map(len, kept.values()), default=0)
        width = len(filtered)
        self._literal_filtered = 0  # the rules tested through these bits, as rule bits
        self._literal_met = [0] * clauses  # per clause region: the rules with fewer clauses
        # the bits of the clause regions in a text's bits
        self._literal_region = ((1 << (clauses * len(filtered))) - 1) << self._words
        contained: dict[str, int] = {}
        for j, index in enumerate(filtered):
            self._literal_filtered |= 1 << index
            needs = kept[index]
            for c in range(clauses):
                if c >= len(needs):
                    self._literal_met[c] |= 1 << j
                    continue
                bit = 1 << (self._words + c * width + j)
                for lit in needs[c]:
                    contained[lit] = contained.get(lit, 0) | bit
        # rules tested through the bits alone
        self._literal_complete = self._literal_filtered & ~self._literal_partial
        # numbers j, 8 at a time -> the rule bits of those set: a text's passing numbers turn
        # into rule bits with one lookup per byte rather than one step per rule
        self._literal_bytes = [
            [
                reduce(or_, (1 << filtered[start + k] for k in range(8)
                             if value >> k & 1 and start + k < width), 0)
                for value in range(256)
            ]
            for start in range(0, width, 8)
        ]
        return contained

    def _literals_failed(self, present: int) -> int:
        """The rules of _literal_filtered whose regex cannot match an ASCII text with these
        bits (a required literal is missing), as rule bits."""
        width = len(self._literal_rules)
        if not width:
            return 0
        all_ = (1 << width) - 1
        # mask, then shift: an AND costs the smaller operand, a shift the whole of `present`
        region = (present & self._literal_region) >> self._words
        passing = all_
        for c, met in enumerate(self._literal_met):
            passing &= (region >> (c * width)) | met
        passing &= all_
        rules_of = self._literal_bytes
        through = 0
        chunk = 0
        while passing:
            through |= rules_of[chunk][passing & 0xFF]
            passing >>= 8
            chunk += 1
        return self._literal_filtered & ~through

    def _compile_simple(
        self, bit_of: dict[tuple[str, bool], int], exact: dict[str, int],
        prefix: dict[str, int], phrase_keys: dict[tuple[tuple[str, bool], ...], object],
    ) -> None:
        """Compile the simple rules (see the module's docstring) for RuleSet._judge_simple.

        Above the rule (trigger) bits, a text's bits get more regions of one bit per rule:
        `any` (one of the rule's `any:` keywords matched), `none` (one of its `none:` keywords
        matched) and one per `all:` keyword (the k-th matched). A one-word keyword sets its
        rule's bit through the tokens (the same tables as the word bits, so the OR over the
        tokens, done in C, fills them); a phrase sets it when it is found
        (`_phrase_regions`). Bits that hold whatever the text is (no `any:` list, fewer `all:`
        keywords than regions) are in `_met`. A simple rule then matched exactly when its
        `any` and `all` bits are set and its `none` bit is not."""
        rules, count, shift, words = self.rules, len(self.rules), self._shift, self._words
        self._rules_mask = (1 << count) - 1
        self._triggers_region = self._rules_mask << shift  # what a hashtag may set
        self._any_at = shift + count
        self._none_at = shift + 2 * count
        self._all_at = tuple(shift + (3 + k) * count for k in range(MAX_SIMPLE_ALL))
        # rule bits of the `any` region, then of each `all` region, that hold whatever the
        # text is (no `any:` list; fewer `all:` keywords): ORed in once per text, not kept in
        # every text's bits (long ints there would make each token's OR slower)
        self._met = [0] * (1 + MAX_SIMPLE_ALL)
        self._simple = 0  # the simple rules, as rule bits
        # simple rules never ranked by _rank_plain (weighted, `continue`, `regex:`)
        self._not_plain = 0
        # word position -> the plain rules it is one-word evidence for, as rule bits
        evidence = [0] * words
        self._plain_words = 0  # the words that are evidence for a plain rule
        most_units = 1  # a plain rule's units at most (all its words present, in the lead)
        self._simple_regex = 0  # those of them with a `regex:`, tried once the rest matched
        self._channel_rules: list[tuple[int, tuple[str, ...]]] = []  # simple, with `channel:`
        self._channel_blocked: dict[str | None, int] = {}  # channel -> rule bits it rules out
        # per simple rule: the one-word evidence of its lists (`any`, each `all`, `context`) as
        # word masks; lists sharing a word go in different masks, as each of them counts it
        self._evidence_masks: list[tuple[int, ...]] = [()] * count
        # every phrase of the simple rules, by its key (KeywordList.phrases): the keyword, the
        # bits of its words, the bit of its first word
        phrases: dict[object, tuple[Keyword, int, int]] = {}
        self._phrase_regions: dict[object, int] = {}  # phrase key -> region bits it sets
        # phrase key -> the simple rules it is evidence for (in a list of theirs), as rule bits
        self._phrase_rules: dict[object, int] = {}
        # per simple rule: its keyword lists that count as evidence (any, each all, context)
        self._evidence_lists: list[tuple[KeywordList, ...]] = [()] * count

        def register(k: Keyword) -> object:
            key = phrase_keys.setdefault(k.parts, object())
            if key not in phrases:
                need = reduce(or_, (bit_of[part] for part in k.parts))
                phrases[key] = (k, need, bit_of[k.parts[0]])
            return key

        def mark(k: Keyword, bit: int) -> None:
            """`bit` is set when `k` matches the text."""
            if not k.parts:
                return  # matches nothing
            if len(k.parts) == 1:
                word, is_prefix = k.parts[0]
                table = prefix if is_prefix else exact
                table[word] = table.get(word, 0) | bit
            else:
                key = register(k)
                self._phrase_regions[key] = self._phrase_regions.get(key, 0) | bit

        for index, (rule, plan) in enumerate(zip(rules, self._plans, strict=True)):
            if (rule.sender or rule.language or not (rule.any or rule.all)
                    or len(rule.all) > MAX_SIMPLE_ALL):
                continue  # judged one by one
            self._simple |= 1 << index
            if rule.channel:
                self._channel_rules.append((index, rule.channel))
            if rule.regex is not None:
                self._simple_regex |= 1 << index
            if rule.any:
                for k in rule.any:
                    mark(k, 1 << (self._any_at + index))
            else:
                self._met[0] |= 1 << index
            for k in rule.none:
                mark(k, 1 << (self._none_at + index))
            for position, at in enumerate(self._all_at):
                if position < len(rule.all):
                    mark(rule.all[position], 1 << (at + index))
                else:
                    self._met[1 + position] |= 1 << index
            any_, all_, context = plan[2], plan[3], plan[8]
            lists = [*([any_] if any_ else []), *all_, *([context] if context else [])]
            self._evidence_lists[index] = tuple(lists)
            masks: list[int] = []
            for keywords in lists:
                for i, mask in enumerate(masks):
                    if not mask & keywords.singles_mask:
                        masks[i] |= keywords.singles_mask
                        break
                else:
                    masks.append(keywords.singles_mask)
                for *_, k in keywords.phrases:
                    key = register(k)
                    self._phrase_rules[key] = self._phrase_rules.get(key, 0) | 1 << index
            self._evidence_masks[index] = tuple(mask for mask in masks if mask)
            if (rule.weight != 1.0 or rule.continue_ or rule.regex is not None
                    or len(self._evidence_masks[index]) > 1):
                self._not_plain |= 1 << index
            elif self._evidence_masks[index]:
                mask = self._evidence_masks[index][0]
                for position in _bits(mask):
                    evidence[position] |= 1 << index
                self._plain_words |= mask
                most_units = max(most_units, mask.bit_count() * WORD_LEAD)

        self._plain_evidence = evidence
        self._unit_slices = max(2, most_units.bit_length())  # _rank_plain adds 0b11

        # the phrases by their first and second word's bits: a text's phrases worth looking
        # for are found from its word bits without trying each phrase
        by_first: dict[int, dict[int, list[tuple[int, object, Keyword]]]] = {}
        for key, (k, need, first) in phrases.items():
            second = bit_of[k.parts[1]]
            by_first.setdefault(first, {}).setdefault(second, []).append((need, key, k))
        self._phrase_firsts = reduce(or_, by_first, 0)
        # by the first word's bit position: the bits of the second words, and by the second
        # word's position, the phrases
        self._phrase_seconds: dict[int, int] = {
            first.bit_length() - 1: reduce(or_, seconds, 0) for first, seconds in by_first.items()
        }
        self._phrase_index: dict[int, dict[int, tuple[tuple[int, object, Keyword], ...]]] = {
            first.bit_length() - 1: {
                second.bit_length() - 1: tuple(found) for second, found in seconds.items()
            }
            for first, seconds in by_first.items()
        }

    def _present(self, w: Words, lead_tokens: int = 0) -> tuple[int, int]:
        """The text's bits: candidate rules (a superset of the matches) and word bits; and the
        word bits of its first `lead_tokens` tokens (the lead), in the same pass."""
        # most tokens set no bits: leave them out rather than OR big ints with 0
        bits_of, tokens = self._token_bits.__getitem__, w.tokens
        if lead_tokens >= len(tokens):
            found = lead = reduce(or_, filter(None, map(bits_of, tokens)), self._always)
        else:
            lead = reduce(or_, filter(None, map(bits_of, tokens[:lead_tokens])), 0)
            found = reduce(
                or_, filter(None, map(bits_of, tokens[lead_tokens:])), lead | self._always
            )
        if w.hashtags:  # "#jalanrusak" starts with the trigger word "jalan"
            exact = self._exact
            for tag in w.hashtags:
                for end in range(1, len(tag)):
                    # rule bits only: the token is "jalanrusak", the word "jalan" is absent
                    found |= exact.get(tag[:end], 0) & self._triggers_region
        return found, lead & self._words_mask

    def _mask(self, w: Words) -> int:
        """The rules that can match this text, as a bit mask (a superset of the matches)."""
        return (self._present(w)[0] >> self._shift) & self._rules_mask

    def _candidates(self, w: Words) -> list[int]:
        """Indexes of the rules worth trying for this text, in rule order."""
        return list(_bits(self._mask(w)))

    def _judge(
        self, plan: _Plan, w: Words, present: int, lead_bits: int, lead: Lead,
        channel: str | None, sender: str | None,
    ) -> int | None:
        """Rule.judge's evidence units, from the compiled rule (None: no match).

        A list's evidence is above 0 exactly when one of its keywords matches (a one-word
        keyword left out of the evidence is covered by a `*` word that counts), so the evidence
        both decides `any:`/`all:` and scores them, each worked out once per text."""
        (channels, senders, any_, all_, none, regex, needs, languages, context,
         regex_units) = plan
        if channels and channel not in channels:
            return None
        units = 0
        if any_ is not None:
            found = any_.evidence(w, present, lead_bits)
            if not found:
                return None
            units = found
        for one in all_:
            found = one.evidence(w, present, lead_bits)
            if not found:
                return None
            units += found
        if none is not None and none.first(w, present) is not None:
            return None
        if senders:
            who = (sender or "").lower()
            if not any(fnmatch.fnmatchcase(who, pat) for pat in senders):
                return None
            units += PHRASE
        if languages:
            found_language = w._memo.get(language_of)
            if found_language is None:
                found_language = w._memo[language_of] = language_of(w)
            if found_language not in languages:
                return None
            units += LANGUAGE
        if regex is not None:
            text = w.normalized
            if needs and w.ascii and not _has_literals(needs, text):
                return None  # a literal the pattern requires is missing: no match
            m = regex.search(text)
            if m is None:
                return None
            units += regex_units[1] if m.start() < lead.chars else regex_units[0]
        if context is not None:
            units += context.evidence(w, present, lead_bits)
        return units

    def _phrases_found(self, w: Words, word_bits: int) -> list[object]:
        """The keys of the simple rules' phrases found in a text without hashtags.

        Only phrases whose words' bits are all present are looked for, found through their
        first and second words' bits; each result is remembered in the text's memo under the
        phrase's key, as KeywordList.evidence does."""
        found: list[object] = []
        memo = w._memo
        index, seconds_of = self._phrase_index, self._phrase_seconds
        firsts = word_bits & self._phrase_firsts
        while firsts:
            first = firsts & -firsts
            firsts ^= first
            at = first.bit_length() - 1  # lists by bit position: no hashing of long ints
            by_second = index[at]
            seconds = word_bits & seconds_of[at]
            while seconds:
                second = seconds & -seconds
                seconds ^= second
                for need, key, k in by_second[second.bit_length() - 1]:
                    if word_bits & need == need:
                        hit = memo.get(key)
                        if hit is None:
                            hit = memo[key] = k.matches(w)
                        if hit:
                            found.append(key)
        return found

    def _blocked(self, channel: str | None) -> int:
        """The simple rules whose `channel:` leaves this channel out, as rule bits."""
        found = self._channel_blocked.get(channel)
        if found is None:
            found = 0
            for index, channels in self._channel_rules:
                if channel not in channels:
                    found |= 1 << index
            if len(self._channel_blocked) < 64:  # channel names come from adapters: a few
                self._channel_blocked[channel] = found
        return found

    def _judge_simple(
        self, w: Words, present: int, word_bits: int, lead_bits: int, candidates: int,
        lead: Lead, channel: str | None,
    ) -> list[tuple[float, int, int]]:
        """(-score, rule index, evidence units) of every simple rule that matches a text
        without hashtags: _judge's answer, for all of them at once (see _compile_simple).

        Evidence as KeywordList.evidence counts it. A rule none of whose phrases was found has
        one-word evidence only: each one-word keyword 2 (3 in the lead), read from the word bits
        with one mask per rule. A rule with a found phrase adds up its lists' evidence
        (KeywordList.evidence, worked out once per list and text: lists are shared, like the
        desa vocabulary of the 27 kecamatan rules). Only the found phrases (a few per text)
        are handled one by one."""
        region = present
        touched = 0  # the rules a found phrase is evidence for
        found = self._phrases_found(w, word_bits)
        if found:
            regions, rules_of = self._phrase_regions, self._phrase_rules
            for key in found:
                region |= regions.get(key, 0)
                touched |= rules_of.get(key, 0)
        regex_units: dict[int, int] = {}
        met = self._met
        matched = (
            candidates & self._simple & ((region >> self._any_at) | met[0])
            & ~(region >> self._none_at)
        )
        for position, at in enumerate(self._all_at):
            matched &= (region >> at) | met[1 + position]
        if self._channel_rules:
            matched &= ~self._blocked(channel)
        # a `regex:` last, on the few rules that matched otherwise (as _judge: pre-filter, then
        # the regex; its evidence beside the lists)
        complete = self._literal_complete
        for index in _bits(matched & self._simple_regex):
            _c, _s, _a, _l, _n, regex, needs, _g, _x, its_units = self._plans[index]
            text = w.normalized
            # a rule of _literal_filtered got here through its bits (evaluate)
            prefiltered = (needs and w.ascii and not complete >> index & 1
                           and not _has_literals(needs, text))
            m = None if prefiltered else regex.search(text)  # type: ignore[union-attr]
            if m is None:
                matched &= ~(1 << index)
            else:
                regex_units[index] = its_units[1] if m.start() < lead.chars else its_units[0]
        # "plain" rules: their evidence is one-word keywords only (no phrase found, no regex,
        # no word in two of its lists), they weigh 1 and do not `continue`: _rank_plain ranks
        # them all at once; the rest are worked out one by one
        exact = matched & (self._not_plain | touched)
        plain = matched & ~exact
        ranked = []  # (-score, index, units), as _decide_ranked sorts them
        masks_of, lists_of, weights = self._evidence_masks, self._evidence_lists, self._weights
        while exact:
            low = exact & -exact
            exact ^= low
            index = low.bit_length() - 1
            units = regex_units.get(index, 0) if regex_units else 0
            if touched & low:  # a phrase of its lists was found: each list's own evidence
                for keywords in lists_of[index]:
                    units += keywords.evidence(w, word_bits, lead_bits)
            else:
                for mask in masks_of[index]:
                    # WORD per word, one more (WORD_LEAD) in the lead
                    units += (word_bits & mask).bit_count() * WORD + (lead_bits & mask).bit_count()
            ranked.append((-(units * weights[index] / 2), index, units))  # -Rule.score
        if plain:
            ranked.extend(self._rank_plain(word_bits, lead_bits, plain))
        return ranked

    def _rank_plain(
        self, word_bits: int, lead_bits: int, plain: int
    ) -> list[tuple[float, int, int]]:
        """(-score, index, units) of the DECISION_DEPTH best plain rules (`plain`: the
        matching ones, as rule bits); the others cannot show in the decision.

        A plain rule's units are WORD per word of its one-word evidence in the text, one more
        per such word in the lead. They are added up for all plain rules at once, bit-sliced:
        slices[k] holds bit k of every rule's units, and each present word (a text has a few
        of the vocabulary) adds its 2 or 3 to the rules it is evidence for with a ripple-carry
        over the slices. The best are then read from the top slice down. (Scoring each of the
        ~40 matching rules in Python was a third of the time.)"""
        slices = [0] * self._unit_slices
        evidence = self._plain_evidence
        found = word_bits & self._plain_words
        while found:
            low = found & -found
            found ^= low
            rules_ = evidence[low.bit_length() - 1] & plain
            if not rules_:
                continue
            # add WORD_LEAD (0b11) or WORD (0b10) to these rules: the low bits by hand, then
            # the carry up the slices
            if lead_bits & low:
                old = slices[0]
                slices[0] = old ^ rules_
                carry = old & rules_
                old = slices[1]
                slices[1] = old ^ rules_ ^ carry
                carry = (old & rules_) | (carry & (old ^ rules_))
                k = 2
            else:
                carry, k = rules_, 1
            while carry:
                old = slices[k]
                slices[k] = old ^ carry
                carry &= old
                k += 1
        ranked: list[tuple[float, int, int]] = []
        while plain and len(ranked) < DECISION_DEPTH:
            best, units = plain, 0  # the rules with the most units left, and those units
            for k in range(len(slices) - 1, -1, -1):
                if best & slices[k]:
                    best &= slices[k]
                    units |= 1 << k
            plain &= ~best
            while best and len(ranked) < DECISION_DEPTH:  # in rule order
                low = best & -best
                best ^= low
                ranked.append((-(units / 2), low.bit_length() - 1, units))  # -Rule.score
        return ranked

    def _hits(self, w: Words, present: int, index: int) -> list[str]:
        """The keywords that hit for rules[index], which matched (Rule.judge's list)."""
        _channels, _senders, any_, all_, _none, regex, _needs, languages, context, _ = (
            self._plans[index]
        )
        hits: list[str] = [f"language:{w._memo[language_of]}"] if languages else []
        if any_ is not None:
            hits.extend(any_.sources(w, present))
        for one in all_:
            found = one.first(w, present)
            if found is not None:
                hits.append(found.source)
        if regex is not None:
            m = regex.search(w.normalized)
            if m is not None:
                hits.append(m.group(0) or "regex")
        if context is not None:
            hits.extend(context.sources(w, present))
        return hits

    def evaluate(
        self, text: str, channel: str | None = None, sender: str | None = None,
        subject: str | None = None,
    ) -> Decision:
        """The decision for a complaint: every candidate rule judged, the strongest evidence
        wins (decide). `subject`, when given, is read before `text` (as routing_text joins
        them) and counts as part of the lead."""
        if subject:
            w = words(f"{subject}\n{text}")
            lead = lead_of(w, len(normalize(subject)) + 1)
        else:
            w = words(text)
            lead = lead_of(w)
        # lead_bits: the word bits of the lead's tokens
        present, lead_bits = self._present(w, lead.tokens)
        # the word bits alone: a small int, cheaper to AND than the rule bits above them
        word_bits = present & self._words_mask
        candidates = (present & self._triggers_region) >> self._shift  # (mask first: cheaper)
        # the rules whose regex the pre-filter rules out, from the bits (ASCII texts only: see
        # _compile_literals); the others are tested literal by literal below
        text_ascii = w.ascii
        failed = self._literals_failed(present) if text_ascii else 0
        plans, judge = self._plans, self._judge
        if w.hashtags:
            # a hashtag may carry any phrase, which the phrase index does not see: judge every
            # candidate on its own
            one_by_one, ranked = candidates & ~failed, []
        else:
            one_by_one = candidates & ~self._simple & ~failed
            ranked = self._judge_simple(
                w, present, word_bits, lead_bits, candidates & ~failed, lead, channel
            )
        if one_by_one:
            # through the bits, nothing left to test literal by literal
            complete = self._literal_complete if text_ascii else 0
            rules, needs_of, bounds = self.rules, self._needs, self._bounds
            text = w.normalized if text_ascii else None
            # a rule without `continue` can only show in the decision if it can beat the
            # DECISION_DEPTH-th best of those found so far (see _decide_ranked)
            ranked.sort()
            floor, ahead, continuing = None, 0, self._continuing
            for entry in ranked:
                if entry[1] not in continuing:
                    ahead += 1
                    if ahead == DECISION_DEPTH:
                        floor = entry
                        break
            for index in _bits(one_by_one):
                bound = bounds[index]
                if floor is not None and bound is not None and (bound, index) > floor[:2]:
                    continue  # even its best score would not show
                needs = needs_of[index]
                if (needs and text is not None and not complete >> index & 1
                        and not _has_literals(needs, text)):
                    continue  # the regex cannot match (what _judge would find, sooner)
                units = judge(plans[index], w, word_bits, lead_bits, lead, channel, sender)
                if units is not None:
                    ranked.append((-rules[index].score(units), index, units))
        if not ranked:
            return Decision(action="triage")
        ranked.sort()
        return _decide_ranked(
            self.rules, ranked,
            partial(self._hits, w, word_bits),  # (a partial is called without a frame)
            self._chaining, self._shown,
        )
