"""The daemon as systemd runs it: signals, rule reloads, one runner per data_dir, JSON logs."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from deskenv import TEST_RULES, make_mail


class _Daemon:
    """`lapakd run` in a child process. Its JSON log lines (stderr) are read as they come, so a
    test waits for the event it needs instead of sleeping for as long as it might take."""

    def __init__(self, desk_env) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lapakd.cli", "run", "--config", str(desk_env.config)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=desk_env.root,
        )
        self._lines: list[str] = []
        self._ended = False
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._changed:
                self._lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def _count(self, event: str) -> int:
        return sum(1 for e in _events("".join(self._lines)) if e["event"] == event)

    def wait_for_event(self, event: str, timeout: float = 30) -> None:
        """Until the daemon has logged `event` (at least once)."""
        with self._changed:
            seen = self._changed.wait_for(
                lambda: self._ended or self._count(event) > 0, timeout=timeout)
            if not seen or self._count(event) == 0:
                raise AssertionError(f"no {event} logged in time: {''.join(self._lines)[-2000:]}")

    def stop(self, timeout: float = 30) -> str:
        """SIGTERM, wait for the exit; all it wrote to stderr."""
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=timeout)
        self._reader.join(timeout=timeout)
        with self._changed:
            return "".join(self._lines)


def _events(stderr: str) -> list[dict]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def _wait(predicate, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("condition not reached in time")


def test_sigterm_finishes_and_exits_zero_with_json_logs(desk_env):
    desk_env.append(make_mail("Sampah", "sampah menumpuk di TPS"))
    daemon = _Daemon(desk_env)
    try:
        desk_env.sink.wait_for(1, timeout=30)
    finally:
        stderr = daemon.stop()
    assert daemon.proc.returncode == 0, stderr
    events = [e["event"] for e in _events(stderr)]
    assert events[0] == "daemon.started" and events[-1] == "daemon.stopped"
    assert "daemon.stopping" in events
    assert desk_env.count("SELECT count(*) FROM outbox WHERE status = 'sent'") == 1


def test_one_runner_per_data_dir(desk_env):
    daemon = _Daemon(desk_env)
    try:
        _wait_started(desk_env)
        second = desk_env.cli("run", "--once", check=False)
        assert second.returncode == 2
        assert "another lapakd runner" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        daemon.stop()


def _wait_started(desk_env) -> None:
    """The daemon has loaded its rules once it has polled (first job after start)."""

    def polled() -> bool:
        try:
            return desk_env.count("SELECT count(*) FROM channel_health") > 0
        except Exception:  # noqa: BLE001 - the database may not exist yet
            return False

    _wait(polled)


def _copy_rules(dest: Path) -> Path:
    dest.mkdir()
    for f in TEST_RULES.iterdir():
        (dest / f.name).write_text(f.read_text(encoding="utf-8"), encoding="utf-8")
    return dest


def test_running_daemon_reloads_rules_and_keeps_last_good_on_a_broken_edit(desk_env, tmp_path):
    rules = _copy_rules(tmp_path / "rules")
    desk_env.write_config(paths={"rules_dir": str(rules)})
    daemon = _Daemon(desk_env)
    try:
        _wait_started(desk_env)
        # A new rule: "banjir" now goes to dpupr.
        routing = rules / "10-routing.yaml"
        routing.write_text(routing.read_text(encoding="utf-8").replace(
            "  - name: sampah\n",
            "  - name: banjir\n    when:\n      any: [banjir]\n    forward: dpupr\n"
            "  - name: sampah\n"), encoding="utf-8")
        daemon.wait_for_event("rules.reloaded")  # rules are checked every 5 s
        desk_env.append(make_mail("Banjir", "banjir di perumahan"))
        _wait(lambda: len(desk_env.sink.messages) >= 1)
        assert desk_env.sink.messages[0].rcpt_tos[0] == "dpupr@banyumas.example"

        # A broken edit: logged, and the last good rules stay in force.
        (rules / "20-broken.yaml").write_text("rules:\n  - name: x\n    forward: nope\n",
                                              encoding="utf-8")
        daemon.wait_for_event("rules.reload_failed")
        desk_env.append(make_mail("Banjir lagi", "banjir lagi di perumahan"))
        _wait(lambda: len(desk_env.sink.messages) >= 2)
        assert desk_env.sink.messages[1].rcpt_tos[0] == "dpupr@banyumas.example"
    finally:
        stderr = daemon.stop()
    assert daemon.proc.returncode == 0
    logged = _events(stderr)
    assert any(e["event"] == "rules.reloaded" for e in logged), [e["event"] for e in logged]
    failed = [e for e in logged if e["event"] == "rules.reload_failed"]
    assert len(failed) == 1  # once per broken edit, not every 5 s
    assert any("20-broken.yaml:3" in p and "nope" in p for p in failed[0]["problems"])


def test_sighup_reloads_lapakd_toml_live_and_names_what_needs_a_restart(desk_env):
    daemon = _Daemon(desk_env)
    daemon.wait_for_event("daemon.started")
    desk_env.write_config(public={"export_minutes": 7}, desk={"name": "Lapak Aduan Baru"},
                          paths={"data_dir": "var2"})
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_for_event("config.reloaded")
    # A broken edit: one error line, the running config stays.
    desk_env.config.write_text(
        desk_env.config.read_text(encoding="utf-8").replace("export_minutes = 7",
                                                            "export_minutes = 99999"),
        encoding="utf-8")
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_for_event("config.reload_failed")
    assert daemon.proc.poll() is None  # still running
    events = _events(daemon.stop())
    assert daemon.proc.returncode == 0
    reloaded = [e for e in events if e["event"] == "config.reloaded"]
    assert len(reloaded) == 1
    assert reloaded[0]["changed"] == ["desk.name", "public.export_minutes"]
    (restart,) = [e for e in events if e["event"] == "config.restart_needed"]
    assert restart["level"] == "warning" and restart["keys"] == ["paths.data_dir"]
    (failed,) = [e for e in events if e["event"] == "config.reload_failed"]
    assert failed["level"] == "error" and "public.export_minutes" in failed["error"]
    assert "\n" not in failed["error"]
    assert not (desk_env.root / "var2").exists()  # the store stays where it was opened
