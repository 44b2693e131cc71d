"""OAuth2 (XOAUTH2) logins to IMAP and SMTP, against real parts: Dovecot's oauth2 passdb asking
a local token server (tests/oauth2_provider.py) about every bearer token, the SMTP sink taking
AUTH XOAUTH2 with that server's live tokens, and real `lapakd` processes."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from deskenv import ADMIN_EMAIL, DeskEnv, make_mail
from dovecot import Dovecot
from oauth2_provider import OAuth2Provider

from lapakd import channels
from lapakd.config import load_config, parse_config
from lapakd.delivery.smtp import connections, send_many
from lapakd.embedded.smtp_sink import SmtpSink
from lapakd.errors import ConfigError
from lapakd.mail import oauth2

ROAD = ("Jalan berlubang di Karangsalam",
        "Jalan di Desa Karangsalam berlubang besar, sudah 2 bulan tdk diperbaiki.")


@dataclass
class OAuth2Desk:
    env: DeskEnv
    provider: OAuth2Provider
    tokens: dict[str, str]  # the refresh token in the config, per use (email, smtp)

    def set_refresh_token(self, use: str, token: str) -> None:
        self.tokens[use] = token
        section = "channels.email" if use == "email" else "smtp"
        self.env.write_config(**{section: {"oauth2_refresh_token": token}})

    def refresh_posts(self, use: str, token: str | None = None) -> int:
        """Refresh-token grants made with this use's token (or `token`)."""
        wanted = token or self.tokens[use]
        return sum(1 for form in self.provider.token_posts("refresh_token")
                   if form.get("refresh_token") == wanted)

    def secrets(self) -> list[str]:
        return [self.provider.client_secret, *self.provider.issued]

    def assert_no_secret(self, *texts: str) -> None:
        for text in texts:
            for secret in self.secrets():
                assert secret not in text, "a secret reached the output"


@pytest.fixture
def oauth2_desk(tmp_path: Path, oauth2_dovecot: Dovecot, oauth2_provider: OAuth2Provider,
                sink: SmtpSink) -> OAuth2Desk:
    """A desk whose IMAP and SMTP logins are XOAUTH2, each with its own refresh token; the
    sink takes only the token server's live access tokens."""
    user = oauth2_dovecot.new_user("desk")
    env = DeskEnv(tmp_path, oauth2_dovecot, sink, user)
    tokens = {"email": oauth2_provider.grant(user), "smtp": oauth2_provider.grant(user)}
    common = {"auth": "oauth2", "oauth2_token_url": oauth2_provider.token_url,
              "oauth2_client_id": oauth2_provider.client_id,
              "oauth2_client_secret": oauth2_provider.client_secret}
    env.write_config(**{
        "channels.email": {**common, "password": "", "oauth2_refresh_token": tokens["email"]},
        "smtp": {**common, "username": user, "oauth2_refresh_token": tokens["smtp"]},
    })
    sink.require_xoauth2(oauth2_provider.valid)
    return OAuth2Desk(env, oauth2_provider, tokens)


def _adapter(env: DeskEnv):
    cfg = load_config(env.config)
    return channels.adapter_class("email")(cfg, cfg.channels["email"])


def _send_one(env: DeskEnv) -> object:
    cfg = load_config(env.config)
    raw = make_mail("uji", "uji kirim", sender=cfg.desk.email, to=ADMIN_EMAIL)
    with connections(cfg, 1) as sessions:
        [(_, outcome)] = send_many(sessions, [1], lambda job, eight: (raw, [ADMIN_EMAIL], False))
    return outcome


def test_imap_poll_and_smtp_forward_log_in_with_oauth2(oauth2_desk: OAuth2Desk) -> None:
    env = oauth2_desk.env
    env.append(make_mail(*ROAD))
    run = env.run_once()
    assert run.returncode == 0, run.stderr
    assert env.count("SELECT count(*) FROM messages WHERE channel = 'email'") == 1
    [forward] = env.sink.wait_for(1)
    assert forward.auth_user == env.user  # the sink took it over AUTH XOAUTH2
    assert "dpupr@banyumas.example" in forward.rcpt_tos
    assert oauth2_desk.refresh_posts("email") == 1 and oauth2_desk.refresh_posts("smtp") == 1
    assert env.sink.xoauth2_logins["refused"] == 0
    oauth2_desk.assert_no_secret(run.stdout, run.stderr)


def test_a_password_is_refused_where_oauth2_is_required(oauth2_desk: OAuth2Desk) -> None:
    """The test servers really check: without OAuth2 the same desk cannot log in."""
    env = oauth2_desk.env
    env.write_config(smtp={"auth": "password", "password": "tebakan"})
    assert isinstance(_send_one(env), Exception)
    assert env.sink.messages == []


def test_the_access_token_is_cached_across_polls(oauth2_desk: OAuth2Desk) -> None:
    env = oauth2_desk.env
    adapter = _adapter(env)
    env.append(make_mail(*ROAD))
    assert sum(len(b.messages) for b in adapter.fetch(None)) == 1
    env.append(make_mail("Lampu mati", "Lampu PJU di Jl. Overste Isdiman mati semua."))
    assert sum(len(b.messages) for b in adapter.fetch(None)) == 2
    assert oauth2_desk.refresh_posts("email") == 1  # one token POST for both polls
    assert not isinstance(_send_one(env), Exception)
    assert not isinstance(_send_one(env), Exception)
    assert oauth2_desk.refresh_posts("smtp") == 1


def test_a_revoked_access_token_is_refreshed_once_and_the_login_retried(
    oauth2_desk: OAuth2Desk,
) -> None:
    env, provider = oauth2_desk.env, oauth2_desk.provider
    adapter = _adapter(env)
    list(adapter.fetch(None))
    assert not isinstance(_send_one(env), Exception)
    provider.revoke_access_tokens()  # e.g. the account's password changed at the provider
    env.append(make_mail(*ROAD))
    assert sum(len(b.messages) for b in adapter.fetch(None)) == 1
    assert not isinstance(_send_one(env), Exception)
    assert oauth2_desk.refresh_posts("email") == 2
    assert oauth2_desk.refresh_posts("smtp") == 2
    assert env.sink.xoauth2_logins["refused"] == 1 and len(env.sink.messages) == 2


def test_a_rotated_refresh_token_is_stored_privately_and_used_next_run(
    oauth2_desk: OAuth2Desk,
) -> None:
    env, provider = oauth2_desk.env, oauth2_desk.provider
    provider.rotate = True
    env.append(make_mail(*ROAD))
    assert env.run_once().returncode == 0
    state_file = env.data_dir / "oauth2" / "email.json"
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(state_file.parent.stat().st_mode) == 0o700
    rotated = json.loads(state_file.read_text())["refresh_token"]
    assert rotated != oauth2_desk.tokens["email"]
    assert oauth2_desk.tokens["email"] not in provider.refresh_tokens  # the old one is dead

    env.append(make_mail("Lampu mati", "Lampu PJU di Jl. Overste Isdiman mati semua."))
    run = env.run_once()  # a new process: only the stored token can work now
    assert run.returncode == 0, run.stderr
    assert oauth2_desk.refresh_posts("email", rotated) == 1
    assert env.count("SELECT count(*) FROM messages WHERE channel = 'email'") == 2

    # The admin puts a new token in the config: it wins over the stored one.
    provider.rotate = False
    oauth2_desk.set_refresh_token("email", provider.grant(env.user))
    assert env.run_once().returncode == 0
    assert oauth2_desk.refresh_posts("email") == 1
    oauth2_desk.assert_no_secret(run.stdout, run.stderr)


def test_invalid_grant_is_one_line_in_the_log_and_in_status_and_nothing_is_lost(
    oauth2_desk: OAuth2Desk,
) -> None:
    env, provider = oauth2_desk.env, oauth2_desk.provider
    provider.revoke_refresh_tokens()  # the consent was withdrawn
    env.append(make_mail(*ROAD))
    run = env.run_once()
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    failed = [json.loads(line) for line in run.stderr.splitlines()
              if "oauth2.token_failed" in line]
    [email] = [e for e in failed if e["use"] == "email"]  # once, not once per retry
    assert "invalid_grant" in email["error"]
    assert "lapakd oauth2-token --for email" in email["error"]
    status = env.cli_json("status")
    problems = " | ".join(status["problems"])
    assert "invalid_grant" in problems and "lapakd oauth2-token --for email" in problems
    assert status["oauth2"]["email"]["error"]
    assert env.count("SELECT count(*) FROM messages") == 0  # still on the server, unseen
    [uid] = env.dovecot.folder_uids(env.user)
    assert "\\Seen" not in env.dovecot.flags(env.user, uid)
    text = env.cli("status", check=False)
    assert "oauth2 [channels.email]: FAILING, refresh token from the config" in text.stdout
    oauth2_desk.assert_no_secret(run.stdout, run.stderr, text.stdout, text.stderr,
                                 json.dumps(status))

    # The admin gives a new consent (`lapakd oauth2-token`): what waited an hour for new
    # credentials goes at once, the mail comes in and is forwarded, the problems are gone.
    env.write_config(**{section: {"oauth2_auth_url": f"{provider.url}/authorize"}
                        for section in ("channels.email", "smtp")})
    _consent(oauth2_desk, "email")
    _consent(oauth2_desk, "smtp")
    assert env.run_once().returncode == 0
    assert env.count("SELECT count(*) FROM messages WHERE channel = 'email'") == 1
    assert any("dpupr@banyumas.example" in m.rcpt_tos for m in env.sink.wait_for(1))
    status = env.cli_json("status")
    assert status["oauth2"]["email"]["error"] is None and status["oauth2"]["smtp"]["error"] is None
    assert status["oauth2"]["email"]["refresh_token"] == "stored"


def test_invalid_grant_for_smtp_keeps_the_forward_waiting(oauth2_desk: OAuth2Desk) -> None:
    env, provider = oauth2_desk.env, oauth2_desk.provider
    del provider.refresh_tokens[oauth2_desk.tokens["smtp"]]
    env.append(make_mail(*ROAD))
    run = env.run_once()
    assert env.count("SELECT count(*) FROM outbox WHERE status = 'pending'") >= 1
    assert env.count("SELECT count(*) FROM outbox WHERE status = 'failed'") == 0
    problems = " | ".join(env.cli_json("status")["problems"])
    assert "OAuth2 login for [smtp]" in problems and "--for smtp" in problems
    assert env.sink.messages == []
    oauth2_desk.assert_no_secret(run.stdout, run.stderr, problems)


def test_an_unreachable_token_endpoint_is_a_transient_failure(oauth2_desk: OAuth2Desk) -> None:
    env = oauth2_desk.env
    env.write_config(**{"channels.email": {"oauth2_token_url": "http://127.0.0.1:9/token"}})
    env.append(make_mail(*ROAD))
    run = env.run_once()
    assert run.returncode == 1
    status = env.cli_json("status")
    assert status["channels"]["email"]["state"] == "error"
    assert "unreachable" in status["channels"]["email"]["last_error"]
    oauth2_desk.assert_no_secret(run.stdout, run.stderr, json.dumps(status))


def _consent(oauth2_desk: OAuth2Desk, use: str) -> tuple[str, str]:
    """`lapakd oauth2-token --for USE` as an operator runs it: open the printed URL (the
    provider consents at once and redirects), paste the redirected URL. (stdout, stderr)"""
    env, provider = oauth2_desk.env, oauth2_desk.provider
    proc = subprocess.Popen(
        [sys.executable, "-m", "lapakd.cli", "oauth2-token", "--for", use,
         "--config", str(env.config)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=env.root, env=os.environ.copy(),
    )
    assert proc.stdout is not None and proc.stdin is not None
    url = proc.stdout.readline().strip()
    assert url.startswith(f"{provider.url}/authorize?") and "code_challenge=" in url
    consent = requests.get(url, allow_redirects=False, timeout=10)  # the operator's browser
    redirected = consent.headers["Location"]
    assert redirected.startswith("http://localhost?code=")
    out, err = proc.communicate(redirected + "\n", timeout=60)
    assert proc.returncode == 0, err
    return out, err


def test_oauth2_token_command_stores_the_first_refresh_token(oauth2_desk: OAuth2Desk) -> None:
    env, provider = oauth2_desk.env, oauth2_desk.provider
    env.write_config(**{"channels.email": {
        "oauth2_refresh_token": "", "oauth2_auth_url": f"{provider.url}/authorize",
        "oauth2_scope": "mail"}})
    out, err = _consent(oauth2_desk, "email")
    assert out.strip().startswith("Stored the refresh token for [channels.email] in ")
    state_file = env.data_dir / "oauth2" / "email.json"
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
    [grant] = provider.token_posts("authorization_code")
    assert grant["code_verifier"] and grant["redirect_uri"] == "http://localhost"

    env.append(make_mail(*ROAD))
    assert env.run_once().returncode == 0
    assert env.count("SELECT count(*) FROM messages WHERE channel = 'email'") == 1
    oauth2_desk.assert_no_secret(out, err)


def test_oauth2_token_command_refuses_a_wrong_code(oauth2_desk: OAuth2Desk) -> None:
    env, provider = oauth2_desk.env, oauth2_desk.provider
    env.write_config(**{"channels.email": {"oauth2_auth_url": f"{provider.url}/authorize"}})
    proc = subprocess.run(
        [sys.executable, "-m", "lapakd.cli", "oauth2-token", "--config", str(env.config)],
        input="code-tebakan\n", capture_output=True, text=True, timeout=60, cwd=env.root)
    assert proc.returncode == 2
    [line] = proc.stderr.strip().splitlines()[-1:]
    assert "invalid_grant" in line and "Traceback" not in proc.stderr
    assert not (env.data_dir / "oauth2" / "email.json").exists()


# -- without servers ---------------------------------------------------------------------------


def _config(tmp_path: Path, smtp: str) -> Path:
    path = tmp_path / "lapakd.toml"
    path.write_text('[desk]\nemail = "a@b.example"\nadmin_email = "c@b.example"\n\n'
                    f"[smtp]\n{smtp}\n")
    return path


@pytest.mark.parametrize(("keys", "missing"), [
    ('auth = "oauth2"\nusername = "u@b.example"\noauth2_client_id = "x"', "oauth2_token_url"),
    ('auth = "oauth2"\nusername = "u@b.example"\n'
     'oauth2_token_url = "https://oauth2.googleapis.com/token"', "oauth2_client_id"),
    ('auth = "oauth2"\noauth2_client_id = "x"\n'
     'oauth2_token_url = "https://oauth2.googleapis.com/token"', "username"),
])
def test_oauth2_without_a_needed_key_is_one_config_line(
    tmp_path: Path, keys: str, missing: str
) -> None:
    path = _config(tmp_path, keys)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert f"smtp.{missing} is required with smtp.auth = \"oauth2\"" in message
    assert "line 6" in message and "\n" not in message


def test_oauth2_secrets_come_from_files_like_every_secret(tmp_path: Path) -> None:
    (tmp_path / "rt").write_text("rt-dari-berkas\n")
    (tmp_path / "cs").write_text("cs-dari-berkas\n")
    path = _config(tmp_path, 'auth = "oauth2"\nusername = "u@b.example"\noauth2_client_id = "x"\n'
                   'oauth2_token_url = "https://oauth2.googleapis.com/token"\n'
                   'oauth2_refresh_token_file = "rt"\noauth2_client_secret_file = "cs"')
    cfg = load_config(path)
    assert cfg.smtp.oauth2_refresh_token == "rt-dari-berkas"
    assert cfg.smtp.oauth2_client_secret == "cs-dari-berkas"
    settings = oauth2.OAuth2Settings.from_section("smtp", cfg.smtp, cfg.data_dir)
    assert "rt-dari-berkas" not in repr(settings) and "cs-dari-berkas" not in repr(settings)


def test_google_and_microsoft_authorization_urls_and_scopes_are_derived(tmp_path: Path) -> None:
    def settings(use: str, token_url: str) -> oauth2.OAuth2Settings:
        cfg = parse_config({"desk": {"email": "a@b.example", "admin_email": "c@b.example"},
                            "smtp": {"auth": "oauth2", "username": "u@b.example",
                                     "oauth2_client_id": "x", "oauth2_token_url": token_url}},
                           tmp_path / "lapakd.toml")
        return oauth2.OAuth2Settings.from_section(use, cfg.smtp, tmp_path)

    google = settings("smtp", "https://oauth2.googleapis.com/token")
    assert google.authorization_url() == "https://accounts.google.com/o/oauth2/v2/auth"
    assert google.effective_scope() == "https://mail.google.com/"
    ms = settings("email", "https://login.microsoftonline.com/contoso/oauth2/v2.0/token")
    assert ms.authorization_url() == (
        "https://login.microsoftonline.com/contoso/oauth2/v2.0/authorize")
    assert ms.effective_scope() == (
        "https://outlook.office.com/IMAP.AccessAsUser.All offline_access")
    other = settings("smtp", "https://idp.example/token")
    assert other.authorization_url() == "" and other.effective_scope() == ""


def test_the_code_is_taken_from_a_pasted_url_or_alone() -> None:
    assert oauth2.code_from_answer("  abc123 \n", "s1") == "abc123"
    assert oauth2.code_from_answer("http://localhost/?code=4%2F0Ab&state=s1", "s1") == "4/0Ab"
    with pytest.raises(oauth2.OAuth2Error, match="state"):
        oauth2.code_from_answer("http://localhost/?code=x&state=other", "s1")
    with pytest.raises(oauth2.OAuth2Error, match="access_denied"):
        oauth2.code_from_answer("http://localhost/?error=access_denied&state=s1", "s1")


def test_processes_refreshing_at_once_never_use_a_rotated_token_twice(
    tmp_path: Path, oauth2_provider: OAuth2Provider,
) -> None:
    """The daemon, the burst's sender and an admin's `run --once` each have their own token
    source; with a provider that rotates refresh tokens they must take turns (each the token
    the previous one stored), or all but one are told invalid_grant."""
    import threading

    oauth2_provider.rotate = True
    user = "desk-rotasi@lapak.test"
    cfg = parse_config({
        "desk": {"email": "a@b.example", "admin_email": "c@b.example"},
        "paths": {"data_dir": str(tmp_path / "var")},
        "smtp": {"auth": "oauth2", "username": user,
                 "oauth2_token_url": oauth2_provider.token_url,
                 "oauth2_client_id": oauth2_provider.client_id,
                 "oauth2_client_secret": oauth2_provider.client_secret,
                 "oauth2_refresh_token": oauth2_provider.grant(user)},
    }, tmp_path / "lapakd.toml")
    settings = oauth2.OAuth2Settings.from_section("smtp", cfg.smtp, cfg.data_dir)
    sources = [oauth2.TokenSource(settings) for _ in range(6)]  # as in six processes
    start = threading.Barrier(len(sources))
    outcomes: list[object] = []

    def refresh(source: oauth2.TokenSource) -> None:
        start.wait()
        try:
            outcomes.append(source.access_token()[0])
        except oauth2.OAuth2Error as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=refresh, args=(s,)) for s in sources]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(outcomes) == 6 and all(isinstance(o, str) for o in outcomes), outcomes
    stored, origin = oauth2.current_refresh_token(settings)
    assert origin == "stored" and stored in oauth2_provider.refresh_tokens
