"""Instagram end to end: DMs, comments on the account's media, tags; replies; webhook dedupe."""

from __future__ import annotations

import pytest
from metaenv import IG, complaints, configure, health, retry_now, rows, start_webhook

from lapakd.embedded.replica import graph as R
from lapakd.embedded.replica.graph import send_webhook


@pytest.fixture
def replica():
    with R.GraphReplica(page_size=2) as rep:
        rep.seed()
        yield rep


@pytest.fixture
def ig(desk_env, replica):
    configure(desk_env, replica, instagram=IG)
    return desk_env


def test_dms_comments_and_tags_become_complaints_and_are_answered(ig, replica):
    replica.ig_dm("17860000000000001", "warga_kembaran", "Selamat siang admin")
    replica.ig_dm("17860000000000001", "warga_kembaran", "Sampah di TPS Kembaran menumpuk")
    replica.ig_tag("warga_ajibarang", "Jalan berlubang di Ajibarang @lapakaduanbms")
    ig.run_once()
    found = complaints(ig)
    assert len(found) == 3  # DM chat, the seeded comment, the tagged post
    dm = next(c for c in found if c["conversation"])
    assert dm["conversation"] == "ig:17860000000000001"
    assert "Kembaran" in dm["text"] and dm["status"] == "forwarded"
    paths = sorted(p["path"] for p in replica.posted)
    assert f"{R.PAGE_ID}/messages" in paths
    assert any(p.endswith("/replies") for p in paths)  # comment answered in its thread
    assert f"{R.IG_USER_ID}/mentions" in paths  # tagged media answered with a mention reply
    tagged = next(c for c in found if "Ajibarang" in c["text"])
    assert rows(ig, "SELECT COUNT(*) AS n FROM attachments WHERE complaint_id = ?",
                tagged["id"])[0]["n"] == 1
    ig.run_once()
    assert len(replica.posted) == 3 and len(complaints(ig)) == 3


def test_incremental_and_dedupe_with_webhook(ig, replica):
    ig.run_once()
    media = replica.ig_post("Info layanan")
    cid = replica.ig_comment(media, "17850000000000009", "warga_wangon", "Ada pungli di pasar")
    configure(ig, replica, instagram={**IG, "app_secret": R.APP_SECRET})
    server = start_webhook(ig)
    try:
        body = {"object": "instagram", "entry": [{"id": R.IG_USER_ID, "time": 1, "changes": [{
            "field": "comments", "value": {"id": cid, "text": "Ada pungli di pasar",
                                           "from": {"id": "17850000000000009",
                                                    "username": "warga_wangon"},
                                           "media": {"id": media}}}]}]}
        assert send_webhook(server.url, body)[0] == 200
    finally:
        server.stop()
    ig.run_once()
    ids = [r["external_id"] for r in rows(ig, "SELECT external_id FROM messages")]
    assert ids.count(cid) == 1
    assert len(complaints(ig)) == 2


def test_expired_token_and_throttling(ig, replica):
    replica.throttle(1, code=4)
    ig.run_once()
    assert health(ig, "instagram")["state"] == "paused"
    retry_now(ig, "instagram")
    replica.expire_token()
    ig.run_once()
    assert health(ig, "instagram")["state"] == "needs_reauth"
