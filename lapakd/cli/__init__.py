"""The `lapakd` command line. Every verb takes --config; --json gives machine output. The
pipeline's verbs are here; the admin's (admin.py) and the public site's (public.py) register
through VERB_MODULES.

Errors an admin can fix are printed as one line (file, line, fix) with exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import importlib
import json
import sqlite3
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lapakd import log as logsetup
from lapakd.errors import LapakdError, RulesError

if TYPE_CHECKING:
    from lapakd.app import Desk

Command = Callable[[argparse.Namespace], int]
COMMANDS: dict[str, Command] = {}
# Each verb imports the stages it runs inside its handler (why: `lapakd <verb>` starts in a
# fraction of the time when it loads only its own stage, not the whole daemon).

# Modules that add their own verbs: each has `add_verbs(sub, common, actor)`, registering
# handlers with @command. One line here per feature module.
VERB_MODULES: list[str] = [
    "lapakd.cli.public",  # export, hide, publish-text
    "lapakd.cli.admin",  # add, assign, set-status, note, reply, merge
    "lapakd.cli.backup",  # backup (--verify, --keep)
]


def command(name: str) -> Callable[[Command], Command]:
    def register(fn: Command) -> Command:
        COMMANDS[name] = fn
        return fn

    return register


@contextlib.contextmanager
def open_desk(args: argparse.Namespace) -> Iterator[Desk]:
    """The desk of --config for one verb; closed when the verb is done, or fails."""
    from lapakd.app import Desk  # when a verb runs: importing lapakd.cli stays light

    desk = Desk.open(args.config)
    try:
        yield desk
    finally:
        desk.close()


def _print_json(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2, default=str))


def default_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "admin"


# -- run ------------------------------------------------------------------------------------


@command("run")
def cmd_run(args: argparse.Namespace) -> int:
    from lapakd import daemon

    problems: list[str] = []
    with open_desk(args) as desk:
        if args.once:
            problems = daemon.run_once(desk)
        else:
            daemon.run_forever(desk)
    if problems:  # what succeeded stays done; cron and monitoring see the exit status
        print(f"lapakd: run --once: {'; '.join(problems)}", file=sys.stderr)
        return 1
    return 0


# -- rules ----------------------------------------------------------------------------------


@command("rules check")
def cmd_rules_check(args: argparse.Namespace) -> int:
    from lapakd.config import load_config
    from lapakd.rules import check_examples, load_rules

    cfg = load_config(args.config)
    try:
        rules = load_rules(cfg.rules_dir, display_root=Path.cwd())
    except RulesError as exc:
        if args.json:
            _print_json({"ok": False, "problems": exc.problems, "failures": []})
        else:
            for p in exc.problems:
                print(p, file=sys.stderr)
            print(f"{len(exc.problems)} problem(s) in {cfg.rules_dir}", file=sys.stderr)
        return 1
    failures = check_examples(rules)
    if args.json:
        _print_json({
            "ok": not failures, "problems": [], "failures": failures,
            "rules": len(rules.rules), "agencies": len(rules.agencies),
            "examples": len(rules.examples),
        })
    else:
        for f in failures:
            print(f, file=sys.stderr)
        print(
            f"{len(rules.rules)} rules, {len(rules.agencies)} agencies, "
            f"{len(rules.examples) - len(failures)}/{len(rules.examples)} examples pass"
        )
    return 1 if failures else 0


@command("rules test")
def cmd_rules_test(args: argparse.Namespace) -> int:
    from lapakd.config import load_config
    from lapakd.rules import load_rules

    cfg = load_config(args.config)
    rules = load_rules(cfg.rules_dir, display_root=Path.cwd())
    if args.file:
        source = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8")  # noqa: SIM115
        with source:
            texts = [line.rstrip("\n") for line in source if line.strip()]
    elif args.text:
        texts = [" ".join(args.text)]
    else:
        raise LapakdError("give a TEXT or --file FILE (one text per line)")
    for text in texts:
        d = decide_text(rules, text, args.channel, args.sender)
        out = {
            "text": text, "action": d.action, "agencies": d.agencies, "category": d.category,
            "rule": d.rule, "matched": d.matched, "score": d.score, "runners_up": d.runners_up,
        }
        if args.json:
            print(json.dumps(out, ensure_ascii=False))
            continue
        prefix = f"{text[:60]!r}: " if len(texts) > 1 else ""
        print(prefix + format_decision(d))
    return 0


def decide_text(rules: Any, text: str, channel: str | None, sender: str | None) -> Any:
    """The decision `rules test` shows for a text: the rules' (the seam where the model's step
    is to follow the rules, as the daemon's routing does)."""
    return rules.evaluate(text, channel, sender)


def format_decision(d: Any) -> str:
    """A decision in one line, then its runners-up one a line (`rules test`)."""
    target = ", ".join(d.agencies) if d.action == "forward" else d.action
    why = (
        f"rule {d.rule!r} ({d.hits[0]['where']}) score {d.score:g} "
        f"matched {', '.join(d.matched) or '-'}"
        if d.rule else "no rule matched"
    )
    lines = [f"{d.action} → {target} · {d.category or '-'} · {why}"]
    for r in d.runners_up:
        goes = ", ".join(r["agencies"]) if r["action"] == "forward" else r["action"]
        lines.append(f"  runner-up: {r['rule']!r} ({r['where']}) score {r['score']:g} → {goes}")
    return "\n".join(lines)


@command("rules eval")
def cmd_rules_eval(args: argparse.Namespace) -> int:
    from lapakd.config import load_config
    from lapakd.rules import load_rules
    from lapakd.rules.measure import format_report, measure, read_labelled, rules_predictor

    if bool(args.file) == bool(args.history):
        raise LapakdError("rules eval: give --file labelled.csv or --history (one of them)")
    if args.file:
        cfg = load_config(args.config)
        rules = load_rules(cfg.rules_dir, display_root=Path.cwd())
        cases = read_labelled(Path(args.file), rules.agencies)
    else:
        from lapakd.routing.history import decided_cases

        with open_desk(args) as desk:
            rules = desk.rules
            cases = decided_cases(desk.store)
    # the seam for other predictors (the model, the rules then the model): any Predictor
    report = measure(cases, rules_predictor(rules))
    if args.json:
        _print_json(report.as_dict())
    elif not cases:
        print("no decided complaints in the store yet (assigned by an admin, or answered)")
    else:
        print(format_report(report))
    return 0


# -- list / show / requeue / status -----------------------------------------------------------


@command("list")
def cmd_list(args: argparse.Namespace) -> int:
    from lapakd.cli import views

    with open_desk(args) as desk:
        if args.unreviewed:
            rows = views.unreviewed(desk)
        else:
            rows = views.list_complaints(
                desk, status=args.status, agency=args.agency, overdue=args.overdue,
                limit=args.limit
            )
    if args.json:
        _print_json(rows)
        return 0
    if args.unreviewed:
        for r in rows:
            text = " ".join(r["public_text"].split())[:60]
            if r["review"] == "answer":
                print(f"{r['id']:<17} answer    {r['ticket']:<17} {r['agency'] or '-':<9} {text}")
            else:
                print(f"{r['id']:<17} complaint {r['status']:<17} "
                      f"{','.join(r['agencies']) or '-':<9} {text}")
        print(f"{len(rows)} awaiting review (lapakd publish ID, lapakd hide ID)")
        return 0
    if not rows:
        print("no complaints")
        return 0
    for r in rows:
        agencies = ",".join(r["agencies"]) or "-"
        text = " ".join(r["text"].split())[:60]
        print(f"{r['id']:<17} {r['status']:<12} {r['channel']:<9} {agencies:<14} {text}")
    return 0


@command("show")
def cmd_show(args: argparse.Namespace) -> int:
    from lapakd.cli import views

    with open_desk(args) as desk:
        data = views.show(desk, args.id)
    if args.json:
        _print_json(data)
    else:
        print(views.format_show(data))
    return 0


@command("requeue")
def cmd_requeue(args: argparse.Namespace) -> int:
    from lapakd.intake import process
    from lapakd.outbox import queue as outbox
    from lapakd.routing import route as routing

    if not args.ids and not args.failed:
        raise LapakdError("requeue: give one or more ids (LA-2026-000123, msg-17) or --failed")
    if (args.since or args.agency) and not args.failed:
        raise LapakdError("requeue: --since and --agency go with --failed")
    with open_desk(args) as desk:
        since = _since(desk, args.since) if args.since else None
        if args.agency and args.agency not in desk.rules.agencies:
            raise LapakdError(f"requeue: --agency {args.agency}: no such agency in "
                              f"{desk.config.rules_dir}/agencies.yaml")
        # Every id is looked up before anything changes: a typo requeues nothing.
        refs = []
        for ref in (r.strip() for r in args.ids):
            if ref.lower().startswith("msg-"):
                refs.append(("message", desk.store.message(ref)))
            else:
                refs.append(("complaint", desk.store.complaint(ref)))
        for kind, row in refs:
            if kind == "message":
                process.requeue_message(desk.store, row["id"], args.by)
                print(f"msg-{row['id']}: queued for processing again")
            else:
                print(f"{row['ticket']}: {routing.requeue_complaint(desk.store, row, args.by)}")
        if args.failed:
            rows, complaints = outbox.requeue_failed(
                desk.store, args.by, since=since, agency=args.agency)
            print(f"{rows} failed message(s) of {complaints} complaint(s) queued for sending "
                  "again (same Message-IDs)")
    return 0


def _since(desk: Any, value: str) -> str:
    """--since: a date (midnight in the desk's time zone) or a date and time, as ISO UTC."""
    from datetime import datetime

    from lapakd.store import iso

    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise LapakdError(f"requeue: --since {value!r} is not a date "
                          "(YYYY-MM-DD or YYYY-MM-DDTHH:MM)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=desk.config.tz)
    return iso(when)  # type: ignore[return-value]


@command("status")
def cmd_status(args: argparse.Namespace) -> int:
    from lapakd.cli import views

    with open_desk(args) as desk:
        data = views.status(desk)
    if args.json:
        _print_json(data)
    else:
        print(views.format_status(data))
    return 1 if data["needs_admin"] else 0


@command("demo")
def cmd_demo(args: argparse.Namespace) -> int:
    from lapakd import demo

    return demo.main(args)


# -- parser ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    def options(suppress: bool) -> argparse.ArgumentParser:
        # Sub-commands must not reset what was given before the verb: SUPPRESS their defaults.
        def default(value: Any) -> Any:
            return argparse.SUPPRESS if suppress else value

        p = argparse.ArgumentParser(add_help=False)
        p.add_argument("--config", default=default(None),
                       help="path to lapakd.toml (else $LAPAKD_CONFIG, ./lapakd.toml)")
        p.add_argument("--json", action="store_true", default=default(False),
                       help="machine-readable output")
        p.add_argument("--log-level", default=default("info"),
                       choices=["debug", "info", "warning", "error"])
        return p

    top, common = options(False), options(True)
    actor = argparse.ArgumentParser(add_help=False)
    actor.add_argument("--by", default=default_actor(), help="who does this (recorded)")

    parser = argparse.ArgumentParser(
        prog="lapakd", description="Complaint desk daemon for Lapak Aduan Banyumas.",
        parents=[top],
    )
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    p = sub.add_parser("run", parents=[common], help="run the daemon")
    p.add_argument("--once", action="store_true", help="run every job once, then exit")

    rules = sub.add_parser("rules", help="check and try the routing rules")
    rsub = rules.add_subparsers(dest="rules_verb", metavar="check|test|eval", required=True)
    rsub.add_parser("check", parents=[common], help="validate rules/ and run every example")
    p = rsub.add_parser("test", parents=[common], help="show how a text would be routed")
    p.add_argument("text", nargs="*", help="the complaint text")
    p.add_argument("--file", help="one text per line (- for stdin)")
    p.add_argument("--channel", help="pretend the text came on this channel")
    p.add_argument("--sender", help="pretend the text came from this sender")
    p = rsub.add_parser("eval", parents=[common],
                        help="measure routing on labelled complaints (routed share, precision)")
    p.add_argument("--file", help="a CSV file with the columns text,agency (agency: a key, "
                   "a|b for several acceptable ones, or triage)")
    p.add_argument("--history", action="store_true",
                   help="the store's decided complaints (assigned by an admin, or answered)")

    p = sub.add_parser("list", parents=[common], help="list complaints")
    p.add_argument("--status")
    p.add_argument("--agency")
    p.add_argument("--overdue", action="store_true", help="only complaints past their deadline")
    p.add_argument("--unreviewed", action="store_true",
                   help="complaints and answers waiting for `publish` ([public] review)")
    p.add_argument("--limit", type=int, default=0, help="at most this many (0: all)")

    p = sub.add_parser("show", parents=[common], help="a complaint's story")
    p.add_argument("id", help="ticket (LA-2026-000123) or message (msg-17)")

    p = sub.add_parser("requeue", parents=[common, actor],
                       help="retry quarantined items and failed sends")
    p.add_argument("ids", nargs="*", metavar="ID",
                   help="tickets (LA-2026-000123) or messages (msg-17)")
    p.add_argument("--failed", action="store_true",
                   help="every failed outgoing message (same Message-IDs)")
    p.add_argument("--since", help="with --failed: only those that failed from this date "
                   "(YYYY-MM-DD, desk time zone) or time on")
    p.add_argument("--agency", help="with --failed: only those for this agency key")

    sub.add_parser("status", parents=[common], help="health of channels, queues, complaints")

    for module_name in VERB_MODULES:
        importlib.import_module(module_name).add_verbs(sub, common, actor)

    p = sub.add_parser("demo", parents=[common], help="run the demo against embedded servers")
    p.add_argument("--dir", default="demo", help="where to leave the demo's store (default demo/)")
    p.add_argument("--keep-running", action="store_true", help="keep the servers up afterwards")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    key = f"rules {args.rules_verb}" if args.verb == "rules" else args.verb
    logsetup.setup(args.log_level)
    try:
        return COMMANDS[key](args)
    except RulesError as exc:
        for problem in exc.problems:
            print(f"{logsetup.prefix('error')}lapakd: {problem}", file=sys.stderr)
        return 2
    except LapakdError as exc:
        print(f"{logsetup.prefix('error')}lapakd: {exc}", file=sys.stderr)
        return 2
    except sqlite3.DatabaseError as exc:
        if args.log_level == "debug":
            raise
        print(f"{logsetup.prefix('error')}lapakd: the store's database failed: {exc} "
              "(check data_dir's disk and permissions; --log-level debug shows the traceback)",
              file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    # Run the imported module, not __main__: VERB_MODULES register into lapakd.cli.COMMANDS.
    sys.exit(importlib.import_module("lapakd.cli").main())
