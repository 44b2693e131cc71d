"""systemd's notify protocol, heard the way systemd hears it: `lapakd run` with a NOTIFY_SOCKET
the test binds (a real datagram socket), and the shipped unit checked by systemd-analyze."""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lapakd.notify import Notifier

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "lapakd.service"


class _Listener:
    """A datagram socket standing in for systemd's notify socket; collects what arrives."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.messages: list[tuple[float, list[str]]] = []

    def wait_for(self, line: str, timeout: float = 30, after: int = 0) -> int:
        """Until a datagram (from the after-th on) holds `line` (or a line starting with it
        when it ends in '='); returns its index."""
        deadline = time.monotonic() + timeout
        while True:
            for i, (_, lines) in enumerate(self.messages[after:], after):
                if any(x == line or (line.endswith("=") and x.startswith(line)) for x in lines):
                    return i
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {line} in time; got {self.messages}")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.messages.append((time.monotonic(), data.decode().split("\n")))

    def close(self) -> None:
        self.sock.close()


def test_notifier_speaks_to_an_abstract_socket():
    name = f"lapakd-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        env = {"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "2000000"}
        notifier = Notifier(env)
        assert env == {}  # taken out, so children do not inherit them
        assert notifier.watchdog_seconds == 1.0
        assert notifier.ready("0/1 channels ok")
        assert sock.recv(4096) == b"READY=1\nSTATUS=0/1 channels ok"
        assert notifier.watchdog()
        assert sock.recv(4096) == b"WATCHDOG=1"
        assert not notifier.watchdog()  # not yet: half the timeout has not passed
        assert not notifier.watchdog(healthy=False)


def test_without_notify_socket_nothing_is_sent():
    notifier = Notifier({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"})
    assert notifier.watchdog_seconds is None  # the watchdog is another process's
    assert not notifier.ready() and not notifier.watchdog()


PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1


def _deny_write_execute() -> None:
    """In the child before exec: the kernel's memory-deny-write-execute (Linux 6.3+), what the
    unit's MemoryDenyWriteExecute=yes enforces; kept across exec and by the children."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_MDWE)")


def _mdwe_works() -> bool:
    """Whether this kernel refuses a writable+executable mapping to a child so started."""
    try:
        probe = subprocess.run(
            [sys.executable, "-c", "import mmap; mmap.mmap(-1, 4096, prot=7)"],
            preexec_fn=_deny_write_execute, capture_output=True, text=True,
        )
    except subprocess.SubprocessError:
        return False
    return probe.returncode != 0 and "PermissionError" in probe.stderr


def test_daemon_notifies_ready_status_watchdog_reload_and_stopping(desk_env, tmp_path):
    """Under the kernel's memory-deny-write-execute where it has it (the unit's setting)."""
    listener = _Listener(str(tmp_path / "notify.sock"))
    env = dict(os.environ, NOTIFY_SOCKET=str(tmp_path / "notify.sock"), WATCHDOG_USEC="2000000")
    proc = subprocess.Popen(
        [sys.executable, "-m", "lapakd.cli", "run", "--config", str(desk_env.config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=desk_env.root, env=env,
        preexec_fn=_deny_write_execute if _mdwe_works() else None,
    )
    try:
        ready = listener.wait_for("READY=1")
        lines = listener.messages[ready][1]
        status = next(x for x in lines if x.startswith("STATUS="))
        assert "channels ok" in status and "pending" in status, status
        # Pings every WATCHDOG_USEC/2 = 1 s while the main loop runs.
        first = listener.wait_for("WATCHDOG=1", after=ready)
        second = listener.wait_for("WATCHDOG=1", after=first + 1)
        third = listener.wait_for("WATCHDOG=1", after=second + 1)
        gap = listener.messages[third][0] - listener.messages[first][0]
        assert 1.5 < gap < 6, gap
        proc.send_signal(signal.SIGHUP)
        reloading = listener.wait_for("RELOADING=1", after=third + 1)
        again = listener.wait_for("READY=1", after=reloading)
        assert any(x.startswith("STATUS=") for x in listener.messages[again][1])
        listener.wait_for("WATCHDOG=1", after=again)  # still alive after the reload
        proc.send_signal(signal.SIGTERM)
        listener.wait_for("STOPPING=1", after=again)
        _, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 0, stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        listener.close()


def test_daemon_without_notify_socket_runs_as_before(desk_env):
    """Type=simple or a terminal: no NOTIFY_SOCKET, nothing to say, nothing fails."""
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "lapakd.cli", "run", "--config", str(desk_env.config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=desk_env.root, env=env,
    )
    deadline = time.monotonic() + 30
    while not _polled(desk_env) and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert "notify.failed" not in stderr


def _polled(desk_env) -> bool:
    try:
        return desk_env.count("SELECT count(*) FROM channel_health") > 0
    except Exception:  # noqa: BLE001 - the database may not exist yet
        return False


# -- the unit -------------------------------------------------------------------------------

ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze not installed")


def _unit_for_venv(tmp_path: Path) -> Path:
    """The shipped unit with ExecStart pointed at this venv's lapakd."""
    lapakd = Path(sys.executable).with_name("lapakd")
    assert lapakd.exists(), lapakd
    text = UNIT.read_text(encoding="utf-8").replace("/opt/lapakd/venv/bin/lapakd", str(lapakd))
    unit = tmp_path / "lapakd.service"
    unit.write_text(text, encoding="utf-8")
    return unit


@needs_analyze
def test_unit_verifies(tmp_path):
    unit = _unit_for_venv(tmp_path)
    result = subprocess.run([ANALYZE, "verify", str(unit)], capture_output=True, text=True,
                            timeout=60)
    # verify complains about the environment (no such user lapakd, no systemd as PID 1...);
    # what concerns the unit itself names the file.
    unit_lines = [line for line in (result.stdout + result.stderr).splitlines()
                  if "lapakd.service" in line and "User" not in line]
    assert unit_lines == [], result.stdout + result.stderr
    assert result.returncode == 0, result.stdout + result.stderr


@needs_analyze
def test_unit_exposure_is_at_most_2(tmp_path):
    unit = _unit_for_venv(tmp_path)
    result = subprocess.run(
        [ANALYZE, "security", "--offline=true", str(unit)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert "Overall exposure level" in last, result.stdout
    score = float(last.split("lapakd.service:")[-1].split()[0])
    assert score <= 2.0, result.stdout


def test_unit_keeps_what_the_daemon_needs():
    text = UNIT.read_text(encoding="utf-8")
    for setting in ("Type=notify", "WatchdogSec=60", "NotifyAccess=main", "Restart=on-failure",
                    "RestartPreventExitStatus=2", "StateDirectory=lapakd",
                    "StateDirectoryMode=0700", "ConfigurationDirectory=lapakd", "UMask=0077"):
        assert f"\n{setting}\n" in text, setting


def test_a_hung_poll_is_seen_by_the_watchdog_check(desk_env):
    """A poll that waits on a server which accepted the connection and never says a word is
    `stuck()` once it has made no progress for the limit: the main loop then stops the
    watchdog pings (daemon.run_forever's beat) and systemd restarts the daemon."""
    from lapakd.app import Desk
    from lapakd.daemon import PollWorker

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        desk_env.write_config(**{"channels.email": {
            "host": "127.0.0.1", "port": server.getsockname()[1], "timeout_seconds": 60}})
        desk = Desk.open(str(desk_env.config))
        try:
            worker = PollWorker(desk, "email").start()
            conn, _ = server.accept()  # the worker is connected and waits for the greeting
            with conn:
                time.sleep(0.5)
                assert worker.stuck(limit=0.3)
                assert not worker.stuck(limit=60)
                desk.stopping.set()
            # The server hung up: the poll fails, the worker ends, and is no longer stuck.
            assert worker.join(timeout=10)
            assert not worker.stuck(limit=0.0)
        finally:
            desk.stopping.set()
            desk.close()
