"""Errors an admin can act on: one line, naming the file (and line) and the fix; and how a
send or fetch on a channel failed (`ChannelError`: try again later, give up, or renew the keys)."""

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


# -- channel failures: raised by the adapters and SMTP, read by the outbox and the pollers --


class ChannelError(Exception):
    """A channel operation failed. The message must not contain secrets or tokenized URLs."""


class TransientError(ChannelError):
    """Try again later (timeouts, 4xx SMTP replies, 5xx HTTP, connection refused)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after  # seconds, when the server said so (rate limits)


class PermanentError(ChannelError):
    """Retrying will not help (5xx SMTP replies, rejected recipients, invalid payloads)."""


class NeedsReauth(PermanentError):
    """Credentials expired or were revoked: the admin has to act."""
