"""Train the model with scikit-learn and export its weights for lapakd.learn.predict.

Run in a process of its own (`python -m lapakd.learn.train --config PATH`, started by `lapakd
model train`, the daemon's daily job and `lapakd rules test` on a fresh store), so scikit-learn
never loads into the daemon. Prints one JSON object (the summary `lapakd model show` prints
later from the file) and exits 0; 3 when there are too few labels to train on.

TF-IDF of words, word pairs and character n-grams (lapakd.learn.features) and a multinomial
LogisticRegression: its probabilities are calibrated enough to set a threshold on, it trains in
about a second on a thousand texts, and its weights are one matrix (why not a calibrated
LinearSVC: docs/routing.md, bench/model_bench.py).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from lapakd.learn.features import analyze
from lapakd.learn.labels import NOT_AGENCIES, Label, all_labels, example_labels
from lapakd.learn.slot import model_path

MIN_LABELS = 50  # fewer labelled texts than this: no model (its probabilities mean nothing)
MAX_FEATURES = 20_000  # bounds the file: 20,000 x classes x 4 bytes
MIN_DF = 2  # a feature seen in one text only is noise (and half the file)
C = 20.0  # inverse regularisation: sharper probabilities; bench/model_bench.py compares
THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
HELD_OUT_EVERY = 5  # one example text in 5 (by a hash of its text) is held out for the figures
NOT_ENOUGH = 3  # exit status: too few labels


class NotEnoughLabels(Exception):
    pass


def fit(texts: Sequence[str], classes: Sequence[str]) -> tuple[TfidfVectorizer, Any]:
    if len(texts) < MIN_LABELS or len(set(classes)) < 2:
        raise NotEnoughLabels(
            f"{len(texts)} labelled texts in {len(set(classes))} classes: at least {MIN_LABELS} "
            "in 2 classes are needed (add `examples:` to the rules, or decide some complaints)"
        )
    vectorizer = TfidfVectorizer(analyzer=analyze, sublinear_tf=True, max_features=MAX_FEATURES,
                                 min_df=MIN_DF, dtype=np.float64)
    x = vectorizer.fit_transform(texts)
    clf = LogisticRegression(C=C, max_iter=1000, tol=1e-3)
    clf.fit(x, list(classes))
    return vectorizer, clf


def export(vectorizer: TfidfVectorizer, clf: Any, meta: dict[str, Any], path: Path) -> int:
    """Write the model file atomically (aside, then renamed over), 0600. Returns its size."""
    vocab = vectorizer.get_feature_names_out()
    weights = clf.coef_.T.astype(np.float32)  # features x classes: a text's rows, gathered
    intercept = clf.intercept_.astype(np.float64)
    if len(clf.classes_) == 2:
        # Binary LogisticRegression has one column, p(second) = sigmoid(d); the softmax of
        # (-d/2, d/2) is the same, so the predictor needs no second formula.
        weights = np.hstack([-weights / 2, weights / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    path.parent.mkdir(parents=True, exist_ok=True)
    aside = path.with_name(f".{path.name}.{os.getpid()}.partial")
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(
                f, vocab=np.array(vocab, dtype=str), idf=vectorizer.idf_.astype(np.float32),
                weights=weights, intercept=intercept,
                classes=np.array([str(c) for c in clf.classes_], dtype=str),
                meta=np.array(json.dumps(meta)),
            )
            f.flush()
            os.fsync(f.fileno())
        os.chmod(aside, 0o600)
        os.replace(aside, path)
    except BaseException:
        aside.unlink(missing_ok=True)
        raise
    return path.stat().st_size


def _held_out(text: str) -> bool:
    return zlib.crc32(" ".join(text.split()).casefold().encode()) % HELD_OUT_EVERY == 0


def evaluate(rules: Any, labels: list[Label]) -> dict[str, Any]:
    """Figures on a held-out part of the examples: the model trained on the rest (and the
    desk's labels), against the rules on the same texts."""
    examples = [ex for ex in rules.examples if ex["text"].strip()]
    test = [ex for ex in examples if _held_out(ex["text"])]
    test_texts = {ex["text"] for ex in test}
    train = [lab for lab in labels if not (lab.source == "example" and lab.text in test_texts)]
    if not test:
        return {"texts": 0}
    vectorizer, clf = fit([lab.text for lab in train], [lab.label for lab in train])
    proba = clf.predict_proba(vectorizer.transform([ex["text"] for ex in test]))
    classes = [str(c) for c in clf.classes_]
    agencies = set(rules.agencies)
    tops = []
    for row in proba:
        order = np.argsort(-row, kind="stable")
        tops.append([(classes[i], float(row[i])) for i in order[:3]])
    n = len(test)
    accuracy = sum(t[0][0] in ex["expect"] for t, ex in zip(tops, test, strict=True)) / n
    top3 = sum(any(c in ex["expect"] for c, _ in t) for t, ex in zip(tops, test, strict=True)) / n
    thresholds = []
    for threshold in THRESHOLDS:
        sent = [(t[0][0], ex) for t, ex in zip(tops, test, strict=True)
                if t[0][0] in agencies and t[0][1] >= threshold]
        right = sum(agency in ex["expect"] for agency, ex in sent)
        thresholds.append({
            "threshold": threshold, "forwarded": len(sent), "coverage": round(len(sent) / n, 4),
            "precision": round(right / len(sent), 4) if sent else None,
        })
    routed = right = 0
    for ex in test:
        d = rules.evaluate(ex["text"], ex.get("channel"), ex.get("sender"))
        if d.action == "forward":
            routed += 1
            right += bool(set(d.agencies) & set(ex["expect"]))
    rules_precision = round(right / routed, 4) if routed else None
    suggested = next(
        (t["threshold"] for t in thresholds
         if t["forwarded"] and t["precision"] is not None
         and (rules_precision is None or t["precision"] >= rules_precision)),
        1.0,
    )
    return {
        "texts": n, "accuracy": round(accuracy, 4), "top3": round(top3, 4),
        "thresholds": thresholds,
        "rules": {"forwarded": routed, "coverage": round(routed / n, 4),
                  "precision": rules_precision},
        "suggested_threshold": suggested,
    }


def train(config_path: str | None) -> dict[str, Any]:
    from lapakd.config import load_config
    from lapakd.rules import load_rules
    from lapakd.store import Store

    started, cpu_started = time.monotonic(), time.process_time()
    cfg = load_config(config_path)
    rules = load_rules(cfg.rules_dir)
    store = Store(cfg.data_dir) if cfg.db_path.exists() else None
    try:
        labels = all_labels(rules, store)
    finally:
        if store is not None:
            store.close()
    examples = len(example_labels(rules))
    texts, classes = [lab.text for lab in labels], [lab.label for lab in labels]
    vectorizer, clf = fit(texts, classes)
    held_out = evaluate(rules, labels)
    meta = {
        "trained_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "labels": len(labels), "example_labels": examples, "desk_labels": len(labels) - examples,
        "classes": len(clf.classes_),
        "agencies": sum(1 for c in clf.classes_ if c not in NOT_AGENCIES),
        "features": len(vectorizer.vocabulary_), "held_out": held_out,
    }
    meta["seconds"] = round(time.monotonic() - started, 2)
    meta["cpu_seconds"] = round(time.process_time() - cpu_started, 2)
    path = model_path(cfg.data_dir)
    size = export(vectorizer, clf, meta, path)
    return {**meta, "path": str(path), "size_bytes": size}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lapakd.learn.train")
    parser.add_argument("--config")
    args = parser.parse_args(argv)
    from lapakd.errors import LapakdError, RulesError

    # The daemon stopping ends a training (SIGTERM): as an exception, so that a file being
    # written aside is removed.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))

    try:
        summary = train(args.config)
    except NotEnoughLabels as exc:
        print(f"lapakd: model not trained: {exc}", file=sys.stderr)
        return NOT_ENOUGH
    except RulesError as exc:
        print(f"lapakd: model not trained: {'; '.join(exc.problems[:3])}", file=sys.stderr)
        return 2
    except LapakdError as exc:
        print(f"lapakd: model not trained: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
