"""Errors an admin can act on: one line, naming the file (and line) and the fix."""

from __future__ import annotations


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
