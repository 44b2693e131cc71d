"""Does Indonesian stemming (PySastrawi) or a Banyumasan dictionary (banyumasan-corpus) help the
routing model? Adds each one's features to lapakd.learn.features.analyze and measures accuracy
on the held-out fifth of the shipped examples and on bench/data/routing_heldout.csv (194
complaints no rule was tuned on), the model trained as `lapakd model train` trains it.

    .venv/bin/pip install PySastrawi banyumasan-corpus   # not lapakd's dependencies
    .venv/bin/python bench/model_features.py

Figures and the decision: README, "Looked at and not kept".
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from banyumasan_corpus import load_entries
from Sastrawi.Stemmer.StemmerFactory import StemmerFactory
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from lapakd.learn import features, train
from lapakd.learn.labels import Label, example_labels
from lapakd.rules import load_rules
from lapakd.rules.text import words

ROOT = Path(__file__).resolve().parent.parent


def ngapak_glosses() -> dict[str, str]:
    """One-word Ngapak headwords and their first one-word Indonesian gloss."""
    out: dict[str, str] = {}
    for entry in load_entries():
        word, gloss = entry.ngapak.casefold(), entry.indonesia.casefold()
        if " " not in word and " " not in gloss and word != gloss:
            out.setdefault(word, gloss)
    return out


def analyzers() -> dict[str, Callable[[str], list[str]]]:
    glosses = ngapak_glosses()
    stemmer = StemmerFactory().create_stemmer()
    stems: dict[str, str] = {}

    def stem(token: str) -> str:
        if token not in stems:
            stems[token] = stemmer.stem(token)
        return stems[token]

    def tokens(text: str) -> list[str]:
        return words(text).tokens[:features.MAX_TOKENS]

    def with_glosses(text: str) -> list[str]:
        return features.analyze(text) + [f"w:{glosses[t]}" for t in tokens(text) if t in glosses]

    def with_stems(text: str) -> list[str]:
        return features.analyze(text) + [f"s:{stem(t)}" for t in tokens(text) if not t.isdigit()]

    def with_both(text: str) -> list[str]:
        return with_stems(text) + [f"w:{glosses[t]}" for t in tokens(text) if t in glosses]

    return {"shipped": features.analyze, "+ngapak": with_glosses, "+stems": with_stems,
            "+both": with_both}


def fit(analyze: Callable[[str], list[str]], labels: list[Label]
        ) -> tuple[TfidfVectorizer, LogisticRegression]:
    vectorizer = TfidfVectorizer(analyzer=analyze, sublinear_tf=True,
                                 max_features=train.MAX_FEATURES, min_df=train.MIN_DF)
    x = vectorizer.fit_transform([label.text for label in labels])
    model = LogisticRegression(C=train.C, max_iter=1000, tol=1e-3)
    model.fit(x, [label.label for label in labels])
    return vectorizer, model


def first_choices(vectorizer: TfidfVectorizer, model: LogisticRegression,
                  texts: list[str]) -> list[str]:
    probabilities = model.predict_proba(vectorizer.transform(texts))
    return [model.classes_[i] for i in probabilities.argmax(axis=1)]


def main() -> None:
    labels = example_labels(load_rules(ROOT / "rules"))
    trained = [label for label in labels if not train._held_out(label.text)]
    held = [label for label in labels if train._held_out(label.text)]
    with open(ROOT / "bench" / "data" / "routing_heldout.csv", encoding="utf-8") as fh:
        independent = list(csv.DictReader(fh))
    for name, analyze in analyzers().items():
        started = time.perf_counter()
        vectorizer, model = fit(analyze, trained)
        chosen = first_choices(vectorizer, model, [label.text for label in held])
        examples = np.mean([c == label.label for c, label in zip(chosen, held, strict=True)])
        vectorizer, model = fit(analyze, labels)  # as shipped: on every example
        chosen = first_choices(vectorizer, model, [row["text"] for row in independent])
        others = np.mean([c in row["agency"].split("|")
                          for c, row in zip(chosen, independent, strict=True)])
        print(f"{name:8} examples' held-out fifth {examples:.1%}   independent 194 {others:.1%}"
              f"   ({time.perf_counter() - started:.1f} s, two fits)", flush=True)


if __name__ == "__main__":
    main()
