"""Nothing lost, nothing twice: SIGKILL the daemon at random moments, restart, check the store."""

from __future__ import annotations

from collections import defaultdict

TEXTS = [
    ("Jalan rusak", "jalan rusak parah di Desa {i}, banyak lubang"),
    ("Sampah", "sampah menumpuk di TPS nomor {i}"),
    ("Pungli", "ada pungli waktu urus surat nomor {i}"),
    ("Pertanyaan", "mohon info jadwal posyandu nomor {i}"),
]



def test_sigkill_at_random_moments_loses_and_doubles_nothing(desk_env):
    total = 500
    desk_env.append_many(TEXTS, total)
    kills = desk_env.kill_runs(6, 0.3, 2.5)
    assert kills >= 5
    # Let a clean run finish whatever the killed ones left.
    desk_env.run_once()
    desk_env.run_once()

    with desk_env.db() as db:
        assert db.execute("SELECT count(*) FROM messages").fetchone()[0] == total
        assert db.execute(
            "SELECT count(DISTINCT external_id) FROM messages").fetchone()[0] == total
        assert db.execute("SELECT count(*) FROM complaints").fetchone()[0] == total
        assert db.execute(
            "SELECT count(*) FROM messages WHERE state != 'processed'").fetchone()[0] == 0
        assert db.execute(
            "SELECT count(*) FROM complaints WHERE status = 'new'").fetchone()[0] == 0
        outbox = db.execute("SELECT status, count(*) FROM outbox GROUP BY status").fetchall()
        assert dict(outbox) == {"sent": total}
        tickets = {r[0] for r in db.execute("SELECT ticket FROM complaints")}
        expected_ids = {r[0]: r[1] for r in db.execute(
            "SELECT c.ticket, o.message_id FROM outbox o JOIN complaints c"
            " ON c.id = o.complaint_id")}

    seen: dict[str, set[str]] = defaultdict(set)
    for mail in desk_env.sink.messages:
        seen[mail.message["X-Lapakd-Ticket"]].add(mail.message["Message-ID"])
    # Every complaint reached its agency (or the admin) at least once ...
    assert set(seen) == tickets
    # ... and any resend after a crash carried the same Message-ID.
    for ticket, ids in seen.items():
        assert ids == {f"<{expected_ids[ticket]}>"}, ticket
    duplicates = len(desk_env.sink.messages) - total
    print(f"{kills} kills, {duplicates} resends (at-least-once, same Message-ID)")
