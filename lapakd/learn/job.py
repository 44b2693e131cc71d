"""Training on schedule and on demand, always in a process of its own (lapakd.learn.train).

The daemon's `model` job (every minute) starts a training, without waiting for it, when the
model file is older than `[routing] retrain_hours` (daily by default) or missing and there are
enough labels; the new file is picked up by the desk's ModelSlot at the next routing. A training
that failed, or too few labels, is tried again an hour later."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from lapakd.errors import LapakdError
from lapakd.learn.slot import model_path

if TYPE_CHECKING:
    from lapakd.config import Config
    from lapakd.rules import RuleSet
    from lapakd.store import Store

log = structlog.get_logger("lapakd.learn")

MIN_LABELS = 50  # = lapakd.learn.train.MIN_LABELS (not imported: that module loads sklearn)
TRAIN_TIMEOUT = 900  # seconds
RETRY_SECONDS = 3600  # after a failed training, or too few labels
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
    return _summary(proc.returncode, proc.stdout, proc.stderr)


def _summary(code: int, stdout: str, stderr: str) -> dict[str, Any]:
    """The training process's summary, or its reason as LapakdError (NotEnoughLabels)."""
    if code != 0:
        lines = [line for line in stderr.splitlines() if line.strip()]
        reason = lines[-1] if lines else f"exit status {code}"
        reason = reason.removeprefix("lapakd: ")
        if code == 3:
            raise NotEnoughLabels(reason)
        raise LapakdError(reason)
    return json.loads(stdout.strip().splitlines()[-1])


def stale(config: Config, now: float | None = None) -> bool:
    """No model file, or older than [routing] retrain_hours."""
    path = model_path(config.data_dir)
    try:
        age = (now or time.time()) - path.stat().st_mtime
    except FileNotFoundError:
        return True
    return age >= config.routing.retrain_hours * 3600


class Desk(Protocol):
    """What the job needs of lapakd.app.Desk (which sits above this stage and loads the
    model this job writes)."""

    @property
    def config(self) -> Config: ...
    @property
    def rules(self) -> RuleSet: ...
    store: Store


def label_count(desk: Desk) -> int:
    from lapakd.learn.labels import all_labels

    return len(all_labels(desk.rules, desk.store))


class Trainer:
    """The daemon's training process: started when the model is stale, polled by later runs of
    the job (the main loop never waits for it: systemd's watchdog would), stopped with the
    daemon. Its output goes to files, not pipes: nobody has to read while it runs."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self.gave_up_at: float | None = None  # monotonic time of the last failure
        self._out: Any = None
        self._err: Any = None

    @property
    def running(self) -> bool:
        return self.proc is not None

    def start(self, config_path: Path) -> None:
        # closed in _read, once the process has ended
        self._out = tempfile.TemporaryFile()  # noqa: SIM115
        self._err = tempfile.TemporaryFile()  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lapakd.learn.train", "--config", str(config_path)],
            stdin=subprocess.DEVNULL, stdout=self._out, stderr=self._err,
            env={**os.environ, **SINGLE_THREAD},
        )
        self.started = time.monotonic()

    def poll(self, wait: bool = False) -> dict[str, Any] | None:
        """The summary once the process has ended (None while it runs, or when it failed,
        which is logged). `wait`: until it ends (at most TRAIN_TIMEOUT)."""
        proc = self.proc
        if proc is None:
            return None
        left = TRAIN_TIMEOUT - (time.monotonic() - self.started)
        try:
            code = proc.wait(timeout=max(left, 0.01)) if wait else proc.poll()
        except subprocess.TimeoutExpired:
            code = None
        if code is None:
            if left > 0:
                return None
            self.stop()
            self.gave_up_at = time.monotonic()
            log.warning("model.train_failed", error=f"took more than {TRAIN_TIMEOUT} s; stopped")
            return None
        out, err = self._read()
        self.proc = None
        try:
            summary = _summary(code, out, err)
        except LapakdError as exc:
            self.gave_up_at = time.monotonic()
            log.warning("model.train_failed", error=str(exc))
            return None
        self.gave_up_at = None
        log.info("model.trained", labels=summary["labels"], classes=summary["classes"],
                 seconds=summary["seconds"], size_bytes=summary["size_bytes"],
                 held_out_accuracy=summary["held_out"].get("accuracy"))
        return summary

    def resting(self) -> bool:
        """A training failed (or there were too few labels) less than RETRY_SECONDS ago."""
        return (self.gave_up_at is not None
                and time.monotonic() - self.gave_up_at < RETRY_SECONDS)

    def stop(self) -> None:
        """End a training in hand (the daemon stops): the last model file stays."""
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self._read()
            self.proc = None

    def _read(self) -> tuple[str, str]:
        texts = []
        for f in (self._out, self._err):
            f.seek(0)
            texts.append(f.read().decode("utf-8", "replace"))
            f.close()
        return texts[0], texts[1]


TRAINER = Trainer()  # the daemon's (one runner per data_dir, one training at a time)


def model_job(desk: Desk) -> dict[str, Any] | None:
    """The daemon's job: collect a finished training (its summary), else start one when the
    model is stale (see the module) and there are enough labels. Never waits."""
    if TRAINER.running:
        return TRAINER.poll()
    if (desk.config.routing.retrain_hours == 0 or not stale(desk.config)
            or TRAINER.resting()):
        return None
    count = label_count(desk)
    if count < MIN_LABELS:
        TRAINER.gave_up_at = time.monotonic()
        log.info("model.not_trained", labels=count, needed=MIN_LABELS)
        return None
    TRAINER.start(desk.config.path)
    log.info("model.training", labels=count)
    return None


def finish_training(desk: Desk) -> dict[str, Any] | None:
    """`run --once`: wait for a training the model job started (nothing is left running)."""
    return TRAINER.poll(wait=True) if TRAINER.running else None


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
    except LapakdError as exc:  # the rules' answer is still worth giving
        print(f"lapakd: no model step: {exc} (try `lapakd model train`)", file=sys.stderr)
        return None
    return slot.get()
