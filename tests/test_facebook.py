"""Facebook Page end to end: the real facebook-sdk polls the Graph replica over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from deskenv import TINY_JPEG
from metaenv import FB, complaints, configure, health, retry_now, rows, start_webhook

from lapakd.embedded.replica import graph as R
from lapakd.embedded.replica.graph import send_webhook


@pytest.fixture
def replica():
    with R.GraphReplica(page_size=2) as rep:  # small pages: every list is paged
        rep.seed()
        yield rep


@pytest.fixture
def fb(desk_env, replica):
    configure(desk_env, replica, facebook=FB)
    return desk_env


def stored_ids(env) -> list[str]:
    return [r["external_id"] for r in rows(env, "SELECT external_id FROM messages ORDER BY id")]


def test_first_poll_routes_chats_posts_and_comments_and_acknowledges_once(fb, replica):
    fb.run_once()
    found = complaints(fb)
    assert len(found) == 3  # the 2-message chat is one complaint; the comment and post one each
    chat = next(c for c in found if c["conversation"])
    assert chat["conversation"] == "fb:7301234567890123" and chat["sender_name"] == "Siti Rahayu"
    assert "PJU" in chat["text"] and "Alun-alun" in chat["text"]
    # The chat reads in the order it was written (Graph lists messages newest first).
    assert chat["text"].index("PJU") < chat["text"].index("Alun-alun")
    by_text = {c["text"][:12]: c for c in found}
    assert by_text["Jalan rusak "]["status"] == "forwarded"
    assert by_text["Sampah menum"]["status"] == "forwarded"
    paths = sorted(p["path"] for p in replica.posted)
    assert len(paths) == 3
    assert f"{R.PAGE_ID}/messages" in paths
    dm = next(p for p in replica.posted if p["path"] == f"{R.PAGE_ID}/messages")
    assert dm["recipient"] == {"id": "7301234567890123"}
    assert dm["messaging_type"] == "RESPONSE" and chat["ticket"] in dm["message"]["text"]
    assert sum(p["path"].endswith("/comments") for p in replica.posted) == 2
    fb.run_once()
    assert len(replica.posted) == 3 and len(complaints(fb)) == 3
    assert health(fb, "facebook")["state"] == "ok"


def test_incremental_poll_and_paging(fb, replica):
    fb.run_once()
    first = stored_ids(fb)
    assert len(first) == 4
    for n in range(5):  # 5 citizens: conversations span 3 pages of 2
        replica.messenger_message(f"73100000000000{n:02d}", f"Warga {n}",
                                  f"Jalan berlubang di RT 0{n} Karangsalam")
    post = replica.visitor_post("7311111111111111", "Rina", "Lampu PJU mati di Sokaraja")
    for n in range(3):
        replica.comment(post, f"73122222222222{n:02d}", f"Warga {n}", f"Sampah di TPS {n}")
    fb.run_once()
    new = [i for i in stored_ids(fb) if i not in first]
    assert len(new) == 5 + 1 + 3
    requests = len(replica.requests)
    fb.run_once()  # nothing new: nothing stored, the watermark stops the walk early
    assert len(stored_ids(fb)) == 4 + 9
    # Items at the watermark's second are read again (safe: ids dedupe); nothing is posted.
    assert not any(r.startswith("POST") for r in replica.requests[requests:])


def test_photo_in_messenger_is_attached(fb, replica):
    replica.messenger_message("7319999999999999", "Bayu", "Jalan berlubang, lihat fotonya",
                              photo=TINY_JPEG)
    fb.run_once()
    [att] = rows(fb, "SELECT content_type, size FROM attachments")
    assert att["content_type"] == "image/jpeg" and att["size"] == len(TINY_JPEG)


def test_throttling_pauses_the_channel_then_it_resumes(fb, replica):
    replica.throttle(1, code=32, minutes=2)
    fb.run_once()
    h = health(fb, "facebook")
    assert h["state"] == "paused" and "error 32" in h["last_error"]
    assert "access_token" not in h["last_error"] and R.TOKEN not in h["last_error"]
    next_try = datetime.fromisoformat(h["next_try_at"])
    assert next_try - datetime.now(UTC) > timedelta(seconds=90)  # estimated_time_to_regain
    assert complaints(fb) == []
    fb.run_once()  # still paused: not even asked
    assert health(fb, "facebook")["failures"] == 1
    retry_now(fb, "facebook")
    fb.run_once()
    assert len(complaints(fb)) == 3 and health(fb, "facebook")["state"] == "ok"


@pytest.mark.parametrize("code", [4, 17, 613])
def test_all_throttling_codes_back_off(fb, replica, code):
    replica.throttle(1, code=code)
    fb.run_once()
    assert health(fb, "facebook")["state"] == "paused"


def test_expired_token_flags_needs_reauth_and_alerts_once(fb, replica):
    replica.expire_token()
    fb.run_once()
    h = health(fb, "facebook")
    assert h["state"] == "needs_reauth" and "190" in h["last_error"]
    retry_now(fb, "facebook")
    fb.run_once()
    alerts = [m for m in fb.sink.messages if "credentials" in (m.message["Subject"] or "")]
    assert len(alerts) == 1
    status = fb.cli("status", check=False).stdout  # exit 1: something needs an admin
    assert "needs_reauth" in status
    replica.renew_token()
    retry_now(fb, "facebook")
    fb.run_once()
    assert health(fb, "facebook")["state"] == "ok" and len(complaints(fb)) == 3


@pytest.mark.parametrize("html", [True, False])
def test_5xx_is_retried(fb, replica, html):
    replica.fail(1, html=html)
    fb.run_once()
    h = health(fb, "facebook")
    assert h["state"] == "error" and h["failures"] == 1
    retry_now(fb, "facebook")
    fb.run_once()
    assert len(complaints(fb)) == 3


def test_poll_and_webhook_of_the_same_message_make_one_record(fb, replica):
    configure(fb, replica, facebook={**FB, "app_secret": R.APP_SECRET})
    server = start_webhook(fb)
    try:
        mid = replica.messenger_message("7320000000000001", "Yanto", "Jalan rusak di Kebasen")
        body = replica.messenger_webhook_body("7320000000000001", mid, "Jalan rusak di Kebasen")
        assert send_webhook(server.url, body)[0] == 200
        assert send_webhook(server.url, body)[0] == 200  # Meta's retry
    finally:
        server.stop()
    fb.run_once()
    assert stored_ids(fb).count(mid) == 1
    chats = [c for c in complaints(fb) if c["conversation"] == "fb:7320000000000001"]
    assert len(chats) == 1


def test_malformed_graph_objects_are_quarantined_not_lost(fb, replica):
    replica.messenger_message("7330000000000001", "X", "Jalan berlubang")
    conv = replica.conversations["t_7330000000000001"]
    conv.messages[0]["from"] = "not an object"
    conv.messages[0]["message"] = 12345
    fb.run_once()
    [msg] = rows(fb, "SELECT state, error FROM messages WHERE external_id = ?",
                 conv.messages[0]["id"])
    assert msg["state"] == "quarantined" and "message.from" in msg["error"]
    assert len(complaints(fb)) == 3  # the others went through
