"""Training on schedule and on demand, always in a process of its own (lapakd.learn.train).

The daemon's `model` job (hourly) retrains when the model file is older than `[routing]
retrain_hours` (daily by default) or missing, and there are enough labels; the new file is
picked up by the desk's ModelSlot at the next routing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from lapakd.errors import LapakdError
from lapakd.learn.slot import model_path

if TYPE_CHECKING:
    from lapakd.app import Desk
    from lapakd.config import Config

log = structlog.get_logger("lapakd.learn")

MIN_LABELS = 50  # = lapakd.learn.train.MIN_LABELS (not imported: that module loads sklearn)
TRAIN_TIMEOUT = 900  # seconds
SINGLE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


class NotEnoughLabels(LapakdError):
    pass


def train_in_subprocess(config_path: Path, timeout: float = TRAIN_TIMEOUT) -> dict[str, Any]:
    """Run `python -m lapakd.learn.train`; its summary, or LapakdError with its reason."""
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "lapakd.learn.train", "--config", str(config_path)],
            capture_output=True, text=True, timeout=timeout, check=False,
            # one thread: a small model, and the daemon's host has other work (2 cores)
            env={**os.environ, **SINGLE_THREAD},
        )
    except subprocess.TimeoutExpired:
        raise LapakdError(f"model training took more than {timeout:.0f} s; stopped") from None
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        reason = lines[-1] if lines else f"exit status {proc.returncode}"
        reason = reason.removeprefix("lapakd: ")
        if proc.returncode == 3:
            raise NotEnoughLabels(reason)
        raise LapakdError(reason)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def stale(config: Config, now: float | None = None) -> bool:
    """No model file, or older than [routing] retrain_hours."""
    path = model_path(config.data_dir)
    try:
        age = (now or time.time()) - path.stat().st_mtime
    except FileNotFoundError:
        return True
    return age >= config.routing.retrain_hours * 3600


def label_count(desk: Desk) -> int:
    from lapakd.learn.labels import all_labels

    return len(all_labels(desk.rules, desk.store))


def model_job(desk: Desk) -> dict[str, Any] | None:
    """The daemon's job: retrain when stale (see the module). Returns the summary, if trained."""
    if desk.config.routing.retrain_hours == 0 or not stale(desk.config):
        return None
    count = label_count(desk)
    if count < MIN_LABELS:
        log.info("model.not_trained", labels=count, needed=MIN_LABELS)
        return None
    try:
        summary = train_in_subprocess(desk.config.path)
    except LapakdError as exc:
        log.warning("model.train_failed", error=str(exc))
        return None
    log.info("model.trained", labels=summary["labels"], classes=summary["classes"],
             seconds=summary["seconds"], size_bytes=summary["size_bytes"],
             held_out_accuracy=summary["held_out"].get("accuracy"))
    return summary


def model_for_test(config: Config, example_count: int) -> Any:
    """The model `lapakd rules test` consults: the desk's file, else one trained now on the
    shipped examples (and the store's labels) and cached in data_dir; None when there are too
    few labels for one."""
    from lapakd.learn.slot import ModelSlot

    slot = ModelSlot(model_path(config.data_dir))
    model = slot.get()
    if model is not None:
        return model
    if example_count < MIN_LABELS and not config.db_path.exists():
        return None
    try:
        train_in_subprocess(config.path)
    except NotEnoughLabels:
        return None
    return slot.get()
