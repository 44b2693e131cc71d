"""Text normalisation shared by rules and texts, so both sides tokenize the same way."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_WORD = re.compile(r"[^\W_]+")
_HASHTAG = re.compile(r"#([^\W_]+)")
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


def normalize(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def words(text: str) -> Words:
    norm = normalize(text)
    tokens = tuple(_WORD.findall(norm))
    positions: dict[str, list[int]] = {}
    for i, tok in enumerate(tokens):
        positions.setdefault(tok, []).append(i)
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

    @property
    def squashed(self) -> str:
        return "".join(word for word, _ in self.parts)

    def matches(self, w: Words) -> bool:
        if not self.parts:
            return False
        first, first_prefix = self.parts[0]
        if first_prefix:
            starts = [i for i, tok in enumerate(w.tokens) if tok.startswith(first)]
        else:
            starts = w.positions.get(first, [])
        if any(self._rest_matches(w.tokens, start, 1) for start in starts):
            return True
        # `#jalanrusak` carries the words of "jalan rusak".
        if w.hashtags and len(self.parts) > 1:
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
