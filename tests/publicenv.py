"""A desk with a store seeded directly (no mail servers), for the public-site tests and bench."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from lapakd.app import Desk
from lapakd.config import dump_toml, load_config
from lapakd.public import model
from lapakd.store import iso

TESTS = Path(__file__).resolve().parent
TEST_RULES = TESTS / "data" / "rules"


def make_desk(root: Path, **public: Any) -> Desk:
    (root / "lapakd.toml").write_text(dump_toml({
        "desk": {"email": "lapakaduanbms@banyumas.example",
                 "admin_email": "admin.lapakaduan@banyumas.example",
                 "public_url": "https://lapakaduan.example"},
        "paths": {"data_dir": "var", "rules_dir": str(TEST_RULES), "public_dir": "var/public"},
        "public": public,
    }), encoding="utf-8")
    return Desk(load_config(root / "lapakd.toml"))


def add_complaint(
    desk: Desk, text: str, *, status: str = "forwarded", channel: str = "email",
    agencies: tuple[str, ...] = ("dpupr",), category: str | None = "PEKERJAAN UMUM",
    received: datetime | None = None, sender: str = "budi.warga@example.com",
    sender_name: str = "Budi Santoso", subject: str = "Aduan", public: bool = True,
    due_days: int | None = 7, kecamatan: str | None = None, answer: str | None = None,
) -> str:
    """Insert a routed complaint like the pipeline leaves it (+ forward sent, + answer)."""
    store = desk.store
    received = received or datetime.now(UTC) - timedelta(days=1)
    with store.transaction() as conn:
        ticket = store.next_ticket("LA", received.year)
        due = iso(received + timedelta(days=due_days)) if due_days is not None else None
        cur = conn.execute(
            "INSERT INTO complaints (ticket, channel, status, sender, sender_name, reply_ref,"
            " subject, text, received_at, route_after, category, agencies, due_at, kecamatan,"
            " public, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (ticket, channel, status, sender, sender_name, json.dumps({"to": sender}), subject,
             text, iso(received), iso(received), category, json.dumps(list(agencies)), due,
             kecamatan, int(public), iso(received), iso(received)),
        )
        cid = cur.lastrowid
        store.event("routed", complaint_id=cid, action="forward", agencies=list(agencies))
        for a in agencies:
            sent = iso(received + timedelta(minutes=5))
            ob = conn.execute(
                "INSERT INTO outbox (kind, transport, complaint_id, recipients, payload,"
                " dedupe_key, message_id, status, next_attempt_at, created_at, sent_at)"
                " VALUES ('forward','smtp',?,?,?,?,?,'sent',?,?,?)",
                (cid, json.dumps([f"{a}@banyumas.example"]), json.dumps({"agency": a}),
                 f"forward:{cid}:{a}", f"<f{cid}{a}@x>", sent, sent, sent),
            )
            store.event("sent", complaint_id=cid, outbox_id=ob.lastrowid, kind="forward",
                        at=sent)
        if answer is not None and model.has_table(conn, "updates"):  # 0002_lifecycle
            at = iso(received + timedelta(days=2))
            conn.execute(
                "INSERT INTO updates (complaint_id, at, source, agency, actor, text, raw_text)"
                " VALUES (?, ?, 'agency', ?, ?, ?, ?)",
                (cid, at, agencies[0], f"{agencies[0]}@banyumas.example", answer, answer),
            )
            conn.execute("UPDATE complaints SET first_answer_at = ? WHERE id = ?", (at, cid))
    return ticket
