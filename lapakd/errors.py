"""Errors an admin can act on: one line, naming the file (and line) and the fix."""

from __future__ import annotations

import socket
import ssl


class LapakdError(Exception):
    """Base class for errors shown to admins as one line, never a traceback."""


class ConfigError(LapakdError):
    """The config file is wrong: the message names the file and the key."""


class RulesError(LapakdError):
    """One or more rules files are wrong. `problems` holds `file:line: message` strings."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class StoreError(LapakdError):
    """The store cannot be opened or is in use."""


class NotFound(LapakdError):
    """An id given on the command line does not exist."""


def network_reason(exc: BaseException) -> str:
    """A failed connection or exchange with a mail server (IMAP, SMTP) in a few words, for the
    one-line error the admin reads."""
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]
