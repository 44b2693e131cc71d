"""The daemon as systemd runs it: signals, rule reloads, one runner per data_dir, JSON logs."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from deskenv import TEST_RULES, make_mail


def _start(desk_env) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "lapakd.cli", "run", "--config", str(desk_env.config)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=desk_env.root,
    )


def _wait(predicate, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("condition not reached in time")


def test_sigterm_finishes_and_exits_zero_with_json_logs(desk_env):
    desk_env.append(make_mail("Sampah", "sampah menumpuk di TPS"))
    proc = _start(desk_env)
    try:
        desk_env.sink.wait_for(1, timeout=30)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    events = [json.loads(line)["event"] for line in stderr.splitlines() if line.startswith("{")]
    assert events[0] == "daemon.started" and events[-1] == "daemon.stopped"
    assert "daemon.stopping" in events
    assert desk_env.count("SELECT count(*) FROM outbox WHERE status = 'sent'") == 1


def test_one_runner_per_data_dir(desk_env):
    proc = _start(desk_env)
    try:
        _wait_started(desk_env)
        second = desk_env.cli("run", "--once", check=False)
        assert second.returncode == 2
        assert "another lapakd runner" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)


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
    proc = _start(desk_env)
    try:
        _wait_started(desk_env)
        # A new rule: "banjir" now goes to dpupr.
        routing = rules / "10-routing.yaml"
        routing.write_text(routing.read_text(encoding="utf-8").replace(
            "  - name: sampah\n",
            "  - name: banjir\n    when:\n      any: [banjir]\n    forward: dpupr\n"
            "  - name: sampah\n"), encoding="utf-8")
        time.sleep(7)  # rules are checked every 5 s
        desk_env.append(make_mail("Banjir", "banjir di perumahan"))
        _wait(lambda: len(desk_env.sink.messages) >= 1)
        assert desk_env.sink.messages[0].rcpt_tos[0] == "dpupr@banyumas.example"

        # A broken edit: logged, and the last good rules stay in force.
        (rules / "20-broken.yaml").write_text("rules:\n  - name: x\n    forward: nope\n",
                                              encoding="utf-8")
        time.sleep(7)
        desk_env.append(make_mail("Banjir lagi", "banjir lagi di perumahan"))
        _wait(lambda: len(desk_env.sink.messages) >= 2)
        assert desk_env.sink.messages[1].rcpt_tos[0] == "dpupr@banyumas.example"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0
    logged = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert any(e["event"] == "rules.reloaded" for e in logged), [e["event"] for e in logged]
    failed = [e for e in logged if e["event"] == "rules.reload_failed"]
    assert len(failed) == 1  # once per broken edit, not every 5 s
    assert any("20-broken.yaml:3" in p and "nope" in p for p in failed[0]["problems"])
