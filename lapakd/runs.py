"""Runs of the daemon on a store (`daemon_runs`), and what failed during a `run --once`.

`lapakd status` reads the table to tell a store the daemon never ran on, and since when a
push-only channel has been enabled; `run --once` exits 1 when a channel or a send failed during
the run (the work that succeeded stays done).
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from lapakd.store import dumps, now_iso

if TYPE_CHECKING:
    from lapakd.app import Desk

# Channel states that mean the channel could not do its work (a rate-limit pause the server
# asked for is not a failure).
FAILING_STATES = ("error", "needs_reauth")


class Run:
    """One `lapakd run` or `run --once`, recorded when it starts (after the runner lock)."""

    def __init__(self, desk: Desk, mode: str) -> None:
        self.desk = desk
        self.mode = mode
        store = desk.store
        # What this run did is told by the events after this one (ids, not clocks).
        self.first_event = store.one("SELECT coalesce(max(id), 0) FROM events")[0]
        with store.transaction() as conn:
            self.id = conn.execute(
                "INSERT INTO daemon_runs (mode, pid, channels, started_at) VALUES (?, ?, ?, ?)"
                " RETURNING id",
                (mode, os.getpid(), dumps(sorted(desk.config.enabled_channels())), now_iso()),
            ).fetchone()[0]

    def problems(self) -> list[str]:
        """What failed during this run, one line each: failing channels, failed sends."""
        store = self.desk.store
        out = []
        for name in sorted(self.desk.config.enabled_channels()):
            h = store.one("SELECT state, last_error FROM channel_health WHERE channel = ?",
                          (name,))
            if h is not None and h["state"] in FAILING_STATES:
                out.append(f"channel {name} {h['state']}: {h['last_error']}")
        rows = store.all(
            "SELECT type, count(*) n, max(id) last FROM events WHERE id > ?"
            " AND type IN ('send_retry', 'send_failed') GROUP BY type",
            (self.first_event,),
        )
        counts = {r["type"]: r["n"] for r in rows}
        if counts:
            last = store.one("SELECT data FROM events WHERE id = ?",
                             (max(r["last"] for r in rows),))
            error = json.loads(last["data"]).get("error") if last else None
            parts = []
            if counts.get("send_retry"):
                parts.append(f"{counts['send_retry']} send(s) deferred for a retry")
            if counts.get("send_failed"):
                parts.append(f"{counts['send_failed']} send(s) failed")
            out.append(f"{', '.join(parts)} (last error: {error})")
        return out

    def finish(self) -> list[str]:
        problems = self.problems() if self.mode == "once" else []
        with self.desk.store.transaction() as conn:
            conn.execute(
                "UPDATE daemon_runs SET finished_at = ?, problems = ? WHERE id = ?",
                (now_iso(), dumps(problems), self.id),
            )
        return problems


def summary(desk: Desk) -> dict[str, Any]:
    """For `lapakd status`: how many runs, the last one, and when each channel was first
    enabled in a run."""
    store = desk.store
    count = store.one("SELECT count(*) FROM daemon_runs")[0]
    last = store.one("SELECT * FROM daemon_runs ORDER BY id DESC LIMIT 1")
    return {
        "runs": count,
        "last_mode": last["mode"] if last else None,
        "last_started_at": last["started_at"] if last else None,
        "last_finished_at": last["finished_at"] if last else None,
    }


def first_enabled_at(desk: Desk, channel: str) -> str | None:
    """When a run first had this channel enabled (None: never)."""
    row = desk.store.one(
        "SELECT min(started_at) FROM daemon_runs, json_each(daemon_runs.channels)"
        " WHERE json_each.value = ?",
        (channel,),
    )
    return row[0] if row else None
