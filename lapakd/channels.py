"""The channels complaints arrive on: the registry, one line per channel.

A channel is its key (`[channels.<key>]` in lapakd.toml, `channel` in the store and in the
rules), the names people read, and the `Adapter` that brings its messages in and sends the
replies. What a channel can do — polled (`fetch`), pushed by Meta's webhook (`webhook_object`,
`webhook_messages`), its settings (`CONFIG`) — is declared once, on its adapter class
(`lapakd/adapters/base.py`). Adding a channel: one module in `adapters/` and one `register`
line below. Imports nothing of lapakd; adapter modules are imported when first needed.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lapakd.adapters.base import Adapter


@dataclass(frozen=True)
class Channel:
    key: str
    label: str  # as citizens read it on the public site and in the CLI ("X")
    # As agencies read it in a forward, when that says more ("X (Twitter)"); default: `label`.
    long_label: str = ""
    # The adapter: "module:Class", or the class itself (a channel registered at run time).
    # None: complaints the desk enters by hand (`lapakd add`), nothing to configure or poll.
    adapter: str | type[Adapter] | None = None

    @property
    def configurable(self) -> bool:
        """It has an adapter, so a `[channels.<key>]` section may enable it."""
        return self.adapter is not None


REGISTRY: dict[str, Channel] = {}


def register(channel: Channel) -> Channel:
    """Add (or replace) a channel; returns it."""
    REGISTRY[channel.key] = channel
    return channel


register(Channel("email", "Email", adapter="lapakd.adapters.email:EmailAdapter"))
register(Channel("facebook", "Facebook", adapter="lapakd.adapters.facebook:FacebookAdapter"))
register(Channel("instagram", "Instagram",
                 adapter="lapakd.adapters.instagram:InstagramAdapter"))
register(Channel("whatsapp", "WhatsApp", adapter="lapakd.adapters.whatsapp:WhatsAppAdapter"))
register(Channel("twitter", "X", "X (Twitter)", adapter="lapakd.adapters.twitter:TwitterAdapter"))
register(Channel("walkin", "Datang langsung", "Datang langsung ke posko"))
register(Channel("phone", "Telepon"))


def known() -> list[str]:
    """Every channel a complaint may come from (the rules' `when: channel:` accepts these)."""
    return list(REGISTRY)


def configurable() -> list[str]:
    """The channels a `[channels.<key>]` section may configure."""
    return [key for key, channel in REGISTRY.items() if channel.configurable]


def entered_by_hand() -> list[str]:
    """The channels without an adapter: the desk enters their complaints (`lapakd add`)."""
    return [key for key, channel in REGISTRY.items() if not channel.configurable]


def label(key: str) -> str:
    """The channel as citizens read it; an unknown key as it is."""
    channel = REGISTRY.get(key)
    return channel.label if channel else key


def long_label(key: str) -> str:
    """The channel as a forward to an agency names it; an unknown key as it is."""
    channel = REGISTRY.get(key)
    return (channel.long_label or channel.label) if channel else key


def labels() -> dict[str, str]:
    """Every channel's `label`, for the public site's templates and its filter."""
    return {key: channel.label for key, channel in REGISTRY.items()}


def adapter_class(key: str) -> type[Adapter]:
    """The adapter class of a configurable channel (its module imported on first use)."""
    adapter = REGISTRY[key].adapter
    if adapter is None:
        raise KeyError(f"channel {key!r} has no adapter")
    if not isinstance(adapter, str):
        return adapter
    module_name, _, class_name = adapter.partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def config_schema(key: str) -> dict[str, Any]:
    """The settings of `[channels.<key>]` (name -> `config.Field`), as its adapter declares
    them. Typed loosely so that config.py, which asks, is not imported back from here."""
    return adapter_class(key).CONFIG


def webhook_objects() -> dict[str, str]:
    """Meta's webhook `object` -> channel key, from the adapters that declare one."""
    out = {}
    for key in configurable():
        obj = adapter_class(key).webhook_object
        if obj:
            out[obj] = key
    return out
