"""systemd's notify protocol (sd_notify(3)), spoken by the daemon itself: no dependency.

A datagram of `KEY=value` lines to the unix socket named by `$NOTIFY_SOCKET` (a path, or an
abstract-namespace name written `@name`). Without `$NOTIFY_SOCKET` (not under systemd, or a
`Type=simple` unit) every call does nothing. The variables are taken out of the environment
once read, so the processes lapakd starts (the burst's sender) do not inherit them.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import MutableMapping

import structlog

log = structlog.get_logger("lapakd.notify")


class Notifier:
    def __init__(self, environ: MutableMapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.pop("NOTIFY_SOCKET", "")
        self.address = "\0" + address[1:] if address.startswith("@") else address or None
        usec, pid = env.pop("WATCHDOG_USEC", ""), env.pop("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        # Ping at half the timeout, as sd_watchdog_enabled(3) advises.
        self.watchdog_seconds = int(usec) / 2e6 if usec.isdigit() and mine else None
        self._next_ping = 0.0
        self._warned = False

    def send(self, *lines: str) -> bool:
        """One datagram; True when it went out. A failure is logged once, never raised."""
        if not self.address:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto("\n".join(lines).encode(), self.address)
        except OSError as exc:
            if not self._warned:
                self._warned = True
                log.warning("notify.failed", error=str(exc), socket=self.address)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def reloading(self) -> bool:
        # MONOTONIC_USEC lets a Type=notify-reload unit match the reload to its request.
        return self.send("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")

    def stopping(self) -> bool:
        return self.send("STOPPING=1", "STATUS=stopping")

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={' '.join(text.split())}")

    def watchdog_due_in(self) -> float | None:
        """Seconds until the next `WATCHDOG=1` is due (0 when it is); None without a watchdog.
        The main loop wakes by then, so the pings keep their interval."""
        if self.watchdog_seconds is None:
            return None
        return max(0.0, self._next_ping - time.monotonic())

    def watchdog(self, healthy: bool = True) -> bool:
        """`WATCHDOG=1` when healthy and half the watchdog timeout has passed since the last.

        Called from the main loop's iteration: a loop that hangs stops the pings, and systemd
        kills and restarts the daemon after `WatchdogSec`."""
        if self.watchdog_seconds is None or not healthy:
            return False
        now = time.monotonic()
        if now < self._next_ping:
            return False
        self._next_ping = now + self.watchdog_seconds
        return self.send("WATCHDOG=1")
