"""CLI verbs of the public site (`export`, `hide`, `publish-text`) and its daemon job."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Any

import structlog

from lapakd import daemon
from lapakd.cli import _desk, _print_json, command
from lapakd.errors import LapakdError
from lapakd.store import now_iso

if TYPE_CHECKING:
    from lapakd.app import Desk

log = structlog.get_logger("lapakd.public")


def add_verbs(sub: Any, common: argparse.ArgumentParser, actor: argparse.ArgumentParser) -> None:
    p = sub.add_parser("export", parents=[common],
                       help="write the public site and open data (static files)")
    p.add_argument("--out", help="directory to publish (default: [paths] public_dir)")
    p.add_argument("--full", action="store_true", help="rebuild every page, reuse nothing")

    p = sub.add_parser("hide", parents=[common, actor],
                       help="hide a complaint from the public site (--undo to show it again)")
    p.add_argument("id", help="ticket (LA-2026-000123)")
    p.add_argument("--undo", action="store_true", help="publish it again")
    p.add_argument("--reason", default="", help="why (recorded)")

    p = sub.add_parser("publish-text", parents=[common, actor],
                       help="replace the public text of a complaint (the original is kept)")
    p.add_argument("id", help="ticket (LA-2026-000123)")
    p.add_argument("text", nargs="?", help="the text to publish (- reads stdin)")
    p.add_argument("--reset", action="store_true", help="publish the original text again")


@command("export")
def cmd_export(args: argparse.Namespace) -> int:
    from lapakd.public import export

    desk = _desk(args)
    try:
        result = export.export(desk, args.out, full=args.full)
    finally:
        desk.close()
    if args.json:
        _print_json(result.as_dict())
    else:
        print(f"{result.complaints} complaints published to {result.target} "
              f"({result.rendered} files written, {result.reused} reused, {result.seconds}s)")
    return 0


def set_hidden(desk: Desk, ref: str, hidden: bool, by: str, reason: str = "") -> str:
    store = desk.store
    c = store.complaint(ref)
    with store.transaction() as conn:
        conn.execute("UPDATE complaints SET hidden = ?, updated_at = ? WHERE id = ?",
                     (int(hidden), now_iso(), c["id"]))
        store.event("public_hidden" if hidden else "public_shown", complaint_id=c["id"],
                    actor=by, reason=reason)
    return c["ticket"]


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
    desk = _desk(args)
    try:
        ticket = set_hidden(desk, args.id, not args.undo, args.by, args.reason)
    finally:
        desk.close()
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
    desk = _desk(args)
    try:
        ticket = set_public_text(desk, args.id, text, args.by)
    finally:
        desk.close()
    if args.json:
        _print_json({"id": ticket, "public_text": text})
    else:
        what = "original text published again" if text is None else "public text replaced"
        print(f"{ticket}: {what} (the original is kept; takes effect at the next export)")
    return 0


# -- daemon job: export every [public] export_minutes (0 = never) ----------------------------

_last_export: dict[int, float] = {}


def export_job(desk: Desk) -> object:
    minutes = desk.config.public.export_minutes
    if minutes <= 0:
        return None
    last = _last_export.get(id(desk))
    if last is not None and time.monotonic() - last < minutes * 60:
        return None
    from lapakd.public import export

    _last_export[id(desk)] = time.monotonic()
    return export.export(desk).rendered


if not any(name == "export" for name, _, _ in daemon.EXTRA_JOBS):
    daemon.EXTRA_JOBS.append(("export", 30, export_job))
