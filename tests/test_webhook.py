"""The /webhook endpoint over real waitress: signatures, handshake, limits, store-before-200."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
from metaenv import WA, configure, rows, start_webhook

from lapakd.embedded.replica import graph as R
from lapakd.embedded.replica.graph import merge, send_webhook
from lapakd.intake.webhook import signature

VECTOR = Path("/work/shared/reference/meta/whatsapp_signature_vector")


def stored(env) -> list[dict]:
    return rows(env, "SELECT channel, external_id, state, kind, error FROM messages ORDER BY id")


@pytest.mark.skipif(not VECTOR.exists(), reason="reference vector not available")
def test_hmac_matches_metas_real_signature(desk_env, replica):
    vector = json.loads((VECTOR / "vector.json").read_text())
    body = (VECTOR / vector["body_file"]).read_bytes()
    assert signature(vector["app_secret"], body) == vector["x_hub_signature_256"]
    # And the endpoint accepts Meta's real body with Meta's real header.
    configure(desk_env, replica, whatsapp={**WA, "app_secret": vector["app_secret"]})
    server = start_webhook(desk_env)
    try:
        status, _ = send_webhook(server.url, body, signature_value=vector["x_hub_signature_256"])
        assert status == 200
        status, _ = send_webhook(server.url, body + b" ",
                                 signature_value=vector["x_hub_signature_256"])
        assert status == 403
    finally:
        server.stop()
    [msg] = stored(desk_env)
    assert msg["external_id"].startswith("wamid.HBgMOTcyNTQ0NDAxMjQz")


def test_good_signature_is_stored_before_200_and_replays_dedupe(desk_env, replica, hook):
    a = replica.whatsapp_text_body("6281234567001", "Budi", "Jalan berlubang di Karangsalam")
    b = replica.whatsapp_text_body("6281234567002", "Sri", "Sampah menumpuk di TPS Pasar Wage")
    body = merge(a, b)
    status, answer = send_webhook(hook.url, body)
    assert status == 200 and json.loads(answer)["stored"] == 2
    # Stored (committed) when the 200 arrived: another connection sees both.
    assert len(stored(desk_env)) == 2
    for _ in range(3):  # Meta retries: nothing new
        status, answer = send_webhook(hook.url, body)
        assert status == 200 and json.loads(answer)["stored"] == 0
    assert len(stored(desk_env)) == 2


@pytest.mark.parametrize("how", ["bad", "missing", "other-secret", "sha1-style"])
def test_unsigned_or_badly_signed_bodies_are_refused(desk_env, replica, hook, how):
    body = json.dumps(replica.whatsapp_text_body("6281234567001", "Budi", "Halo")).encode()
    kwargs = {
        "bad": {"signature_value": "sha256=" + "0" * 64},
        "missing": {"sign": False},
        "other-secret": {"app_secret": "not-the-secret"},
        "sha1-style": {"signature_value": signature(R.APP_SECRET, body).replace("sha256", "sha1")},
    }[how]
    status, answer = send_webhook(hook.url, body, **kwargs)
    assert status == 403
    assert "X-Hub-Signature-256" in json.loads(answer)["error"]
    assert stored(desk_env) == []


def test_oversized_body_is_refused_and_nothing_stored(desk_env, replica):
    configure(desk_env, replica, whatsapp=WA)
    desk_env.write_config(webhook={"max_body_bytes": 2048})
    server = start_webhook(desk_env)
    try:
        body = replica.whatsapp_text_body("6281234567001", "Budi", "x" * 5000)
        status, _ = send_webhook(server.url, body)
        assert status == 413
    finally:
        server.stop()
    assert stored(desk_env) == []


def test_verification_handshake(hook):
    ok = f"{hook.url}?hub.mode=subscribe&hub.verify_token={R.VERIFY_TOKEN}&hub.challenge=1158201444"
    with urllib.request.urlopen(ok, timeout=10) as resp:
        assert resp.status == 200 and resp.read() == b"1158201444"
    for bad in (f"{hook.url}?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1",
                f"{hook.url}?hub.mode=unsubscribe&hub.verify_token={R.VERIFY_TOKEN}"
                "&hub.challenge=1",
                f"{hook.url}?hub.challenge=1"):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(bad, timeout=10)
        assert err.value.code == 403


def test_only_the_webhook_path_is_served(hook):
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(hook.url.replace("/webhook", "/admin"), timeout=10)
    assert err.value.code == 404


@pytest.mark.parametrize("body", [
    b"{not json",
    b"[1, 2, 3]",
    json.dumps({"object": "whatsapp_business_account", "entry": [{"changes": [
        {"field": "messages", "value": {"messages": [{"from": "62812", "type": "text"}]}}]}]}
    ).encode(),  # a message without an id
    json.dumps({"object": "whatsapp_business_account", "entry": "not a list"}).encode(),
    json.dumps({"object": "telegram", "entry": []}).encode(),
])
def test_signed_but_unreadable_bodies_are_kept_and_quarantined(desk_env, hook, body):
    status, answer = send_webhook(hook.url, body)
    assert status == 200
    assert json.loads(answer)["status"] == "quarantined"
    [msg] = stored(desk_env)
    assert msg["external_id"].startswith("body:") and msg["state"] == "pending"
    raw = rows(desk_env, "SELECT raw FROM messages")[0]["raw"]
    assert bytes(raw) == body  # nothing lost: the exact bytes
    hook.stop()
    desk_env.run_once()
    [msg] = stored(desk_env)
    assert msg["state"] == "quarantined"
    assert "malformed webhook body" in msg["error"]
    # The retry Meta might still send does not make a second copy.
    assert desk_env.count("SELECT COUNT(*) FROM complaints") == 0


@pytest.mark.parametrize("depth", [200_000, 5_000])
def test_deeply_nested_signed_body_is_kept_and_quarantined(desk_env, hook, depth):
    # Signed, within max_body_bytes, but nested deeper than any parser should follow.
    body = (b'{"object": "whatsapp_business_account", "entry": ' + b"[" * depth
            + b"]" * depth + b"}")
    status, answer = send_webhook(hook.url, body)
    assert status == 200, answer
    assert json.loads(answer)["status"] == "quarantined"
    [msg] = stored(desk_env)
    assert msg["external_id"].startswith("body:")
    assert bytes(rows(desk_env, "SELECT raw FROM messages")[0]["raw"]) == body  # nothing lost
    assert send_webhook(hook.url, body)[0] == 200  # Meta's retry: still one copy
    assert len(stored(desk_env)) == 1
    hook.stop()
    desk_env.run_once()
    [msg] = stored(desk_env)
    assert msg["state"] == "quarantined" and "nested too deeply" in msg["error"]


def test_bodies_for_channels_not_enabled_are_answered_and_dropped(desk_env, replica, hook):
    # Only WhatsApp is enabled here: Facebook and Instagram bodies have nowhere to go.
    for platform in ("messenger", "instagram"):
        body = replica.messenger_webhook_body("7320000000000001", f"m_{platform}",
                                              "Jalan rusak di Kebasen, tolong dicek")
        status, answer = send_webhook(hook.url, body)
        assert status == 200 and json.loads(answer)["status"] == "ignored"
    assert stored(desk_env) == []
    hook.stop()
    desk_env.run_once()
    assert desk_env.count("SELECT COUNT(*) FROM complaints") == 0
    assert desk_env.sink.messages == []


def test_whatsapp_body_with_whatsapp_disabled_is_dropped(desk_env, replica):
    from metaenv import FB

    # Facebook pushes (it has the app secret); WhatsApp is configured but switched off.
    configure(desk_env, replica, facebook={**FB, "app_secret": R.APP_SECRET},
              whatsapp={**WA, "enabled": False})
    server = start_webhook(desk_env)
    try:
        body = replica.whatsapp_text_body("6281234567001", "Budi", "Sampah menumpuk di pasar")
        status, answer = send_webhook(server.url, body)
        assert status == 200 and json.loads(answer)["status"] == "ignored"
        page = replica.messenger_webhook_body("7320000000000001", "m_fb_ok", "Lampu jalan mati")
        status, answer = send_webhook(server.url, page)
        assert status == 200 and json.loads(answer)["stored"] == 1  # the enabled one still works
    finally:
        server.stop()
    assert [m["channel"] for m in stored(desk_env)] == ["facebook"]
