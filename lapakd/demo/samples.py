"""The citizens' messages the demo delivers, read from the files in ``samples/``.

``samples/email/*.eml`` are complete RFC 5322 mails as mail clients sent them, listed with their
labels and ages in ``samples/email.json``; each gets a fresh Date (that many hours ago) and a
fresh Message-ID when it is delivered.  ``samples/<channel>.json`` hold the other channels'
messages, ``samples/pothole.jpg`` the photo the pothole reports carry.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import format_datetime, make_msgid, parseaddr
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

from lapakd.demo.desk import WIB

_SAMPLES: Traversable = files("lapakd.demo") / "samples"
# The first Date / Message-ID / From header line of a mail's header block.
_DATE_RE = re.compile(rb"(?mi)^Date:[^\r\n]*")
_MESSAGE_ID_RE = re.compile(rb"(?mi)^Message-ID:[^\r\n]*")
_FROM_RE = re.compile(rb"(?mi)^From:([^\r\n]*)")


@dataclass(frozen=True)
class Sample:
    """One citizen's message, as its channel delivers it."""

    label: str  # what the demo's table calls it
    ref: str  # a string found in the stored raw message (Message-ID, post id): finds it again
    raw: bytes
    complaint: bool = True  # False: lapakd must store it but not make a complaint of it
    showcase: bool = False  # the one whose forward the demo prints


def channel_samples(channel: str) -> dict[str, Any]:
    """samples/<channel>.json: what the citizens write on that channel."""
    data: dict[str, Any] = json.loads(_SAMPLES.joinpath(f"{channel}.json").read_text("utf-8"))
    return data


def sample_file(name: str) -> bytes:
    """A file of samples/, e.g. pothole.jpg (a small JPEG: grey asphalt, a dark pothole)."""
    return _SAMPLES.joinpath(name).read_bytes()


def email_samples() -> list[Sample]:
    """About a dozen mails from citizens of Banyumas, arrived over the last morning."""
    index: list[dict[str, Any]] = json.loads(
        _SAMPLES.joinpath("email.json").read_text("utf-8")
    )
    out = []
    for entry in index:
        raw, message_id = _redated(
            _SAMPLES.joinpath("email", entry["file"]).read_bytes(), entry["hours_ago"]
        )
        out.append(Sample(entry["label"], message_id, raw, complaint=entry.get("complaint", True),
                          showcase=entry.get("showcase", False)))
    return out


def _redated(raw: bytes, hours_ago: float) -> tuple[bytes, str]:
    """The mail with Date `hours_ago` before now and a new Message-ID; and that id."""
    head, blank, body = raw.partition(b"\r\n\r\n")
    sender = _FROM_RE.search(head)
    domain = parseaddr(sender.group(1).decode() if sender else "")[1].rpartition("@")[2]
    message_id = make_msgid(domain=domain or None)
    date = format_datetime(datetime.now(WIB) - timedelta(hours=hours_ago))
    head = _DATE_RE.sub(f"Date: {date}".encode(), head, count=1)
    head = _MESSAGE_ID_RE.sub(f"Message-ID: {message_id}".encode(), head, count=1)
    return head + blank + body, message_id.strip("<>")
