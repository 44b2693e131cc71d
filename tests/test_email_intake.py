"""Email intake over real Dovecot and the SMTP sink: what the first poll takes (`first_run`),
the citizen's receipt, and mails that reuse a stored Message-ID."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from deskenv import ADMIN_EMAIL, DESK_EMAIL, make_mail
from lapakd.adapters import email as email_adapter

from lapakd.app import Desk
from lapakd.intake import poll as intake

SEEN = ("\\Seen",)

# Mail in the mailbox before lapakd's first start: read and handled by hand by the admins.
OLD_MAILS = [
    ("Jalan rusak Kedungbanteng", "Jalan di Kedungbanteng rusak parah, kodelama-1 (sudah "
                                  "ditangani manual bulan lalu)."),
    ("Sampah numpuk", "Sampah nang pinggir kali Logawa numpuk maning, kodelama-2."),
    ("Pungli parkir", "ada pungli parkir di alun2 purwokerto, kodelama-3 mohon ditindak"),
]
NEW_MAIL = ("Jalan berlubang", "Jln berlubang gede banget depan SD Negeri 1 Pasir Kidul, "
                               "kodebaru, wis ana sing tiba motore.")


@pytest.fixture
def desk_env(desk_env):
    """The shipped default: receipts on (tests/deskenv.py turns them off for other tests)."""
    desk_env.write_config(**{"channels.email": {"acknowledge": True}})
    return desk_env


def _seed(desk_env, *, old_flags=SEEN, new_flags=()) -> None:
    for i, (subject, body) in enumerate(OLD_MAILS):
        desk_env.dovecot.append(desk_env.user, make_mail(
            subject, body, sender=f"Warga Lama {i} <lama{i}@warga.example>"), flags=old_flags)
    subject, body = NEW_MAIL
    desk_env.dovecot.append(desk_env.user, make_mail(
        subject, body, sender="Sari Wulandari <sari.w@warga.example>"), flags=new_flags)


def _forwards(desk_env) -> list:
    return [m for m in desk_env.sink.messages if any(
        r.endswith("@banyumas.example") and r not in (ADMIN_EMAIL, DESK_EMAIL)
        for r in m.rcpt_tos)]


def _bodies(mails) -> str:
    return "\n".join(m.message.get_body(("plain",)).get_content() for m in mails)


# -- first_run ------------------------------------------------------------------------------------


def test_first_run_takes_only_unseen_mail_and_records_the_rest(desk_env):
    _seed(desk_env)
    desk_env.run_once()
    forwards = _forwards(desk_env)
    assert len(forwards) == 1
    assert "kodebaru" in _bodies(forwards) and "kodelama" not in _bodies(desk_env.sink.messages)
    states = dict(desk_env.db().execute("SELECT state, count(*) FROM messages GROUP BY 1"))
    assert states == {"processed": 1, "seen_before": 3}
    assert desk_env.count("SELECT count(*) FROM complaints") == 1
    status = desk_env.cli_json("status")["channels"]["email"]
    assert status["seen_before"] == 3 and status["messages_stored"] == 4
    listed = desk_env.cli_json("list", "--status", "seen_before")
    assert [x["status"] for x in listed] == ["seen_before"] * 3
    assert listed[0]["text"] == "first_run = unseen"
    assert "seen-before 3" in desk_env.cli("status", check=False).stdout
    # The old mail is left as the admins had it (nothing moved or flagged); lapakd marks
    # only what it took.
    for uid in desk_env.dovecot.folder_uids(desk_env.user):
        assert "\\Seen" in desk_env.dovecot.flags(desk_env.user, uid)

    # After the first poll everything new is taken, read or not.
    desk_env.dovecot.append(desk_env.user, make_mail(
        "Sampah TPS", "sampah di TPS Sokaraja wis seminggu ora diangkut, kodesesudah"),
        flags=SEEN)
    desk_env.run_once()
    assert "kodesesudah" in _bodies(_forwards(desk_env))
    assert desk_env.count("SELECT count(*) FROM complaints") == 2


def test_first_run_all_takes_the_whole_folder(desk_env):
    desk_env.write_config(**{"channels.email": {"first_run": "all"}})
    _seed(desk_env)
    desk_env.run_once()
    assert len(_forwards(desk_env)) == 4
    assert desk_env.count("SELECT count(*) FROM messages WHERE state = 'seen_before'") == 0


def test_first_run_since_honours_the_internaldate(desk_env):
    desk_env.write_config(**{"channels.email": {"first_run": "since:2026-03-01"}})
    day = 86400
    march = datetime(2026, 3, 1, 12, tzinfo=UTC).timestamp()
    dates = {"kodefeb": march - 10 * day, "kodemaretawal": march + 2 * day,
             "kodejanuari": march - 45 * day}
    for code, when in dates.items():
        # read or not does not matter for since: (the old unseen one stays out too)
        desk_env.dovecot.append(desk_env.user, make_mail(
            "Jalan rusak", f"jalan rusak parah di Desa Cilongok {code}"), date=when,
            flags=SEEN if code == "kodemaretawal" else ())
    desk_env.run_once()
    bodies = _bodies(_forwards(desk_env))
    assert "kodemaretawal" in bodies
    assert "kodefeb" not in bodies and "kodejanuari" not in bodies
    assert desk_env.count("SELECT count(*) FROM messages WHERE state = 'seen_before'") == 2
    # Not taken, so not touched: the unread old mail stays unread.
    unseen = [u for u in desk_env.dovecot.folder_uids(desk_env.user)
              if "\\Seen" not in desk_env.dovecot.flags(desk_env.user, u)]
    assert len(unseen) == 2


@pytest.mark.parametrize("value", ["kemarin", "since:2026-02-30", "since:", "Unseen"])
def test_a_bad_first_run_is_refused_at_load(desk_env, value):
    desk_env.write_config(**{"channels.email": {"first_run": value}})
    proc = desk_env.cli("run", "--once", check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "channels.email.first_run" in lines[0]
    assert "since:" in lines[0] and "unknown key" not in lines[0]  # says what to write
    assert str(desk_env.config) in lines[0] and "Traceback" not in proc.stderr


def test_first_run_resumes_its_rule_after_a_crash_half_way(desk_env, monkeypatch):
    """The backlog's bound lives in the cursor: a poll stopped after its first batch goes on
    with the same rule, it does not take the rest of the old mail as new."""
    for i in range(5):
        desk_env.dovecot.append(desk_env.user, make_mail(
            "Jalan rusak", f"jalan rusak di Desa Karanglewas {i}"), flags=SEEN if i % 2 else ())
    monkeypatch.setattr(email_adapter, "BATCH_SIZE", 2)
    desk = Desk.open(str(desk_env.config))
    desk.store.lock_runner()
    try:
        class Stop(Exception):
            pass

        def stop() -> None:
            raise Stop

        with pytest.raises(Stop):
            intake.poll_channel(desk, "email", after_batch=stop)
        assert desk.store.get_cursor("email")["baseline"]["until"] == 5
        intake.poll_channel(desk, "email")
        states = dict(desk.store.all(
            "SELECT state, count(*) FROM messages GROUP BY 1"))
        assert states == {"pending": 3, "seen_before": 2}
        assert "baseline" not in desk.store.get_cursor("email")
    finally:
        desk.close()


def test_a_rebuilt_mailbox_does_not_forward_the_past_again(desk_env):
    """UIDVALIDITY changes (a server migration): the folder's mail comes back under new UIDs,
    some of it with bytes the migration changed. What is stored already is a duplicate by its
    Message-ID; old mail lapakd never saw follows first_run; new mail is taken."""
    dv, user = desk_env.dovecot, desk_env.user
    desk_env.write_config(**{"channels.email": {"folder": "Aduan"}})
    first = [make_mail("Sampah", f"sampah menumpuk di pasar Wage nomor {i}") for i in range(2)]
    for raw in first:
        desk_env.append(raw, folder="Aduan")
    desk_env.run_once()
    sent = len(desk_env.sink.messages)
    assert desk_env.count("SELECT count(*) FROM complaints") == 2

    dv.delete_folder(user, "Aduan")
    dv.append(user, b"X-Migrated-By: imapsync\r\n" + first[0], folder="Aduan", flags=SEEN)
    dv.append(user, first[1], folder="Aduan", flags=SEEN)
    dv.append(user, make_mail("Sampah", "sampah lawas kodelama dari arsip"), folder="Aduan",
              flags=SEEN)
    dv.append(user, make_mail("Sampah", "sampah anyar kodebaru di TPS Kober"), folder="Aduan")
    desk_env.run_once()
    new = desk_env.sink.messages[sent:]
    assert "kodebaru" in _bodies(new) and "kodelama" not in _bodies(new)
    assert "nomor 0" not in _bodies(new) and "nomor 1" not in _bodies(new)
    assert desk_env.count("SELECT count(*) FROM complaints") == 3
    assert desk_env.cli_json("status")["channels"]["email"]["duplicates_dropped"] == 2


# -- receipts -------------------------------------------------------------------------------------


def _receipts(desk_env, address: str) -> list:
    return [m.message for m in desk_env.sink.messages if address in m.rcpt_tos]


def test_an_emailing_citizen_gets_a_receipt_in_their_thread(desk_env):
    raw = make_mail("Jalan rusak parah", "Jalan di Desa Karangsalam berlubang besar, sudah 2 "
                    "bulan tdk diperbaiki.", sender="Bu Ratna Sari <ratna.sari@warga.example>",
                    message_id="<aduan-ratna-1@warga.example>")
    desk_env.append(raw)
    desk_env.append(make_mail("Listrik", "listrik padam terus tiap sore di Kembaran, tolong",
                              sender="joko@warga.example"))
    desk_env.run_once()
    [receipt] = _receipts(desk_env, "ratna.sari@warga.example")
    c = desk_env.cli_json("list")[0]
    ticket = c["id"]
    assert receipt["Subject"] == f"Re: Jalan rusak parah [{ticket}]"
    assert receipt["In-Reply-To"] == "<aduan-ratna-1@warga.example>"
    assert "<aduan-ratna-1@warga.example>" in receipt["References"]
    assert receipt["Auto-Submitted"] == "auto-replied"
    assert len(receipt.get_all("Auto-Submitted")) == 1
    assert DESK_EMAIL in receipt["From"]
    body = receipt.get_body(("plain",)).get_content()
    for expected in (ticket, "Dinas Pekerjaan Umum dan Penataan Ruang",
                     f"https://lapakaduan.example/aduan/{ticket}.html", "Yth. Bu Ratna Sari"):
        assert expected in body, expected
    # jalan-rusak is budget dependent in the test rules: no deadline promised
    assert "ketersediaan anggaran" in body

    [triaged] = _receipts(desk_env, "joko@warga.example")
    triaged_body = triaged.get_body(("plain",)).get_content()
    assert "ditinjau oleh admin" in triaged_body and "7 hari kerja" in triaged_body

    # An admin forwarding the triaged complaint sends no second receipt.
    ticket2 = desk_env.cli_json("list")[1]["id"]
    desk_env.cli("assign", ticket2, "dlh")
    desk_env.run_once()
    assert len(_receipts(desk_env, "joko@warga.example")) == 1
    assert desk_env.count("SELECT count(*) FROM outbox WHERE kind = 'receipt'") == 2


def test_the_receipt_names_the_deadline(desk_env):
    desk_env.append(make_mail("Sampah", "sampah di TPS Pasar Manis numpuk, bau banget",
                              sender="dimas@warga.example"))
    desk_env.run_once()
    [receipt] = _receipts(desk_env, "dimas@warga.example")
    body = receipt.get_body(("plain",)).get_content()
    assert "Dinas Lingkungan Hidup" in body
    assert "paling lambat" in body and "(3 hari kerja)" in body


EXCLUDED = {
    "spam": dict(subject="Promo", body="promo slot gacor bonus 100% daftar sekarang",
                 sender="gacor@spam.example"),
    "auto-reply": dict(sender="bayu@warga.example",
                       headers={"Auto-Submitted": "auto-replied"}),
    "bulk": dict(sender="berita@koran.example", headers={"Precedence": "bulk"}),
    "list-id": dict(sender="anggota@warga.example",
                    headers={"List-Id": "Warga Purwokerto <warga.lists.example>"}),
    "list-unsubscribe": dict(sender="info@toko.example",
                             headers={"List-Unsubscribe": "<mailto:unsub@toko.example>"}),
    "noreply": dict(sender="noreply@aplikasi.example"),
    "no-reply": dict(sender="Portal Warga <no-reply@portal.example>"),
    "mailer-daemon": dict(sender="MAILER-DAEMON@mx.example"),
    "postmaster": dict(sender="postmaster@desa.example"),
    "reply-to noreply": dict(sender="rina@warga.example",
                             headers={"Reply-To": "do-not-reply@warga.example"}),
    "reply-to the desk": dict(sender="tono@warga.example", headers={"Reply-To": DESK_EMAIL}),
}


@pytest.mark.parametrize("case", list(EXCLUDED))
def test_no_receipt_where_it_must_not_go(desk_env, case):
    spec = EXCLUDED[case]
    desk_env.append(make_mail(
        spec.get("subject", "Jalan rusak"),
        spec.get("body", "jalan rusak parah di depan balai desa Ledug"),
        sender=spec["sender"], headers=spec.get("headers")))
    # and one ordinary complaint, so that the run demonstrably sent receipts
    desk_env.append(make_mail("Jalan rusak", "jalan berlubang di Desa Kalisube",
                              sender="warga.biasa@warga.example"))
    desk_env.run_once()
    assert len(_receipts(desk_env, "warga.biasa@warga.example")) == 1
    receipts = [m for m in desk_env.sink.messages
                if m.message["Auto-Submitted"] == "auto-replied"]
    assert [m.rcpt_tos for m in receipts] == [["warga.biasa@warga.example"]]
    assert desk_env.count("SELECT count(*) FROM outbox WHERE kind = 'receipt'") == 1


def test_receipts_can_be_switched_off(desk_env):
    desk_env.write_config(**{"channels.email": {"acknowledge": False}})
    desk_env.append(make_mail("Sampah", "sampah numpuk di TPS", sender="eko@warga.example"))
    desk_env.run_once()
    assert _receipts(desk_env, "eko@warga.example") == []
    assert len(_forwards(desk_env)) == 1


# -- a Message-ID that is stored already -----------------------------------------------------------


def test_a_different_mail_reusing_a_message_id_is_kept_and_processed(desk_env):
    mid = "<20260301.1@hp-murah.example>"  # a phone mail app that reuses its ids
    desk_env.append(make_mail("Sampah", "sampah di TPS Karanglewas numpuk", message_id=mid,
                              sender="a@warga.example"))
    desk_env.append(make_mail("Jalan", "jalan rusak di Desa Kebocoran, aspal ngelupas",
                              message_id=mid, sender="b@warga.example"))
    desk_env.run_once()
    listed = desk_env.cli_json("list")
    assert sorted(c["agencies"][0] for c in listed) == ["dlh", "dpupr"]
    ids = sorted(r[0] for r in desk_env.db().execute("SELECT external_id FROM messages"))
    assert ids[0] == "mid:20260301.1@hp-murah.example"
    assert ids[1].startswith("mid:20260301.1@hp-murah.example#sha256:")
    assert desk_env.cli_json("status")["channels"]["email"]["duplicates_dropped"] == 0


def test_the_same_bytes_twice_are_one_complaint_and_counted(desk_env):
    raw = make_mail("Sampah", "sampah di TPS Karanglewas numpuk", sender="a@warga.example")
    desk_env.append(raw)
    desk_env.append(raw)
    desk_env.run_once()
    assert desk_env.count("SELECT count(*) FROM complaints") == 1
    assert desk_env.count("SELECT count(*) FROM messages") == 1
    status = desk_env.cli_json("status")["channels"]["email"]
    assert status["duplicates_dropped"] == 1
    assert "duplicates-dropped 1" in desk_env.cli("status", check=False).stdout
    desk_env.append(raw)  # and again, later: the counter goes on
    desk_env.run_once()
    assert desk_env.cli_json("status")["channels"]["email"]["duplicates_dropped"] == 2
    assert desk_env.count("SELECT count(*) FROM complaints") == 1


def test_a_duplicate_drop_is_logged_at_debug_level(desk_env):
    raw = make_mail("Sampah", "sampah di TPS Karanglewas numpuk")
    desk_env.append(raw)
    desk_env.append(raw)
    quiet = desk_env.cli("run", "--once")
    assert "duplicate_dropped" not in quiet.stderr
    desk_env.append(raw)
    loud = desk_env.cli("run", "--once", "--log-level", "debug")
    drops = [json.loads(line) for line in loud.stderr.splitlines()
             if "intake.duplicate_dropped" in line]
    assert len(drops) == 1 and drops[0]["level"] == "debug"
    assert drops[0]["channel"] == "email" and drops[0]["external_id"].startswith("mid:")
