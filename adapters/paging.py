"""Bounded paging walks: a poll never follows a server's cursors forever.

A walk over a paged list (X mentions or DMs, a Graph edge) asks `PageWalk.follow(cursor)` before
each next page. It refuses, and the walk stops, when:

* the walk already fetched `max_pages` pages (`max_pages_per_poll`): a genuine backlog; the
  adapter remembers where it stopped and the next poll goes on from there;
* the server handed out a cursor this walk already followed (a server stuck on one
  `next_token`), or the page did not move on (newest-first ids that do not go down): the
  server's paging is broken and following it again would only repeat the same requests; the
  adapter takes the walk as finished with what it got.

What the walk fetched before it stopped is stored as usual. A stop is logged once when it starts
happening for a walk (like an outage in `lapakd.health`), not on every poll; a walk that ends
normally again is logged as recovered.
"""

from __future__ import annotations

import threading

import structlog

log = structlog.get_logger("lapakd.paging")

MAX_PAGES_PER_POLL = 10  # the default of every social channel's `max_pages_per_poll`

PAGE_CAP = "page cap"
REPEATED = "repeated cursor"
BACKWARDS = "cursor went backwards"
RATE_LIMIT = "rate limit"  # the window is used up: the walk stops, the channel pauses

# (channel, walk) -> the reason its last walk stopped early. Per process: `run --once` logs
# again in its next run, the daemon once per occurrence.
_stopped: dict[tuple[str, str], str] = {}
_lock = threading.Lock()


class PageWalk:
    """One walk over a paged list, bounded to `max_pages` pages and to cursors that move on."""

    def __init__(self, channel: str, walk: str, max_pages: int,
                 position: int | None = None) -> None:
        self.channel = channel
        self.walk = walk  # names the list in logs: "mentions", "feed", "<post id>/comments"
        self.max_pages = max(1, max_pages)
        self.pages = 0
        self.position = position  # newest-first lists: the lowest id reached so far
        self.stopped: str | None = None  # why the walk stopped early (PAGE_CAP, ...), or None
        self.after: str | None = None  # Graph: the cursor after the last page read
        self._seen: set[str] = set()

    def fetched(self) -> None:
        """Count a page that was requested."""
        self.pages += 1

    def follow(self, cursor: str, position: int | None = None) -> bool:
        """May the walk fetch the page at `cursor`? `position` is where the page just read
        ended (the lowest id of a newest-first page), when the list has one."""
        reason = None
        if cursor in self._seen:
            reason = REPEATED
        elif position is not None and self.position is not None and position >= self.position:
            reason = BACKWARDS
        elif self.pages >= self.max_pages:
            reason = PAGE_CAP
        if position is not None:
            self.position = position if self.position is None else min(self.position, position)
        if reason is not None:
            self.stop(reason)
            return False
        self._seen.add(cursor)
        return True

    def check_start(self, position: int | None) -> bool:
        """The first page of a walk that resumes below `self.position` (X's until_id): a page
        that is not below it means the server ignored where we asked to start."""
        if position is not None and self.position is not None and position >= self.position:
            self.stop(BACKWARDS)
            return False
        return True

    def stop(self, reason: str) -> None:
        self.stopped = reason
        key = (self.channel, self.walk)
        with _lock:
            if _stopped.get(key) == reason:
                return  # already logged for this occurrence
            _stopped[key] = reason
        hint = ("the rest comes with the next polls" if reason == PAGE_CAP
                else "the server's paging is broken: the walk ends with what it got")
        log.warning("paging.stopped", channel=self.channel, walk=self.walk, reason=reason,
                    pages=self.pages, max_pages=self.max_pages, hint=hint)

    def complete(self) -> None:
        """The walk reached its end (no next page): a later stop is a new occurrence."""
        key = (self.channel, self.walk)
        with _lock:
            reason = _stopped.pop(key, None)
        if reason is not None:
            log.info("paging.recovered", channel=self.channel, walk=self.walk, was=reason)
