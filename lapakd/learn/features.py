"""The model's features of a text: words, word pairs and character n-grams of each word.

One function, used as scikit-learn's analyzer when training and by the numpy predictor, so both
sides see exactly the same features. The text is normalised like the rules see it
(lapakd.rules.text: NFKC, casefold, punctuation removed): "Jln. BOLONG!!" and "jln bolong" are
one text. Character n-grams of each word (with its boundaries) let misspellings and affixes
meet: "puskemas" shares most of its n-grams with "puskesmas", "lubangnya" with "lubang".
"""

from __future__ import annotations

from itertools import pairwise

from lapakd.rules.text import words

CHAR_NGRAMS = (3, 4, 5)  # lengths of the character n-grams of " word "
MAX_TOKENS = 400  # long texts: the first words carry the topic; bounds the work per text


def analyze(text: str) -> list[str]:
    """The features of `text`, with repeats (counts matter): `w:` words, `b:` word pairs,
    `c:` character n-grams of each word padded with spaces."""
    tokens = words(text).tokens[:MAX_TOKENS]
    out = [f"w:{t}" for t in tokens]
    out += [f"b:{a} {b}" for a, b in pairwise(tokens)]
    for t in tokens:
        if t.isdigit():
            continue  # numbers (house numbers, dates) say nothing of the topic
        padded = f" {t} "
        for n in CHAR_NGRAMS:
            if n > len(padded):
                break
            out += [f"c:{padded[i:i + n]}" for i in range(len(padded) - n + 1)]
    return out
