"""A lapakd desk wired to the session's real Dovecot and SMTP sink, driven like an operator would.

Each test gets its own config, data_dir and a fresh IMAP user (an empty mailbox).
"""

from __future__ import annotations

import imaplib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

from dovecot import Dovecot

from lapakd.config import dump_toml
from lapakd.embedded.media import TINY_JPEG as TINY_JPEG  # re-exported for tests
from lapakd.embedded.smtp_sink import SmtpSink

TESTS = Path(__file__).resolve().parent
TEST_RULES = TESTS / "data" / "rules"
DESK_EMAIL = "lapakaduanbms@banyumas.example"
ADMIN_EMAIL = "admin.lapakaduan@banyumas.example"


def make_mail(
    subject: str | None = "Aduan",
    body: str = "Jalan di depan SD Negeri 2 Karangsalam berlubang, mohon diperbaiki.",
    *,
    sender: str | None = "Budi Santoso <budi.warga@example.com>",
    to: str = DESK_EMAIL,
    attachments: list[tuple[str, str, bytes]] = (),  # type: ignore[assignment]
    html: str | None = None,
    headers: dict[str, str] | None = None,
    message_id: str | None = None,
) -> bytes:
    msg = EmailMessage()
    if sender is not None:
        msg["From"] = sender
    msg["To"] = to
    if subject is not None:
        msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = message_id or make_msgid(domain="example.com")
    for k, v in (headers or {}).items():
        msg[k] = v
    if html is not None and not body:
        msg.set_content(html, subtype="html")
    else:
        msg.set_content(body)
        if html is not None:
            msg.add_alternative(html, subtype="html")
    for filename, ctype, data in attachments:
        main, _, sub = ctype.partition("/")
        msg.add_attachment(data, maintype=main, subtype=sub, filename=filename)
    return msg.as_bytes()




@dataclass
class DeskEnv:
    root: Path
    dovecot: Dovecot
    sink: SmtpSink
    user: str
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def config(self) -> Path:
        return self.root / "lapakd.toml"

    @property
    def data_dir(self) -> Path:
        return self.root / "var"

    def write_config(self, **sections: dict[str, Any]) -> Path:
        for name, values in sections.items():
            self.overrides.setdefault(name, {}).update(values)
        base: dict[str, dict[str, Any]] = {
            "desk": {"email": DESK_EMAIL, "admin_email": ADMIN_EMAIL,
                     "public_url": "https://lapakaduan.example"},
            "paths": {"data_dir": "var", "rules_dir": str(TEST_RULES),
                      "public_dir": "var/public"},
            "smtp": {"host": self.sink.host, "port": self.sink.port},
            "channels.email": {
                "enabled": True, "host": self.dovecot.host, "port": self.dovecot.port,
                "username": self.user, "password": self.dovecot.password, "poll_seconds": 1,
                # Receipts to emailing citizens (on by default) would double every count of
                # sent mail; tests/test_email_intake.py switches them on.
                "acknowledge": False,
            },
        }
        for name, values in self.overrides.items():
            base.setdefault(name, {}).update(values)
        self.config.write_text(dump_toml(base), encoding="utf-8")
        return self.config

    def append_many(self, texts: list[tuple[str, str]], count: int) -> None:
        """Append `count` complaint mails (cycling through (subject, body) pairs, `{i}` in the
        body numbered) over one IMAP connection."""
        imap = imaplib.IMAP4(self.dovecot.host, self.dovecot.port)
        imap.login(self.user, self.dovecot.password)
        for i in range(count):
            subject, body = texts[i % len(texts)]
            raw = make_mail(f"{subject} {i}", body.format(i=i), sender=f"warga{i}@example.com")
            typ, _ = imap.append("INBOX", None, None, raw)
            assert typ == "OK"
        imap.logout()

    def append(self, raw: bytes, folder: str = "INBOX") -> int:
        return self.dovecot.append(self.user, raw, folder=folder)

    def cli(self, *args: str, check: bool = True, timeout: float = 120,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "lapakd.cli", *args, "--config", str(self.config)],
            capture_output=True, text=True, timeout=timeout, cwd=self.root,
            env={**os.environ, **(env or {})},
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"lapakd {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def kill_runs(self, runs: int = 6, low: float = 0.3, high: float = 2.5) -> int:
        """Start `lapakd run` and SIGKILL it after a random moment, `runs` times.

        Returns how many runs were killed mid-work (LAPAKD_CRASH_SEED picks the moments)."""
        rng = random.Random(int(os.environ.get("LAPAKD_CRASH_SEED", "20261128")))
        kills = 0
        for _ in range(runs):
            proc = subprocess.Popen(
                [sys.executable, "-m", "lapakd.cli", "run", "--config", str(self.config)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.root,
            )
            time.sleep(rng.uniform(low, high))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait(timeout=30)
        return kills

    def run_once(self) -> subprocess.CompletedProcess[str]:
        """`lapakd run --once`; exit 1 is allowed (a channel or a send failed during the run,
        as the outage tests arrange): the test checks the outcome or `.returncode`."""
        proc = self.cli("run", "--once", check=False)
        if proc.returncode not in (0, 1):
            raise AssertionError(f"lapakd run --once exited {proc.returncode}\n"
                                 f"{proc.stdout}\n{proc.stderr}")
        return proc

    def cli_json(self, *args: str) -> Any:
        """JSON output of a verb; exit 1 is allowed (`status` says "needs an admin" that way)."""
        proc = self.cli(*args, "--json", check=False)
        if proc.returncode not in (0, 1):
            raise AssertionError(f"lapakd {' '.join(args)} exited {proc.returncode}\n"
                                 f"{proc.stdout}\n{proc.stderr}")
        return json.loads(proc.stdout)

    def db(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.data_dir / "lapakd.sqlite3")
        conn.row_factory = sqlite3.Row
        return conn

    def count(self, sql: str, *params: Any) -> int:
        with self.db() as conn:
            return conn.execute(sql, params).fetchone()[0]
