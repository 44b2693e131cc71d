"""Text normalisation shared by rules and texts, so both sides tokenize the same way."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cached_property

_WORD = re.compile(r"[^\W_]+")
_HASHTAG = re.compile(r"#([^\W_]+)")
# For ASCII text (most complaints) the same words, faster: every byte that is not a letter or
# digit becomes a space, then split. `[^\W_]` is exactly str.isalnum().
_ASCII_WORDS = bytes(c if chr(c).isalnum() and c < 128 else 32 for c in range(256))
# Words of a phrase must come in order, with at most this many other words between them:
# "jalan berlubang" matches "jalan di desa karangsalam berlubang".
MAX_GAP = 3


class Words:
    """A text as whole words (NFKC, lowercase, punctuation removed) plus its hashtags.

    Only the tokens are built up front; the set of words, positions and sorted words are worked
    out on first use (the rules engine decides most texts from its word bits, without them).
    A plain class with slots: built once per evaluated text, so its construction counts."""

    __slots__ = ("_joined", "_memo", "_positions", "_prefixed", "_vocab", "ascii", "hashtags",
                 "normalized", "tokens")

    def __init__(
        self, tokens: tuple[str, ...], hashtags: tuple[str, ...], normalized: str,
        ascii_: bool | None = None,
    ) -> None:
        self.tokens = tokens
        self.hashtags = hashtags
        self.normalized = normalized  # NFKC + lowercase, punctuation kept: what `regex` sees
        # for the regex literal pre-filter (see engine.regex_needs)
        self.ascii = normalized.isascii() if ascii_ is None else ascii_
        # what the rules engine already worked out for this text (keyword list -> result)
        self._memo: dict[object, object] = {}
        self._vocab: frozenset[str] | None = None
        self._positions: dict[str, list[int]] | None = None
        self._prefixed: dict[str, list[int]] | None = None
        self._joined: str | None = None

    def __repr__(self) -> str:
        return f"Words(tokens={self.tokens!r}, hashtags={self.hashtags!r})"

    @property
    def vocab(self) -> frozenset[str]:
        """The distinct tokens."""
        if self._vocab is None:
            self._vocab = frozenset(self.tokens)
        return self._vocab

    @property
    def positions(self) -> dict[str, list[int]]:
        """Token -> the positions where it occurs, in order."""
        if self._positions is None:
            positions: dict[str, list[int]] = {}
            for i, tok in enumerate(self.tokens):
                positions.setdefault(tok, []).append(i)
            self._positions = positions
        return self._positions

    def positions_of(self, word: str) -> list[int]:
        """Positions of `word`, in order (a scan in C: cheaper than `positions` for a word)."""
        tokens = self.tokens
        count = tokens.count(word)
        if count == 0:
            return []
        found = [tokens.index(word)]
        for _ in range(count - 1):
            found.append(tokens.index(word, found[-1] + 1))
        return found

    def starting_with(self, prefix: str) -> list[int]:
        """Positions of the tokens that start with `prefix` (remembered for this text)."""
        if self._prefixed is None:
            self._prefixed = {}
        found = self._prefixed.get(prefix)
        if found is None:
            # " tok0 tok1 ...": a token starting with the prefix is " " + prefix found in it,
            # and its position is the number of spaces before that (str methods, in C)
            joined = self._joined
            if joined is None:
                joined = self._joined = " " + " ".join(self.tokens)
            needle = " " + prefix
            found = []
            at = joined.find(needle)
            position, counted = 0, 0
            while at != -1:
                position += joined.count(" ", counted, at)
                counted = at
                found.append(position)
                at = joined.find(needle, at + 1)
            self._prefixed[prefix] = found
        return found


def normalize(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def words(text: str) -> Words:
    norm = unicodedata.normalize("NFKC", text).casefold()  # normalize(), without its call
    ascii_ = norm.isascii()
    if ascii_:
        tokens = tuple(norm.encode("ascii").translate(_ASCII_WORDS).decode("ascii").split())
    else:
        tokens = tuple(_WORD.findall(norm))
    hashtags = tuple(_HASHTAG.findall(norm)) if "#" in norm else ()
    return Words(tokens, hashtags, norm, ascii_)


@dataclass(frozen=True)
class Keyword:
    """A keyword or phrase: whole words in sequence; a word ending in `*` matches any ending."""

    source: str
    parts: tuple[tuple[str, bool], ...]  # (word, is_prefix)

    @classmethod
    def parse(cls, source: str) -> Keyword:
        parts: list[tuple[str, bool]] = []
        for raw in normalize(source).split():
            prefix = raw.endswith("*")
            toks = _WORD.findall(raw)
            parts.extend((tok, prefix and i == len(toks) - 1) for i, tok in enumerate(toks))
        return cls(source, tuple(parts))

    @cached_property
    def squashed(self) -> str:
        return "".join(word for word, _ in self.parts)

    def matches(self, w: Words) -> bool:
        parts = self.parts
        if not parts:
            return False
        first, first_prefix = parts[0]
        if len(parts) == 1:  # a single word: presence is enough, no positions needed
            return bool(w.starting_with(first)) if first_prefix else first in w.vocab
        starts = w.starting_with(first) if first_prefix else w.positions_of(first)
        if starts:
            tokens = w.tokens
            for start in starts:
                if self._rest_matches(tokens, start, 1):
                    return True
        # `#jalanrusak` carries the words of "jalan rusak".
        if w.hashtags and len(parts) > 1:
            squashed = self.squashed
            return any(tag.startswith(squashed) for tag in w.hashtags)
        return False

    def _rest_matches(self, tokens: tuple[str, ...], at: int, part: int) -> bool:
        """Do parts[part:] follow tokens[at], each within MAX_GAP words of the previous?

        (An exact word is looked for with tuple.index/`in`, in C: phrases are tried often.)"""
        parts = self.parts
        if part == len(parts):
            return True
        word, prefix = parts[part]
        end = min(at + 2 + MAX_GAP, len(tokens))
        last = part + 1 == len(parts)
        if not prefix:
            if last:
                return word in tokens[at + 1:end]
            i = at + 1
            while word in tokens[i:end]:
                i = tokens.index(word, i, end)
                if self._rest_matches(tokens, i, part + 1):
                    return True
                i += 1
            return False
        for i in range(at + 1, end):
            if tokens[i].startswith(word) and (last or self._rest_matches(tokens, i, part + 1)):
                return True
        return False


# Where the first sentence ends: sentence punctuation before a space (or the end), or a line break.
_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)|\n")


def lead_end(normalized: str, start: int = 0) -> int:
    """Where the lead of a text ends (an index into `normalized`): the end of the first sentence
    that starts at or after `start` (leading blanks skipped). With a subject line before the
    body, start is where the body begins, so the lead is the subject plus the body's first
    sentence."""
    pos, end = start, len(normalized)
    while pos < end and normalized[pos].isspace():
        pos += 1
    m = _SENTENCE_END.search(normalized, pos)
    return m.start() if m else end


def count_tokens(normalized_prefix: str, ascii_: bool) -> int:
    """How many tokens `words` finds in a prefix of a normalized text that ends between words
    (a lead: it ends at punctuation or a line break, so its tokens are the text's first ones)."""
    if ascii_:
        return len(normalized_prefix.encode("ascii").translate(_ASCII_WORDS).split())
    return len(_WORD.findall(normalized_prefix))
