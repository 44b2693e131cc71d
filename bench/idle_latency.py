"""Arrival-to-forward latency with IMAP IDLE: a mail APPENDed to the desk's mailbox until lapakd's
forward of it is a file in the SMTP sink, with poll_seconds = 300 (the poll cannot be what
brings it in).

    .venv/bin/python bench/idle_latency.py              # 50 mails, the issue's figure
    .venv/bin/python bench/idle_latency.py --n 10 --no-idle --poll-seconds 20   # the contrast

Starts a real Dovecot (tests/dovecot.py) and the SMTP sink (lapakd.embedded.smtp_sink, writing
each accepted mail to a file), runs `lapakd run` (a process of its own, the shipped rules) and,
once it holds its IDLE connection, appends the mails one at a time over one IMAP connection,
waiting for each forward (and a short random pause) before the next. Latency = the sink file's
mtime minus the moment APPEND returned. Prints median, p95, min and max.
"""

from __future__ import annotations

import argparse
import imaplib
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from pathlib import Path

from corpus import DEFAULT_RULES, complaints

from lapakd.config import dump_toml
from lapakd.embedded.smtp_sink import SmtpSink

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from dovecot import Dovecot

DESK_EMAIL = "lapakaduanbms@banyumas.example"
ADMIN_EMAIL = "admin.lapakaduan@banyumas.example"
WAIT_SECONDS = 60.0  # one mail's forward not in the sink by then: counted as lost


def mail(i: int, marker: str, body: str, sender: tuple[str, str], subject: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = formataddr(sender)
    msg["To"] = DESK_EMAIL
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = f"<idle.{i}.{os.getpid()}@warga.example>"
    msg.set_content(f"{body}\n\nNo. laporan {marker}")
    return msg.as_bytes()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def forwarded(sink_dir: Path, marker: str) -> float | None:
    """The mtime of the first sink file holding `marker` (a forward of that mail)."""
    found = [p.stat().st_mtime for p in sink_dir.glob("*.eml")
             if marker.encode() in p.read_bytes()]
    return min(found) if found else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--poll-seconds", type=int, default=300)
    ap.add_argument("--no-idle", action="store_true", help="idle = false: the polls only")
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="lapakd-idle-bench-"))
    dovecot = Dovecot(root / "dovecot")
    dovecot.start()
    sink_dir = root / "sink"
    sink = SmtpSink(maildir=sink_dir)
    sink.start()
    user = dovecot.new_user("desk")
    dovecot.append(user, mail(-1, "awal", "Tes kotak surat.", ("Admin", ADMIN_EMAIL), "tes"),
                   flags=("\\Seen",))  # the mailbox exists; first_run leaves it alone
    config = root / "lapakd.toml"
    config.write_text(dump_toml({
        "desk": {"email": DESK_EMAIL, "admin_email": ADMIN_EMAIL,
                 "public_url": "https://lapakaduan.example"},
        "paths": {"data_dir": "var", "rules_dir": str(DEFAULT_RULES), "public_dir": "var/public"},
        "smtp": {"host": sink.host, "port": sink.port},
        "channels.email": {
            "enabled": True, "host": dovecot.host, "port": dovecot.port, "username": user,
            "password": dovecot.password, "poll_seconds": args.poll_seconds,
            "idle": not args.no_idle, "acknowledge": False,
        },
    }), encoding="utf-8")
    log_path = root / "run.log"
    with open(log_path, "w") as log:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "lapakd.cli", "run", "--config", str(config)],
            stdout=subprocess.DEVNULL, stderr=log, cwd=root,
        )
    rng = random.Random(7)
    latencies: list[float] = []
    lost = 0
    try:
        want = '"idle.unavailable"' if args.no_idle else '"idle.watching"'
        deadline = time.monotonic() + 60
        while want not in log_path.read_text():
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"lapakd did not start watching:\n{log_path.read_text()}")
            time.sleep(0.1)
        time.sleep(2)  # the start's polls are over
        imap = imaplib.IMAP4(dovecot.host, dovecot.port)
        imap.login(user, dovecot.password)
        for i, c in enumerate(complaints(args.n, seed=23)):
            marker = f"IDLEBENCH{i:04d}"
            raw = mail(i, marker, c.body, (c.sender_name, c.sender), c.subject)
            typ, _ = imap.append("INBOX", None, None, raw)
            appended = time.time()
            assert typ == "OK"
            deadline = time.monotonic() + WAIT_SECONDS
            while (at := forwarded(sink_dir, marker)) is None and time.monotonic() < deadline:
                time.sleep(0.02)
            if at is None:
                lost += 1
            else:
                latencies.append(at - appended)
            time.sleep(rng.uniform(0.2, 1.0))
        imap.logout()
    finally:
        daemon.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        code = daemon.wait(timeout=60)
        stop_seconds = time.monotonic() - stopped
        sink.stop()
        dovecot.stop()
    print(f"host: {platform.node()} {os.cpu_count()} cpus, load {os.getloadavg()[0]:.2f}; "
          f"poll_seconds = {args.poll_seconds}, idle = {not args.no_idle}")
    if latencies:
        print(f"arrival -> forward over {len(latencies)}/{args.n} mails: "
              f"median {statistics.median(latencies):.3f} s, "
              f"p95 {percentile(latencies, 0.95):.3f} s, "
              f"min {min(latencies):.3f} s, max {max(latencies):.3f} s")
    print(f"lost (no forward within {WAIT_SECONDS:.0f} s): {lost}; "
          f"SIGTERM -> exit {code} in {stop_seconds:.2f} s; files in {root}")
    return 0 if not lost and code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
