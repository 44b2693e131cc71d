"""The demo's flow: start the servers, write lapakd.toml, deliver, run lapakd, report."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
import traceback
from pathlib import Path
from typing import TextIO

from lapakd import daemon
from lapakd import log as logsetup
from lapakd.app import Desk
from lapakd.config import load_config
from lapakd.demo.channels import CHANNELS, DemoChannel
from lapakd.demo.config import find_rules_dir, prepare_dir, write_config
from lapakd.demo.desk import OUTBOX_MAIL, DemoError
from lapakd.demo.result import lapakd_command, problems, read_result, report, shown
from lapakd.embedded.smtp_sink import SmtpSink
from lapakd.errors import LapakdError, RulesError


def main(args: argparse.Namespace) -> int:
    if args.log_level == "info":
        logsetup.setup("warning")  # the demo's own output tells the story; warnings still show
    try:
        return run(args)
    except BrokenPipeError:
        raise  # output piped into `head`: the CLI ends quietly
    except (DemoError, LapakdError, OSError, TimeoutError) as exc:
        return fail(args, _one_line(exc))
    except Exception as exc:  # noqa: BLE001 - one line for the newcomer; --log-level debug for more
        if args.log_level == "debug":
            traceback.print_exc()
        return fail(args, f"{type(exc).__name__}: {_one_line(exc)}")


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, RulesError):
        more = f" (and {len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""
        return f"the rules have errors: {exc.problems[0]}{more}" if exc.problems else str(exc)
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def fail(args: argparse.Namespace, message: str) -> int:
    if args.json:
        print(json.dumps({"ok": False, "error": message}, ensure_ascii=False))
    print(f"lapakd demo: failed: {message}", file=sys.stderr)
    return 1


def run(args: argparse.Namespace) -> int:
    workdir = prepare_dir(Path(args.dir))
    rules_dir = find_rules_dir(workdir)
    with contextlib.ExitStack() as stack:
        # The agencies' mail servers, all in one: keeps every email as an .eml file.
        sink = stack.enter_context(SmtpSink(maildir=workdir / OUTBOX_MAIL))
        channels = [start(stack) for start in CHANNELS]
        config_path = write_config(workdir, rules_dir, sink, channels)
        for channel in channels:
            if channel.serve is not None:
                channel.serve(config_path)
        samples = [sample for channel in channels for sample in channel.deliver()]
        run_pipeline(config_path, len(samples))
        rows, sent = read_result(config_path, samples)
        # Grouped by channel, in arrival order within each (a webhook stores at once: the
        # WhatsApp message is in before the first poll).
        order = [ch.name for ch in channels]
        rows.sort(key=lambda r: order.index(r.channel) if r.channel in order else len(order))
        sink.wait_for(sum(sent.values()), timeout=30)  # sent means the sink said 250: already in
        trouble = problems(rows, samples)
        replies = [(ch.name, to, text) for ch in channels if ch.replies
                   for to, text in ch.replies()]
        report(args, workdir, config_path, sink, channels, rows, sent, trouble, replies)
        if args.keep_running:
            keep_running(sink, channels, config_path, sys.stderr if args.json else sys.stdout)
    return 1 if trouble else 0


def run_pipeline(config_path: Path, delivered: int, rounds: int = 3) -> None:
    """`lapakd run --once` until everything delivered is fetched, processed, routed and sent."""

    left = ""
    for _ in range(rounds):
        # A fresh Desk per round: run_once takes the store's runner lock, close() frees it.
        desk = Desk(load_config(config_path))
        try:
            daemon.run_once(desk)
            left = work_left(desk, delivered)
        finally:
            desk.close()
        if not left:
            return
    raise DemoError(f"lapakd did not finish: {left}")


def work_left(desk: Desk, delivered: int) -> str:
    """What is not done yet, in words; empty when all is done."""
    store = desk.store
    stored = store.one("SELECT count(*) n FROM messages")["n"]
    if stored < delivered:
        errors = [
            f"{r['channel']}: {r['last_error']}" for r in store.all(
                "SELECT channel, last_error FROM channel_health WHERE state != 'ok'")
        ]
        return (f"only {stored} of {delivered} messages were fetched"
                + (f" ({'; '.join(errors)})" if errors else ""))
    pending = store.one("SELECT count(*) n FROM messages WHERE state = 'pending'")["n"]
    if pending:
        return f"{pending} message(s) still waiting to be processed"
    new = store.one("SELECT count(*) n FROM complaints WHERE status = 'new'")["n"]
    if new:
        return f"{new} complaint(s) still waiting to be routed"
    unsent = store.all(
        "SELECT status, last_error FROM outbox WHERE status != 'sent' ORDER BY id")
    if unsent:
        why = next((r["last_error"] for r in unsent if r["last_error"]), None)
        return f"{len(unsent)} email(s) not sent" + (f" (last error: {why})" if why else "")
    return ""


# -- reading the result back --------------------------------------------------------------------


def keep_running(
    sink: SmtpSink, channels: list[DemoChannel], config_path: Path, out: TextIO
) -> None:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    print("\nThe servers keep running until Ctrl-C:", file=out)
    for ch in channels:
        for kind, where in ch.servers.items():
            login = f"  (login {ch.login})" if ch.login else ""
            print(f"  {ch.name:<8} {kind:<9} {where}{login}", file=out)
    smtp = f"  {'agencies':<8} {'SMTP':<9} {sink.host}:{sink.port}"
    print(f"{smtp}  (saves to {shown(sink.maildir)})" if sink.maildir else smtp, file=out)
    print(f"Run the daemon against them: {lapakd_command()} run --config {shown(config_path)}",
          file=out)
    while not stop.wait(timeout=1.0):
        pass
    print("stopping the demo servers", file=out)
