"""The trained model, read from its file and applied with numpy: no scikit-learn in the daemon.

The file (data_dir/model.npz, written by lapakd.learn.train) holds the vocabulary of features
(lapakd.learn.features), their idf, one weight per (feature, class) and the classes' intercepts.
A text's vector is what scikit-learn's TfidfVectorizer(sublinear_tf=True) makes of it — tf =
1 + log(count), times idf, L2-normalised — and its class probabilities are the softmax of
vector · weights + intercepts, as LogisticRegression.predict_proba (tests/test_model.py checks
both agree on held-out texts).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from lapakd.learn.features import analyze


class ModelFileError(Exception):
    """The model file is missing, unreadable or not lapakd's."""


class Model:
    """Class probabilities for a text; `meta` says when and on what it was trained."""

    def __init__(self, path: Path) -> None:
        try:
            with np.load(path, allow_pickle=False) as z:
                vocab = z["vocab"].tolist()
                self.idf = z["idf"].astype(np.float64)
                self.weights = z["weights"]  # features x classes, float32
                self.intercept = z["intercept"].astype(np.float64)
                self.classes: list[str] = z["classes"].tolist()
                self.meta: dict[str, Any] = json.loads(str(z["meta"]))
        except (OSError, ValueError, KeyError) as exc:
            raise ModelFileError(f"{path}: not a readable lapakd model ({exc})") from None
        self.path = path
        self.index = {feature: i for i, feature in enumerate(vocab)}

    @property
    def trained_at(self) -> str:
        return str(self.meta.get("trained_at", ""))

    def probabilities(self, text: str) -> np.ndarray:
        """The probability of each class (self.classes' order)."""
        index = self.index
        counts = Counter(i for f in analyze(text) if (i := index.get(f)) is not None)
        scores = self.intercept.copy()
        if counts:
            rows = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
            tf = 1.0 + np.log(np.fromiter(counts.values(), dtype=np.float64, count=len(counts)))
            x = tf * self.idf[rows]
            norm = float(np.sqrt(x @ x))
            if norm > 0:
                x /= norm
            scores += x @ self.weights[rows].astype(np.float64)
        scores -= scores.max()
        exp = np.exp(scores)
        return exp / exp.sum()

    def ranked(self, text: str) -> list[tuple[str, float]]:
        """Every class with its probability, the likeliest first."""
        p = self.probabilities(text)
        order = np.argsort(-p, kind="stable")
        return [(self.classes[i], float(p[i])) for i in order]
