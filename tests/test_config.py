"""`lapakd.toml`: loading, one-line errors naming file and key, secrets, relative paths."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lapakd.config import CONFIG_ENV, load_config
from lapakd.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parent.parent / "lapakd.toml"

MINIMAL = """\
[desk]
email = "lapakaduan@banyumas.example"
admin_email = "admin@banyumas.example"
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def config_error(path: Path) -> str:
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert "\n" not in message, message
    assert message.startswith(f"{path.resolve()}: ") or message.startswith(f"{path}: "), message
    return message


def test_example_config_loads() -> None:
    cfg = load_config(EXAMPLE)
    base = EXAMPLE.parent
    assert cfg.path == EXAMPLE
    assert cfg.desk.email == "lapakaduanbms@banyumas.example"
    assert cfg.desk.timezone == "Asia/Jakarta"
    assert str(cfg.tz) == "Asia/Jakarta"
    assert cfg.desk.relay_answers is True
    assert cfg.desk.extra_holidays == []
    assert cfg.smtp.port == 8025
    assert cfg.smtp.password == ""
    assert cfg.smtp.ca_file == ""  # empty stays empty, not "<config dir>"
    assert cfg.rules_dir == base / "rules"
    assert cfg.data_dir == base / "var"
    assert cfg.public_dir == base / "var" / "public"
    assert cfg.db_path == base / "var" / "lapakd.sqlite3"
    assert list(cfg.channels) == ["email"]
    email = cfg.channels["email"]
    assert (email.enabled, email.port, email.security, email.folder) == (
        True, 143, "none", "INBOX"
    )
    assert list(cfg.enabled_channels()) == ["email"]


def test_minimal_config_gets_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path / "lapakd.toml", MINIMAL))
    assert cfg.desk.name == "Lapak Aduan Banyumas"
    assert cfg.desk.digest_day == "monday"
    assert cfg.smtp.port == 25
    assert cfg.smtp.security == "none"
    assert cfg.channels == {}
    assert cfg.enabled_channels() == {}
    assert cfg.rules_dir == tmp_path / "rules"


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (MINIMAL + "[colour]\nred = 1\n", r"unknown section \[colour\]"),
        (MINIMAL + "colour = \"red\"\n", r"unknown key desk\.colour \(known: name, email, "),
        (MINIMAL + "[smtp]\nhots = \"x\"\n", r"unknown key smtp\.hots"),
        (MINIMAL + "[smtp]\nhost_file = \"x\"\n", r"unknown key smtp\.host_file"),
        (MINIMAL + "[smtp]\nport = \"143\"\n", r"smtp\.port must be an integer, got '143'"),
        (MINIMAL + "[smtp]\nport = true\n", r"smtp\.port must be an integer, got True"),
        (MINIMAL + "[smtp]\nport = 143.0\n", r"smtp\.port must be an integer"),
        (MINIMAL + "relay_answers = \"yes\"\n", r"desk\.relay_answers must be true or false"),
        (MINIMAL + "extra_holidays = \"2026-03-20\"\n", r"desk\.extra_holidays must be a list"),
        (MINIMAL + "[smtp]\nsecurity = \"tls\"\n",
         r"smtp\.security = 'tls' is not one of none, starttls, ssl"),
        (MINIMAL + "digest_day = \"senin\"\n", r"desk\.digest_day = 'senin' is not one of"),
        (MINIMAL + "timezone = \"Asia/Jakart\"\n",
         r"desk\.timezone = 'Asia/Jakart' is not a known time zone"),
        (MINIMAL + "timezone = \"../etc/passwd\"\n", r"desk\.timezone"),
        ("[desk]\nadmin_email = \"a@b.example\"\n", r"desk\.email is required"),
        ("[desk]\nemail = \"a@b.example\"\n", r"desk\.admin_email is required"),
        ("", r"desk\.email is required"),
        (MINIMAL + "[paths]\nrules_dir = 5\n", r"paths\.rules_dir must be a string, got 5"),
        (MINIMAL + "paths = 5\n", r"unknown key desk\.paths"),
        ("paths = 5\n" + MINIMAL, r"\[paths\] must be a table"),
        (MINIMAL + "[channels.telegram]\nenabled = true\n",
         r"unknown channel \[channels\.telegram\] \(known: email"),
        ("channels = 5\n" + MINIMAL, r"\[channels\] must be a table"),
        (MINIMAL + "[smtp]\nport = \n", r"not valid TOML"),
    ],
)
def test_config_errors_name_file_and_key(tmp_path: Path, toml: str, expected: str) -> None:
    path = write(tmp_path / "lapakd.toml", toml)
    message = config_error(path)
    assert str(path) in message
    assert re.search(expected, message), message


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (MINIMAL + "[channels.email]\nport = \"143\"\n",
         r"channels\.email\.port must be an integer, got '143'"),
        (MINIMAL + "[channels.email]\nprot = 143\n", r"unknown key channels\.email\.prot"),
        (MINIMAL + "[channels.email]\nsecurity = \"tls\"\n",
         r"channels\.email\.security = 'tls' is not one of"),
        (MINIMAL + "[channels.email]\nenabled = \"yes\"\n",
         r"channels\.email\.enabled must be true or false"),
    ],
)
def test_channel_config_errors(tmp_path: Path, toml: str, expected: str) -> None:
    path = write(tmp_path / "lapakd.toml", toml)
    assert re.search(expected, config_error(path))


def test_missing_config_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    message = config_error(path)
    assert "config file not found" in message


def test_config_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "elsewhere" / "desk.toml", MINIMAL)
    monkeypatch.setenv(CONFIG_ENV, str(path))
    assert load_config().path == path


# -- secrets --------------------------------------------------------------------------------------


def test_secret_inline(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path / "lapakd.toml", MINIMAL + '[smtp]\npassword = "rahasia"\n'))
    assert cfg.smtp.password == "rahasia"
    assert "rahasia" not in repr(cfg.smtp)


def test_secret_from_file_relative_to_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "etc"
    (conf / "secrets").mkdir(parents=True)
    # the first line of the file, as lapakd.toml documents
    (conf / "secrets" / "smtp.pass").write_text("s3cret pass \nsecond line\n", encoding="utf-8")
    path = write(conf / "lapakd.toml", MINIMAL + '[smtp]\npassword_file = "secrets/smtp.pass"\n')
    monkeypatch.chdir(tmp_path)  # not the config's folder
    assert load_config(path).smtp.password == "s3cret pass"


def test_secret_file_without_trailing_newline_and_absolute(tmp_path: Path) -> None:
    secret = tmp_path / "abs.pass"
    secret.write_text("only", encoding="utf-8")
    path = write(tmp_path / "conf" / "lapakd.toml",
                 MINIMAL + f'[smtp]\npassword_file = "{secret}"\n')
    assert load_config(path).smtp.password == "only"


def test_secret_file_missing_or_binary(tmp_path: Path) -> None:
    path = write(tmp_path / "lapakd.toml", MINIMAL + '[smtp]\npassword_file = "nope.pass"\n')
    message = config_error(path)
    assert "smtp.password_file" in message and str(tmp_path / "nope.pass") in message
    (tmp_path / "bin.pass").write_bytes(b"\xff\xfe\x00secret")
    path = write(tmp_path / "lapakd.toml", MINIMAL + '[smtp]\npassword_file = "bin.pass"\n')
    message = config_error(path)
    assert "smtp.password_file" in message and "UTF-8" in message


def test_secret_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAPAKD_TEST_SMTP_PASS", "dari-env")
    path = write(tmp_path / "lapakd.toml",
                 MINIMAL + '[smtp]\npassword_env = "LAPAKD_TEST_SMTP_PASS"\n')
    assert load_config(path).smtp.password == "dari-env"


def test_secret_env_missing_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LAPAKD_TEST_NOT_SET", raising=False)
    path = write(tmp_path / "lapakd.toml",
                 MINIMAL + '[smtp]\npassword_env = "LAPAKD_TEST_NOT_SET"\n')
    message = config_error(path)
    assert "smtp.password_env" in message
    assert "LAPAKD_TEST_NOT_SET" in message


@pytest.mark.parametrize(
    ("keys", "named"),
    [
        ('password_file = "p"\npassword_env = "P"\n', "password_file, password_env"),
        ('password = "x"\npassword_env = "P"\n', "password, password_env"),
        ('password = "x"\npassword_file = "p"\n', "password, password_file"),
    ],
)
def test_secret_given_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keys: str, named: str
) -> None:
    monkeypatch.setenv("P", "x")
    (tmp_path / "p").write_text("x\n", encoding="utf-8")
    path = write(tmp_path / "lapakd.toml", MINIMAL + "[smtp]\n" + keys)
    message = config_error(path)
    assert f"smtp: give only one of {named}" in message


# -- secrets from systemd credentials (LoadCredential=NAME:PATH -> $CREDENTIALS_DIRECTORY/NAME) ---


@pytest.fixture
def credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "credentials"  # as systemd makes it: one file per credential
    folder.mkdir()
    (folder / "smtp-password").write_text("dari-systemd\n", encoding="utf-8")
    (folder / "empty").write_text("\n", encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(folder))
    return folder


def test_secret_credential_reads_the_credentials_directory(
    tmp_path: Path, credentials: Path
) -> None:
    path = write(tmp_path / "etc" / "lapakd.toml",
                 MINIMAL + '[smtp]\npassword_credential = "smtp-password"\n')
    cfg = load_config(path)
    assert cfg.smtp.password == "dari-systemd"
    assert "dari-systemd" not in repr(cfg.smtp)


def test_secret_file_percent_d_is_the_credentials_directory(
    tmp_path: Path, credentials: Path
) -> None:
    path = write(tmp_path / "etc" / "lapakd.toml",
                 MINIMAL + '[smtp]\npassword_file = "%d/smtp-password"\n')
    assert load_config(path).smtp.password == "dari-systemd"


def test_secret_credential_in_a_channel_section(tmp_path: Path, credentials: Path) -> None:
    path = write(tmp_path / "lapakd.toml", MINIMAL + (
        '[channels.email]\nhost = "imap.example.org"\nusername = "u"\n'
        'password_credential = "smtp-password"\n'))
    assert load_config(path).channels["email"].password == "dari-systemd"


@pytest.mark.parametrize("key", ['password_credential = "smtp-password"',
                                 'password_file = "%d/smtp-password"'])
def test_secret_credential_without_credentials_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    path = write(tmp_path / "lapakd.toml", MINIMAL + f"[smtp]\n{key}\n")
    message = config_error(path)
    assert "\n" not in message
    assert f"smtp.{key.split(' ')[0]}" in message and "$CREDENTIALS_DIRECTORY is not set" in message
    assert str(path) in message


@pytest.mark.parametrize(("key", "name", "problem"), [
    ("password_credential", "missing", "cannot read"),
    ("password_credential", "empty", "is empty"),
    ("password_file", "%d/missing", "cannot read"),
    ("password_file", "%d/empty", "is empty"),
])
def test_secret_credential_missing_or_empty_names_key_and_file(
    tmp_path: Path, credentials: Path, key: str, name: str, problem: str
) -> None:
    path = write(tmp_path / "lapakd.toml", MINIMAL + f'[smtp]\n{key} = "{name}"\n')
    message = config_error(path)
    assert "\n" not in message
    assert f"smtp.{key}" in message
    assert str(credentials / name.removeprefix("%d/")) in message and problem in message


def test_secret_credential_name_is_a_name_not_a_path(tmp_path: Path, credentials: Path) -> None:
    path = write(tmp_path / "lapakd.toml",
                 MINIMAL + '[smtp]\npassword_credential = "../etc/shadow"\n')
    assert "is not a credential name" in config_error(path)


def test_secret_credential_and_file_given_twice(tmp_path: Path, credentials: Path) -> None:
    path = write(tmp_path / "lapakd.toml", MINIMAL + (
        '[smtp]\npassword_credential = "smtp-password"\npassword = "x"\n'))
    assert "smtp: give only one of password, password_credential" in config_error(path)


def test_secret_in_channel_section(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAPAKD_TEST_IMAP_PASS", "imap-secret")
    path = write(tmp_path / "lapakd.toml", MINIMAL + textwrap.dedent("""\
        [channels.email]
        enabled = true
        password_env = "LAPAKD_TEST_IMAP_PASS"
        """))
    assert load_config(path).channels["email"].password == "imap-secret"


def test_wrong_secret_type_does_not_echo_the_value(tmp_path: Path) -> None:
    path = write(tmp_path / "lapakd.toml", MINIMAL + "[smtp]\npassword = 987654321\n")
    message = config_error(path)
    assert "smtp.password must be a string" in message
    assert "987654321" not in message
    path = write(tmp_path / "lapakd.toml", MINIMAL + "[smtp]\npassword_file = 5\n")
    assert "smtp.password_file must be a string" in config_error(path)


# -- paths ----------------------------------------------------------------------------------------


def test_relative_paths_resolve_against_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "srv" / "desk"
    path = write(conf / "lapakd.toml", MINIMAL + textwrap.dedent(f"""\
        [paths]
        data_dir = "data"
        rules_dir = "../shared/rules"
        public_dir = "{tmp_path / 'www'}"
        [smtp]
        ca_file = "certs/relay.pem"
        """))
    monkeypatch.chdir(tmp_path)
    for given in (path, Path("srv/desk/lapakd.toml")):  # absolute, and relative to the cwd
        cfg = load_config(given)
        assert cfg.path == path
        assert cfg.data_dir == conf / "data"
        assert cfg.rules_dir == tmp_path / "srv" / "shared" / "rules"
        assert cfg.public_dir == tmp_path / "www"
        assert cfg.smtp.ca_file == str(conf / "certs" / "relay.pem")
        assert cfg.db_path == conf / "data" / "lapakd.sqlite3"


def test_default_paths_resolve_against_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "conf" / "lapakd.toml", MINIMAL)
    monkeypatch.chdir(tmp_path)
    cfg = load_config(Path("conf/lapakd.toml"))
    assert cfg.data_dir == tmp_path / "conf" / "var"
    assert cfg.public_dir == tmp_path / "conf" / "var" / "public"
    assert cfg.rules_dir == tmp_path / "conf" / "rules"
    assert cfg.path == path


# -- the CLI: a bad config is one line on stderr, exit 2 ------------------------------------------


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (MINIMAL + "[smtp]\nport = \"143\"\n", "smtp.port must be an integer"),
        (MINIMAL + "[smtp]\npassword_env = \"LAPAKD_TEST_NOT_SET\"\n", "LAPAKD_TEST_NOT_SET"),
        (None, "config file not found"),
    ],
)
def test_cli_status_with_bad_config(tmp_path: Path, toml: str | None, expected: str) -> None:
    path = tmp_path / "lapakd.toml"
    if toml is not None:
        write(path, toml)
    env = {k: v for k, v in os.environ.items() if k != "LAPAKD_TEST_NOT_SET"}
    proc = subprocess.run(
        [sys.executable, "-m", "lapakd.cli", "status", "--config", str(path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, env=env,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"lapakd: {path}: ")
    assert expected in lines[0]
    assert "Traceback" not in proc.stderr


# -- values out of range: one line with file, line, key, value and the fix -------------------------


@pytest.mark.parametrize(
    ("section", "line", "expected"),
    [
        ("[channels.email]", "poll_seconds = 0", r"channels\.email\.poll_seconds = 0 is out of "
         r"range \(give 1 to 86400 seconds\)"),
        ("[channels.email]", "poll_seconds = -5", r"poll_seconds = -5 is out of range"),
        ("[channels.email]", "poll_seconds = 604800", r"poll_seconds = 604800 is out of range"),
        ("[channels.facebook]", "poll_seconds = 0", r"channels\.facebook\.poll_seconds = 0"),
        ("[channels.instagram]", "lookback_days = -1", r"channels\.instagram\.lookback_days"),
        ("[channels.twitter]", "poll_seconds = 0", r"channels\.twitter\.poll_seconds = 0"),
        ("[channels.twitter]", "page_size = 1000", r"page_size = 1000 is out of range"),
        ("[channels.whatsapp]", "media_max_bytes = 0", r"channels\.whatsapp\.media_max_bytes"),
        ("[channels.whatsapp]", "timeout_seconds = 0", r"channels\.whatsapp\.timeout_seconds"),
        ("[channels.whatsapp]", 'graph_url = "graph.facebook.com"', r"not an http\(s\) URL"),
        ("[channels.email]", "port = 0", r"channels\.email\.port = 0 is out of range "
         r"\(give 1 to 65535; a TCP port\)"),
        ("[channels.email]", "max_message_bytes = 0", r"max_message_bytes = 0 is out of range"),
        ("[channels.email]", 'after = "delete"', r"after = 'delete' must be seen, keep or move"),
        ("[smtp]", "port = 70000", r"smtp\.port = 70000 is out of range"),
        ("[smtp]", "timeout_seconds = 0", r"smtp\.timeout_seconds = 0 is out of range"),
        ("[public]", "export_minutes = -10", r"export_minutes = -10 is out of range "
         r"\(give 0 to 1440 minutes; 0 = never\)"),
        ("[webhook]", 'listen = "8787"', r"webhook\.listen = '8787' is not host:port"),
        ("[webhook]", 'listen = "localhost:http"', r"webhook\.listen = 'localhost:http'"),
        ("[webhook]", 'listen = "[::1:8787"', r"IPv6 address goes in brackets"),
        ("[webhook]", "max_body_bytes = 0", r"webhook\.max_body_bytes = 0"),
        ("[desk]", "group_window_minutes = -1", r"group_window_minutes = -1 is out of range"),
        ("[desk]", "escalate_after_days = -3", r"escalate_after_days = -3 is out of range"),
        ("[desk]", 'extra_holidays = ["2026-03-20", "2026-02-30"]',
         r"desk\.extra_holidays has '2026-02-30', which is not a real date \(write each as a "
         r"string YYYY-MM-DD"),
        ("[desk]", "extra_holidays = [2026-03-20]", r"desk\.extra_holidays has "
         r"datetime\.date\(2026, 3, 20\), which is not a real date \(write each as a string"),
        ("[desk]", 'extra_holidays = ["20-03-2026"]', r"has '20-03-2026', which is not a real"),
        ("[desk]", 'reminder_time = "8 pagi"', r"desk\.reminder_time = '8 pagi' is not a time "
         r"of day \(write HH:MM"),
        ("[desk]", 'reminder_time = "24:00"', r"reminder_time = '24:00' is not a time of day"),
        ("[desk]", 'leadership_email = "kepala dinas"', r"desk\.leadership_email = 'kepala "
         r"dinas' is not an email address"),
        ("[desk]", 'public_url = "lapakaduan.example"', r"public_url = 'lapakaduan\.example' "
         r"is not an http\(s\) URL"),
        ("[desk]", 'ticket_prefix = "LA/"', r"ticket_prefix = 'LA/' is not valid"),
    ],
)
def test_values_out_of_range_name_line_key_value_and_fix(
    tmp_path: Path, section: str, line: str, expected: str
) -> None:
    text = MINIMAL + "\n# a comment\n" if section != "[desk]" else MINIMAL
    if section == "[desk]":
        text += line + "\n"
    elif section.startswith("[channels."):
        text += f"{section}\nenabled = true\n{line}\n"
    else:
        text += f"{section}\n{line}\n"
    path = write(tmp_path / "lapakd.toml", text)
    message = config_error(path)
    number = text.splitlines().index(line) + 1
    assert message.startswith(f"{path.resolve()}: line {number}: "), message
    assert re.search(expected, message), message


@pytest.mark.parametrize("bad", ['"lapak aduan"', '"aduan@"', '"Lapak <aduan@x.example>"',
                                 '"aduan@localhost"', '""'])
def test_desk_addresses_must_be_addresses(tmp_path: Path, bad: str) -> None:
    path = write(tmp_path / "lapakd.toml",
                 f'[desk]\nemail = {bad}\nadmin_email = "admin@banyumas.example"\n')
    message = config_error(path)
    assert "line 2: desk.email" in message and "is not an email address" in message


def test_good_values_at_the_edges_load(tmp_path: Path) -> None:
    path = write(tmp_path / "lapakd.toml", MINIMAL + textwrap.dedent("""\
        group_window_minutes = 0
        escalate_after_days = 0
        extra_holidays = ["2026-03-20", "2024-02-29"]
        reminder_time = "23:59"
        leadership_email = ""
        [public]
        export_minutes = 0
        [webhook]
        listen = "[::1]:0"
        [channels.email]
        username = "lapakaduan"
        poll_seconds = 86400
        port = 993
        after = "move:Selesai"
        """))
    cfg = load_config(path)
    assert cfg.desk.extra_holidays == ["2026-03-20", "2024-02-29"]
    assert cfg.channels["email"].username == "lapakaduan"  # an IMAP login need not be an address


def test_empty_secret_file_or_variable_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for content in ("", "\n", "   \nsecond line\n"):
        (tmp_path / "empty.pass").write_text(content, encoding="utf-8")
        path = write(tmp_path / "lapakd.toml", MINIMAL + '[smtp]\npassword_file = "empty.pass"\n')
        message = config_error(path)
        assert "line 5: smtp.password_file" in message, message
        assert f"{tmp_path / 'empty.pass'} is empty" in message
    monkeypatch.setenv("LAPAKD_TEST_EMPTY", "")
    path = write(tmp_path / "lapakd.toml", MINIMAL + '[smtp]\npassword_env = "LAPAKD_TEST_EMPTY"\n')
    assert "environment variable LAPAKD_TEST_EMPTY is empty" in config_error(path)


@pytest.mark.parametrize("verb", [["run"], ["run", "--once"], ["rules", "check"]])
def test_cli_refuses_a_zero_poll_interval_at_once(tmp_path: Path, verb: list[str]) -> None:
    path = write(tmp_path / "lapakd.toml", MINIMAL + "[channels.email]\nenabled = true\n"
                 "poll_seconds = 0\n")
    proc = subprocess.run(
        [sys.executable, "-m", "lapakd.cli", *verb, "--config", str(path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.splitlines() == [
        f"lapakd: {path}: line 6: channels.email.poll_seconds = 0 is out of range "
        "(give 1 to 86400 seconds)"
    ]
    assert not (tmp_path / "var").exists()  # refused before anything was opened
