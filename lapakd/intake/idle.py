"""Push intake: a watcher thread per channel whose server can tell of new mail (IMAP IDLE).

The watcher only wakes the channel's poll (`on_news`): the messages are still taken by the one
fetch path (`poll.poll_channel`: cursor, store before acknowledging). It holds the adapter's
`watch()` connection, re-issues the wait every RENEW_SECONDS (RFC 2177 asks for less than 29
minutes), reconnects at once after a drop and then with backoff while the server fails — each
failure recorded as the channel's health, like a failed poll — and wakes the poll after every
(re)connect, for what came while nobody watched. A server without IDLE leaves the channel to
its polls. The thread looks at the stop event at least every SLICE_SECONDS, so SIGTERM ends it
promptly; a SIGHUP reload (a new adapter) makes it reconnect with the new settings.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog

from lapakd.adapters.base import ChannelError
from lapakd.intake import health

if TYPE_CHECKING:
    from lapakd.adapters.base import Adapter, Watch
    from lapakd.app import Desk

log = structlog.get_logger("lapakd.intake.idle")

RENEW_SECONDS = 25 * 60  # re-issue IDLE at least this often (RFC 2177: before 29 minutes)
SLICE_SECONDS = 1.0  # the longest wait between two looks at the stop event
UNAVAILABLE_RECHECK_SECONDS = 5.0  # no IDLE: how often to look for a reloaded config
# A connection that dropped sooner than this after connecting, twice in a row, counts as a
# failed connect (no reconnect loop against a server that announces IDLE, then ends it).
STABLE_SECONDS = 30.0


class IdleWatcher:
    """One channel's push connection, in a thread with a desk of its own."""

    def __init__(self, desk: Desk, channel: str, on_news: Callable[[], object],
                 renew_seconds: float = RENEW_SECONDS) -> None:
        self.desk = desk
        self.channel = channel
        self.on_news = on_news
        self.renew_seconds = renew_seconds
        self.thread = threading.Thread(target=self._run, name=f"idle:{channel}", daemon=True)
        self.connects = 0  # connections established (the first one and every reconnect)
        self.renewals = 0  # waits re-issued on a live connection
        self.news = 0  # times the server told of new messages
        self.failures = 0  # failed connects in a row (the backoff)
        self._told_unavailable = False
        self._quick_drops = 0

    def start(self) -> IdleWatcher:
        self.thread.start()
        return self

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread; True when it has ended."""
        self.thread.join(timeout)
        return not self.thread.is_alive()

    def _run(self) -> None:
        parent = self.desk
        desk = parent.worker()
        try:
            while not parent.stopping.is_set():
                try:
                    self._watch(desk)
                except ChannelError as exc:
                    self._failed(desk, exc)
                except Exception as exc:  # a runner never dies: the polls go on meanwhile
                    log.exception("idle.failed", channel=self.channel, error=str(exc)[:300])
                    self._failed(desk, exc)
        finally:
            desk.close()

    def _failed(self, desk: Desk, exc: Exception) -> None:
        """A failed (re)connect: the channel's health, then wait out the backoff."""
        self.failures += 1
        health.record_failure(desk.store, self.channel, exc)
        delay = health.BACKOFF[min(self.failures, len(health.BACKOFF)) - 1]
        log.info("idle.retry", channel=self.channel, error=str(exc)[:300], retry_in=delay)
        self.desk.stopping.wait(delay)

    def _watch(self, desk: Desk) -> None:
        """Connect, then hold the connection until stopping, a reload or a drop."""
        adapter = desk.adapter(self.channel)
        watch = adapter.watch()
        if self.failures:
            # Reachable again: the backoff recorded by the watcher is over.
            health.record_success(desk.store, self.channel)
        if watch is None:
            self.failures = 0
            if not self._told_unavailable:
                self._told_unavailable = True
                log.info("idle.unavailable", channel=self.channel,
                         note=f"no IDLE (server or config); polling every "
                              f"{adapter.poll_seconds} s")
            self._wait_for_new_settings(desk, adapter)
            return
        self._told_unavailable = False
        self.connects += 1
        connected = time.monotonic()
        log.info("idle.watching", channel=self.channel, connects=self.connects)
        self.on_news()  # a poll for what came while nobody watched
        try:
            self._hold(desk, adapter, watch)
        except ChannelError as exc:
            log.info("idle.dropped", channel=self.channel, error=str(exc)[:300])
            quick = time.monotonic() - connected < STABLE_SECONDS
            self._quick_drops = self._quick_drops + 1 if quick else 0
            if self._quick_drops > 1:
                raise  # dropped right away again: a failure, with backoff
            # A drop (server restart, kick, network): reconnect at once.
        finally:
            watch.close()
        if time.monotonic() - connected >= STABLE_SECONDS:
            self.failures = self._quick_drops = 0

    def _hold(self, desk: Desk, adapter: Adapter, watch: Watch) -> None:
        """Wait for news until stopping, a reload, or a drop (ChannelError)."""
        stopping = self.desk.stopping
        renew_at = time.monotonic() + self.renew_seconds
        while not stopping.is_set():
            if desk.adapter(self.channel) is not adapter:  # lapakd.toml reloaded
                log.info("idle.reconnect", channel=self.channel, reason="config reloaded")
                return
            left = renew_at - time.monotonic()
            if left <= 0:
                self.renewals += 1
                renew_at = time.monotonic() + self.renew_seconds
                if watch.renew():
                    self._news()
                continue
            if watch.wait(min(SLICE_SECONDS, left)):
                self._news()

    def _news(self) -> None:
        self.news += 1
        self.on_news()

    def _wait_for_new_settings(self, desk: Desk, adapter: Adapter) -> None:
        while not self.desk.stopping.wait(UNAVAILABLE_RECHECK_SECONDS):
            if desk.adapter(self.channel) is not adapter:
                return
