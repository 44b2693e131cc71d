"""The X channel end to end: the real tweepy Client talks HTTP to the local X API replica; the
desk runs as `lapakd run --once` (a real process) on real SQLite and the session's SMTP sink."""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict

import pytest
from deskenv import ADMIN_EMAIL, TINY_JPEG

from lapakd.embedded.replica import x as xr
from lapakd.embedded.replica.x import XReplica


@pytest.fixture
def env(desk_env, x):
    desk_env.write_config(**{"channels.twitter": x.channel_config(page_size=10)})
    return desk_env


def mentions_requests(x: XReplica) -> list[dict]:
    return [r for r in x.requests if r["endpoint"] == "mentions"]


def forwards(env) -> dict[str, list]:
    out = defaultdict(list)
    for m in env.sink.messages:
        if ADMIN_EMAIL not in m.rcpt_tos:
            out[m.message["X-Lapakd-Ticket"]].append(m)
    return out


def tickets(env) -> dict[str, str]:
    """external_id -> ticket."""
    with env.db() as db:
        return {r[0]: r[1] for r in db.execute(
            "SELECT m.external_id, c.ticket FROM messages m JOIN complaints c"
            " ON c.id = m.complaint_id")}


def health(env) -> dict:
    # `lapakd status` exits 1 when something needs the admin; the JSON is what we check.
    out = env.cli("status", "--json", check=False).stdout
    return json.loads(out)["channels"]["twitter"]


def unpause(env) -> None:
    with env.db() as db:
        db.execute("UPDATE channel_health SET next_try_at = NULL")


# -- intake ------------------------------------------------------------------------------------


def test_first_poll_stores_routes_forwards_and_acknowledges(env, x):
    ids = x.seed_sample()
    photo = x.add_mention("Jalan berlubang di Jl. Jenderal Soedirman depan Alun-alun, ini "
                          "fotonya", "budi.santoso88", photos=[TINY_JPEG])
    env.run_once()

    assert env.count("SELECT count(*) FROM messages WHERE channel = 'twitter'") == len(ids) + 1
    by_tweet = tickets(env)
    assert set(by_tweet) == {f"tweet:{i}" for i in [*ids, photo]}
    with env.db() as db:
        c = db.execute("SELECT * FROM complaints WHERE ticket = ?",
                       (by_tweet[f"tweet:{photo}"],)).fetchone()
        assert c["status"] == "forwarded" and c["sender"] == "@budi.santoso88"
        assert c["sender_name"] == "Budi Santoso"
        assert c["text"].startswith("Jalan berlubang")  # the leading @lapakaduanbms is dropped
        assert json.loads(c["reply_ref"]) == {
            "type": "tweet", "tweet_id": photo, "author_id": "1700000000000000012",
            "username": "budi.santoso88"}
        (att,) = db.execute("SELECT * FROM attachments WHERE complaint_id = ?",
                            (c["id"],)).fetchall()
        assert att["content_type"] == "image/jpeg" and att["size"] == len(TINY_JPEG)
    # Every routed complaint reached its agency; the photo travelled with the forward.
    fw = forwards(env)
    routed = {t for e, t in by_tweet.items()}
    assert set(fw) <= routed and by_tweet[f"tweet:{photo}"] in fw
    (mail,) = fw[by_tweet[f"tweet:{photo}"]]
    jpegs = [p for p in mail.message.iter_attachments() if p.get_content_type() == "image/jpeg"]
    assert len(jpegs) == 1 and jpegs[0].get_content() == TINY_JPEG
    # Each citizen got one public reply with the ticket and the link, threaded to their post.
    replies = {r["in_reply_to"]: r for r in x.posted if r["status"] == 201}
    assert set(replies) == {i for i in [*ids, photo]}
    for tweet_id, reply in replies.items():
        ticket = by_tweet[f"tweet:{tweet_id}"]
        assert ticket in reply["body"]["text"] and "https://lapakaduan.example/aduan/" in \
            reply["body"]["text"]
        assert reply["body"]["reply"] == {"in_reply_to_tweet_id": tweet_id}
    assert health(env)["state"] == "ok"
    # Author and media expansions were asked for.
    q = mentions_requests(x)[0]["query"]
    assert "author_id" in q["expansions"] and "attachments.media_keys" in q["expansions"]
    assert "url" in q["media.fields"]


def test_incremental_poll_uses_since_id(env, x):
    first = x.seed_sample()
    env.run_once()
    newest = max(first, key=int)
    new = [x.add_mention("Sampah di TPS Karanglewas belum diangkut"),
           x.add_mention("Jalan rusak di Desa Pageraji")]
    before = len(mentions_requests(x))
    env.run_once()
    later = mentions_requests(x)[before:]
    assert later[0]["query"]["since_id"] == newest
    assert env.count("SELECT count(*) FROM messages WHERE channel = 'twitter'") == len(first) + 2
    with env.db() as db:
        cursor = json.loads(db.execute(
            "SELECT value FROM cursors WHERE channel = 'twitter'").fetchone()[0])
    assert cursor["mentions"] == {"since_id": max(new, key=int)}


def test_paging_follows_next_token_until_caught_up(env, x):
    env.write_config(**{"channels.twitter": {"page_size": 5}})
    ids = x.seed_many(23)
    env.run_once()
    reqs = mentions_requests(x)
    assert len(reqs) == 5  # 5 + 5 + 5 + 5 + 3
    assert all(r["query"]["max_results"] == "5" for r in reqs)
    assert [("pagination_token" in r["query"]) for r in reqs] == [False] + [True] * 4
    assert env.count("SELECT count(DISTINCT external_id) FROM messages"
                     " WHERE channel = 'twitter'") == 23
    assert set(tickets(env)) == {f"tweet:{i}" for i in ids}


def test_interrupted_paging_resumes_below_what_was_stored(env, x):
    env.write_config(**{"channels.twitter": {"page_size": 5}})
    ids = x.seed_many(12)
    x.fail("mentions", 503, after=1)  # page 1 arrives, page 2 fails
    env.run_once()
    assert env.count("SELECT count(*) FROM messages WHERE channel = 'twitter'") == 5
    with env.db() as db:
        cur = json.loads(db.execute(
            "SELECT value FROM cursors WHERE channel = 'twitter'").fetchone()[0])["mentions"]
    newest_five = sorted(ids, key=int)[-5:]
    assert cur == {"since_id": None, "until_id": newest_five[0],
                   "pending_newest": newest_five[-1]}
    unpause(env)
    env.run_once()
    resumed = mentions_requests(x)[2]["query"]
    assert resumed["until_id"] == newest_five[0]
    assert env.count("SELECT count(*) FROM messages WHERE channel = 'twitter'") == 12
    with env.db() as db:
        cur = json.loads(db.execute(
            "SELECT value FROM cursors WHERE channel = 'twitter'").fetchone()[0])["mentions"]
    assert cur == {"since_id": max(ids, key=int)}


def test_repoll_from_scratch_stores_nothing_twice_and_replies_once(env, x):
    x.seed_sample()
    env.run_once()
    stored = env.count("SELECT count(*) FROM messages")
    complaints = env.count("SELECT count(*) FROM complaints")
    with env.db() as db:  # forget the cursor: everything comes again
        db.execute("DELETE FROM cursors WHERE channel = 'twitter'")
    env.run_once()
    env.run_once()
    assert env.count("SELECT count(*) FROM messages") == stored
    assert env.count("SELECT count(*) FROM complaints") == complaints
    assert len([p for p in x.posted if p["endpoint"] == "create_tweet"]) == complaints
    assert all(len(v) == 1 for v in forwards(env).values())


def test_own_posts_and_retweets_are_stored_but_not_complaints(env, x):
    original = x.add_mention("Jalan rusak di Jl. Overste Isdiman, tolong", "sitiaminah_pwt")
    rt = x.add_mention("", "rina_kedungwuluh", retweet_of=original)
    own = x.add_mention("Info: layanan aduan tutup saat libur nasional", x.desk_id)
    env.run_once()
    with env.db() as db:
        kinds = {r[0]: r[1] for r in db.execute(
            "SELECT external_id, kind FROM messages WHERE channel = 'twitter'")}
    assert kinds == {f"tweet:{original}": "complaint", f"tweet:{rt}": "retweet",
                     f"tweet:{own}": "own"}
    assert env.count("SELECT count(*) FROM complaints") == 1
    assert [p["in_reply_to"] for p in x.posted] == [original]


# -- direct messages ---------------------------------------------------------------------------


def test_dms_from_one_sender_become_one_complaint_and_one_dm_ack(env, x):
    a1 = x.add_dm("Selamat siang min, mau lapor jalan berlubang di Desa Kalibagor",
                  "agus_karangsalam", created_at=xr.minutes_ago(3))
    b1 = x.add_dm("Sampah di TPS Sumampir menumpuk", "rina_kedungwuluh",
                  created_at=xr.minutes_ago(2))
    a2 = x.add_dm("lubangnya dekat jembatan, sudah 2 minggu", "agus_karangsalam",
                  photos=[TINY_JPEG], created_at=xr.minutes_ago(1))
    env.run_once()  # the chat window (30 min) is still open: nothing routed yet
    with env.db() as db:
        rows = db.execute("SELECT * FROM complaints ORDER BY id").fetchall()
    assert [r["status"] for r in rows] == ["new", "new"]
    agus = next(r for r in rows if r["sender"] == "@agus_karangsalam")
    assert agus["conversation"] == "dm:1650000000000000001-1700000000000000015:" \
                                   "1700000000000000015"
    assert agus["text"] == ("Selamat siang min, mau lapor jalan berlubang di Desa Kalibagor\n"
                            "lubangnya dekat jembatan, sudah 2 minggu")
    assert env.count("SELECT count(*) FROM attachments WHERE complaint_id = ?", agus["id"]) == 1
    # A third message in the window joins too; then the window closes and routing happens.
    a3 = x.add_dm("mohon segera ya", "agus_karangsalam")
    env.run_once()
    assert env.count("SELECT count(*) FROM complaints") == 2
    with env.db() as db:
        db.execute("UPDATE complaints SET route_after = '2000-01-01T00:00:00+00:00'")
    env.run_once()
    env.run_once()
    ext = tickets(env)
    assert ext[f"dm:{a1}"] == ext[f"dm:{a2}"] == ext[f"dm:{a3}"] != ext[f"dm:{b1}"]
    dms = [p for p in x.posted if p["endpoint"] == "create_dm"]
    assert Counter(p["participant_id"] for p in dms) == {
        "1700000000000000015": 1, "1700000000000000014": 1}
    assert ext[f"dm:{a1}"] in next(p for p in dms if p["participant_id"].endswith("15"))[
        "body"]["text"]
    # The desk's own DMs come back in dm_events: stored, not complaints.
    env.run_once()
    assert env.count("SELECT count(*) FROM complaints") == 2
    assert env.count("SELECT count(*) FROM messages WHERE kind = 'own'") == 2
    # Later messages, after the complaint was routed, start a new complaint.
    x.add_dm("jalan rusak lagi di tempat lain, Desa Ajibarang", "agus_karangsalam")
    env.run_once()
    assert env.count("SELECT count(*) FROM complaints") == 3


# -- acknowledgements --------------------------------------------------------------------------


def test_ack_is_not_repeated_after_a_crash_between_send_and_mark(env, x):
    tid = x.add_mention("Sampah menumpuk di TPS Pasar Cermai")
    dm = x.add_dm("jalan berlubang di Jl. Suwatio", "sitiaminah_pwt",
                  created_at=xr.minutes_ago(60))
    env.run_once()
    assert len(x.replies()) == 1 and len(x.sent_dms()) == 1
    # As if the runner died after X accepted but before the row was marked sent.
    with env.db() as db:
        db.execute("UPDATE outbox SET status = 'sending' WHERE kind = 'ack'")
    env.run_once()
    env.run_once()
    assert len(x.replies()) == 1 and len(x.sent_dms()) == 1  # nothing doubled on X
    tweet_posts = [p for p in x.posted if p["endpoint"] == "create_tweet"]
    assert [p["status"] for p in tweet_posts] == [201, 403]  # X refused the duplicate
    assert [p["endpoint"] for p in x.posted].count("create_dm") == 1  # looked first
    with env.db() as db:
        rows = db.execute("SELECT status, result FROM outbox WHERE kind = 'ack'").fetchall()
    assert [r["status"] for r in rows] == ["sent", "sent"]
    assert {json.loads(r["result"]).get("duplicate") for r in rows} == {True}
    assert x.replies()[0]["in_reply_to_user_id"] == x.tweets[tid]["author_id"]
    assert dm


def test_ack_rate_limited_is_retried_after_reset(env, x):
    x.add_mention("Jalan rusak di Jl. Gerilya")
    x.fail("create_tweet", 429, reset_in=2)
    env.run_once()
    with env.db() as db:
        row = db.execute("SELECT * FROM outbox WHERE kind = 'ack'").fetchone()
    assert row["status"] == "pending" and "rate limited" in row["last_error"]
    assert not x.replies()
    time.sleep(3.2)
    env.run_once()
    assert len(x.replies()) == 1


def test_relay_goes_back_on_the_same_thread_and_long_text_keeps_the_link(env, x):
    tid = x.add_mention("Jalan rusak di Jl. Pahlawan Tanjung")
    env.run_once()
    with env.db() as db:
        c = db.execute("SELECT * FROM complaints").fetchone()
        link = f"https://lapakaduan.example/aduan/{c['ticket']}.html"
        text = ("Tanggapan DPUPR: " + "perbaikan dijadwalkan minggu depan. " * 12 + link)
        db.execute(
            "INSERT INTO outbox (kind, transport, complaint_id, recipients, payload, dedupe_key,"
            " message_id, next_attempt_at, created_at) VALUES ('relay', 'twitter', ?, '[]', ?,"
            " 'relay:t', 'relay-t@x', '2000-01-01T00:00:00+00:00', '2000-01-01T00:00:00+00:00')",
            (c["id"], json.dumps({"reply_ref": json.loads(c["reply_ref"]), "text": text})))
    env.run_once()
    relay = [p for p in x.posted if p["status"] == 201][-1]
    assert relay["in_reply_to"] == tid
    assert len(relay["body"]["text"]) <= 280 and relay["body"]["text"].endswith("… " + link)


def test_secrets_come_from_files_and_environment(env, x, tmp_path):
    (tmp_path / "x-bearer").write_text(xr.BEARER + "\n")
    env.write_config(**{"channels.twitter": {
        "bearer_token": "", "bearer_token_file": "x-bearer",
        "access_token_secret": "", "access_token_secret_env": "LAPAKD_TEST_X_SECRET"}})
    x.seed_sample()
    env.cli("run", "--once", env={"LAPAKD_TEST_X_SECRET": xr.ACCESS_TOKEN_SECRET})
    assert env.count("SELECT count(*) FROM messages WHERE channel = 'twitter'") == 6
    assert len(x.replies()) == 6  # OAuth 1.0a with the secret from the environment
    assert {r["auth"] for r in x.requests if r["endpoint"] == "mentions"} == {"app"}


# -- limits and faults -------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["v2", "v1"])
def test_429_pauses_the_channel_until_reset_then_resumes(env, x, style):
    from deskenv import make_mail

    x.seed_sample()
    x.fail("mentions", 429, style=style, reset_in=12)
    env.append(make_mail("Sampah", "sampah menumpuk di TPS Teluk"))
    t0 = time.time()
    env.run_once()
    h = health(env)
    assert h["state"] == "paused" and "rate limited" in h["last_error"]
    assert env.count("SELECT count(*) FROM messages WHERE channel = 'twitter'") == 0
    # Other jobs kept running: the email complaint was forwarded in the same run.
    assert env.count("SELECT count(*) FROM complaints WHERE channel = 'email'"
                     " AND status = 'forwarded'") == 1
    with env.db() as db:
        next_try = db.execute("SELECT next_try_at FROM channel_health WHERE channel ="
                              " 'twitter'").fetchone()[0]
    from lapakd.store import parse_iso
    resume_at = parse_iso(next_try).timestamp()
    assert 10 <= resume_at - t0 <= 16  # exactly until x-rate-limit-reset, not a backoff
    n = len(mentions_requests(x))
    env.run_once()  # still paused: X is not asked again before the reset
    if time.time() < resume_at - 0.5:
        assert len(mentions_requests(x)) == n
    wait = resume_at - time.time()
    time.sleep(max(0, wait) + 0.3)
    env.run_once()
    assert health(env)["state"] == "ok"
    assert env.count("SELECT count(*) FROM messages WHERE channel = 'twitter'") == 6


def test_real_rate_limit_window_runs_out_and_resets(desk_env):
    with XReplica(limits={**xr.NO_LIMITS, "mentions": 2}, window_seconds=3) as x:
        desk_env.write_config(**{"channels.twitter": x.channel_config(page_size=5)})
        ids = x.seed_many(14)
        desk_env.run_once()
        assert desk_env.count("SELECT count(*) FROM messages WHERE channel = 'twitter'") == 10
        assert health(desk_env)["state"] == "paused"
        limited = [r for r in x.requests if r["endpoint"] == "mentions"]
        # The 2nd answer said x-rate-limit-remaining: 0: the channel paused there, without
        # asking for a 3rd page that could only be refused (429).
        assert len(limited) == 2
        assert "rate limit used up" in health(desk_env)["last_error"]
        time.sleep(3.5)
        desk_env.run_once()
        assert desk_env.count("SELECT count(DISTINCT external_id) FROM messages"
                              " WHERE channel = 'twitter'") == len(ids)


def test_401_marks_needs_reauth_alerts_once_and_leaks_no_token(env, x):
    x.seed_sample()
    x.revoke_tokens()
    runs = [env.cli("run", "--once", "--log-level", "debug", check=False)]
    unpause(env)
    runs.append(env.cli("run", "--once", "--log-level", "debug", check=False))
    assert [r.returncode for r in runs] == [1, 1]  # the channel failed during each run
    h = health(env)
    assert h["state"] == "needs_reauth" and "401" in h["last_error"]
    text = env.cli("status", check=False).stdout
    assert "needs_reauth" in text
    alerts = [m for m in env.sink.messages if ADMIN_EMAIL in m.rcpt_tos]
    assert len(alerts) == 1 and "twitter" in alerts[0].message["Subject"]
    secrets = [xr.BEARER, xr.CONSUMER_SECRET, xr.ACCESS_TOKEN, xr.ACCESS_TOKEN_SECRET]
    with env.db() as db:
        dump = "\n".join(str(tuple(r)) for t in ("channel_health", "outbox", "events")
                         for r in db.execute(f"SELECT * FROM {t}"))
    logs = "".join(r.stdout + r.stderr for r in runs) + text
    for s in secrets:
        assert s not in dump and s not in logs and s not in alerts[0].message.as_string()
    # New keys: back to normal.
    x.restore_tokens()
    unpause(env)
    env.run_once()
    assert health(env)["state"] == "ok"
    assert env.count("SELECT count(*) FROM messages WHERE channel = 'twitter'") == 6


def test_5xx_and_timeouts_are_retried_with_backoff(env, x):
    x.seed_sample()
    x.fail("mentions", 503, times=1)
    env.run_once()
    h = health(env)
    assert h["state"] == "error" and "server error 503" in h["last_error"]
    with env.db() as db:
        row = db.execute("SELECT failures, next_try_at FROM channel_health"
                         " WHERE channel = 'twitter'").fetchone()
    assert row["failures"] == 1 and row["next_try_at"] is not None
    unpause(env)
    env.run_once()
    assert health(env)["state"] == "ok"
    assert env.count("SELECT count(*) FROM messages WHERE channel = 'twitter'") == 6
    # A stalled answer is a timeout: transient, retried.
    env.write_config(**{"channels.twitter": {"timeout_seconds": 1}})
    x.add_mention("Sampah menumpuk di Jl. Bank, Purwokerto")
    x.stall("mentions", 2.5)
    unpause(env)
    env.run_once()
    h = health(env)
    assert h["state"] == "error" and "timed out after 1s" in h["last_error"]
    unpause(env)
    env.run_once()
    assert health(env)["state"] == "ok"
    assert env.count("SELECT count(*) FROM messages WHERE channel = 'twitter'") == 7
    # Nothing listens: a connection failure is transient too, and says nothing secret.
    env.write_config(**{"channels.twitter": {"api_url": "http://127.0.0.1:1"}})
    unpause(env)
    env.run_once()
    h = health(env)
    assert h["state"] == "error" and "connection failed" in h["last_error"]


@pytest.mark.parametrize("body, expect", [
    (b"<html>Over capacity</html>", "not JSON"),
    (b'{"data": {"id": "1"}, "meta": {}}', "'data' is an object"),
    (b"[1, 2]", "not a JSON object"),
])
def test_malformed_answers_are_clear_channel_errors_and_lose_nothing(env, x, body, expect):
    x.seed_sample()
    x.serve_raw("mentions", body)
    env.run_once()
    h = health(env)
    assert h["state"] == "error" and "malformed answer" in h["last_error"]
    assert expect in h["last_error"]
    assert env.count("SELECT count(*) FROM messages WHERE channel = 'twitter'") == 0
    unpause(env)
    env.run_once()
    assert env.count("SELECT count(*) FROM messages WHERE channel = 'twitter'") == 6


def test_huge_answer_is_refused_clearly(env, x):
    env.write_config(**{"channels.twitter": {"max_response_bytes": 200_000}})
    x.seed_sample()
    x.serve_raw("mentions", b'{"data": [' + b'{"id": "1", "text": "' + b"a" * 500_000 + b'"}]}')
    env.run_once()
    h = health(env)
    assert h["state"] == "error" and "over 200000 bytes" in h["last_error"]
    unpause(env)
    env.run_once()
    assert env.count("SELECT count(*) FROM messages WHERE channel = 'twitter'") == 6


def test_broken_posts_are_stored_and_quarantined_not_lost(env, x):
    good = x.add_mention("Sampah di TPS Kober menumpuk")
    page = {
        "data": [
            {"id": "1850000000000000100", "text": 12345, "author_id": "1700000000000000011"},
            {"text": "tanpa id", "author_id": "1700000000000000011"},
            {"id": 1850000000000000200, "text": "id angka", "author_id": "1700000000000000011"},
            {"id": "1850000000000000300", "text": "x" * 40_000, "author_id":
             "1700000000000000011"},
        ],
        "meta": {"result_count": 4, "newest_id": "1850000000000000300"},
    }
    x.serve_raw("mentions", json.dumps(page).encode())
    env.run_once()
    with env.db() as db:
        rows = {r["external_id"]: r for r in db.execute(
            "SELECT * FROM messages WHERE channel = 'twitter'")}
    assert len(rows) == 4
    assert rows["tweet:1850000000000000100"]["state"] == "quarantined"
    assert "'text' must be a string, got a number" in rows["tweet:1850000000000000100"]["error"]
    invalid = [r for k, r in rows.items() if k.startswith("tweet:invalid-")]
    assert len(invalid) == 2 and all(r["state"] == "quarantined" for r in invalid)
    assert all("missing or invalid 'id'" in r["error"] for r in invalid)
    long = rows["tweet:1850000000000000300"]
    assert long["state"] == "processed" and long["kind"] == "complaint"
    with env.db() as db:
        notes = db.execute("SELECT notes FROM complaints WHERE id = ?",
                           (long["complaint_id"],)).fetchone()[0]
    assert "cut to 25000" in notes
    # The cursor moved to the page's newest valid id; the next poll finds the real mention.
    unpause(env)
    env.run_once()
    assert f"tweet:{good}" in tickets(env)


# -- SIGKILL -----------------------------------------------------------------------------------


def test_sigkill_at_random_moments_loses_and_doubles_nothing(desk_env):
    total = 300
    with XReplica(limits=xr.NO_LIMITS) as x:
        desk_env.write_config(**{"channels.twitter": x.channel_config(page_size=20)})
        ids = x.seed_many(total, seed=11)
        dm_senders = [x.add_user(f"dm_warga{i}", f"Warga DM {i}") for i in range(10)]
        for i, who in enumerate(dm_senders):
            x.add_dm(f"Jalan berlubang di Desa {i}, mohon diperbaiki", who,
                     created_at=xr.minutes_ago(90))
        kills = desk_env.kill_runs(6, 0.5, 3.0)
        assert kills >= 5
        desk_env.run_once()
        desk_env.run_once()

        with desk_env.db() as db:
            ext = [r[0] for r in db.execute(
                "SELECT external_id FROM messages WHERE channel = 'twitter'"
                " AND kind IS NOT 'own'")]
            assert sorted(ext) == sorted([f"tweet:{i}" for i in ids] + [
                e for e in (f"dm:{k}" for k in x.dm_events)
                if x.dm_events[e[3:]]["sender_id"] != x.desk_id])
            assert db.execute(
                "SELECT count(*) FROM messages WHERE state != 'processed'").fetchone()[0] == 0
            complaints = db.execute(
                "SELECT id, ticket, status, reply_ref FROM complaints"
                " WHERE channel = 'twitter'").fetchall()
            assert len(complaints) == total + len(dm_senders)
            assert {c["status"] for c in complaints} <= {"forwarded", "triage"}
            outbox = dict(db.execute(
                "SELECT status, count(*) FROM outbox GROUP BY status").fetchall())
            assert set(outbox) == {"sent"}
            forwarded = {c["ticket"] for c in complaints if c["status"] == "forwarded"}

        fw = forwards(desk_env)
        assert forwarded <= set(fw)  # every forwarded complaint reached its agency
        # X accepted exactly one reply per mention and one DM per DM sender; any resend after
        # a kill was refused as a duplicate (tweets) or found already sent (DMs).
        accepted = Counter(r["referenced_tweets"][0]["id"] for r in x.replies())
        assert accepted == Counter({i: 1 for i in ids})
        assert Counter(e["dm_conversation_id"] for e in x.sent_dms()) == Counter(
            {f"{x.desk_id}-{s}": 1 for s in dm_senders})


def test_reply_with_dead_credentials_waits_for_new_keys_instead_of_failing(env, x):
    x.seed_sample()
    x.fail("create_tweet", 401, times=50)  # the keys were revoked between poll and reply
    env.run_once()
    with env.db() as db:
        acks = db.execute("SELECT status, last_error FROM outbox WHERE kind = 'ack'"
                          " AND transport = 'twitter'").fetchall()
    assert acks and all(status == "pending" for status, _ in acks)
    assert health(env)["state"] == "needs_reauth"
    alerts = [m for m in env.sink.messages if ADMIN_EMAIL in m.rcpt_tos]
    assert len(alerts) == 1  # once, not once per reply
    # New keys: once the retry is due the replies go out.
    x.faults.clear()
    unpause(env)
    with env.db() as db:
        db.execute("UPDATE outbox SET next_attempt_at = '2000-01-01T00:00:00+00:00'"
                   " WHERE status = 'pending'")
    env.run_once()
    with env.db() as db:
        statuses = {r[0] for r in db.execute(
            "SELECT status FROM outbox WHERE kind = 'ack' AND transport = 'twitter'")}
    assert statuses == {"sent"}
