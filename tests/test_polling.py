"""Bounded, fair polling: every paging walk stops at `max_pages_per_poll` and at a repeated
cursor; each channel polls in a worker of its own, so a stuck server delays no other channel;
a used-up rate limit pauses only its channel. Real tweepy and facebook-sdk against the local
X and Graph replicas; the daemon runs as a real process."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
from metaenv import FB, configure, health

from lapakd.embedded.replica import graph as R
from lapakd.embedded.replica.x import XReplica


@pytest.fixture
def graph():
    with R.GraphReplica(page_size=2) as rep:
        yield rep


def mentions(x: XReplica) -> list[dict]:
    return [r for r in x.requests if r["endpoint"] == "mentions"]


def cursor(env, channel: str) -> dict:
    with env.db() as db:
        row = db.execute("SELECT value FROM cursors WHERE channel = ?", (channel,)).fetchone()
    return json.loads(row[0]) if row else {}


def stored(env, channel: str) -> int:
    return env.count("SELECT count(*) FROM messages WHERE channel = ?", channel)


def chats(graph: R.GraphReplica, n: int) -> None:
    texts = ["lampu PJU mati di Jl. Gatot Subroto", "sampah numpuk neng pinggir kali Kranji",
             "jalane bolong-bolong nang Karangsalam", "air PDAM mati 3 hari di Teluk",
             "parkir RSUD narik 5rb padahal karcis 2rb"]
    now = datetime.now(UTC)
    for i in range(n):
        graph.messenger_message(f"73000000000000{i:02d}", f"Warga {i}", texts[i % len(texts)],
                                when=now - timedelta(minutes=30 - i))


def start_daemon(env) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "lapakd.cli", "run", "--config", str(env.config)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=env.root,
    )


def wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except Exception:  # noqa: BLE001 - the daemon may not have created the store yet
            pass
        time.sleep(0.2)
    return False


def stop(proc: subprocess.Popen[str], timeout: float = 30) -> list[dict]:
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, stderr[-2000:]
    assert "Fatal Python error" not in stderr and "Traceback" not in stderr, stderr[-2000:]
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


# -- X: the page cap and a server stuck on one next_token --------------------------------------


def test_x_stuck_on_one_next_token_stops_at_the_repeat_and_polls_on_sensibly(desk_env, x):
    desk_env.write_config(**{"channels.twitter": x.channel_config(page_size=5)})
    ids = x.seed_many(12)
    x.repeat_token("mentions")
    desk_env.cli("run", "--once", timeout=60)  # today's code never returns from this poll
    assert len(mentions(x)) == 2  # page 1, then its token once: handed out again → stop
    newest_five = sorted(ids, key=int)[-5:]
    assert stored(desk_env, "twitter") == 5  # what came before the stop is kept
    # The walk cannot go on with a broken token: it ends with what it got.
    assert cursor(desk_env, "twitter")["mentions"] == {"since_id": newest_five[-1]}
    before = len(mentions(x))
    desk_env.cli("run", "--once", timeout=60)
    later = mentions(x)[before:]
    assert len(later) <= 2 and later[0]["query"]["since_id"] == newest_five[-1]


def test_page_cap_stops_the_walk_and_the_next_polls_go_on_below_it(desk_env, x):
    desk_env.write_config(**{"channels.twitter": x.channel_config(
        page_size=5, max_pages_per_poll=2)})
    ids = x.seed_many(23)
    desk_env.run_once()
    assert len(mentions(x)) == 2 and stored(desk_env, "twitter") == 10
    cur = cursor(desk_env, "twitter")["mentions"]
    assert cur["until_id"] == sorted(ids, key=int)[-10]  # the place is kept
    desk_env.run_once()
    assert len(mentions(x)) == 4 and stored(desk_env, "twitter") == 20
    assert mentions(x)[2]["query"]["until_id"] == cur["until_id"]
    desk_env.run_once()
    assert stored(desk_env, "twitter") == 23
    assert cursor(desk_env, "twitter")["mentions"] == {"since_id": max(ids, key=int)}


@pytest.mark.parametrize("value", [0, -3])
def test_max_pages_per_poll_must_be_positive(desk_env, x, value):
    desk_env.write_config(**{"channels.twitter": x.channel_config(max_pages_per_poll=value)})
    out = desk_env.cli("run", "--once", check=False)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "channels.twitter.max_pages_per_poll" in out.stderr
    assert "give 1 to 1000 pages" in out.stderr


# -- the daemon: one worker per channel --------------------------------------------------------


def test_daemon_x_stuck_on_one_token_neither_floods_x_nor_starves_facebook(desk_env, x, graph):
    chats(graph, 3)
    configure(desk_env, graph, facebook=FB)
    desk_env.write_config(**{"channels.twitter": x.channel_config(page_size=5)})
    x.seed_many(8)
    x.repeat_token("mentions")
    proc = start_daemon(desk_env)
    try:
        fed = wait_for(lambda: stored(desk_env, "facebook") >= 3, 30)
        walks = wait_for(lambda: sum("pagination_token" not in r["query"]
                                     for r in mentions(x)) >= 4, 30)
    finally:
        events = stop(proc)
    assert fed, "facebook stored nothing while X was stuck"
    assert walks
    starts = sum("pagination_token" not in r["query"] for r in mentions(x))
    assert len(mentions(x)) <= 2 * starts  # each walk: the first page and one repeat
    assert len(mentions(x)) <= 40
    stops = [e for e in events if e["event"] == "paging.stopped"]
    assert len(stops) == 1 and stops[0]["reason"] == "repeated cursor"  # logged once


def test_daemon_x_server_not_answering_delays_no_other_channel_and_sigterm_is_prompt(
        desk_env, x, graph):
    chats(graph, 2)
    configure(desk_env, graph, facebook=FB)
    desk_env.write_config(**{"channels.twitter": x.channel_config(timeout_seconds=60)})
    x.seed_sample()
    x.stall("mentions", 60, times=100)  # X answers nothing for a minute
    proc = start_daemon(desk_env)
    try:
        fed = wait_for(lambda: stored(desk_env, "facebook") >= 2, 30)
        polls = len(graph.requests)
        again = wait_for(lambda: len(graph.requests) > polls, 15)  # facebook polls on
    finally:
        t0 = time.monotonic()
        events = stop(proc)
        took = time.monotonic() - t0
    assert fed and again
    assert took < 15, took  # not the 60 s X would take to answer
    assert any(e["event"] == "daemon.abandoned" and e["channels"] == ["twitter"]
               for e in events)
    assert events[-1]["event"] == "daemon.stopped"


# -- rate limits pause only their channel ------------------------------------------------------


def test_x_429_pauses_only_x_and_status_says_until_when(desk_env, x, graph):
    chats(graph, 2)
    configure(desk_env, graph, facebook=FB)
    desk_env.write_config(**{"channels.twitter": x.channel_config()})
    x.seed_sample()
    x.fail("mentions", 429, reset_in=600)
    t0 = time.time()
    desk_env.run_once()
    status = json.loads(desk_env.cli("status", "--json", check=False).stdout)["channels"]
    assert status["twitter"]["state"] == "paused"
    until = datetime.fromisoformat(status["twitter"]["paused_until"]).timestamp()
    assert 590 <= until - t0 <= 610  # until x-rate-limit-reset, not a backoff
    assert status["facebook"]["state"] == "ok" and status["facebook"]["messages_stored"] == 2
    assert status["facebook"]["paused_until"] is None
    text = desk_env.cli("status", check=False).stdout
    assert "paused until" in text


def test_graph_stuck_on_one_next_stops_each_walk_at_the_repeat(desk_env, graph):
    chats(graph, 5)  # 3 pages of conversations
    configure(desk_env, graph, facebook=FB)
    graph.repeat_next()
    desk_env.run_once()
    convs = [r for r in graph.requests if r.endswith("/conversations")]
    assert len(convs) == 2  # today: 50 pages of the same conversations
    assert stored(desk_env, "facebook") >= 2
    assert health(desk_env, "facebook")["state"] == "ok"


def test_graph_page_cap_resumes_at_the_after_cursor(desk_env, graph):
    chats(graph, 5)
    configure(desk_env, graph, facebook={**FB, "max_pages_per_poll": 1})
    desk_env.run_once()
    assert stored(desk_env, "facebook") == 2
    first = cursor(desk_env, "facebook")
    assert "messenger" not in first and first["messenger_resume"]["after"]
    desk_env.run_once()
    desk_env.run_once()
    assert stored(desk_env, "facebook") == 5
    last = cursor(desk_env, "facebook")
    assert "messenger_resume" not in last and last["messenger"]
    before = len(graph.requests)
    desk_env.run_once()  # caught up: one page of conversations, nothing new
    assert stored(desk_env, "facebook") == 5
    assert [r for r in graph.requests[before:] if r.endswith("/conversations")]


@pytest.mark.parametrize("how", ["http_429", "usage_full"])
def test_graph_rate_limit_pauses_only_facebook(desk_env, x, graph, how):
    chats(graph, 2)
    configure(desk_env, graph, facebook=FB)
    desk_env.write_config(**{"channels.twitter": x.channel_config()})
    x.seed_sample()
    if how == "http_429":
        graph.rate_limit(1, minutes=2)
    else:
        graph.usage_full(1, minutes=2)
    desk_env.run_once()
    h = health(desk_env, "facebook")
    assert h["state"] == "paused"
    wait = datetime.fromisoformat(h["next_try_at"]) - datetime.now(UTC)
    assert timedelta(seconds=90) < wait <= timedelta(seconds=125)  # Graph's estimate: 2 min
    assert stored(desk_env, "twitter") == 6 and health(desk_env, "twitter")["state"] == "ok"
    n = len(graph.requests)
    desk_env.run_once()  # still paused: Graph is not asked
    assert len(graph.requests) == n
