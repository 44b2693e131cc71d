"""The demo's folder and its lapakd.toml."""

from __future__ import annotations

import importlib.resources
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lapakd
from lapakd.config import dump_toml
from lapakd.demo.desk import ADMIN_EMAIL, DESK_EMAIL, MARKER, OUTBOX_MAIL, DemoError
from lapakd.embedded.smtp_sink import SmtpSink

if TYPE_CHECKING:
    from lapakd.demo.channels import DemoChannel


def prepare_dir(workdir: Path) -> Path:
    """Make `workdir` ready for a fresh demo; clean only what an earlier demo left there."""
    workdir = workdir.resolve()
    if workdir.exists() and not workdir.is_dir():
        raise DemoError(f"{workdir} exists and is not a folder; choose another --dir")
    if workdir.is_dir() and any(workdir.iterdir()) and not (workdir / MARKER).is_file():
        raise DemoError(
            f"{workdir} is not empty and was not made by lapakd demo; choose another --dir"
        )
    for name in ("var", OUTBOX_MAIL):
        # Only these; anything else the user put into the folder stays.
        target = workdir / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / MARKER).write_text(
        "Made by `lapakd demo`, which empties var/ and outbox-mail/ and rewrites lapakd.toml\n"
        "here on every run.\n"
        "You may delete this whole folder.\n",
        encoding="utf-8",
    )
    return workdir


def find_rules_dir(workdir: Path) -> Path:
    """The project's default rules: rules/ of the checkout, else the installed package."""
    checkout = Path(lapakd.__file__).resolve().parent.parent / "rules"
    if (checkout / "agencies.yaml").is_file():
        return checkout
    try:
        packaged = importlib.resources.files("lapakd.default_rules")
    except ModuleNotFoundError:
        packaged = None
    if packaged is not None and packaged.joinpath("agencies.yaml").is_file():
        if isinstance(packaged, Path):
            return packaged
        copy = workdir / "var" / "default-rules"  # inside a zip: lapakd reads a real folder
        copy.mkdir(parents=True)
        for item in packaged.iterdir():
            if item.name.endswith((".yaml", ".yml")):
                (copy / item.name).write_bytes(item.read_bytes())
        return copy
    raise DemoError(
        f"no default rules found: neither {checkout}/agencies.yaml nor the package "
        "lapakd.default_rules exists (run the demo from a lapakd checkout)"
    )


# Comments written above a key of the demo's lapakd.toml.
CONFIG_NOTES = {
    "desk.group_window_minutes": (
        "Chat messages (Messenger, WhatsApp, X DMs) are collected for 30 minutes by default",
        "before the chat is routed, in case the citizen writes more. The demo does not wait",
        "30 minutes: it routes each chat as soon as its messages are in.",
    ),
}


def write_config(
    workdir: Path, rules_dir: Path, sink: SmtpSink, channels: list[DemoChannel]
) -> Path:
    sections: dict[str, dict[str, Any]] = {
        "desk": {
            "name": "Lapak Aduan Banyumas (demo)",
            "email": DESK_EMAIL,
            "admin_email": ADMIN_EMAIL,
            "public_url": "http://localhost:8000",
            "timezone": "Asia/Jakarta",
            "group_window_minutes": 0,
        },
        "paths": {"data_dir": "var", "rules_dir": str(rules_dir), "public_dir": "var/public"},
        "smtp": {"host": sink.host, "port": sink.port, "security": "none"},
    }
    for channel in channels:
        sections[f"channels.{channel.name}"] = channel.settings
        sections.update(channel.sections)
    header = (
        "# Written by `lapakd demo` for servers that exist only while the demo runs\n"
        "# (lapakd demo --keep-running keeps them up). The full format: lapakd.toml in the\n"
        "# lapakd repository. Relative paths are relative to this file.\n\n"
    )
    path = workdir / "lapakd.toml"
    path.write_text(header + dump_toml(sections, CONFIG_NOTES), encoding="utf-8")
    return path
