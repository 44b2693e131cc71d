"""Push intake: IMAP IDLE against the real Dovecot (and pymap without IDLE), `lapakd run` as a
child process. With poll_seconds = 300 a new mail must not wait for the poll."""

from __future__ import annotations

import imaplib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest
from deskenv import make_mail
from dovecot import Dovecot
from imap_tools import MailBoxUnencrypted
from imap_tools.errors import MailboxTaggedResponseError

from lapakd.app import Desk
from lapakd.embedded.imap import EmbeddedImap
from lapakd.intake.idle import IdleWatcher

# Far below poll_seconds = 300, far above what it takes (docs/benchmarks.md): a functional
# bound, not a timing target.
PUSH_BOUND = 30.0


class _Daemon:
    """`lapakd run` in a child process; its JSON log lines (stderr) read as they come."""

    def __init__(self, desk_env, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lapakd.cli", "run", "--config", str(desk_env.config)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=desk_env.root,
            env={**os.environ, **(env or {})},
        )
        self.events: list[dict] = []
        self.lines: list[str] = []
        self._ended = False
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._changed:
                self.lines.append(line)
                if line.startswith("{"):
                    self.events.append(json.loads(line))
                self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def count(self, event: str) -> int:
        with self._changed:
            return sum(1 for e in self.events if e["event"] == event)

    def wait_for(self, event: str, times: int = 1, timeout: float = 30) -> None:
        with self._changed:
            self._changed.wait_for(
                lambda: self._ended or sum(e["event"] == event for e in self.events) >= times,
                timeout=timeout)
            if sum(e["event"] == event for e in self.events) < times:
                raise AssertionError(f"{event} not logged {times} times in time:\n"
                                     + "".join(self.lines)[-3000:])

    def stop(self, timeout: float = 30) -> float:
        """SIGTERM; the seconds until the process ended."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=timeout)
        ended = time.monotonic() - started
        self._reader.join(timeout=timeout)
        return ended

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _slow_polls(desk_env, **email) -> None:
    desk_env.write_config(**{"channels.email": {"poll_seconds": 300, **email}})


def _forwarded_within(desk_env, count: int, seconds: float = PUSH_BOUND) -> None:
    """`count` forwards reached the sink (to the agency) and are marked sent."""
    mails = desk_env.sink.wait_for(count, timeout=seconds)
    assert all("X-Lapakd-Ticket" in m.message for m in mails)
    _wait(lambda: desk_env.count(
        "SELECT count(*) FROM outbox WHERE kind = 'forward' AND status = 'sent'") == count)


def _polls_done(desk_env) -> int:
    """How many polls of the email channel have ended (its health row's last success)."""
    try:
        with desk_env.db() as conn:
            row = conn.execute(
                "SELECT last_success FROM channel_health WHERE channel = 'email'").fetchone()
    except Exception:  # noqa: BLE001 - the database may not exist yet
        return 0
    return 1 if row and row[0] else 0


def _wait(predicate, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.1)


def test_new_mail_is_forwarded_at_once_although_poll_seconds_is_300(desk_env):
    _slow_polls(desk_env)
    daemon = _Daemon(desk_env)
    try:
        daemon.wait_for("idle.watching")
        _wait(lambda: _polls_done(desk_env))
        time.sleep(1)  # the start's polls are over: only IDLE can bring the next mail in
        desk_env.append(make_mail("Jalan berlubang",
                                  "Jalan berlubang di Jl. Gerilya Purwokerto, 2 motor jatuh."))
        _forwarded_within(desk_env, 1)
        assert desk_env.count("SELECT count(*) FROM messages WHERE state = 'processed'") == 1
        desk_env.append(make_mail("Sampah numpuk",
                                  "Sampah neng pasar Wage ora diangkut wis telung dina."))
        _forwarded_within(desk_env, 2)
    finally:
        daemon.stop()
        daemon.kill()
    assert daemon.proc.returncode == 0
    assert daemon.count("idle.unavailable") == 0


def test_idle_is_back_after_the_server_drops_the_connection(desk_env):
    doveadm = shutil.which("doveadm")
    if doveadm is None:
        pytest.skip("doveadm not installed")
    _slow_polls(desk_env)
    daemon = _Daemon(desk_env)
    try:
        daemon.wait_for("idle.watching")
        _wait(lambda: _polls_done(desk_env))
        kicked = subprocess.run(
            [doveadm, "-c", str(desk_env.dovecot.config_path), "kick", desk_env.user],
            capture_output=True, text=True, timeout=30)
        assert kicked.returncode == 0, kicked.stdout + kicked.stderr
        daemon.wait_for("idle.dropped")
        daemon.wait_for("idle.watching", times=2)
        time.sleep(1)
        desk_env.append(make_mail("Aspal",
                                  "Aspale ngelupas, jalan rusak parah nang Kedungrandu."))
        _forwarded_within(desk_env, 1)
    finally:
        daemon.stop()
        daemon.kill()
    assert daemon.proc.returncode == 0


def test_a_failing_reconnect_is_the_channels_health(desk_env, tmp_path):
    """The server goes away while IDLE waits: the reconnect fails, and `status` shows it."""
    own = Dovecot(tmp_path / "dovecot")
    own.start()
    try:
        user = own.new_user("desk")
        own.append(user, make_mail("Tes", "pesan pertama"))  # the mailbox exists
        _slow_polls(desk_env, host=own.host, port=own.port, username=user)
        daemon = _Daemon(desk_env)
        try:
            daemon.wait_for("idle.watching")
            _wait(lambda: _polls_done(desk_env))
            own.stop()
            daemon.wait_for("idle.retry")

            def failed() -> bool:
                with desk_env.db() as conn:
                    row = conn.execute("SELECT state, last_error FROM channel_health"
                                       " WHERE channel = 'email'").fetchone()
                return row is not None and row[0] == "error" and "IMAP" in row[1]

            _wait(failed)
            status = desk_env.cli_json("status")
            assert status["channels"]["email"]["state"] == "error"
            assert any(x.startswith("channel email is error: IMAP") for x in status["problems"])
            assert daemon.stop() < 10
        finally:
            daemon.kill()
        assert daemon.proc.returncode == 0
    finally:
        own.stop()


def _pymap_append(server: EmbeddedImap, raw: bytes) -> None:
    imap = imaplib.IMAP4(server.host, server.port, timeout=10)
    try:
        imap.login(server.user, server.password)
        typ, data = imap.append("INBOX", None, None, raw)
        assert typ == "OK", data
    finally:
        imap.logout()


def test_a_server_without_idle_is_polled(desk_env):
    """pymap with `disable_idle`: IDLE is neither in CAPABILITY nor accepted as a command."""
    with EmbeddedImap("aduan@lapak.test", "rahasia", idle=False) as server:
        desk_env.write_config(**{"channels.email": {
            "host": server.host, "port": server.port, "username": server.user,
            "password": server.password, "poll_seconds": 2}})
        desk = Desk.open(str(desk_env.config))
        try:
            assert desk.adapter("email").watch() is None
        finally:
            desk.close()
        box = MailBoxUnencrypted(server.host, server.port).login(server.user, server.password)
        with box, pytest.raises(MailboxTaggedResponseError, match="IDLE is disabled"):
            box.idle.start()  # not only left out of CAPABILITY: refused
        daemon = _Daemon(desk_env)
        try:
            daemon.wait_for("idle.unavailable")
            _wait(lambda: _polls_done(desk_env))
            _pymap_append(server, make_mail("TPS penuh",
                                            "TPS Grendeng penuh, sampahe nganti dalan."))
            _forwarded_within(desk_env, 1)
        finally:
            daemon.stop()
            daemon.kill()
        assert daemon.proc.returncode == 0
        assert daemon.count("idle.watching") == 0


def test_pymap_with_idle_is_watched(desk_env):
    """The same server with IDLE left on: the adapter holds it (the check above can fail)."""
    with EmbeddedImap("aduan@lapak.test", "rahasia") as server:
        desk_env.write_config(**{"channels.email": {
            "host": server.host, "port": server.port, "username": server.user,
            "password": server.password}})
        desk = Desk.open(str(desk_env.config))
        try:
            watch = desk.adapter("email").watch()
            assert watch is not None
            watch.close()
        finally:
            desk.close()


@pytest.mark.parametrize("security", ["none", "ssl"])
def test_the_watcher_renews_idle_and_still_hears_news(desk_env, security):
    """Re-issued IDLE (here every half second instead of 25 minutes) keeps hearing new mail,
    in clear and over TLS (where a TLS record without data may wake the wait)."""
    if security == "ssl":
        dc = desk_env.dovecot
        desk_env.write_config(**{"channels.email": {
            "security": "ssl", "port": dc.ssl_port, "ca_file": dc.cafile}})
    desk = Desk.open(str(desk_env.config))
    news = threading.Event()
    watcher = IdleWatcher(desk, "email", on_news=news.set, renew_seconds=0.5).start()
    try:
        assert news.wait(15)  # the wake after connecting, for what came meanwhile
        news.clear()
        _wait(lambda: watcher.renewals >= 3, timeout=15)
        assert watcher.connects == 1 and watcher.news == 0
        desk_env.append(make_mail("Puskesmas", "Antrian di Puskesmas Sokaraja lama sekali."))
        assert news.wait(15)
        assert watcher.news >= 1 and watcher.connects == 1
    finally:
        desk.stopping.set()
        assert watcher.join(10)
        desk.close()


def test_sigterm_while_idle_waits_exits_zero_quickly_and_the_watchdog_went_on(desk_env, tmp_path):
    from test_notify import _Listener

    _slow_polls(desk_env)
    listener = _Listener(str(tmp_path / "notify.sock"))
    daemon = _Daemon(desk_env, env={"NOTIFY_SOCKET": str(tmp_path / "notify.sock"),
                                    "WATCHDOG_USEC": "2000000"})
    try:
        daemon.wait_for("idle.watching")
        _wait(lambda: _polls_done(desk_env))
        ready = listener.wait_for("READY=1")
        first = listener.wait_for("WATCHDOG=1", after=ready + 1)
        third = listener.wait_for("WATCHDOG=1",
                                  after=listener.wait_for("WATCHDOG=1", after=first + 1) + 1)
        assert listener.messages[third][0] - listener.messages[first][0] < 6
        took = daemon.stop()
        listener.wait_for("STOPPING=1", after=third)
    finally:
        daemon.kill()
        listener.close()
    assert daemon.proc.returncode == 0
    assert took < 10, took
    # Nobody was left behind: the poll worker and the IDLE thread both ended.
    assert daemon.count("daemon.abandoned") == 0, "".join(daemon.lines)[-2000:]
    assert daemon.count("daemon.stopped") == 1


def test_a_reload_reconnects_idle_with_the_new_settings(desk_env):
    """SIGHUP: the adapters are made again, and the IDLE connection follows them."""
    _slow_polls(desk_env)
    daemon = _Daemon(desk_env)
    try:
        daemon.wait_for("idle.watching")
        _wait(lambda: _polls_done(desk_env))
        desk_env.write_config(**{"channels.email": {"poll_seconds": 600}})
        daemon.proc.send_signal(signal.SIGHUP)
        daemon.wait_for("config.reloaded")
        daemon.wait_for("idle.reconnect")
        daemon.wait_for("idle.watching", times=2)
        time.sleep(1)
        desk_env.append(make_mail("Sampah", "Sampah di TPS Karangklesem belum diangkut."))
        _forwarded_within(desk_env, 1)
        # idle = false on the next reload: the watcher lets go, the polls stay.
        desk_env.write_config(**{"channels.email": {"idle": False}})
        daemon.proc.send_signal(signal.SIGHUP)
        daemon.wait_for("idle.unavailable")
    finally:
        daemon.stop()
        daemon.kill()
    assert daemon.proc.returncode == 0
