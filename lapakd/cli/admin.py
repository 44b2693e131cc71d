"""The admin's verbs for following complaints: add, assign, set-status, note, reply, merge.

Each records an event naming the admin (`--by`, default the OS user). Registered in
`cli.VERB_MODULES`. What they queue (forwards, relays) is sent by the daemon's next outbox run.
"""

from __future__ import annotations

import argparse
import mimetypes
import uuid
from pathlib import Path
from typing import Any

from lapakd import channels, statuses
from lapakd.cli import _print_json, command, open_desk
from lapakd.errors import LapakdError
from lapakd.lifecycle import replies
from lapakd.lifecycle import status as lifecycle
from lapakd.redact import extract_location
from lapakd.routing import route as routing
from lapakd.store import dumps, now_iso, utcnow


def add_verbs(sub: Any, common: argparse.ArgumentParser, actor: argparse.ArgumentParser) -> None:
    p = sub.add_parser("add", parents=[common, actor],
                       help="record a complaint brought to the posko in person or by phone")
    p.add_argument("--text", required=True, help="the complaint, as the citizen told it")
    p.add_argument("--channel", choices=channels.entered_by_hand(), default="walkin")
    p.add_argument("--contact", help="the citizen's phone or email (private)")
    p.add_argument("--name", help="the citizen's name (private)")
    p.add_argument("--photo", nargs="+", default=[], metavar="FILE", help="photos to attach")

    p = sub.add_parser("assign", parents=[common, actor],
                       help="route a triage complaint by hand (forwards it)")
    p.add_argument("id", help="ticket, e.g. LA-2026-000123")
    p.add_argument("agencies", nargs="+", metavar="AGENCY", help="agency keys (agencies.yaml)")

    p = sub.add_parser("set-status", parents=[common, actor], help="change a complaint's status")
    p.add_argument("id")
    p.add_argument("status", choices=statuses.SETTABLE)
    p.add_argument("--note", default="",
                   help="public explanation, shown on the site and sent to the citizen")

    p = sub.add_parser("note", parents=[common, actor], help="an internal note (never public)")
    p.add_argument("id")
    p.add_argument("text", nargs="+")

    p = sub.add_parser("reply", parents=[common, actor],
                       help="a public answer from the desk, relayed to the citizen")
    p.add_argument("id")
    p.add_argument("text", nargs="+")

    p = sub.add_parser("merge", parents=[common, actor],
                       help="ID is the same complaint as INTO_ID: one public record")
    p.add_argument("id")
    p.add_argument("into", metavar="INTO_ID")


def _done(args: argparse.Namespace, ticket: str, message: str, **extra: Any) -> int:
    if args.json:
        _print_json({"id": ticket, "result": message, **extra})
    else:
        print(f"{ticket}: {message}")
    return 0


@command("add")
def cmd_add(args: argparse.Namespace) -> int:
    text = args.text.strip()
    if not text:
        raise LapakdError("--text is empty")
    photos = []
    for name in args.photo:
        path = Path(name)
        try:
            photos.append((path.name, path.read_bytes()))
        except OSError as exc:
            raise LapakdError(f"{path}: cannot read the photo: {exc.strerror}") from None
    with open_desk(args) as desk:
        ticket, status, agencies = add_complaint(
            desk, text=text, channel=args.channel, contact=args.contact, name=args.name,
            photos=photos, actor=args.by,
        )
    where = f" → {', '.join(agencies)}" if agencies else ""
    return _done(args, ticket, f"recorded, {status}{where}", status=status, agencies=agencies)


def add_complaint(
    desk: Any, *, text: str, channel: str, contact: str | None, name: str | None,
    photos: list[tuple[str, bytes]], actor: str,
) -> tuple[str, str, list[str]]:
    """Store a walk-in/phone complaint as a message + complaint and route it at once."""
    import json

    store, cfg = desk.store, desk.config
    now = now_iso()
    contact = (contact or "").strip() or None
    reply_ref: dict[str, Any] = {}
    if contact and "@" in contact:
        reply_ref = {"address": contact, "subject": "Aduan Lapak Aduan Banyumas"}
    raw = dumps({"text": text, "channel": channel, "contact": contact, "name": name,
                 "photos": [n for n, _ in photos], "by": actor})
    rules = desk.rules
    with store.transaction() as conn:
        message_id = conn.execute(
            "INSERT INTO messages (channel, external_id, raw, raw_format, meta, received_at,"
            " stored_at, state, kind) VALUES (?, ?, ?, 'json', ?, ?, ?, 'processed',"
            " 'complaint') RETURNING id",
            (channel, f"{channel}-{uuid.uuid4()}", raw.encode(), dumps({"by": actor}), now, now),
        ).fetchone()[0]
        ticket = store.next_ticket(cfg.desk.ticket_prefix, utcnow().astimezone(cfg.tz).year)
        complaint_id = conn.execute(
            "INSERT INTO complaints (ticket, channel, status, sender, sender_name, reply_ref,"
            " text, received_at, route_after, created_at, updated_at, awaiting_review, lat, lon)"
            " VALUES (?, ?, 'new', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (ticket, channel, contact, name, dumps(reply_ref), text, now, now, now, now,
             int(cfg.public.review), *(extract_location(text) or (None, None))),
        ).fetchone()[0]
        conn.execute("UPDATE messages SET complaint_id = ? WHERE id = ?",
                     (complaint_id, message_id))
        store.event("received", complaint_id=complaint_id, message_id=message_id,
                    actor=actor, channel=channel, ticket=ticket, notes=[])
        for filename, data in photos:
            digest = store.save_blob(data)
            ctype = mimetypes.guess_type(filename)[0] or "application/octet-stream"
            conn.execute(
                "INSERT INTO attachments (message_id, complaint_id, sha256, filename,"
                " content_type, size) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (message_id, complaint_id, digest, filename, ctype, len(data)),
            )
        c = store.complaint(complaint_id)
        decision = routing.evaluate_complaint(rules, c)
        routing.apply_decision(desk, c, decision, actor="rules")
        c = store.complaint(complaint_id)
    return ticket, c["status"], json.loads(c["agencies"])


@command("assign")
def cmd_assign(args: argparse.Namespace) -> int:
    with open_desk(args) as desk:
        c = desk.store.complaint(args.id)
        with desk.store.transaction():
            replies.assign(desk, c, [a.lower() for a in args.agencies], actor=args.by)
    return _done(args, c["ticket"], f"forwarded to {', '.join(args.agencies)}")


@command("set-status")
def cmd_set_status(args: argparse.Namespace) -> int:
    with open_desk(args) as desk:
        c = lifecycle.canonical(desk, desk.store.complaint(args.id))
        old = c["status"]
        with desk.store.transaction():
            replies.desk_status(desk, c, args.status, args.note, actor=args.by)
    return _done(args, c["ticket"], f"{old} → {args.status}", status=args.status)


@command("note")
def cmd_note(args: argparse.Namespace) -> int:
    with open_desk(args) as desk:
        c = desk.store.complaint(args.id)
        with desk.store.transaction():
            lifecycle.note(desk, c, " ".join(args.text), actor=args.by)
    return _done(args, c["ticket"], "note recorded (internal)")


@command("reply")
def cmd_reply(args: argparse.Namespace) -> int:
    text = " ".join(args.text).strip()
    if not text:
        raise LapakdError("the reply is empty")
    with open_desk(args) as desk:
        c = lifecycle.canonical(desk, desk.store.complaint(args.id))
        with desk.store.transaction():
            status = None
            if c["status"] in statuses.AWAITING_ANSWER and lifecycle.set_status(
                desk, c, "answered", actor=args.by, reason="desk reply"
            ):
                status = "answered"
            update = lifecycle.add_update(desk, lifecycle.reload(desk, c), source="desk",
                                          actor=args.by, text=text, status_set=status)
    return _done(args, c["ticket"], "reply recorded and queued for the citizen", update=update)


@command("merge")
def cmd_merge(args: argparse.Namespace) -> int:
    with open_desk(args) as desk:
        dup = desk.store.complaint(args.id)
        into = desk.store.complaint(args.into)
        with desk.store.transaction():
            lifecycle.merge(desk, dup, into, actor=args.by)
    return _done(args, dup["ticket"], f"merged into {into['ticket']}")
