"""`lapakd run` under the real systemd, as a transient Type=notify unit (`systemd-run`): systemd
itself must see READY=1 (the start job only ends then), the STATUS= line, and a clean stop.
Skipped where PID 1 is not systemd (containers, this CI)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

SYSTEMD_RUNNING = Path("/run/systemd/system").is_dir()  # sd_booted()'s own test
SYSTEMD_RUN = shutil.which("systemd-run")

pytestmark = pytest.mark.skipif(
    not SYSTEMD_RUNNING or SYSTEMD_RUN is None,
    reason="PID 1 is not systemd (no /run/systemd/system) or systemd-run is missing: "
           "the notify protocol is tested with a NOTIFY_SOCKET listener in test_notify.py")


def _systemctl(user: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemctl", *user, *args], capture_output=True, text=True,
                          timeout=60)


def test_daemon_starts_as_a_notify_unit_and_stops_cleanly(desk_env):
    unit = f"lapakd-test-{uuid.uuid4().hex[:8]}.service"
    user = [] if os.geteuid() == 0 else ["--user"]
    start = subprocess.run(
        [SYSTEMD_RUN, *user, "--unit", unit, "--collect", "--property=Type=notify",
         "--property=NotifyAccess=main", "--property=WatchdogSec=60",
         "--property=TimeoutStartSec=60", f"--working-directory={desk_env.root}",
         sys.executable, "-m", "lapakd.cli", "run", "--config", str(desk_env.config)],
        capture_output=True, text=True, timeout=120)
    try:
        # With Type=notify systemd-run returns once the start job is done: after READY=1.
        assert start.returncode == 0, start.stderr
        shown = _systemctl(user, "show", unit, "-p", "ActiveState", "-p", "StatusText")
        assert "ActiveState=active" in shown.stdout, shown.stdout
        assert "channels ok" in shown.stdout, shown.stdout
        stop = _systemctl(user, "stop", unit)
        assert stop.returncode == 0, stop.stderr
    finally:
        _systemctl(user, "stop", unit)
