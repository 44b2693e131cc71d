"""Logs under journald: each line starts with its syslog priority, so `journalctl -p err` works.

`lapakd` runs as a subprocess whose stderr is a pipe; `$JOURNAL_STREAM` names that pipe
("DEVICE:INODE", as systemd sets it for a unit's stderr connected to journald)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _lapakd(args: list[str], cwd: Path, journal: str | None) -> tuple[int, list[str]]:
    """Run `lapakd ARGS`; (exit code, its stderr lines). journal: "pipe" = $JOURNAL_STREAM
    names the stderr pipe, any other text is set as it is, None = not set."""
    read_fd, write_fd = os.pipe()
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    if journal == "pipe":
        st = os.fstat(write_fd)
        env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
    elif journal is not None:
        env["JOURNAL_STREAM"] = journal
    with os.fdopen(read_fd, "r", encoding="utf-8") as reader:
        proc = subprocess.Popen([sys.executable, "-m", "lapakd.cli", *args], cwd=cwd, env=env,
                                stdout=subprocess.DEVNULL, stderr=write_fd)
        os.close(write_fd)
        lines = reader.read().splitlines()
    return proc.wait(timeout=60), lines


def _desk(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    config = tmp_path / "lapakd.toml"
    config.write_text('[desk]\nemail = "aduan@banyumas.example"\n'
                      'admin_email = "admin@banyumas.example"\n', encoding="utf-8")
    return config


def test_under_journald_each_line_carries_its_priority(tmp_path: Path) -> None:
    config = _desk(tmp_path)
    code, lines = _lapakd(["export", "--config", str(config)], tmp_path, "pipe")
    assert code == 0, lines
    assert lines and all(line.startswith("<6>{") for line in lines), lines
    events = [json.loads(line[3:]) for line in lines]
    assert "public.exported" in [e["event"] for e in events]
    # An admin error (exit 2) is priority 3: `journalctl -u lapakd -p err` shows it.
    code, lines = _lapakd(["status", "--config", str(tmp_path / "missing.toml")], tmp_path, "pipe")
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("<3>lapakd: "), lines
    assert "config file not found" in lines[0]


def test_without_journald_no_prefix(tmp_path: Path) -> None:
    config = _desk(tmp_path)
    # Not set, and set but naming another stream (a child whose stderr was redirected).
    for journal in (None, "1:2"):
        code, lines = _lapakd(["export", "--config", str(config)], tmp_path, journal)
        assert code == 0, lines
        assert lines and all(line.startswith("{") for line in lines), lines
        code, lines = _lapakd(["status", "--config", str(tmp_path / "missing.toml")],
                              tmp_path, journal)
        assert code == 2 and lines[0].startswith("lapakd: "), lines


def test_every_level_maps_to_its_syslog_priority(tmp_path: Path) -> None:
    """Warning and debug too (the verbs above log info and error): the daemon's own setup."""
    script = ("import structlog, lapakd.log as l; l.setup('debug', json_lines=True); "
              "g = structlog.get_logger('t'); g.debug('d'); g.info('i'); g.warning('w'); "
              "g.error('e'); g.critical('c')")
    read_fd, write_fd = os.pipe()
    st = os.fstat(write_fd)
    env = {**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
    with os.fdopen(read_fd, "r", encoding="utf-8") as reader:
        proc = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=write_fd)
        os.close(write_fd)
        lines = reader.read().splitlines()
    assert proc.wait(timeout=60) == 0
    assert [(line[:3], json.loads(line[3:])["event"]) for line in lines] == [
        ("<7>", "d"), ("<6>", "i"), ("<4>", "w"), ("<3>", "e"), ("<3>", "c")]
