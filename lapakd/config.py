"""Load and validate `lapakd.toml`.

Every key is declared here (or, for a channel, in its adapter's `CONFIG`), so an unknown key or a
wrong type is reported as one line naming the key and the file. Secrets may be given inline, as
`<key>_file` (path, relative to the config file) or `<key>_env` (an environment variable).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from lapakd.errors import ConfigError

CONFIG_ENV = "LAPAKD_CONFIG"


@dataclass(frozen=True)
class Field:
    """One config key: its type, default and constraints."""

    type: type | tuple[type, ...]
    default: Any = None
    choices: tuple[str, ...] = ()
    secret: bool = False  # may come from <key>_file / <key>_env; never logged
    path: bool = False  # resolved relative to the config file
    required: bool = False


def _security() -> Field:
    return Field(str, "none", choices=("none", "starttls", "ssl"))


SECTIONS: dict[str, dict[str, Field]] = {
    "desk": {
        "name": Field(str, "Lapak Aduan Banyumas"),
        "email": Field(str, required=True),
        "admin_email": Field(str, required=True),
        "public_url": Field(str, "http://localhost:8000"),
        "ticket_prefix": Field(str, "LA"),
        "timezone": Field(str, "Asia/Jakarta"),
        "group_window_minutes": Field(int, 30),
        "relay_answers": Field(bool, True),
        "sla_calendar": Field(str, "working", choices=("working", "calendar")),
        "extra_holidays": Field(list, []),
        "reminder_time": Field(str, "08:00"),
        "escalate_after_days": Field(int, 3),
        "leadership_email": Field(str, ""),
        "digest_day": Field(
            str,
            "monday",
            choices=(
                "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
            ),
        ),
    },
    "paths": {
        "data_dir": Field(str, "var", path=True),
        "rules_dir": Field(str, "rules", path=True),
        "public_dir": Field(str, "var/public", path=True),
    },
    "smtp": {
        "host": Field(str, "127.0.0.1"),
        "port": Field(int, 25),
        "security": _security(),
        "username": Field(str, ""),
        "password": Field(str, "", secret=True),
        "timeout_seconds": Field(int, 30),
        "max_attachments_bytes": Field(int, 10 * 1024 * 1024),
        "ca_file": Field(str, "", path=True),  # extra CA to trust (self-signed relay)
    },
    "public": {
        "export_minutes": Field(int, 10),
        "publish_photos": Field(bool, False),
    },
    "webhook": {
        "listen": Field(str, "127.0.0.1:8787"),
        "max_body_bytes": Field(int, 1024 * 1024),
    },
}


class Section:
    """Attribute access to one validated section (`cfg.smtp.host`)."""

    def __init__(self, name: str, values: dict[str, Any]) -> None:
        self._name = name
        self._values = values

    def __getattr__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(f"[{self._name}] has no key {key!r}") from None

    def get(self, key: str, default: Any = None) -> Any:
        return self._values.get(key, default)

    def as_dict(self) -> dict[str, Any]:
        return dict(self._values)

    def __repr__(self) -> str:  # secrets never appear in reprs or logs
        return f"<Section [{self._name}]>"


@dataclass
class Config:
    path: Path
    desk: Section
    paths: Section
    smtp: Section
    public: Section
    webhook: Section
    channels: dict[str, Section] = field(default_factory=dict)

    @property
    def data_dir(self) -> Path:
        return Path(self.paths.data_dir)

    @property
    def rules_dir(self) -> Path:
        return Path(self.paths.rules_dir)

    @property
    def public_dir(self) -> Path:
        return Path(self.paths.public_dir)

    @property
    def db_path(self) -> Path:
        return self.data_dir / "lapakd.sqlite3"

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.desk.timezone)

    def enabled_channels(self) -> dict[str, Section]:
        return {name: sec for name, sec in self.channels.items() if sec.enabled}


def find_config(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    return Path("lapakd.toml")


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    cfg_path = find_config(str(path) if path else None)
    if not cfg_path.is_file():
        raise ConfigError(
            f"{cfg_path}: config file not found (give --config PATH or set ${CONFIG_ENV})"
        )
    try:
        raw = tomllib.loads(cfg_path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{cfg_path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{cfg_path}: not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{cfg_path}: cannot read: {exc.strerror}") from None
    return parse_config(raw, cfg_path.resolve())


def parse_config(raw: dict[str, Any], cfg_path: Path) -> Config:
    from lapakd.adapters import channel_config_schema, known_channels

    base = cfg_path.parent
    for name in raw:
        if name not in SECTIONS and name != "channels":
            raise ConfigError(
                f"{cfg_path}: unknown section [{name}] "
                f"(known: {', '.join([*SECTIONS, 'channels.<name>'])})"
            )
    sections = {
        name: Section(name, validate_section(name, raw.get(name, {}), spec, cfg_path, base))
        for name, spec in SECTIONS.items()
    }
    channels: dict[str, Section] = {}
    raw_channels = raw.get("channels", {})
    if not isinstance(raw_channels, dict):
        raise ConfigError(f"{cfg_path}: [channels] must be a table of [channels.<name>] sections")
    for name, values in raw_channels.items():
        if name not in known_channels():
            raise ConfigError(
                f"{cfg_path}: unknown channel [channels.{name}] "
                f"(known: {', '.join(known_channels())})"
            )
        if not isinstance(values, dict):
            raise ConfigError(f"{cfg_path}: [channels.{name}] must be a table")
        spec = {"enabled": Field(bool, False), **channel_config_schema(name)}
        channels[name] = Section(
            f"channels.{name}", validate_section(f"channels.{name}", values, spec, cfg_path, base)
        )
    whatsapp = channels.get("whatsapp")
    if whatsapp is not None and whatsapp.silence_alert_hours <= 0:
        raise ConfigError(
            f"{cfg_path}: channels.whatsapp.silence_alert_hours must be > 0 (hours without a "
            f"webhook before `lapakd status` says so), got {whatsapp.silence_alert_hours}"
        )
    try:
        ZoneInfo(sections["desk"].timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"{cfg_path}: desk.timezone {sections['desk'].timezone!r} is not a known time zone "
            "(e.g. \"Asia/Jakarta\")"
        ) from None
    return Config(path=cfg_path, channels=channels, **sections)


def _type_name(t: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", bool: "true or false", list: "a list"}
    if isinstance(t, tuple):
        return " or ".join(names.get(x, x.__name__) for x in t)
    return names.get(t, t.__name__)


def validate_section(
    section: str, values: Any, spec: dict[str, Field], cfg_path: Path, base: Path
) -> dict[str, Any]:
    if not isinstance(values, dict):
        raise ConfigError(f"{cfg_path}: [{section}] must be a table")
    secret_sources = {
        f"{key}{suffix}": key
        for key, f in spec.items()
        if f.secret
        for suffix in ("_file", "_env")
    }
    out: dict[str, Any] = {}
    for key, value in values.items():
        full = f"{section}.{key}"
        if key in secret_sources:
            if not isinstance(value, str):
                raise ConfigError(f"{cfg_path}: {full} must be a string")
            continue
        if key not in spec:
            raise ConfigError(
                f"{cfg_path}: unknown key {full} (known: {', '.join(spec)})"
            )
        f = spec[key]
        # bool is a subclass of int: `port = true` must not pass as an integer.
        bad_bool = isinstance(value, bool) and f.type is int
        if bad_bool or not isinstance(value, f.type):
            raise ConfigError(
                f"{cfg_path}: {full} must be {_type_name(f.type)}, got {value!r}"
                if not f.secret
                else f"{cfg_path}: {full} must be {_type_name(f.type)}"
            )
        if f.choices and value not in f.choices:
            raise ConfigError(
                f"{cfg_path}: {full} = {value!r} is not one of {', '.join(f.choices)}"
            )
        out[key] = value
    for key, f in spec.items():
        if f.secret:
            out[key] = _resolve_secret(section, key, values, cfg_path, base, f.default)
        elif key not in out:
            if f.required:
                raise ConfigError(f"{cfg_path}: {section}.{key} is required")
            out[key] = list(f.default) if isinstance(f.default, list) else f.default
        if f.path and isinstance(out[key], str) and out[key]:
            # Resolve all but the last component: public_dir is a symlink swapped per export.
            full = base / out[key]
            out[key] = str(full.parent.resolve() / full.name)
    return out


def _resolve_secret(
    section: str, key: str, values: dict[str, Any], cfg_path: Path, base: Path, default: Any
) -> Any:
    given = [k for k in (key, f"{key}_file", f"{key}_env") if k in values and values[k] != ""]
    if len(given) > 1:
        raise ConfigError(
            f"{cfg_path}: {section}: give only one of {', '.join(given)}"
        )
    if f"{key}_file" in given:
        secret_path = base / values[f"{key}_file"]
        try:
            lines = secret_path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigError(
                f"{cfg_path}: {section}.{key}_file: cannot read {secret_path}: {exc.strerror}"
            ) from None
        except UnicodeDecodeError:
            raise ConfigError(
                f"{cfg_path}: {section}.{key}_file: {secret_path} is not UTF-8 text"
            ) from None
        return lines[0].strip() if lines else ""  # the first line, as documented
    if f"{key}_env" in given:
        var = values[f"{key}_env"]
        if var not in os.environ:
            raise ConfigError(
                f"{cfg_path}: {section}.{key}_env: environment variable {var} is not set"
            )
        return os.environ[var]
    return values.get(key, default)
