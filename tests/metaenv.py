"""Helpers for the Meta channels' tests: a desk wired to the local Graph replica and its webhook.

The replica is a real HTTP server; lapakd reaches it through the real facebook-sdk; the webhook
is served by real waitress (in this process, with its own SQLite connection) and `lapakd run
--once` (a subprocess) processes what it stored.
"""

from __future__ import annotations

import json
from typing import Any

from lapakd.embedded.replica import graph as R

FB = {"enabled": True, "page_id": R.PAGE_ID, "access_token": R.TOKEN, "poll_seconds": 1}
IG = {"enabled": True, "page_id": R.PAGE_ID, "ig_user_id": R.IG_USER_ID,
      "access_token": R.TOKEN, "poll_seconds": 1}
WA = {"enabled": True, "phone_number_id": R.PHONE_NUMBER_ID, "access_token": R.TOKEN,
      "app_secret": R.APP_SECRET, "verify_token": R.VERIFY_TOKEN}


def configure(env: Any, replica: R.GraphReplica, *, email: bool = False, window: int = 0,
              **channels: dict[str, Any]) -> None:
    sections: dict[str, dict[str, Any]] = {
        "desk": {"group_window_minutes": window},
        "webhook": {"listen": "127.0.0.1:0"},
        "channels.email": {"enabled": email},
    }
    for name, values in channels.items():
        sections[f"channels.{name}"] = {**values, "graph_url": replica.url}
    env.write_config(**sections)


def start_webhook(env: Any):
    from lapakd.config import load_config
    from lapakd.intake.webhook import WebhookServer

    server = WebhookServer(load_config(env.config)).start()
    server.url = f"http://127.0.0.1:{server.port}/webhook"
    return server


def rows(env: Any, sql: str, *params: Any) -> list[dict[str, Any]]:
    with env.db() as conn:
        return [dict(r) for r in conn.execute(sql, params)]


def complaints(env: Any) -> list[dict[str, Any]]:
    return rows(env, "SELECT * FROM complaints ORDER BY id")


def health(env: Any, channel: str) -> dict[str, Any]:
    found = rows(env, "SELECT * FROM channel_health WHERE channel = ?", channel)
    return found[0] if found else {}


def retry_now(env: Any, channel: str) -> None:
    """As if the backoff had passed."""
    with env.db() as conn:
        conn.execute("UPDATE channel_health SET next_try_at = NULL WHERE channel = ?", (channel,))


def acks(replica: R.GraphReplica) -> list[dict[str, Any]]:
    return list(replica.posted)


def dumps(doc: Any) -> bytes:
    return json.dumps(doc).encode()
