"""Tokens that expire: the daily debug_token check of Meta tokens (the real facebook-sdk against
the Graph replica), the admin's alerts (once per token and event, through the sink), what
`lapakd status` shows, and X's 401 (the real tweepy against the X replica)."""

from __future__ import annotations

import json
from contextlib import closing
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from deskenv import ADMIN_EMAIL
from lapakd.adapters.graph import GraphClient
from metaenv import FB, IG, configure, retry_now

from lapakd import daemon
from lapakd.app import Desk
from lapakd.config import load_config
from lapakd.embedded.replica import graph as R
from lapakd.monitor import tokens

APP = {"app_id": R.APP_ID, "app_secret": R.APP_SECRET}


def alerts(env) -> list:
    return [m.message for m in env.sink.messages if ADMIN_EMAIL in m.rcpt_tos]


def run_at(env, when: datetime) -> None:
    """One `run --once` at that moment (in this process, under time-machine)."""
    with time_machine.travel(when, tick=True):
        desk = Desk.open(str(env.config))
        try:
            daemon.run_once(desk)
        finally:
            desk.close()


def status(env) -> dict:
    return env.cli_json("status")


def debug_calls(replica) -> int:
    return sum(r.endswith("/debug_token") for r in replica.requests)


def test_debug_token_answers_the_real_shape_through_facebook_sdk(desk_env, replica):
    configure(desk_env, replica, facebook={**FB, **APP})
    section = load_config(desk_env.config).channels["facebook"]
    client = GraphClient("facebook", section)
    try:
        data = client.debug_token()
        assert data["is_valid"] is True and data["type"] == "PAGE"
        assert data["expires_at"] == 0 and data["profile_id"] == R.PAGE_ID
        assert {"app_id", "application", "data_access_expires_at", "issued_at", "scopes",
                "user_id"} <= set(data)
        replica.revoke_token()
        bad = client.debug_token()  # the app's token can still describe the dead page token
        assert bad["is_valid"] is False and bad["scopes"] == []
        assert bad["error"]["code"] == 190 and bad["error"]["subcode"] == 460
    finally:
        client.close()
    assert any(r == "GET v21.0/debug_token" for r in replica.requests)  # the version in the path


def test_expiring_token_alerts_the_admin_once_seven_days_before(desk_env, replica):
    configure(desk_env, replica, facebook=FB)
    now = datetime.now(UTC).replace(microsecond=0)
    expires = now + timedelta(days=30)
    replica.set_token(expires_at=expires)
    run_at(desk_env, expires - timedelta(days=7, hours=12))  # 7.5 days before: not yet
    assert alerts(desk_env) == []
    run_at(desk_env, expires - timedelta(days=7, hours=12) + timedelta(hours=6))
    assert debug_calls(replica) == 1  # once a day, not at every run
    run_at(desk_env, expires - timedelta(days=6, hours=12))  # a day later: 6.5 days before
    run_at(desk_env, expires - timedelta(days=5, hours=12))  # and the next day
    assert debug_calls(replica) == 3
    [alert] = alerts(desk_env)  # one alert for the event, not one a day
    day = expires.astimezone(load_config(desk_env.config).tz).date().isoformat()
    assert alert["Subject"].endswith(f"Channel facebook: access token expires on {day}")
    body = alert.get_body(("plain",)).get_content()
    assert "channels.facebook.access_token" in body and R.TOKEN not in body
    # At real time the token has 30 days left: shown, and not a problem.
    data = status(desk_env)
    token = data["channels"]["facebook"]["token"]
    assert token["state"] == "valid" and token["expires_at"] is not None
    assert not any("token" in p for p in data["problems"])
    text = desk_env.cli("status", check=False).stdout
    assert f"token expires {day} (29 days)" in text or f"token expires {day} (30 days)" in text


def test_token_inside_seven_days_is_a_status_problem(desk_env, replica):
    configure(desk_env, replica, facebook=FB)
    replica.set_token(expires_at=datetime.now(UTC) + timedelta(days=3, hours=1))
    desk_env.run_once()
    data = status(desk_env)
    assert data["channels"]["facebook"]["token"]["state"] == "expiring"
    assert any("channel facebook: access token expires" in p and "(3 days)" in p
               for p in data["problems"])
    assert len(alerts(desk_env)) == 1


@pytest.mark.parametrize("app", [APP, {}], ids=["app-token", "token-asks-itself"])
def test_revoked_token_alerts_at_once_and_status_shows_invalid(desk_env, replica, app):
    configure(desk_env, replica, facebook={**FB, **app}, instagram={**IG, **app})
    desk_env.run_once()
    data = status(desk_env)
    assert data["channels"]["facebook"]["token"]["text"] == "never expires"
    assert not any("token" in p for p in data["problems"])
    replica.revoke_token()  # the page admin changed their password
    desk_env.run_once()
    data = status(desk_env)
    for name in ("facebook", "instagram"):
        token = data["channels"][name]["token"]
        assert token["state"] == "invalid" and token["invalid_since"]
    with desk_env.db() as db:
        checks = {r["channel"]: dict(r) for r in db.execute("SELECT * FROM token_checks")}
    assert checks["facebook"]["state"] == "invalid"
    assert "changed their password" in checks["facebook"]["reason"]
    text = desk_env.cli("status", check=False).stdout
    assert "token INVALID since" in text
    # Polls (error 190) and the token check noticed it on two channels: the same token is
    # told once.
    retry_now(desk_env, "facebook")
    desk_env.run_once()
    [alert] = alerts(desk_env)
    assert "needs new credentials" in alert["Subject"]
    body = alert.as_string()
    assert R.TOKEN not in body and R.APP_SECRET not in body


def test_a_new_token_in_the_config_is_checked_at_once(desk_env, replica):
    configure(desk_env, replica, facebook=FB)
    desk_env.run_once()
    desk_env.run_once()
    assert debug_calls(replica) == 1
    replica.renew_token("replica-page-token-2")
    replica.set_token("replica-page-token-2", expires_at=datetime.now(UTC) + timedelta(days=60))
    desk_env.write_config(**{"channels.facebook": {"access_token": "replica-page-token-2"}})
    desk_env.run_once()
    assert debug_calls(replica) == 2
    token = status(desk_env)["channels"]["facebook"]["token"]
    assert token["state"] == "valid" and token["days_left"] in (59, 60)


def test_a_failed_check_is_kept_and_retried_not_believed(desk_env, replica):
    configure(desk_env, replica, facebook=FB)
    with closing(Desk.open(str(desk_env.config))) as desk:
        replica.fail(1, html=True)
        assert tokens.check_channel(desk, "facebook")["state"] == "unknown"
        token = status(desk_env)["channels"]["facebook"]["token"]
        assert token["state"] == "unknown" and "502" in token["error"]
        assert tokens.check_due(desk) == 0  # retried within the hour, not at once
    assert alerts(desk_env) == []


def test_x_401_is_one_alert_a_channel_problem_and_backs_off(desk_env, x):
    desk_env.write_config(**{"channels.twitter": x.channel_config(page_size=10)})
    x.seed_sample()
    desk_env.run_once()
    assert status(desk_env)["channels"]["twitter"]["token"]["text"] == "never expires"
    x.revoke_tokens()
    desk_env.run_once()
    asked = sum(r["endpoint"] == "mentions" for r in x.requests)
    desk_env.run_once()
    desk_env.run_once()
    # Backing off: no request to X until the hour is over; one alert, not one per run.
    assert sum(r["endpoint"] == "mentions" for r in x.requests) == asked
    data = status(desk_env)
    twitter = data["channels"]["twitter"]
    assert twitter["state"] == "needs_reauth" and twitter["token"]["state"] == "invalid"
    assert any("channel twitter is needs_reauth" in p for p in data["problems"])
    with desk_env.db() as db:
        next_try = db.execute("SELECT next_try_at FROM channel_health"
                              " WHERE channel = 'twitter'").fetchone()[0]
    assert datetime.fromisoformat(next_try) - datetime.now(UTC) > timedelta(minutes=50)
    [alert] = alerts(desk_env)
    assert "twitter" in alert["Subject"]
    assert "token INVALID since" in desk_env.cli("status", check=False).stdout


def test_status_json_keeps_the_token_for_every_social_channel(desk_env, replica):
    configure(desk_env, replica, facebook=FB)
    data = status(desk_env)
    assert data["channels"]["facebook"]["token"]["state"] == "unknown"
    assert "token" not in data["channels"]["email"]
    json.dumps(data)


def test_new_keys_end_the_hours_wait_at_once(desk_env, replica, x):
    configure(desk_env, replica, facebook=FB)
    desk_env.write_config(**{"channels.twitter": x.channel_config(page_size=10)})
    desk_env.run_once()
    replica.revoke_token()
    x.revoke_tokens()
    desk_env.run_once()
    data = status(desk_env)
    assert {data["channels"][n]["state"] for n in ("facebook", "twitter")} == {"needs_reauth"}
    # The operator puts new keys in lapakd.toml: the next run tries them, not in an hour.
    replica.renew_token("replica-page-token-2")
    x.restore_tokens()
    desk_env.write_config(**{"channels.facebook": {"access_token": "replica-page-token-2"},
                             "channels.twitter": {"bearer_token": ""}})  # user keys only now
    desk_env.run_once()  # the daily jobs see the new keys after this run's polls
    desk_env.run_once()
    data = status(desk_env)
    assert data["channels"]["facebook"]["state"] == "ok"
    assert data["channels"]["facebook"]["token"]["state"] == "valid"
    assert data["channels"]["twitter"]["state"] == "ok"
    assert len(alerts(desk_env)) == 2  # one per dead credential
