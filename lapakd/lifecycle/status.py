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
from lapakd.mail.text import contact_line, tanggal
from lapakd.outbox import queue as outbox
from lapakd.redact import known_names, redact
from lapakd.routing import deadlines
from lapakd.routing import route as routing
from lapakd.store import now_iso, parse_iso, utcnow

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
    desk: Desk, c: sqlite3.Row, status: str, *, actor: str, reason: str | None = None,
    ask: bool = True,
) -> bool:
    """Change the status (and its duplicates'); an event records who and why. False: no-op.

    Entering `resolved` asks the citizen to confirm; `ask=False`: the caller asks itself, after
    the update it relays (so the citizen reads the agency's answer before the question)."""
    if status not in statuses.LABELS:
        raise LapakdError(f"unknown status {status!r} (one of: {', '.join(statuses.SETTABLE)})")
    if c["status"] == status:
        return False
    store, now = desk.store, now_iso()
    sets = ["status = ?", "updated_at = ?"]
    params: list[object] = [status, now]
    if status == "waiting_budget":  # budget-bound: no deadline any more, neither clock
        sets += ["due_at = NULL", "resolve_due_at = NULL", "budget_dependent = 1"]
    if status in statuses.AWAITING_CONFIRMATION:
        # the agency says selesai: the citizen may object until confirm_due_at
        sets += ["resolved_at = ?", "confirm_due_at = ?"]
        params += [now, deadlines.confirm_due_at(desk.config, utcnow(),
                                                 desk.config.desk.confirm_days)]
    elif c["status"] in statuses.AWAITING_CONFIRMATION:
        sets.append("confirm_due_at = NULL")
    if status == "reopened":  # back to the agency: a new resolution deadline from now
        sets.append("resolve_due_at = ?")
        params.append(new_resolve_due(desk, c))
    sets.append("closed_at = ?")
    params.append(now if status in statuses.CLOSED else None)
    store.conn.execute(
        f"UPDATE complaints SET {', '.join(sets)} WHERE id = ? OR merged_into = ?",
        (*params, c["id"], c["id"]),
    )
    store.event("status_changed", complaint_id=c["id"], actor=actor,
                reason=reason, **{"from": c["status"], "to": status})
    if ask and status in statuses.AWAITING_CONFIRMATION:
        ask_confirmation(desk, reload(desk, c), actor=actor)
    return True


def new_resolve_due(desk: Desk, c: sqlite3.Row) -> str | None:
    """A fresh resolution deadline (reopened): `resolve_days` from now; none when budget-bound."""
    if c["budget_dependent"]:
        return None
    days = c["resolve_days"] or routing.effective_resolve_days(desk, json.loads(c["agencies"]))
    return deadlines.resolve_due_at(desk.config, utcnow(), days)


# -- the citizen confirms: "Apakah masalahnya sudah selesai?" ---------------------------------

CONFIRM_QUESTION = "Apakah masalahnya sudah selesai? Balas SUDAH atau BELUM"


def by_email(c: sqlite3.Row, ref: dict) -> bool:
    """The citizen is answered by email: they wrote one, or an admin entered their complaint by
    hand (walk-in, phone) with an address."""
    return c["channel"] == "email" or (
        c["channel"] in channels.entered_by_hand() and bool(ref.get("address")))


def email_address(c: sqlite3.Row, ref: dict) -> str | None:
    """Where the email answer goes: the reply address kept at intake, else the sender's."""
    return ref.get("address") or (c["sender"] if c["channel"] == "email" else None)


def _email_citizen(desk: Desk, c: sqlite3.Row, ref: dict, *, kind: str, dedupe_key: str,
                   payload: dict, skipped: str) -> int | None:
    """Queue a mail to the citizen (a relay, the SUDAH/BELUM question): the outbox row, None
    when it was queued before or no address is known (then a `skipped` event says so)."""
    address = email_address(c, ref)
    if not address:
        desk.store.event(skipped, complaint_id=c["id"], reason="no address")
        return None
    return outbox.enqueue(desk.store, domain=desk.desk_domain, kind=kind, complaint=c,
                          recipients=[address], dedupe_key=dedupe_key, payload=payload)


def confirm_text(desk: Desk, c: sqlite3.Row, ticket: str) -> str:
    """The question on chat and social channels (email has its template)."""
    tz = desk.config.tz
    until = parse_iso(c["confirm_due_at"])
    day = tanggal(until, tz, time=False) if until else ""
    return (
        f"Aduan {ticket} dinyatakan selesai oleh instansi. {CONFIRM_QUESTION} (boleh dengan "
        f"keterangan). Nilai 1-5? Tambahkan angkanya, mis. \"SUDAH 5\". Tanpa balasan sampai "
        f"{day}, aduan dianggap selesai.\n{ticket_url(desk.config.desk.public_url, ticket)}"
    )


def ask_confirmation(desk: Desk, c: sqlite3.Row, *, actor: str) -> int:
    """Queue the SUDAH/BELUM question to the citizen (and duplicates' citizens) on the channel
    each used, once per `selesai` (a BELUM and a new `selesai` ask again)."""
    targets = [c, *desk.store.all("SELECT * FROM complaints WHERE merged_into = ?", (c["id"],))]
    queued = 0
    for target in targets:
        queued += _ask_one(desk, target, canonical=c, actor=actor)
    return queued


def _ask_one(desk: Desk, c: sqlite3.Row, *, canonical: sqlite3.Row, actor: str) -> int:
    store = desk.store
    ref = json.loads(c["reply_ref"] or "{}")
    # one question per round: the round is the number of BELUMs so far
    dedupe_key = f"confirm:{c['id']}:{canonical['reopen_count']}"
    payload = {"ticket": canonical["ticket"], "reply_ref": ref,
               "confirm_due_at": canonical["confirm_due_at"],
               "agencies": json.loads(canonical["agencies"])}
    if by_email(c, ref):
        row = _email_citizen(desk, c, ref, kind="confirm_ask", dedupe_key=dedupe_key,
                             payload=payload, skipped="confirm_skipped")
    elif desk.config.channels.get(c["channel"]) is None:
        store.event("confirm_skipped", complaint_id=c["id"],
                    reason=f"no channel to ask on ({c['channel']}); ask the citizen directly")
        return 0
    else:
        # WhatsApp asks with buttons (or its follow-up template); the other channels take the
        # question as a relay: a DM where one is possible, else a reply to the citizen's post
        kind = "confirm_ask" if c["channel"] == "whatsapp" else "relay"
        row = outbox.enqueue(
            store, domain=desk.desk_domain, kind=kind, complaint=c, transport=c["channel"],
            recipients=[c["sender"]] if c["sender"] else [], dedupe_key=dedupe_key,
            payload=payload | {"text": confirm_text(desk, canonical, canonical["ticket"]),
                               "confirm": True},
        )
    if row:
        store.event("confirm_asked", complaint_id=c["id"], outbox_id=row, actor=actor,
                    channel=c["channel"], until=canonical["confirm_due_at"],
                    round=canonical["reopen_count"])
    return 1 if row else 0


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
    if by_email(c, ref):
        row = _email_citizen(desk, c, ref, kind="relay", dedupe_key=dedupe_key,
                             payload=payload, skipped="relay_skipped")
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
