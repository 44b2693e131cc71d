"""Logging: structlog, human-readable on a terminal, JSON lines otherwise (journald, files).

Under journald (stderr is the stream named by `$JOURNAL_STREAM`) each line starts with its
syslog priority (`<3>` error, `<4>` warning, `<6>` info, `<7>` debug), which journald strips
and stores as the entry's PRIORITY, so `journalctl -u lapakd -p err` shows the errors only.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import structlog

LEVEL = "info"  # as last set up (lapakd/delivery/sender.py passes it on to its process)

# structlog's level names -> syslog priorities (sd-daemon(3)).
PRIORITY = {"critical": 3, "exception": 3, "error": 3, "warning": 4, "warn": 4,
            "info": 6, "debug": 7}


def under_journald() -> bool:
    """True when stderr is journald's stream: `$JOURNAL_STREAM` is "DEVICE:INODE" of it.

    Checked against stderr itself, as systemd advises: a child whose stderr was redirected
    (a pipe, a file) inherits the variable but is no longer talking to journald."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    device, sep, inode = stream.partition(":")
    if not sep or not device.isdigit() or not inode.isdigit():
        return False
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (int(device), int(inode))


def prefix(level: str) -> str:
    """`<N>` for a line at `level` written to stderr under journald, else ""."""
    return f"<{PRIORITY.get(level, 6)}>" if under_journald() else ""


def _with_priority(renderer: structlog.typing.Processor) -> structlog.typing.Processor:
    def render(logger: Any, method_name: str, event_dict: Any) -> str:
        mark = f"<{PRIORITY.get(event_dict.get('level', method_name), 6)}>"
        text = str(renderer(logger, method_name, event_dict))
        # Every line of it: journald takes each line as an entry of its own.
        return "\n".join(mark + line for line in text.split("\n"))

    return render


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
    if under_journald():
        renderer = _with_priority(renderer)
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
