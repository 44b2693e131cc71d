"""The model in force for a desk: loaded when its file appears or changes, kept otherwise.

Kept apart from predict.py so that a desk without a model file never imports numpy (the
daemon's memory: docs/benchmarks.md)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from lapakd.learn.predict import Model

log = structlog.get_logger("lapakd.learn")

MODEL_FILE = "model.npz"


def model_path(data_dir: Path) -> Path:
    return Path(data_dir) / MODEL_FILE


class ModelSlot:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._model: Model | None = None
        self._seen: tuple[int, int] | None = None  # (mtime_ns, size) of the loaded file

    def get(self) -> Model | None:
        """The current model (one stat per call), None while there is no model file. A file
        that cannot be read is logged once; the model loaded before stays in force."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._model, self._seen = None, None
            return None
        key = (st.st_mtime_ns, st.st_size)
        if key != self._seen:
            self._seen = key
            from lapakd.learn.predict import Model, ModelFileError

            try:
                self._model = Model(self.path)
                log.debug("model.loaded", path=str(self.path),
                         trained_at=self._model.trained_at, classes=len(self._model.classes))
            except ModelFileError as exc:
                log.error("model.unreadable", error=str(exc),
                          hint="run `lapakd model train`; the model loaded before stays")
        return self._model
