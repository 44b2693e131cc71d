"""Text normalisation shared by rules and texts, so both sides tokenize the same way."""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left
from dataclasses import dataclass, field
from functools import cached_property

_WORD = re.compile(r"[^\W_]+")
_HASHTAG = re.compile(r"#([^\W_]+)")
# For ASCII text (most complaints) the same words, faster: every byte that is not a letter or
# digit becomes a space, then split. `[^\W_]` is exactly str.isalnum().
_ASCII_WORDS = bytes(c if chr(c).isalnum() and c < 128 else 32 for c in range(256))
# Words of a phrase must come in order, with at most this many other words between them:
# "jalan berlubang" matches "jalan di desa karangsalam berlubang".
MAX_GAP = 3


@dataclass(frozen=True)
class Words:
    """A text as whole words (NFKC, lowercase, punctuation removed) plus its hashtags."""

    tokens: tuple[str, ...]
    positions: dict[str, list[int]]
    hashtags: tuple[str, ...]
    normalized: str  # NFKC + lowercase, punctuation kept: what `regex` conditions see
    _prefixed: dict[str, list[int]] = field(default_factory=dict, compare=False, repr=False)
    _sorted: list[str] = field(default_factory=list, compare=False, repr=False)
    # what the rules engine already worked out for this text (keyword list -> result)
    _memo: dict[object, object] = field(default_factory=dict, compare=False, repr=False)

    def starting_with(self, prefix: str) -> list[int]:
        """Positions of the tokens that start with `prefix` (remembered for this text)."""
        found = self._prefixed.get(prefix)
        if found is None:
            ordered = self._sorted
            if not ordered:
                ordered.extend(sorted(self.positions))
            # the tokens with this prefix are one run in sorted order, starting here
            found = []
            for i in range(bisect_left(ordered, prefix), len(ordered)):
                tok = ordered[i]
                if not tok.startswith(prefix):
                    break
                found.extend(self.positions[tok])
            self._prefixed[prefix] = found
        return found


def normalize(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def words(text: str) -> Words:
    norm = normalize(text)
    if norm.isascii():
        tokens = tuple(norm.encode("ascii").translate(_ASCII_WORDS).decode("ascii").split())
    else:
        tokens = tuple(_WORD.findall(norm))
    positions: dict[str, list[int]] = {}
    for i, tok in enumerate(tokens):
        where = positions.get(tok)
        if where is None:
            positions[tok] = [i]
        else:
            where.append(i)
    hashtags = tuple(_HASHTAG.findall(norm)) if "#" in norm else ()
    return Words(tokens, positions, hashtags, norm)


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
        starts = w.starting_with(first) if first_prefix else w.positions.get(first)
        if starts:
            if len(parts) == 1:
                return True
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
        """Do parts[part:] follow tokens[at], each within MAX_GAP words of the previous?"""
        if part == len(self.parts):
            return True
        word, prefix = self.parts[part]
        for i in range(at + 1, min(at + 2 + MAX_GAP, len(tokens))):
            tok = tokens[i]
            if (tok.startswith(word) if prefix else tok == word) and self._rest_matches(
                tokens, i, part + 1
            ):
                return True
        return False
