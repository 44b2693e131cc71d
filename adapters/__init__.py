"""Channel adapters: one module per channel, one line per channel in `REGISTRY`.

Every adapter implements `lapakd.adapters.base.Adapter`; the config section
`[channels.<name>]` is validated against the adapter's `CONFIG`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lapakd.adapters.base import Adapter

    from lapakd.config import Field

# channel name -> "module:Class". Adding a channel: one module, one line here.
REGISTRY: dict[str, str] = {
    "email": "lapakd.adapters.email:EmailAdapter",
    "facebook": "lapakd.adapters.facebook:FacebookAdapter",
    "instagram": "lapakd.adapters.instagram:InstagramAdapter",
    "whatsapp": "lapakd.adapters.whatsapp:WhatsAppAdapter",
    "twitter": "lapakd.adapters.twitter:TwitterAdapter",
}


def known_channels() -> list[str]:
    return list(REGISTRY)


def adapter_class(name: str) -> type[Adapter]:
    module_name, _, class_name = REGISTRY[name].partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def channel_config_schema(name: str) -> dict[str, Field]:
    return adapter_class(name).CONFIG
