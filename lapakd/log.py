"""Logging: structlog, human-readable on a terminal, JSON lines otherwise (journald, files)."""

from __future__ import annotations

import logging
import sys

import structlog

LEVEL = "info"  # as last set up (lapakd/delivery/sender.py passes it on to its process)


def setup(level: str = "info", json_lines: bool | None = None) -> None:
    global LEVEL
    LEVEL = level
    if json_lines is None:
        json_lines = not sys.stderr.isatty()
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if json_lines
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
