"""The daemon's export job: the public site again every `[public] export_minutes` (0 = never).

Registered by the daemon in its `EXTRA_JOBS`; `lapakd export` runs the same export by hand.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from lapakd.public import export

if TYPE_CHECKING:
    from lapakd.app import Desk

_last_export: dict[int, float] = {}  # id(desk) -> monotonic time of its last export


def export_job(desk: Desk) -> object:
    minutes = desk.config.public.export_minutes
    if minutes <= 0:
        return None
    last = _last_export.get(id(desk))
    if last is not None and time.monotonic() - last < minutes * 60:
        return None
    _last_export[id(desk)] = time.monotonic()
    return export.export(desk).rendered
