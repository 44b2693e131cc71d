"""CLI verbs of the public site (`export`, `publish`, `hide`, `publish-text`)."""

from __future__ import annotations

import argparse
import re
import sqlite3
import sys
from typing import TYPE_CHECKING, Any

import structlog

from lapakd.cli import _print_json, command, open_desk
from lapakd.errors import LapakdError
from lapakd.public import model
from lapakd.store import now_iso

if TYPE_CHECKING:
    from lapakd.app import Desk

log = structlog.get_logger("lapakd.public")


def add_verbs(sub: Any, common: argparse.ArgumentParser, actor: argparse.ArgumentParser) -> None:
    p = sub.add_parser("export", parents=[common],
                       help="write the public site and open data (static files)")
    p.add_argument("--out", help="directory to publish (default: [paths] public_dir)")
    p.add_argument("--full", action="store_true", help="rebuild every page, reuse nothing")

    p = sub.add_parser("publish", parents=[common, actor],
                       help="publish a complaint (and its answers) or one answer held for review")
    p.add_argument("id", help="ticket (LA-2026-000123) or answer (upd-17)")

    p = sub.add_parser("hide", parents=[common, actor],
                       help="hide a complaint or an answer from the public site (--undo: show)")
    p.add_argument("id", help="ticket (LA-2026-000123) or answer (upd-17)")
    p.add_argument("--undo", action="store_true", help="publish it again")
    p.add_argument("--reason", default="", help="why (recorded)")

    p = sub.add_parser("publish-text", parents=[common, actor],
                       help="replace the public text of a complaint (the original is kept)")
    p.add_argument("id", help="ticket (LA-2026-000123)")
    p.add_argument("text", nargs="?", help="the text to publish (- reads stdin)")
    p.add_argument("--reset", action="store_true", help="publish the original text again")


@command("export")
def cmd_export(args: argparse.Namespace) -> int:
    from lapakd.public import export  # why: every `lapakd` run imports this module; few export

    with open_desk(args) as desk:
        result = export.export(desk, args.out, full=args.full)
    if args.json:
        _print_json(result.as_dict())
    else:
        print(f"{result.complaints} complaints published to {result.target} "
              f"({result.rendered} files written, {result.reused} reused, {result.seconds}s)")
    return 0


def set_hidden(desk: Desk, ref: str, hidden: bool, by: str, reason: str = "") -> str:
    store = desk.store
    if is_update_ref(ref):
        return _set_update_hidden(desk, ref, hidden, by, reason)
    c = store.complaint(ref)
    with store.transaction() as conn:
        # Hiding (or showing) is the admin's review: it leaves the queue either way.
        conn.execute("UPDATE complaints SET hidden = ?, awaiting_review = 0, updated_at = ?"
                     " WHERE id = ?", (int(hidden), now_iso(), c["id"]))
        store.event("public_hidden" if hidden else "public_shown", complaint_id=c["id"],
                    actor=by, reason=reason)
    return c["ticket"]


# -- review ([public] review = true): `publish` and answers by their id ---------------------

_UPDATE_REF = re.compile(r"^\s*upd-(\d+)\s*$", re.I)


def is_update_ref(ref: str) -> bool:
    return bool(_UPDATE_REF.match(ref))


def update_row(desk: Desk, ref: str) -> sqlite3.Row:
    m = _UPDATE_REF.match(ref)
    row = desk.store.one(
        "SELECT u.*, c.ticket FROM updates u JOIN complaints c ON c.id = u.complaint_id"
        " WHERE u.id = ?", (int(m.group(1)),)) if m else None
    if row is None:
        raise LapakdError(f"no answer {ref!r} (answers are named upd-N: lapakd show TICKET)")
    return row


def _set_update_hidden(desk: Desk, ref: str, hidden: bool, by: str, reason: str) -> str:
    u = update_row(desk, ref)
    with desk.store.transaction() as conn:
        conn.execute("UPDATE updates SET public = ?, awaiting_review = 0 WHERE id = ?",
                     (int(not hidden), u["id"]))
        desk.store.event("update_hidden" if hidden else "update_shown",
                         complaint_id=u["complaint_id"], actor=by, update=u["id"],
                         reason=reason)
    return f"upd-{u['id']}"


def _on_site(desk: Desk, complaint_id: int) -> bool:
    cols = model.columns(desk.store.conn, "complaints")
    return desk.store.one(
        f"SELECT 1 FROM complaints WHERE id = ? AND {model.publishable_sql(cols)}",
        (complaint_id,)) is not None


def publish(desk: Desk, ref: str, by: str) -> dict[str, Any]:
    """Release what waits for review: a complaint and every answer of it that waits, or one
    answer (`upd-N`). Records who did it (`published`, `update_published` events)."""
    store = desk.store
    if is_update_ref(ref):
        u = update_row(desk, ref)
        if not u["public"]:
            raise LapakdError(f"upd-{u['id']} is hidden: lapakd hide upd-{u['id']} --undo "
                              "publishes it")
        with store.transaction() as conn:
            if u["awaiting_review"]:
                conn.execute("UPDATE updates SET awaiting_review = 0 WHERE id = ?", (u["id"],))
                store.event("update_published", complaint_id=u["complaint_id"], actor=by,
                            update=u["id"])
        return {"id": u["ticket"], "answers": [f"upd-{u['id']}"] if u["awaiting_review"] else [],
                "complaint": False, "on_site": _on_site(desk, u["complaint_id"])}
    c = store.complaint(ref)
    if c["hidden"]:
        raise LapakdError(f"{c['ticket']} is hidden: lapakd hide {c['ticket']} --undo "
                          "publishes it again")
    held = [r["id"] for r in store.all(
        "SELECT id FROM updates WHERE complaint_id = ? AND awaiting_review = 1 AND public = 1"
        " ORDER BY id", (c["id"],))]
    with store.transaction() as conn:
        if c["awaiting_review"]:
            conn.execute("UPDATE complaints SET awaiting_review = 0, updated_at = ? WHERE id = ?",
                         (now_iso(), c["id"]))
        if held:
            conn.execute(
                f"UPDATE updates SET awaiting_review = 0 WHERE id IN ({','.join('?' * len(held))})",
                held)
        if c["awaiting_review"] or held:
            store.event("published", complaint_id=c["id"], actor=by,
                        complaint=bool(c["awaiting_review"]),
                        updates=[f"upd-{i}" for i in held])
    return {"id": c["ticket"], "complaint": bool(c["awaiting_review"]),
            "answers": [f"upd-{i}" for i in held], "on_site": _on_site(desk, c["id"])}


@command("publish")
def cmd_publish(args: argparse.Namespace) -> int:
    with open_desk(args) as desk:
        result = publish(desk, args.id, args.by)
    if args.json:
        _print_json(result)
        return 0
    parts = (["the complaint"] if result["complaint"] else []) + (
        [f"{len(result['answers'])} answer(s) ({', '.join(result['answers'])})"]
        if result["answers"] else [])
    if not parts:
        print(f"{result['id']}: nothing was waiting for review")
    else:
        print(f"{result['id']}: published {' and '.join(parts)} (takes effect at the next export)")
    if not result["on_site"]:
        print(f"{result['id']}: not on the public site all the same (status, a rule's "
              "`public: false`, a merge, or the complaint still waits: lapakd show)")
    return 0


def set_public_text(desk: Desk, ref: str, text: str | None, by: str) -> str:
    store = desk.store
    c = store.complaint(ref)
    if text is not None and not text.strip():
        raise LapakdError("the public text is empty (use --reset to publish the original)")
    with store.transaction() as conn:
        conn.execute("UPDATE complaints SET public_text = ?, updated_at = ? WHERE id = ?",
                     (text, now_iso(), c["id"]))
        store.event("public_text_set" if text is not None else "public_text_reset",
                    complaint_id=c["id"], actor=by, previous=c["public_text"], text=text)
    return c["ticket"]


@command("hide")
def cmd_hide(args: argparse.Namespace) -> int:
    with open_desk(args) as desk:
        ticket = set_hidden(desk, args.id, not args.undo, args.by, args.reason)
    state = "published again" if args.undo else "hidden from the public site"
    if args.json:
        _print_json({"id": ticket, "hidden": not args.undo})
    else:
        print(f"{ticket}: {state} (takes effect at the next export)")
    return 0


@command("publish-text")
def cmd_publish_text(args: argparse.Namespace) -> int:
    if args.reset:
        text = None
    elif args.text == "-":
        text = sys.stdin.read()
    elif args.text:
        text = args.text
    else:
        raise LapakdError("give the TEXT to publish, - for stdin, or --reset")
    with open_desk(args) as desk:
        ticket = set_public_text(desk, args.id, text, args.by)
    if args.json:
        _print_json({"id": ticket, "public_text": text})
    else:
        what = "original text published again" if text is None else "public text replaced"
        print(f"{ticket}: {what} (the original is kept; takes effect at the next export)")
    return 0
