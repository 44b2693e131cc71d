"""SIGKILL `lapakd run` while Facebook is polled and WhatsApp webhooks arrive: nothing lost,
nothing doubled once Meta's retries and the next polls have come in."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time

from metaenv import FB, WA, complaints, configure, rows

from lapakd.embedded.replica import graph as R
from lapakd.embedded.replica.graph import send_webhook


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sigkill_across_polling_and_webhook(desk_env):
    rng = random.Random(int(os.environ.get("LAPAKD_CRASH_SEED", "20261128")))
    with R.GraphReplica(page_size=3) as replica:
        port = free_port()
        configure(desk_env, replica, facebook=FB, whatsapp=WA)
        desk_env.write_config(webhook={"listen": f"127.0.0.1:{port}"})
        url = f"http://127.0.0.1:{port}/webhook"
        bodies = [replica.whatsapp_text_body(f"62812000{i:05d}", f"Warga {i}",
                                             f"Jalan rusak di RT {i} Karangsalam")
                  for i in range(60)]
        for i in range(30):
            replica.messenger_message(f"7340000000{i:06d}", f"Warga FB {i}",
                                      f"Sampah menumpuk di TPS {i}")
        unanswered = list(bodies)
        kills = 0
        while unanswered or kills < 3:
            proc = subprocess.Popen(
                [sys.executable, "-m", "lapakd.cli", "run", "--config", str(desk_env.config)],
                cwd=desk_env.root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + rng.uniform(1.5, 4.0)
            while time.monotonic() < deadline and unanswered:
                try:
                    status, _ = send_webhook(url, unanswered[0], timeout=5)
                except OSError:
                    time.sleep(0.1)  # not listening yet, or killed mid-request: Meta retries
                    continue
                if status == 200:
                    # Meta sometimes re-sends what was answered: so do we, now and then.
                    if rng.random() < 0.3:
                        send_webhook(url, unanswered[0], timeout=5)
                    unanswered.pop(0)
            time.sleep(rng.uniform(0, 0.5))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            kills += 1
        # Meta retries everything again (it cannot know what we kept), and the polls go on.
        proc = subprocess.Popen(
            [sys.executable, "-m", "lapakd.cli", "run", "--config", str(desk_env.config)],
            cwd=desk_env.root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            for body in bodies:
                for _ in range(100):
                    try:
                        if send_webhook(url, body, timeout=5)[0] == 200:
                            break
                    except OSError:
                        time.sleep(0.1)
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0
        desk_env.run_once()
    ids = [r["external_id"] for r in rows(desk_env, "SELECT external_id FROM messages")]
    assert len(ids) == len(set(ids)) == 60 + 30
    found = complaints(desk_env)
    assert len(found) == 90
    assert len({c["conversation"] for c in found}) == 90
    acks = rows(desk_env, "SELECT complaint_id, status FROM outbox WHERE kind = 'ack'")
    assert len(acks) == 90 and len({a["complaint_id"] for a in acks}) == 90
