"""After forwarding: statuses, public updates, relaying answers to citizens, merging duplicates.

Every function here works inside the caller's transaction and records an event naming who or
what caused the change, so `lapakd show` tells the whole story. Agency email replies
(`replies.py`), the admin's verbs (`admin.py`) and the scheduled jobs (`scheduled.py`) all go
through these functions.
"""

from __future__ import annotations

import json
import sqlite3
from typing import TYPE_CHECKING

from lapakd import channels, statuses
from lapakd.errors import LapakdError
from lapakd.lifecycle import boilerplate
from lapakd.links import ticket_url
from lapakd.mail.text import contact_line
from lapakd.outbox import queue as outbox
from lapakd.redact import known_names, redact
from lapakd.store import now_iso

if TYPE_CHECKING:
    from lapakd.app import Desk

def reload(desk: Desk, c: sqlite3.Row) -> sqlite3.Row:
    row = desk.store.one("SELECT * FROM complaints WHERE id = ?", (c["id"],))
    assert row is not None
    return row


def canonical(desk: Desk, c: sqlite3.Row) -> sqlite3.Row:
    """The complaint a merged duplicate lives on in (itself when not merged)."""
    seen = set()
    while c["merged_into"] is not None and c["id"] not in seen:
        seen.add(c["id"])
        nxt = desk.store.one("SELECT * FROM complaints WHERE id = ?", (c["merged_into"],))
        if nxt is None:
            break
        c = nxt
    return c


def set_status(
    desk: Desk, c: sqlite3.Row, status: str, *, actor: str, reason: str | None = None
) -> bool:
    """Change the status (and its duplicates'); an event records who and why. False: no-op."""
    if status not in statuses.LABELS:
        raise LapakdError(f"unknown status {status!r} (one of: {', '.join(statuses.SETTABLE)})")
    if c["status"] == status:
        return False
    store, now = desk.store, now_iso()
    sets = ["status = ?", "updated_at = ?"]
    params: list[object] = [status, now]
    if status == "waiting_budget":  # budget-bound: no deadline any more
        sets += ["due_at = NULL", "budget_dependent = 1"]
    sets.append("closed_at = ?")
    params.append(now if status in statuses.CLOSED else None)
    store.conn.execute(
        f"UPDATE complaints SET {', '.join(sets)} WHERE id = ? OR merged_into = ?",
        (*params, c["id"], c["id"]),
    )
    store.event("status_changed", complaint_id=c["id"], actor=actor,
                reason=reason, **{"from": c["status"], "to": status})
    return True


def add_update(
    desk: Desk,
    c: sqlite3.Row,
    *,
    source: str,
    actor: str,
    text: str,
    raw_text: str = "",
    agency: str | None = None,
    status_set: str | None = None,
    message_id: int | None = None,
    relay_from: str | None = None,
) -> int:
    """A public update (agency answer or desk reply), redacted, then relayed to the citizen."""
    store, now = desk.store, now_iso()
    keys = c.keys()
    names = known_names(c["sender_name"] if "sender_name" in keys else None,
                        c["sender"] if "sender" in keys else None)
    # Whatever the reply parser missed, the forward's text and the citizen's contact stop here:
    # this text is both published and relayed.
    contact = contact_line(c) if c["sender"] else None
    public_text = redact(boilerplate.scrub(text, contact).strip(), names)
    # [public] review: an agency's answer waits for `lapakd publish`; the desk's own are
    # written by an admin and published at once. The citizen's relay is not held.
    held = int(source == "agency" and desk.config.public.review)
    update_id = store.conn.execute(
        "INSERT INTO updates (complaint_id, at, source, agency, actor, text, raw_text,"
        " status_set, message_id, awaiting_review) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " RETURNING id",
        (c["id"], now, source, agency, actor, public_text, raw_text or text, status_set,
         message_id, held),
    ).fetchone()[0]
    if source == "agency":
        store.conn.execute(
            "UPDATE complaints SET first_answer_at = COALESCE(first_answer_at, ?),"
            " updated_at = ? WHERE id = ?",
            (now, now, c["id"]),
        )
    store.event("update", complaint_id=c["id"], message_id=message_id, actor=actor,
                update=update_id, source=source, agency=agency, status=status_set,
                text=public_text)
    c = reload(desk, c)
    if not relay_from:
        relay_from = (
            desk.rules.agencies[agency].name
            if agency and agency in desk.rules.agencies else desk.config.desk.name
        )
    relay(desk, c, key=f"update:{update_id}", text=public_text, sender_label=relay_from,
          status=c["status"])
    return update_id


def relay(
    desk: Desk, c: sqlite3.Row, *, key: str, text: str, sender_label: str, status: str,
    note: str | None = None,
) -> int:
    """Queue the citizen's copy of an update on their channel, once per update and citizen.

    Duplicates merged into this complaint are told too. Returns the rows queued."""
    if not desk.config.desk.relay_answers:
        return 0
    targets = [c, *desk.store.all("SELECT * FROM complaints WHERE merged_into = ?", (c["id"],))]
    queued = 0
    for target in targets:
        queued += _relay_one(desk, target, key=key, text=text, sender_label=sender_label,
                             status=status, note=note, canonical=c)
    return queued


def _relay_one(
    desk: Desk, c: sqlite3.Row, *, key: str, text: str, sender_label: str, status: str,
    note: str | None, canonical: sqlite3.Row,
) -> int:
    store = desk.store
    ref = json.loads(c["reply_ref"] or "{}")
    payload = {
        "text": text, "from": sender_label, "status": status,
        "status_label": statuses.label(status), "reply_ref": ref,
        "ticket": canonical["ticket"], "note": note,
    }
    dedupe_key = f"relay:{c['id']}:{key}"
    by_hand = c["channel"] in channels.entered_by_hand()
    if c["channel"] == "email" or (by_hand and ref.get("address")):
        address = ref.get("address") or (c["sender"] if c["channel"] == "email" else None)
        if not address:
            store.event("relay_skipped", complaint_id=c["id"], reason="no address")
            return 0
        row = outbox.enqueue(store, domain=desk.desk_domain, kind="relay", complaint=c,
                             recipients=[address], dedupe_key=dedupe_key, payload=payload)
        return 1 if row else 0
    section = desk.config.channels.get(c["channel"])
    if section is None:
        store.event("relay_skipped", complaint_id=c["id"],
                    reason=f"no channel to answer on ({c['channel']}); tell the citizen directly")
        return 0
    row = outbox.enqueue(
        store, domain=desk.desk_domain, kind="relay", complaint=c, transport=c["channel"],
        recipients=[c["sender"]] if c["sender"] else [], dedupe_key=dedupe_key,
        payload={"reply_ref": ref, "text": relay_text(desk, canonical, payload)},
    )
    return 1 if row else 0


def relay_text(desk: Desk, c: sqlite3.Row, payload: dict) -> str:
    """The short text of a relay on chat and social channels."""
    parts = [f"Perkembangan aduan {payload['ticket']} dari {payload['from']}:"]
    if payload.get("note"):
        parts.append(payload["note"])
    if payload.get("text"):
        parts.append(payload["text"])
    parts.append(f"Status: {payload['status_label']}.")
    parts.append(f"Selengkapnya: {ticket_url(desk.config.desk.public_url, payload['ticket'])}")
    return "\n".join(parts)


def status_sentence(status: str) -> str:
    return f"Status aduan diubah menjadi: {statuses.label(status)}."


def note(desk: Desk, c: sqlite3.Row, text: str, *, actor: str,
         message_id: int | None = None) -> None:
    """An internal note: an event only, never public, never relayed."""
    desk.store.event("note", complaint_id=c["id"], message_id=message_id, actor=actor,
                     text=text.strip())


def merge(desk: Desk, dup: sqlite3.Row, into: sqlite3.Row, *, actor: str) -> None:
    """`dup` is the same complaint as `into`: one public record, both citizens kept informed.

    Each keeps its own messages, attachments and events; the duplicate is hidden from the
    public list, follows the target's status, and its citizen gets the target's updates."""
    if dup["id"] == into["id"]:
        raise LapakdError("cannot merge a complaint into itself")
    into = canonical(desk, into)
    if into["id"] == dup["id"]:
        raise LapakdError(f"{into['ticket']} is already merged into {dup['ticket']}")
    if dup["merged_into"] is not None:
        raise LapakdError(f"{dup['ticket']} is already merged (into complaint id "
                          f"{dup['merged_into']})")
    store, now = desk.store, now_iso()
    store.conn.execute(
        "UPDATE complaints SET merged_into = ?, public = 0, status = ?, due_at = NULL,"
        " updated_at = ? WHERE id = ? OR merged_into = ?",
        (into["id"], into["status"], now, dup["id"], dup["id"]),
    )
    store.event("merged", complaint_id=dup["id"], actor=actor, into=into["ticket"],
                **{"from": dup["status"], "to": into["status"]})
    store.event("merged_in", complaint_id=into["id"], actor=actor, duplicate=dup["ticket"])
    if desk.config.desk.relay_answers:
        _relay_one(
            desk, reload(desk, dup), key=f"merged:{into['id']}", text="",
            sender_label=desk.config.desk.name, status=into["status"], canonical=into,
            note=(f"Aduan Anda {dup['ticket']} sama dengan aduan {into['ticket']} dan kini "
                  "ditangani bersama. Perkembangannya akan kami kirimkan kepada Anda."),
        )
