"""Following complaints to an answer, over the real Dovecot + SMTP sink: agency replies, status
lines, strangers, auto-replies, relay to the citizen, triage by email and the admin's verbs."""

from __future__ import annotations

import json

from deskenv import ADMIN_EMAIL, DESK_EMAIL, TINY_JPEG, make_mail

CITIZEN = "budi.warga@example.com"
DLH = "dlh@banyumas.example"


def forwarded(desk_env, subject="Sampah menumpuk", body="Sampah di TPS Pasar Wage menumpuk",
              sender=f"Budi Santoso <{CITIZEN}>", message_id=None):
    """Send one complaint through the desk; return (ticket, the forward as received)."""
    before = len(desk_env.sink.messages)
    desk_env.append(make_mail(subject, body, sender=sender, message_id=message_id))
    desk_env.run_once()
    mails = desk_env.sink.wait_for(before + 1)
    fwd = mails[-1].message
    return fwd["X-Lapakd-Ticket"], fwd


def reply_to(fwd, body, *, sender=f"Dinas Lingkungan Hidup <{DLH}>", thread=True,
             subject=None, headers=None):
    h = dict(headers or {})
    if thread:
        h["In-Reply-To"] = fwd["Message-ID"]
        h["References"] = fwd["Message-ID"]
    return make_mail(subject or f"Re: {fwd['Subject']}", body, sender=sender, headers=h)


def status_of(desk_env, ticket):
    return desk_env.cli_json("show", ticket)["status"]


def updates(desk_env, ticket):
    with desk_env.db() as conn:
        return [dict(r) for r in conn.execute(
            "SELECT u.* FROM updates u JOIN complaints c ON c.id = u.complaint_id"
            " WHERE c.ticket = ? ORDER BY u.id", (ticket,))]


def test_threaded_agency_reply_is_recorded_cleaned_and_relayed(desk_env):
    citizen_mid = "<keluhan-1@example.com>"
    ticket, fwd = forwarded(desk_env, message_id=citizen_mid)
    assert status_of(desk_env, ticket) == "forwarded"
    desk_env.sink.clear()
    desk_env.append(reply_to(fwd, (
        "Terima kasih. Petugas kami sudah menjadwalkan pengangkutan sampah besok pagi.\n"
        "Info lanjut hubungi 0812-3456-7890 atau kasi.sampah@banyumas.example.\n"
        "\n"
        "Salam,\n"
        "Kasi Pengelolaan Sampah\n"
        "NIP 19800101 200501 1 001\n"
        "\n"
        f"On Mon, 2 Mar 2026 at 09:00, Lapak Aduan <{DESK_EMAIL}> wrote:\n"
        "> Yth. Dinas Lingkungan Hidup,\n"
        "> Sampah di TPS Pasar Wage menumpuk\n"
    )))
    desk_env.run_once()

    assert status_of(desk_env, ticket) == "answered"
    (u,) = updates(desk_env, ticket)
    assert u["source"] == "agency" and u["agency"] == "dlh" and u["actor"] == DLH
    assert u["status_set"] == "answered"
    assert u["text"].startswith("Terima kasih. Petugas kami sudah menjadwalkan")
    for gone in ("0812-3456-7890", "kasi.sampah@", "Salam", "NIP", "wrote:", "Yth."):
        assert gone not in u["text"], gone
    assert "[nomor disembunyikan]" in u["text"]
    assert "0812-3456-7890" in u["raw_text"]  # kept privately
    with desk_env.db() as conn:
        c = conn.execute("SELECT first_answer_at FROM complaints WHERE ticket = ?",
                         (ticket,)).fetchone()
        kind = conn.execute("SELECT kind FROM messages ORDER BY id DESC LIMIT 1").fetchone()[0]
    assert c["first_answer_at"] and kind == "agency_reply"
    assert desk_env.count("SELECT count(*) FROM complaints") == 1  # not a new complaint

    # Relayed to the citizen, once, in the original thread.
    (relay,) = desk_env.sink.wait_for(1)
    assert relay.rcpt_tos == [CITIZEN]
    msg = relay.message
    assert msg["In-Reply-To"] == citizen_mid
    assert citizen_mid in msg["References"]
    assert msg["Subject"] == f"Re: Sampah menumpuk [{ticket}]"
    body = msg.get_body(("plain",)).get_content()
    assert "Dinas Lingkungan Hidup" in body and "menjadwalkan pengangkutan" in body
    assert "ditanggapi" in body and f"/aduan/{ticket}.html" in body
    assert "0812-3456-7890" not in body
    desk_env.run_once()
    assert len(desk_env.sink.messages) == 1


def test_reply_matched_by_subject_tag_or_header_only(desk_env):
    ticket, fwd = forwarded(desk_env)
    desk_env.sink.clear()
    # A mail client that drops threading headers and rewrites the subject.
    desk_env.append(reply_to(fwd, "Status: diproses\nSedang kami tangani.", thread=False,
                             subject=f"Balas: [{ticket}] sampah"))
    desk_env.run_once()
    assert status_of(desk_env, ticket) == "answered"
    assert [u["text"] for u in updates(desk_env, ticket)] == ["Sedang kami tangani."]

    ticket2, fwd2 = forwarded(desk_env, body="Sampah liar di tepi sungai Serayu")
    desk_env.append(reply_to(fwd2, "Sudah dibersihkan.", thread=False, subject="Tanggapan DLH",
                             headers={"X-Lapakd-Ticket": ticket2}))
    desk_env.run_once()
    assert status_of(desk_env, ticket2) == "answered"
    assert desk_env.count("SELECT count(*) FROM complaints") == 2


def test_each_status_line_and_its_variations(desk_env):
    cases = [
        ("Status: selesai\nSampah sudah diangkut.", "resolved", "Sampah sudah diangkut."),
        ("status : Selesai.", "resolved", None),
        ("STATUS: DITOLAK - lokasi di luar wilayah Kabupaten Banyumas", "rejected",
         "lokasi di luar wilayah Kabupaten Banyumas"),
        ("Status:menunggu   anggaran\nDiusulkan pada APBD Perubahan 2026.", "waiting_budget",
         "Diusulkan pada APBD Perubahan 2026."),
        ("  Status : Diproses, tim sudah ke lokasi", "answered", "tim sudah ke lokasi"),
        ("Kami sudah cek.\nStatus: selesai", "answered", "Kami sudah cek.\nStatus: selesai"),
    ]
    tickets = []
    for i, (body, _, _) in enumerate(cases):
        ticket, fwd = forwarded(desk_env, body=f"Sampah menumpuk di TPS nomor {i}")
        desk_env.append(reply_to(fwd, body))
        tickets.append(ticket)
    desk_env.run_once()
    for ticket, (_, status, text) in zip(tickets, cases, strict=True):
        assert status_of(desk_env, ticket) == status, (ticket, status)
        (u,) = updates(desk_env, ticket)
        assert u["status_set"] == status
        if text is not None:
            assert u["text"] == text
        else:
            assert u["text"] == ("Status aduan diubah menjadi: selesai, menunggu konfirmasi "
                                 "pelapor.")
    with desk_env.db() as conn:
        row = conn.execute("SELECT due_at, budget_dependent FROM complaints WHERE ticket = ?",
                           (tickets[3],)).fetchone()
        resolved = conn.execute("SELECT resolved_at, closed_at FROM complaints WHERE ticket = ?",
                                (tickets[0],)).fetchone()
    assert row["due_at"] is None and row["budget_dependent"] == 1  # no deadline any more
    # selesai is the agency's word: closed only once the citizen confirms (test_confirm_e2e)
    assert resolved["resolved_at"] and resolved["closed_at"] is None


def test_a_strangers_reply_is_stored_for_review_not_applied(desk_env):
    ticket, fwd = forwarded(desk_env)
    desk_env.sink.clear()
    desk_env.append(reply_to(fwd, "Status: selesai\nsudah beres kok",
                             sender="Orang Lain <iseng@example.net>"))
    desk_env.run_once()
    assert status_of(desk_env, ticket) == "forwarded"
    assert updates(desk_env, ticket) == []
    story = desk_env.cli_json("show", ticket)
    assert "reply_unverified" in [e["type"] for e in story["events"]]
    (alert,) = desk_env.sink.wait_for(1)
    assert alert.rcpt_tos == [ADMIN_EMAIL]
    assert ticket in alert.message["Subject"] and "ditinjau" in alert.message["Subject"]
    assert "iseng@example.net" in alert.message.get_body(("plain",)).get_content()
    assert desk_env.count("SELECT count(*) FROM complaints") == 1


def test_an_auto_reply_to_a_forward_changes_nothing(desk_env):
    ticket, fwd = forwarded(desk_env)
    desk_env.sink.clear()
    desk_env.append(reply_to(fwd, "Saya sedang cuti sampai 10 Maret.",
                             subject=f"Automatic reply: {fwd['Subject']}",
                             headers={"Auto-Submitted": "auto-replied"}))
    # An Exchange-style OOO without Auto-Submitted, recognised by its subject.
    desk_env.append(reply_to(fwd, "Status: selesai\nSaya di luar kantor.",
                             subject=f"Out of Office: {fwd['Subject']}"))
    desk_env.run_once()
    assert status_of(desk_env, ticket) == "forwarded"
    assert updates(desk_env, ticket) == []
    with desk_env.db() as conn:
        kinds = [r[0] for r in conn.execute("SELECT kind FROM messages ORDER BY id")]
    assert kinds == ["complaint", "auto_reply", "auto_reply"]
    assert desk_env.sink.messages == []


def test_triage_by_email_forward_and_reject_only_from_the_admin(desk_env):
    desk_env.append(make_mail("Lampu", "Listrik padam di RT 02 sejak kemarin",
                              sender="Sri <sri@example.net>"))
    desk_env.append(make_mail("PLN", "Listrik padam terus, pln tidak respon",
                              sender="Andi <andi@example.org>"))
    desk_env.run_once()
    triages = desk_env.sink.wait_for(2)
    assert all(m.rcpt_tos == [ADMIN_EMAIL] for m in triages)
    first, second = (m.message for m in triages)
    t1, t2 = first["X-Lapakd-Ticket"], second["X-Lapakd-Ticket"]
    desk_env.sink.clear()

    # A stranger cannot route by email.
    desk_env.append(reply_to(first, "Teruskan: dlh", sender="iseng@example.net"))
    desk_env.run_once()
    assert status_of(desk_env, t1) == "triage"
    desk_env.sink.wait_for(1)  # the review alert
    desk_env.sink.clear()

    desk_env.append(reply_to(first, "Teruskan: dlh, inspektorat\n\nadmin",
                             sender=f"Admin <{ADMIN_EMAIL}>"))
    desk_env.append(reply_to(second, "tolak : di luar kewenangan Pemkab, silakan lapor ke PLN "
                             "UP3 Purwokerto", sender=ADMIN_EMAIL))
    desk_env.run_once()
    shown = desk_env.cli_json("show", t1)
    assert shown["status"] == "forwarded" and shown["agencies"] == ["dlh", "inspektorat"]
    routed = [e for e in shown["events"] if e["type"] == "routed"][-1]
    assert routed["actor"] == ADMIN_EMAIL
    assert status_of(desk_env, t2) == "rejected"
    (u,) = updates(desk_env, t2)
    assert u["source"] == "desk" and u["text"].startswith("di luar kewenangan Pemkab")
    mails = desk_env.sink.wait_for(3)
    rcpts = sorted(tuple(m.rcpt_tos) for m in mails)
    assert rcpts == [("andi@example.org",), (DLH,), ("inspektorat@banyumas.example",)]
    relay = next(m.message for m in mails if m.rcpt_tos == ["andi@example.org"])
    assert "ditolak" in relay.get_body(("plain",)).get_content()


def test_admin_verbs(desk_env, tmp_path):
    photo = tmp_path / "lubang.jpg"
    photo.write_bytes(TINY_JPEG)
    # add: a walk-in complaint, routed like any other
    out = desk_env.cli_json("add", "--text", "Sampah menumpuk di depan pasar Ajibarang",
                            "--channel", "walkin", "--contact", "0812 1111 2222",
                            "--photo", str(photo), "--by", "petugas1")
    ticket = out["id"]
    assert out["status"] == "forwarded" and out["agencies"] == ["dlh"]
    shown = desk_env.cli_json("show", ticket)
    assert shown["channel"] == "walkin" and shown["sender"] == "0812 1111 2222"
    assert [a["filename"] for a in shown["attachments"]] == ["lubang.jpg"]
    assert shown["events"][0]["actor"] == "petugas1"
    desk_env.run_once()
    (fwd,) = desk_env.sink.wait_for(1)
    assert fwd.rcpt_tos == [DLH]
    assert "Datang langsung" in fwd.message.get_body(("plain",)).get_content()
    desk_env.sink.clear()

    # assign: a triage complaint, by hand (phone, with an email contact to answer on)
    out = desk_env.cli_json("add", "--text", "Listrik padam di balai desa", "--channel",
                            "phone", "--contact", "sri@example.net", "--by", "petugas2")
    t2 = out["id"]
    assert out["status"] == "triage"
    desk_env.cli("assign", t2, "dlh", "--by", "petugas2")
    assert desk_env.cli("assign", t2, "dlh", check=False).returncode == 2  # not triage now
    assert desk_env.cli("assign", ticket, "nope", check=False).returncode == 2
    shown = desk_env.cli_json("show", t2)
    assert shown["status"] == "forwarded" and shown["due_at"]
    assert [e for e in shown["events"] if e["type"] == "routed"][-1]["actor"] == "petugas2"

    # note: internal only
    desk_env.cli("note", t2, "Warga", "menelepon", "lagi", "--by", "petugas2")
    note = [e for e in desk_env.cli_json("show", t2)["events"] if e["type"] == "note"]
    assert note[0]["text"] == "Warga menelepon lagi" and note[0]["actor"] == "petugas2"
    assert updates(desk_env, t2) == []

    # reply: a public answer from the desk, relayed (phone contact with email → email)
    desk_env.cli("reply", t2, "Laporan sudah kami teruskan ke PLN, hubungi 0281-123456.",
                 "--by", "petugas2")
    assert status_of(desk_env, t2) == "answered"
    (u,) = updates(desk_env, t2)
    assert u["source"] == "desk" and "[nomor disembunyikan]" in u["text"]

    # set-status with a public note; walk-in without email: nothing to relay by mail
    desk_env.cli("set-status", ticket, "resolved", "--note", "Sudah diangkut", "--by", "adm")
    assert status_of(desk_env, ticket) == "resolved"
    ev = [e for e in desk_env.cli_json("show", ticket)["events"]
          if e["type"] == "status_changed"][-1]
    assert ev["actor"] == "adm" and ev["from"] == "forwarded" and ev["to"] == "resolved"
    assert desk_env.cli("set-status", ticket, "bogus", check=False).returncode == 2

    desk_env.run_once()
    mails = desk_env.sink.wait_for(3)  # triage of t2, its forward to dlh, relay to sri
    rcpts = sorted(tuple(m.rcpt_tos) for m in mails)
    assert rcpts == [(ADMIN_EMAIL,), (DLH,), ("sri@example.net",)]
    relay = next(m.message for m in mails if m.rcpt_tos == ["sri@example.net"])
    assert t2 in relay["Subject"]
    assert "PLN" in relay.get_body(("plain",)).get_content()


def test_merge_keeps_both_histories_and_informs_both_citizens(desk_env):
    t1, fwd1 = forwarded(desk_env, body="Sampah menumpuk di TPS Pasar Wage",
                         message_id="<a@example.com>")
    t2, _ = forwarded(desk_env, body="TPS Pasar Wage penuh sampah, bau",
                      sender="Sri <sri@example.net>", message_id="<b@example.com>")
    desk_env.sink.clear()
    desk_env.cli("merge", t2, t1, "--by", "adm")
    assert desk_env.cli("merge", t1, t1, check=False).returncode == 2
    desk_env.run_once()
    (notice,) = desk_env.sink.wait_for(1)
    assert notice.rcpt_tos == ["sri@example.net"]
    assert t1 in notice.message.get_body(("plain",)).get_content()
    desk_env.sink.clear()

    desk_env.append(reply_to(fwd1, "Status: selesai\nSampah sudah diangkut."))
    desk_env.run_once()
    # each citizen: the answer, then the SUDAH/BELUM question
    mails = desk_env.sink.wait_for(4)
    asks = [m for m in mails if "Balas SUDAH atau BELUM" in
            m.message.get_body(("plain",)).get_content()]
    assert sorted(m.rcpt_tos[0] for m in asks) == [CITIZEN, "sri@example.net"]
    mails = [m for m in mails if m not in asks]
    assert sorted(m.rcpt_tos[0] for m in mails) == [CITIZEN, "sri@example.net"]
    to_sri = next(m.message for m in mails if m.rcpt_tos == ["sri@example.net"])
    assert to_sri["In-Reply-To"] == "<b@example.com>"  # in Sri's own thread

    s1, s2 = desk_env.cli_json("show", t1), desk_env.cli_json("show", t2)
    assert s1["status"] == s2["status"] == "resolved"
    assert [e["type"] for e in s2["events"]][:2] == ["received", "routed"]
    assert "merged" in [e["type"] for e in s2["events"]]
    assert "merged_in" in [e["type"] for e in s1["events"]]
    assert len(s1["messages"]) == 2 and len(s2["messages"]) == 1  # t1: complaint + answer
    with desk_env.db() as conn:
        dup = conn.execute("SELECT public, merged_into FROM complaints WHERE ticket = ?",
                           (t2,)).fetchone()
        target = conn.execute("SELECT id FROM complaints WHERE ticket = ?", (t1,)).fetchone()
    assert dup["public"] == 0 and dup["merged_into"] == target["id"]
    assert json.loads(json.dumps(updates(desk_env, t2))) == []  # one public record: t1's
