"""Processing and routing commit PER_TRANSACTION items together; one that breaks is undone
(its savepoint) and quarantined alone, the rest of its batch goes on."""

from __future__ import annotations

from deskenv import make_mail

from lapakd.app import Desk
from lapakd.intake import poll as intake
from lapakd.intake import process
from lapakd.routing import route as routing


def _desk_with_mails(desk_env, count: int) -> Desk:
    for i in range(count):
        desk_env.append(make_mail(f"Jalan rusak {i}", f"jalan rusak parah di Desa {i}"))
    desk = Desk.open(str(desk_env.config))
    desk.store.lock_runner()
    intake.poll_channel(desk, "email")
    return desk


def test_a_message_that_breaks_is_quarantined_alone(desk_env, monkeypatch):
    desk = _desk_with_mails(desk_env, 7)
    monkeypatch.setattr(process, "PER_TRANSACTION", 3)

    def poison(desk, row, content):
        if content.subject == "Jalan rusak 4":
            desk.store.event("half_done", message_id=row["id"])  # undone with its savepoint
            raise RuntimeError("boom")
        return False

    monkeypatch.setattr(process, "HANDLERS", [poison, *process.HANDLERS])
    try:
        assert process.process_pending(desk) == 6
        states = dict(desk.store.all("SELECT state, count(*) FROM messages GROUP BY 1"))
        assert states == {"processed": 6, "quarantined": 1}
        bad = desk.store.one("SELECT * FROM messages WHERE state = 'quarantined'")
        assert bad["error"] == "RuntimeError: boom"
        assert desk.store.one("SELECT count(*) FROM events WHERE type = 'half_done'")[0] == 0
        assert desk.store.one("SELECT count(*) FROM complaints")[0] == 6
    finally:
        desk.close()


def test_a_complaint_that_breaks_routing_is_quarantined_alone(desk_env, monkeypatch):
    desk = _desk_with_mails(desk_env, 7)
    monkeypatch.setattr(routing, "PER_TRANSACTION", 3)
    try:
        assert process.process_pending(desk) == 7
        real = routing.apply_decision

        def flaky(desk, complaint, decision, actor):
            real(desk, complaint, decision, actor)  # writes, then breaks: all undone
            if complaint["subject"] == "Jalan rusak 2":
                raise RuntimeError("kaput")

        monkeypatch.setattr(routing, "apply_decision", flaky)
        assert routing.route_due(desk) == 6
        statuses = dict(desk.store.all("SELECT status, count(*) FROM complaints GROUP BY 1"))
        assert statuses.pop("quarantined") == 1 and sum(statuses.values()) == 6
        bad = desk.store.one("SELECT * FROM complaints WHERE status = 'quarantined'")
        assert bad["rule"] is None
        assert desk.store.one(
            "SELECT count(*) FROM outbox WHERE complaint_id = ?", (bad["id"],))[0] == 0
        assert desk.store.one(
            "SELECT count(*) FROM events WHERE complaint_id = ? AND type = 'routed'",
            (bad["id"],))[0] == 0
        assert desk.store.one("SELECT count(*) FROM outbox")[0] == 6
    finally:
        desk.close()
