"""`Desk.reload_config` (SIGHUP): live settings take effect, also in worker desks and adapters;
data_dir, listen addresses and enabled channels keep their old value until a restart; a broken
file leaves the running config in force. The daemon's own SIGHUP: tests/test_daemon.py."""

from __future__ import annotations

from pathlib import Path

from lapakd.app import Desk
from lapakd.config import load_config

BASE = """\
[desk]
email = "aduan@banyumas.example"
admin_email = "admin@banyumas.example"
name = "{name}"
[paths]
data_dir = "{data_dir}"
[public]
export_minutes = {minutes}
[webhook]
listen = "{listen}"
[channels.email]
enabled = {enabled}
host = "imap.example"
username = "u"
password = "p"
poll_seconds = {poll}
"""


def _write(path: Path, name: str = "Lapak", data_dir: str = "var", minutes: int = 10,
           listen: str = "127.0.0.1:8787", enabled: str = "true", poll: int = 60) -> Path:
    path.write_text(BASE.format(name=name, data_dir=data_dir, minutes=minutes, listen=listen,
                                enabled=enabled, poll=poll), encoding="utf-8")
    return path


def test_reload_takes_live_settings_and_keeps_the_fixed_ones(tmp_path: Path) -> None:
    config = _write(tmp_path / "lapakd.toml")
    desk = Desk(load_config(config))
    worker = desk.worker()
    try:
        old_adapter = worker.adapter("email")
        assert old_adapter.poll_seconds == 60
        _write(config, name="Lapak Baru", data_dir="elsewhere", minutes=3,
               listen="127.0.0.1:9999", enabled="false", poll=5)
        changed = desk.reload_config()
        assert changed == ["channels.email.poll_seconds", "desk.name", "public.export_minutes"]
        for d in (desk, worker):
            assert d.config.public.export_minutes == 3
            assert d.config.desk.name == "Lapak Baru"
            assert d.config.data_dir == tmp_path / "var"
            assert d.config.webhook.listen == "127.0.0.1:8787"
            assert d.config.channels["email"].enabled is True
        assert worker.adapter("email").poll_seconds == 5  # the adapter is made again
        assert worker.adapter("email") is not old_adapter
    finally:
        worker.close()
        desk.close()


def test_reload_of_a_broken_file_keeps_the_running_config(tmp_path: Path) -> None:
    config = _write(tmp_path / "lapakd.toml", minutes=4)
    desk = Desk(load_config(config))
    try:
        before = desk.config
        config.write_text("[desk\n", encoding="utf-8")
        assert desk.reload_config() == []
        assert desk.config is before
        _write(config, minutes=99999)
        assert desk.reload_config() == []
        assert desk.config.public.export_minutes == 4
    finally:
        desk.close()
