"""run_once with a backlog sends from a process of its own (lapakd/delivery/sender.py): every row
once, with its Message-ID; SIGKILLed, the runner leaves no sender running and the next run
re-sends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from lapakd import daemon

TEXTS = [
    ("Jalan rusak", "jalan rusak parah di Desa {i}, banyak lubang"),
    ("Sampah", "sampah menumpuk di TPS nomor {i}"),
    ("Pertanyaan", "mohon info jadwal posyandu nomor {i}"),
]



def _check_sent_once_each(desk_env, total: int, *, resends_allowed: bool) -> None:
    with desk_env.db() as db:
        assert db.execute("SELECT count(*) FROM complaints").fetchone()[0] == total
        statuses = dict(db.execute("SELECT status, count(*) FROM outbox GROUP BY 1").fetchall())
        assert statuses == {"sent": total}
        expected = {r[0]: r[1] for r in db.execute(
            "SELECT c.ticket, o.message_id FROM outbox o JOIN complaints c"
            " ON c.id = o.complaint_id")}
        sent_events = Counter(r[0] for r in db.execute(
            "SELECT outbox_id FROM events WHERE type = 'sent'"))
    assert len(sent_events) == total and set(sent_events.values()) == {1}
    got = Counter(m.message["X-Lapakd-Ticket"] for m in desk_env.sink.messages)
    assert set(got) == set(expected)
    for mail in desk_env.sink.messages:
        ticket = mail.message["X-Lapakd-Ticket"]
        assert mail.message["Message-ID"] == f"<{expected[ticket]}>", ticket
    if not resends_allowed:
        assert set(got.values()) == {1}, "a row was sent twice"


def test_run_once_sends_a_backlog_from_a_process_of_its_own(desk_env):
    total = daemon.SENDER_BACKLOG + 40
    desk_env.append_many(TEXTS, total)
    proc = desk_env.cli("run", "--once", "--log-level", "info")
    assert "sender.done" in proc.stderr  # the child sent (some of) them
    # run_once's contract: when it returns, everything due has been sent.
    _check_sent_once_each(desk_env, total, resends_allowed=False)
    with desk_env.db() as db:
        assert db.execute("SELECT count(*) FROM outbox WHERE status = 'sending'").fetchone()[0] == 0


def _children(pid: int) -> set[int]:
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        out.update(int(p) for p in text)
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def test_sigkilled_runner_leaves_no_sender_and_the_next_run_resends(desk_env):
    total = daemon.SENDER_BACKLOG + 200
    desk_env.append_many(TEXTS, total)
    desk_env.sink.clear()
    proc = subprocess.Popen(
        [sys.executable, "-m", "lapakd.cli", "run", "--once", "--config", str(desk_env.config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=desk_env.root,
    )
    deadline = time.monotonic() + 60
    while len(desk_env.sink.messages) < 20:  # the sender process is sending
        assert proc.poll() is None, "run --once ended before it was killed"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    children = _children(proc.pid)
    assert children, "no sender process"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 10
    while any(_alive(c) for c in children):  # PR_SET_PDEATHSIG: it dies with its parent
        assert time.monotonic() < deadline, "the sender outlived its runner"
        time.sleep(0.01)
    time.sleep(0.3)
    before = len(desk_env.sink.messages)
    assert before < total + 50  # killed mid-way, nothing sends any more
    time.sleep(0.5)
    assert len(desk_env.sink.messages) == before

    desk_env.run_once()  # takes the lock (so nothing holds it), re-sends rows left `sending`
    _check_sent_once_each(desk_env, total, resends_allowed=True)
    with desk_env.db() as db:
        assert db.execute("SELECT count(*) FROM outbox WHERE status != 'sent'").fetchone()[0] == 0


def _daemon(desk_env) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "lapakd.cli", "run", "--config", str(desk_env.config),
         "--log-level", "info"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=desk_env.root,
    )


def test_the_daemon_sends_a_burst_from_the_sender_process_too(desk_env):
    total = daemon.SENDER_BACKLOG + 100
    desk_env.append_many(TEXTS, total)
    proc = _daemon(desk_env)
    try:
        desk_env.sink.wait_for(total, timeout=120)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr[-2000:]
    assert "sender.done" in stderr  # the burst went out from the sender process
    _check_sent_once_each(desk_env, total, resends_allowed=False)


@pytest.mark.parametrize("sent_before", [20, 500])  # while routing; in the sending tail
def test_sigterm_in_a_burst_stops_the_sender_too_and_nothing_is_sent_twice(desk_env,
                                                                            sent_before):
    total = daemon.SENDER_BACKLOG + 800
    desk_env.append_many(TEXTS, total)
    desk_env.sink.clear()
    proc = _daemon(desk_env)
    deadline = time.monotonic() + 60
    while len(desk_env.sink.messages) < sent_before:  # the burst is being sent
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    children = _children(proc.pid)
    assert children, "no sender process"
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr[-2000:]
    assert not any(_alive(c) for c in children), "the sender outlived the daemon"
    stopped_at = len(desk_env.sink.messages)
    assert stopped_at < total  # it stopped part-way, not after sending everything
    with desk_env.db() as db:  # a clean stop leaves nothing claimed
        assert db.execute("SELECT count(*) FROM outbox WHERE status = 'sending'").fetchone()[0] == 0

    desk_env.run_once()
    _check_sent_once_each(desk_env, total, resends_allowed=False)
