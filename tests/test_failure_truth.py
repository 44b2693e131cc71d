"""Telling the truth when things fail: status and run --once exit codes, the sender child
during an SMTP outage, bulk requeue, rate-limited alerts."""

from __future__ import annotations

import socket

from deskenv import make_mail  # noqa: F401

from lapakd import daemon

TEXTS = [
    ("Jalan rusak", "dalane rusak parah neng Desa {i}, akeh bolongan, mbok didandani"),
    ("Sampah", "sampah numpuk di TPS no {i} udah seminggu gak diangkut, bau bgt"),
    ("Lampu PJU", "lampu jalan mati di gang {i} Sokaraja, gelap kalo malam"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_smtp_refusing_a_burst_does_not_crash_the_sender_and_keeps_rows_pending(desk_env):
    total = daemon.SENDER_BACKLOG + 300  # the child starts and stops while intake goes on
    desk_env.append_many(TEXTS, total)
    desk_env.write_config(smtp={"port": free_port()})  # nothing listens there
    proc = desk_env.cli("run", "--once", "--log-level", "info", check=False)
    output = proc.stdout + proc.stderr
    assert "Fatal Python error" not in output, output[-3000:]
    assert "burst.started" in output
    with desk_env.db() as db:
        statuses = dict(db.execute("SELECT status, count(*) FROM outbox GROUP BY 1").fetchall())
    assert statuses == {"pending": total}
