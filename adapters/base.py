"""The one interface every channel implements: `Adapter`, and the errors it may raise.

A channel moves raw messages into the store — `fetch`/`acknowledge` when lapakd polls it,
`webhook_messages` when Meta pushes to `/webhook` — turns a stored raw message into `Content`
(`parse`), and sends what the outbox asks it to send on that channel (`send`). It declares its
settings (`CONFIG`), whether it is polled (`polls`) and its Meta webhook `object`
(`webhook_object`). Registered with one line in `lapakd/channels.py`. Failures are reported as
`TransientError` (retry later) or `PermanentError` (give up, tell the admin); `NeedsReauth`
marks the channel's credentials dead.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from lapakd.config import Config, Field, Section


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
    """Credentials expired or were revoked: the admin has to act.

    `credential`: the `fingerprint()` of the rejected credential, when known, so that the
    admin is told once per dead token whoever notices it first (a poll, a send, the daily
    token check)."""

    def __init__(self, message: str, credential: str | None = None) -> None:
        super().__init__(message)
        self.credential = credential


def fingerprint(*secrets: str) -> str:
    """A short, one-way name for a credential: the same token always gets the same name, and
    the name reveals nothing of it (it may appear in the store and in dedupe keys)."""
    digest = hashlib.sha256("\x1f".join(secrets).encode()).hexdigest()
    return digest[:16]


@dataclass
class Inbound:
    """One raw message as it arrived, before any interpretation."""

    external_id: str  # unique within the channel: Message-ID, tweet id, wamid...
    raw: bytes  # verbatim bytes (.eml or JSON)
    raw_format: str  # "eml" | "json"
    received_at: datetime | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Batch:
    """Messages fetched together, and the cursor that covers exactly them."""

    messages: list[Inbound]
    cursor: dict[str, Any] | None  # stored in the same transaction as the messages


@dataclass
class Attachment:
    filename: str
    content_type: str
    data: bytes


@dataclass
class Content:
    """What a stored message says, as the pipeline needs it."""

    kind: str  # complaint | auto_reply | bounce | own | status | ...
    text: str = ""
    subject: str = ""
    sender: str | None = None  # address / handle / phone: private, never published
    sender_name: str | None = None
    occurred_at: datetime | None = None
    attachments: list[Attachment] = field(default_factory=list)
    # Chat messages from one sender in one conversation are grouped into one complaint;
    # None means this message is a complaint of its own (email, public post).
    conversation: str | None = None
    # What the channel needs to answer the citizen (e.g. the tweet id to reply to).
    reply_ref: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # Where the complaint is, as (lat, lon), when the channel says so (a WhatsApp location
    # message, an X post's coordinates or place). Text positions are found by the pipeline.
    location: tuple[float, float] | None = None
    # For bounces: Message-IDs of the desk's messages that bounced, and the status code.
    bounced_ids: list[str] = field(default_factory=list)
    bounce_status: str | None = None
    # Channel-specific facts later stages may use (threading headers, ...).
    extra: dict[str, Any] = field(default_factory=dict)


class Watch:
    """A connection that tells of new messages between polls (IMAP IDLE): `Adapter.watch`.

    It only says that something came: the messages are still taken by `fetch`."""

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds; True when new messages arrived. Raises
        `ChannelError` when the connection dropped (the caller reconnects)."""
        raise NotImplementedError

    def renew(self) -> bool:
        """Start the wait afresh on the same connection (servers drop old ones); True when
        news came meanwhile. Raises `ChannelError` when the connection is gone."""
        raise NotImplementedError

    def close(self) -> None:
        """End the wait and the connection."""


class Adapter:
    """Base class for channel adapters: each attribute and method below is a hook a channel
    may provide; the docstring is its contract. Subclasses set `name` and `CONFIG`."""

    # The channel's key, as registered in `lapakd/channels.py`.
    name: ClassVar[str]
    # The settings of `[channels.<name>]` (`enabled` is added for every channel).
    CONFIG: ClassVar[dict[str, Field]] = {}
    # True: the daemon calls `fetch` every `poll_seconds`. False: it only receives webhooks.
    polls: ClassVar[bool] = True
    # Meta's webhook `object` for this channel ("page", "whatsapp_business_account"...): bodies
    # with it go to `webhook_messages`, and the channel's `app_secret`/`verify_token` (in its
    # CONFIG) check `/webhook`. None: nothing is pushed to this channel.
    webhook_object: ClassVar[str | None] = None
    # True: `watch` may push news between polls (the daemon keeps a watcher thread for it).
    watches: ClassVar[bool] = False

    def __init__(self, config: Config, section: Section) -> None:
        self.config = config
        self.section = section

    @property
    def poll_seconds(self) -> int:
        return int(self.section.get("poll_seconds", 60))

    def fetch(self, cursor: dict[str, Any] | None) -> Iterator[Batch]:
        """Polled: yield batches newer than `cursor`. The caller stores each batch with its cursor
        in one transaction and calls `acknowledge` before asking for the next batch."""
        return iter(())

    def acknowledge(self, batch: Batch) -> None:
        """Polled: tell the server the batch is safe (e.g. IMAP \\Seen). Default: nothing."""

    def webhook_messages(self, body: dict[str, Any]) -> list[Inbound]:
        """Pushed: split one signed webhook body (parsed JSON, `object` == `webhook_object`) into
        messages, one per message id; raise ValueError/ChannelError when it cannot be read."""
        raise PermanentError(f"channel {self.name} does not receive webhooks")

    def parse(self, raw: bytes, meta: dict[str, Any]) -> Content:
        """Turn a stored raw message (and the `meta` stored with it) into `Content`."""
        raise NotImplementedError

    def send(self, kind: str, payload: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        """Send a reply on this channel. Returns facts worth recording (e.g. the new post id)."""
        raise PermanentError(f"channel {self.name} cannot send messages")

    def watch(self) -> Watch | None:
        """Polled: a connection of its own that tells when news arrives, so the daemon polls at
        once instead of at the next `poll_seconds`; None when the channel or its server cannot
        (then it is only polled). Raises `ChannelError` when connecting fails."""
        return None

    def close(self) -> None:
        """Release connections."""
