"""Load and validate `lapakd.toml`.

Every key is declared here (or, for a channel, in its adapter's `CONFIG`), so an unknown key, a
wrong type or a value out of range is reported as one line naming the file, the line, the key,
the bad value and the fix. Each key's constraint is declared once, next to its default, as a
`check` (see `between`, `port`, `email_address`... below): a function that returns None for a good
value and otherwise what is wrong and how to fix it. Secrets may be given inline, as `<key>_file`
(path, relative to the config file; `%d/NAME` is systemd's credentials folder), `<key>_env` (an
environment variable) or `<key>_credential` (a systemd credential: `$CREDENTIALS_DIRECTORY/NAME`,
from `LoadCredential=` in the unit).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from lapakd import channels as registry
from lapakd.errors import ConfigError

CONFIG_ENV = "LAPAKD_CONFIG"
CREDENTIALS_ENV = "CREDENTIALS_DIRECTORY"  # set by systemd for a unit with LoadCredential=
SECRET_SOURCES = ("_file", "_env", "_credential")


@dataclass(frozen=True)
class Field:
    """One config key: its type, default and constraints."""

    type: type | tuple[type, ...]
    default: Any = None
    choices: tuple[str, ...] = ()
    secret: bool = False  # may come from <key>_file / _env / _credential; never logged
    path: bool = False  # resolved relative to the config file
    required: bool = False
    # (key, value): this key must be set (non-empty) when that key of the section has that
    # value, e.g. ("auth", "oauth2").
    needed_when: tuple[str, Any] | None = None
    # None for a good value, else "<what is wrong> (<the fix>)", read after "key = value".
    check: Check | None = None


Check = Callable[[Any], "str | None"]

# -- checks: one per kind of value; a key declares its own next to its default -----------------

DAY_SECONDS = 86400


def between(low: int, high: int, unit: str = "", why: str = "") -> Check:
    """An integer in [low, high]. `why` says what the bounds mean (e.g. "0 = never")."""

    def check(value: int) -> str | None:
        if low <= value <= high:
            return None
        units = f" {unit}" if unit else ""
        note = f"; {why}" if why else ""
        return f"is out of range (give {low} to {high}{units}{note})"

    return check


def fraction(low: float, high: float, why: str = "") -> Check:
    """A number (a probability) in [low, high]."""

    def check(value: float) -> str | None:
        if not isinstance(value, bool) and low <= value <= high:
            return None
        note = f"; {why}" if why else ""
        return f"is out of range (give a number from {low} to {high}{note})"

    return check


def seconds(low: int = 1, high: int = DAY_SECONDS) -> Check:
    return between(low, high, "seconds")


def size_bytes(low: int = 1, high: int = 1024 ** 3) -> Check:
    return between(low, high, "bytes")


def port(allow_zero: bool = False) -> Check:
    low = 0 if allow_zero else 1
    return between(low, 65535, why="a TCP port" + (", 0 = any free port" if allow_zero else ""))


_EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")


def email_address(optional: bool = False) -> Check:
    """A bare address (no display name): lapakd sends to it and puts it in From/To headers."""

    def check(value: str) -> str | None:
        if optional and value == "":
            return None
        if _EMAIL.fullmatch(value) and ".." not in value:
            return None
        empty = ' or "" for none' if optional else ""
        return f'is not an email address (write a bare address like "aduan@banyumas.go.id"{empty})'

    return check


def iso_dates(value: list[Any]) -> str | None:
    for item in value:
        try:
            if not isinstance(item, str) or len(item) != 10:
                raise ValueError
            date.fromisoformat(item)
        except ValueError:
            return (f"has {item!r}, which is not a real date (write each as a string "
                    'YYYY-MM-DD, e.g. "2026-03-20")')
    return None


def clock_time(value: str) -> str | None:
    if re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
        return None
    return 'is not a time of day (write HH:MM on a 24-hour clock, e.g. "08:00")'


def time_zone(value: str) -> str | None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return 'is not a known time zone (e.g. "Asia/Jakarta")'
    return None


def http_url(value: str) -> str | None:
    if re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value):
        return None
    return 'is not an http(s) URL (e.g. "https://lapakaduan.banyumaskab.go.id")'


def host_port(value: str) -> str | None:
    """`host:port` for a listening socket; IPv6 in brackets; port 0 = any free port."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        return 'is not host:port (e.g. "127.0.0.1:8787", "[::1]:8787")'
    if host.startswith("["):
        if not host.endswith("]"):
            return 'is not host:port (an IPv6 address goes in brackets: "[::1]:8787")'
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return "has no valid IPv6 address in its brackets"
        return None
    if not host or not re.fullmatch(r"[A-Za-z0-9.-]+", host):
        return 'is not host:port (e.g. "127.0.0.1:8787"; an IPv6 address goes in brackets)'
    return None


def optional_host_port(value: str) -> str | None:
    """`host:port`, or "" for off."""
    if value == "":
        return None
    problem = host_port(value)
    return problem and problem.replace("(e.g.", '(or "" for off; e.g.', 1)


def pattern(regex: str, example: str) -> Check:
    compiled = re.compile(regex)

    def check(value: str) -> str | None:
        return None if compiled.fullmatch(value) else f"is not valid (e.g. {example})"

    return check


def _security() -> Field:
    return Field(str, "none", choices=("none", "starttls", "ssl"))


def optional_http_url(value: str) -> str | None:
    return None if value == "" else http_url(value)


def mail_auth_fields() -> dict[str, Field]:
    """How a mail login authenticates, the same keys in `[smtp]` and `[channels.email]`:
    a password, or OAuth2 (XOAUTH2 with a refresh token; lapakd/mail/oauth2.py)."""
    oauth2 = ("auth", "oauth2")
    return {
        "auth": Field(str, "password", choices=("password", "oauth2")),
        "oauth2_token_url": Field(str, "", check=optional_http_url, needed_when=oauth2),
        "oauth2_client_id": Field(str, "", needed_when=oauth2),
        "oauth2_client_secret": Field(str, "", secret=True),
        # Empty: the one `lapakd oauth2-token` stored in data_dir/oauth2/.
        "oauth2_refresh_token": Field(str, "", secret=True),
        "oauth2_scope": Field(str, ""),  # empty: the provider's usual scope (or none)
        # For `lapakd oauth2-token`; empty: derived from a Google or Microsoft token URL.
        "oauth2_auth_url": Field(str, "", check=optional_http_url),
    }


SECTIONS: dict[str, dict[str, Field]] = {
    "desk": {
        "name": Field(str, "Lapak Aduan Banyumas"),
        "email": Field(str, required=True, check=email_address()),
        "admin_email": Field(str, required=True, check=email_address()),
        "public_url": Field(str, "http://localhost:8000", check=http_url),
        "ticket_prefix": Field(str, "LA", check=pattern(r"[A-Za-z0-9]{1,10}", '"LA"')),
        "timezone": Field(str, "Asia/Jakarta", check=time_zone),
        # 0 = every chat message is a complaint of its own
        "group_window_minutes": Field(int, 30, check=between(0, 1440, "minutes")),
        "relay_answers": Field(bool, True),
        "sla_calendar": Field(str, "working", choices=("working", "calendar")),
        "extra_holidays": Field(list, [], check=iso_dates),
        "reminder_time": Field(str, "08:00", check=clock_time),
        # 0 = escalate as soon as a complaint is overdue
        "escalate_after_days": Field(int, 3, check=between(0, 365, "days")),
        # after an agency's `selesai` the citizen may object (BELUM) for this many working
        # days; without an answer the complaint closes (SP4N-LAPOR!'s 10 working days)
        "confirm_days": Field(int, 10, check=between(1, 90, "working days")),
        # the resolution clock when the agency has no `resolve_days` (calendar days)
        "resolve_days": Field(int, 7, check=between(1, 366, "days")),
        "leadership_email": Field(str, "", check=email_address(optional=True)),
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
        "port": Field(int, 25, check=port()),
        "security": _security(),
        "username": Field(str, "", needed_when=("auth", "oauth2")),
        "password": Field(str, "", secret=True),
        **mail_auth_fields(),
        "timeout_seconds": Field(int, 30, check=seconds(1, 3600)),
        # 0 = forwards carry no attachments (they are listed by name)
        "max_attachments_bytes": Field(int, 10 * 1024 * 1024, check=size_bytes(0)),
        "ca_file": Field(str, "", path=True),  # extra CA to trust (self-signed relay)
    },
    "public": {
        "export_minutes": Field(int, 10, check=between(0, 1440, "minutes", "0 = never")),
        "publish_photos": Field(bool, False),
        "review": Field(bool, False),
    },
    "webhook": {
        "listen": Field(str, "127.0.0.1:8787", check=host_port),
        "max_body_bytes": Field(int, 1024 * 1024, check=size_bytes(1, 64 * 1024 * 1024)),
    },
    "routing": {
        # the model forwards a complaint no rule matched at or above this probability; 0.95: the
        # lowest threshold at which it is as precise as the rules on the held-out examples
        # (`lapakd model show`, docs/routing-model.md)
        "auto_forward_confidence": Field((float, int), 0.95, check=fraction(
            0.5, 1.0, "1.0 = the model never forwards, it only suggests")),
        # the daemon retrains the model when its file is this old
        "retrain_hours": Field(int, 24, check=between(
            0, 8760, "hours", "0 = never (lapakd model train by hand)")),
    },
    "metrics": {
        # /metrics (Prometheus) and /healthz in `lapakd run`; "" = off
        "listen": Field(str, "", check=optional_host_port),
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
    metrics: Section
    routing: Section
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
        if name not in registry.configurable():
            raise ConfigError(
                f"{cfg_path}: unknown channel [channels.{name}] "
                f"(known: {', '.join(registry.configurable())})"
            )
        if not isinstance(values, dict):
            raise ConfigError(f"{cfg_path}: [channels.{name}] must be a table")
        spec = {"enabled": Field(bool, False), **registry.config_schema(name)}
        channels[name] = Section(
            f"channels.{name}", validate_section(f"channels.{name}", values, spec, cfg_path, base)
        )
    return Config(path=cfg_path, channels=channels, **sections)


def _type_name(t: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", bool: "true or false", list: "a list",
             float: "a number"}
    if isinstance(t, tuple) and set(t) == {float, int}:
        return "a number"
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
        for suffix in SECRET_SOURCES
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
        where = f"{cfg_path}: {_line_of(cfg_path, section, key)}"
        # bool is a subclass of int: `port = true` must not pass as an integer.
        types = f.type if isinstance(f.type, tuple) else (f.type,)
        bad_bool = isinstance(value, bool) and bool not in types
        if bad_bool or not isinstance(value, f.type):
            raise ConfigError(
                f"{where}{full} must be {_type_name(f.type)}, got {value!r}"
                if not f.secret
                else f"{where}{full} must be {_type_name(f.type)}"
            )
        if f.choices and value not in f.choices:
            raise ConfigError(
                f"{where}{full} = {value!r} is not one of {', '.join(f.choices)}"
            )
        problem = f.check(value) if f.check is not None else None
        if problem:
            shown = "" if f.secret or isinstance(value, list) else f" = {value!r}"
            raise ConfigError(f"{where}{full}{shown} {problem}")
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
    for key, f in spec.items():
        if f.needed_when and out.get(f.needed_when[0]) == f.needed_when[1] and not out[key]:
            other, value = f.needed_when
            raise ConfigError(
                f"{cfg_path}: {_line_of(cfg_path, section, other)}{section}.{key} is required "
                f"with {section}.{other} = {json.dumps(value)} (set it, or {other} = "
                f"{json.dumps(spec[other].default)})"
            )
    return out


def _line_of(cfg_path: Path, section: str, key: str) -> str:
    """"line N: " where `key = ` stands inside `[section]` of the config file, else "".

    Found by scanning the text (tomllib keeps no positions): good enough for the plain
    `key = value` lines lapakd.toml is made of; dotted or inline-table keys get no line."""
    try:
        lines = cfg_path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return ""
    dotted = r"\s*\.\s*".join(map(re.escape, section.split(".")))
    header = re.compile(rf"\[\s*{dotted}\s*\]")
    assignment = re.compile(rf"\s*[\"']?{re.escape(key)}[\"']?\s*=")
    inside = False
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if stripped.startswith("["):
            inside = bool(header.fullmatch(stripped.split("#")[0].strip()))
        elif inside and assignment.match(line):
            return f"line {number}: "
    return ""


def _resolve_secret(
    section: str, key: str, values: dict[str, Any], cfg_path: Path, base: Path, default: Any
) -> Any:
    given = [k for k in (key, *(key + suffix for suffix in SECRET_SOURCES))
             if k in values and values[k] != ""]
    if len(given) > 1:
        raise ConfigError(
            f"{cfg_path}: {section}: give only one of {', '.join(given)}"
        )
    if f"{key}_file" in given:
        source = f"{key}_file"
        name = values[source]
        if name == "%d" or name.startswith("%d/"):  # systemd's specifier for the credentials
            secret_path = _credentials_dir(cfg_path, section, source) / name[3:]
        else:
            secret_path = base / name
        return _read_secret_file(cfg_path, section, key, source, secret_path)
    if f"{key}_credential" in given:
        source = f"{key}_credential"
        name = values[source]
        if "/" in name or name in (".", ".."):
            raise ConfigError(
                f"{cfg_path}: {_line_of(cfg_path, section, source)}{section}.{source} = "
                f"{name!r} is not a credential name (give the NAME of LoadCredential=NAME:PATH)"
            )
        secret_path = _credentials_dir(cfg_path, section, source) / name
        return _read_secret_file(cfg_path, section, key, source, secret_path)
    if f"{key}_env" in given:
        var = values[f"{key}_env"]
        if var not in os.environ:
            raise ConfigError(
                f"{cfg_path}: {section}.{key}_env: environment variable {var} is not set"
            )
        if not os.environ[var].strip():
            raise ConfigError(
                f"{cfg_path}: {_line_of(cfg_path, section, f'{key}_env')}{section}.{key}_env: "
                f"environment variable {var} is empty (set it to the {key}, or remove the key)"
            )
        return os.environ[var]
    return values.get(key, default)


def _credentials_dir(cfg_path: Path, section: str, source: str) -> Path:
    folder = os.environ.get(CREDENTIALS_ENV, "")
    if not folder:
        raise ConfigError(
            f"{cfg_path}: {_line_of(cfg_path, section, source)}{section}.{source}: "
            f"${CREDENTIALS_ENV} is not set (systemd sets it for a unit with LoadCredential=; "
            "outside systemd give a path in <key>_file instead)"
        )
    return Path(folder)


def _read_secret_file(
    cfg_path: Path, section: str, key: str, source: str, secret_path: Path
) -> str:
    where = f"{cfg_path}: {_line_of(cfg_path, section, source)}{section}.{source}"
    try:
        lines = secret_path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {secret_path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: {secret_path} is not UTF-8 text") from None
    secret = lines[0].strip() if lines else ""  # the first line, as documented
    if not secret:
        raise ConfigError(
            f"{where}: {secret_path} is empty (put the {key} on its first line, or remove the key)"
        )
    return secret


# -- writing a config file (the demo, the tests and the bench make theirs with it) --------------


def dump_toml(
    sections: Mapping[str, Mapping[str, Any]],
    notes: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """`{"desk": {...}, "channels.email": {...}}` as lapakd.toml text, each section a table.

    Values are bools, ints, lists of those, or anything else written as its text (a path, a
    string). `notes` maps "section.key" to comment lines written above that key.
    """
    lines = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        for key, value in values.items():
            lines.extend(f"# {note}" for note in (notes or {}).get(f"{name}.{key}", ()))
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    # A JSON string is a TOML basic string, but for DEL, which TOML wants escaped too.
    return json.dumps(str(value), ensure_ascii=False).replace("\x7f", "\\u007f")
