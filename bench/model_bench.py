"""Benchmark the routing model: which linear model, how good, how big, how fast, and what it
costs the daemon's memory.

    .venv/bin/python bench/model_bench.py [--rules DIR ...] [--skip-rss]

For each rules directory (default: the shipped rules/):
1. models compared on the same held-out fifth of the examples (lapakd.learn.train's split):
   multinomial LogisticRegression (what lapakd ships) and LinearSVC calibrated by
   CalibratedClassifierCV (sigmoid, 3-fold; only classes with >= 3 training texts, both models
   on that same subset) — accuracy, fit time, precision/coverage at 0.5..0.95;
2. `python -m lapakd.learn.train` as the daemon runs it: wall time, the file's size, the
   training process's peak RSS;
3. the numpy predictor: texts per second;
4. RSS of `lapakd run` (no channels; the route job loads the model within 5 s) without and with
   the model file, read from /proc/PID/status (VmRSS after 12 s, VmHWM).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lapakd.config import dump_toml  # noqa: E402
from lapakd.learn import train as T  # noqa: E402
from lapakd.learn.job import SINGLE_THREAD  # noqa: E402
from lapakd.learn.labels import example_labels  # noqa: E402
from lapakd.rules import load_rules  # noqa: E402

THRESHOLDS = T.THRESHOLDS


def figures(name: str, proba: np.ndarray, classes: list[str], test: list[dict],
            agencies: set[str], seconds: float) -> str:
    tops = [(classes[int(row.argmax())], float(row.max())) for row in proba]
    acc = np.mean([top in ex["expect"] for (top, _), ex in zip(tops, test, strict=True)])
    cells = []
    for t in THRESHOLDS:
        sent = [(a, ex) for (a, p), ex in zip(tops, test, strict=True) if p >= t and a in agencies]
        prec = np.mean([a in ex["expect"] for a, ex in sent]) if sent else float("nan")
        cells.append(f"{len(sent) / len(test):4.0%} {prec:4.0%}")
    return f"| {name} | {seconds:.1f} s | {acc:.1%} | " + " | ".join(cells) + " |"


def compare(rules_dir: Path) -> None:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import LinearSVC

    rules = load_rules(rules_dir)
    labels = example_labels(rules)
    test = [ex for ex in rules.examples if T._held_out(ex["text"])]
    held = {ex["text"] for ex in test}
    train = [lab for lab in labels if lab.text not in held]
    agencies = set(rules.agencies)
    print(f"\n{rules_dir}: {len(labels)} labels, {len(test)} held out, "
          f"{len({lab.label for lab in labels})} classes")
    head = " | ".join(f"{t} cov prec" for t in THRESHOLDS)
    print(f"| model | fit | accuracy | {head} |")
    started = time.monotonic()
    vec, clf = T.fit([lab.text for lab in train], [lab.label for lab in train])
    x_test = vec.transform([ex["text"] for ex in test])
    print(figures("LogisticRegression (all classes)", clf.predict_proba(x_test),
                  list(clf.classes_), test, agencies, time.monotonic() - started))
    counts: dict[str, int] = {}
    for lab in train:
        counts[lab.label] = counts.get(lab.label, 0) + 1
    sub = [lab for lab in train if counts[lab.label] >= 3]
    x_sub = vec.transform([lab.text for lab in sub])
    y_sub = [lab.label for lab in sub]
    from sklearn.linear_model import LogisticRegression

    for name, model in (
        ("LogisticRegression (classes with >= 3)", LogisticRegression(C=T.C, max_iter=1000,
                                                                      tol=1e-3)),
        ("calibrated LinearSVC (classes with >= 3)",
         CalibratedClassifierCV(LinearSVC(C=1.0), method="sigmoid", cv=3)),
    ):
        started = time.monotonic()
        model.fit(x_sub, y_sub)
        print(figures(name, model.predict_proba(x_test), list(model.classes_), test, agencies,
                      time.monotonic() - started))


def config(root: Path, rules_dir: Path) -> Path:
    path = root / "lapakd.toml"
    path.write_text(dump_toml({
        "desk": {"email": "aduan@lapak.test", "admin_email": "admin@lapak.test"},
        "paths": {"data_dir": "var", "rules_dir": str(rules_dir), "public_dir": "var/public"},
        "routing": {"retrain_hours": 0},
    }), encoding="utf-8")
    return path


def train_process(rules_dir: Path, root: Path) -> Path:
    cfg = config(root, rules_dir)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "lapakd.learn.train", "--config", str(cfg)],
                   check=True, capture_output=True, env={**os.environ, **SINGLE_THREAD})
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    peak = after.ru_maxrss
    path = root / "var" / "model.npz"
    print(f"training process: {wall:.1f} s wall, {cpu:.1f} s CPU (imports, two fits: "
          f"held-out figures, then all labels), file {path.stat().st_size / 1e6:.2f} MB, "
          f"peak RSS {peak / 1024:.0f} MB")
    return cfg


def predictor_speed(root: Path, rules_dir: Path) -> None:
    from lapakd.learn.predict import Model

    model = Model(root / "var" / "model.npz")
    texts = [ex["text"] for ex in load_rules(rules_dir).examples] * 5
    started = time.process_time()
    for text in texts:
        model.ranked(text)
    cpu = time.process_time() - started
    print(f"predictor: {len(texts) / cpu:,.0f} texts/s (CPU), {len(model.index):,} features, "
          f"{len(model.classes)} classes")


def daemon_rss(cfg: Path, seconds: float = 12.0) -> tuple[int, int]:
    proc = subprocess.Popen([sys.executable, "-m", "lapakd.cli", "run", "--config", str(cfg)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            cwd=cfg.parent)
    try:
        time.sleep(seconds)
        status = Path(f"/proc/{proc.pid}/status").read_text()
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        rss = int(fields["VmRSS"].split()[0]) // 1024
        hwm = int(fields["VmHWM"].split()[0]) // 1024
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    return rss, hwm


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rules", action="append", type=Path)
    parser.add_argument("--skip-rss", action="store_true")
    args = parser.parse_args()
    dirs = [d.resolve() for d in args.rules or [ROOT / "rules"]]
    for rules_dir in dirs:
        compare(rules_dir)
        root = Path(tempfile.mkdtemp(prefix="lapakd-model-bench-"))
        try:
            cfg = train_process(rules_dir, root)
            predictor_speed(root, rules_dir)
            if args.skip_rss:
                continue
            model_file = root / "var" / "model.npz"
            aside = root / "model.npz.aside"
            os.replace(model_file, aside)
            without = daemon_rss(cfg)
            os.replace(aside, model_file)
            with_model = daemon_rss(cfg)
            print(f"lapakd run RSS: without the model {without[0]} MB (peak {without[1]} MB); "
                  f"with it {with_model[0]} MB (peak {with_model[1]} MB)")
        finally:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
