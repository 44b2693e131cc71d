"""Adding a channel is one adapter and one registry line: a toy channel, registered in the test.

Nothing else in lapakd is edited: the config accepts `[channels.toy]` (validated against the
toy's CONFIG), `lapakd run --once` polls it and routes what it brought, the outbox answers on it,
and `/webhook` hands bodies whose `object` is the toy's to its `webhook_messages`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from lapakd.adapters.base import Adapter, Batch, Content, Inbound
from metaenv import rows

from lapakd import channels
from lapakd.channels import Channel
from lapakd.cli import main
from lapakd.config import Field
from lapakd.embedded.replica.graph import send_webhook
from lapakd.links import ticket_url

SECRET = "toy-app-secret"
SENT: list[dict[str, Any]] = []  # what the toy channel was asked to send


class ToyAdapter(Adapter):
    """Polls a text file (one complaint a line) and takes webhook bodies `{"object": "toy"}`."""

    name = "toy"
    webhook_object = "toy"
    CONFIG: ClassVar[dict[str, Field]] = {
        "inbox": Field(str, "", path=True),
        "poll_seconds": Field(int, 1),
        "acknowledge": Field(bool, True),
        "app_secret": Field(str, "", secret=True),
        "verify_token": Field(str, "", secret=True),
    }

    def fetch(self, cursor: dict[str, Any] | None) -> Iterator[Batch]:
        lines = Path(self.section.inbox).read_text(encoding="utf-8").splitlines()
        done = (cursor or {}).get("lines", 0)
        new = [_inbound(f"line-{n}", {"from": f"warga-{n}", "text": text})
               for n, text in enumerate(lines) if n >= done]
        if new:
            yield Batch(new, {"lines": len(lines)})

    def webhook_messages(self, body: dict[str, Any]) -> list[Inbound]:
        return [_inbound(f"hook-{m['id']}", m) for m in body["messages"]]

    def parse(self, raw: bytes, meta: dict[str, Any]) -> Content:
        doc = json.loads(raw)
        return Content(kind="complaint", text=doc["text"], sender=doc["from"],
                       reply_ref={"to": doc["from"]})

    def send(self, kind: str, payload: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        SENT.append({"kind": kind, **payload})
        return {"toy_id": len(SENT)}


def _inbound(external_id: str, doc: dict[str, Any]) -> Inbound:
    return Inbound(external_id, json.dumps(doc).encode(), "json")


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The one registry line, at run time (and gone after the test)."""
    monkeypatch.setattr(channels, "REGISTRY", dict(channels.REGISTRY))
    channels.register(Channel("toy", "Mainan", adapter=ToyAdapter))
    SENT.clear()
    yield


def _complaints(env: Any) -> list[dict[str, Any]]:
    return rows(env, "SELECT ticket, channel, status, agencies, sender FROM complaints"
                     " ORDER BY id")


def test_a_polled_toy_channel_is_stored_routed_and_answered(desk_env, toy, tmp_path):
    inbox = tmp_path / "toy-inbox.txt"
    inbox.write_text("Sampah menumpuk di TPS Pasar Wage sudah tiga hari\n", encoding="utf-8")
    desk_env.write_config(**{"channels.email": {"enabled": False},
                             "channels.toy": {"enabled": True, "inbox": str(inbox)}})

    assert main(["run", "--once", "--config", str(desk_env.config)]) == 0

    [msg] = rows(desk_env, "SELECT channel, external_id, state FROM messages")
    assert msg["channel"] == "toy" and msg["external_id"] == "line-0"
    [c] = _complaints(desk_env)
    assert c["channel"] == "toy" and c["status"] == "forwarded"
    assert json.loads(c["agencies"]) == ["dlh"] and c["sender"] == "warga-0"
    # The forward names the channel by its registered label...
    (fwd,) = desk_env.sink.wait_for(1)
    assert fwd.rcpt_tos == ["dlh@banyumas.example"]
    assert "Mainan" in fwd.message.get_body(("plain",)).get_content()
    # ...and the citizen's receipt went out on the toy channel itself, with the ticket's page.
    [ack] = SENT
    assert ack["kind"] == "ack" and ack["reply_ref"] == {"to": "warga-0"}
    assert ticket_url("https://lapakaduan.example", c["ticket"]) in ack["text"]


def test_a_pushed_toy_channel_is_received_by_the_webhook(desk_env, toy, tmp_path):
    from metaenv import start_webhook

    inbox = tmp_path / "toy-inbox.txt"
    inbox.write_text("", encoding="utf-8")
    desk_env.write_config(**{
        "webhook": {"listen": "127.0.0.1:0"},
        "channels.email": {"enabled": False},
        "channels.toy": {"enabled": True, "inbox": str(inbox), "app_secret": SECRET},
    })
    body = {"object": "toy", "messages": [
        {"id": "m1", "from": "warga-web", "text": "Sampah di TPS Karangsalam belum diangkut"}]}
    server = start_webhook(desk_env)
    try:
        status, answer = send_webhook(server.url, body, app_secret=SECRET)
        assert status == 200 and json.loads(answer)["stored"] == 1
        # A body for an object no channel declares is kept and quarantined, as before.
        status, answer = send_webhook(server.url, {"object": "nobody"}, app_secret=SECRET)
        assert status == 200 and json.loads(answer)["status"] == "quarantined"
    finally:
        server.stop()

    assert main(["run", "--once", "--config", str(desk_env.config)]) == 0

    stored = rows(desk_env, "SELECT channel, external_id FROM messages ORDER BY id")
    assert stored[0] == {"channel": "toy", "external_id": "hook-m1"}
    [c] = _complaints(desk_env)
    assert c["channel"] == "toy" and c["status"] == "forwarded" and c["sender"] == "warga-web"
    assert [s["kind"] for s in SENT] == ["ack"]


def test_the_registry_is_the_one_place_that_knows_the_channels(toy):
    assert channels.webhook_objects() == {
        "page": "facebook", "instagram": "instagram",
        "whatsapp_business_account": "whatsapp", "toy": "toy"}
    assert "toy" in channels.configurable() and "toy" in channels.known()
    assert channels.config_schema("toy") is ToyAdapter.CONFIG
    assert channels.label("toy") == channels.long_label("toy") == "Mainan"
    assert channels.labels()["twitter"] == "X" and channels.long_label("twitter") == "X (Twitter)"
    assert channels.entered_by_hand() == ["walkin", "phone"]


def test_one_label_per_status_for_mails_and_the_site():
    from lapakd import statuses

    for key in statuses.KEYS:
        assert statuses.heading(key).lower() == statuses.label(key)
    groups = (statuses.OPEN, statuses.CLOSED, statuses.ANSWERS, statuses.SETTLED,
              statuses.SETTABLE, statuses.AWAITING_ANSWER, statuses.DEADLINE_RUNNING,
              statuses.UNPUBLISHED)
    assert all(set(g) <= set(statuses.KEYS) for g in groups)
    assert statuses.heading("answered") == "Ditanggapi"
