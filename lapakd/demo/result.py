"""Reading the demo's result back from the store, and printing it."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING

from lapakd.app import Desk
from lapakd.config import load_config
from lapakd.demo.desk import OUTBOX_MAIL
from lapakd.demo.samples import Sample
from lapakd.embedded.smtp_sink import SmtpSink

if TYPE_CHECKING:
    from lapakd.demo.channels import DemoChannel


@dataclass
class Row:
    """One delivered message and what lapakd made of it."""

    sample: str
    channel: str
    message: str  # msg-N
    ticket: str | None = None
    status: str = ""
    agencies: list[str] = field(default_factory=list)
    category: str | None = None
    rule: str | None = None
    matched: list[str] = field(default_factory=list)
    kind: str | None = None
    error: str | None = None
    expected_complaint: bool = True
    showcase: bool = False


def read_result(config_path: Path, samples: list[Sample]) -> tuple[list[Row], dict[str, int]]:
    """Each delivered message with its complaint, and how many emails of each kind were sent
    (to the SMTP sink: other channels' replies go to their own servers)."""

    desk = Desk(load_config(config_path))
    try:
        found = desk.store.all(
            "SELECT m.id, m.channel, m.raw, m.state, m.kind, m.error, c.ticket, c.status,"
            " c.agencies, c.category, c.rule, c.matched"
            " FROM messages m LEFT JOIN complaints c ON c.id = m.complaint_id ORDER BY m.id"
        )
        sent = {r["kind"]: r["n"] for r in desk.store.all(
            "SELECT kind, count(*) n FROM outbox WHERE status = 'sent'"
            " AND transport IN ('smtp', 'email') GROUP BY kind")}
    finally:
        desk.close()
    rows = []
    for r in found:
        sample = next((s for s in samples if s.ref.encode() in r["raw"]), None)
        row = Row(
            sample=sample.label if sample else "?",
            channel=r["channel"],
            message=f"msg-{r['id']}",
            kind=r["kind"],
            error=r["error"],
            expected_complaint=sample.complaint if sample else True,
            showcase=sample.showcase if sample else False,
        )
        if r["ticket"] is not None:
            row.ticket, row.status = r["ticket"], r["status"]
            row.agencies = json.loads(r["agencies"])
            row.category, row.rule = r["category"], r["rule"]
            row.matched = json.loads(r["matched"])
        elif r["state"] == "quarantined":
            row.status = "quarantined"
        else:
            row.status = "not a complaint"
        rows.append(row)
    return rows, sent


def problems(rows: list[Row], samples: list[Sample]) -> list[str]:
    """Where lapakd did not do what the demo's samples are there to show."""
    out = []
    if len(rows) != len(samples):
        out.append(f"{len(samples)} messages delivered, {len(rows)} stored")
    for row in rows:
        if row.status == "quarantined":
            out.append(f"{row.sample!r} was quarantined: {row.error}")
        elif row.expected_complaint and row.ticket is None:
            out.append(f"{row.sample!r} did not become a complaint (kind {row.kind})")
        elif not row.expected_complaint and row.ticket is not None:
            out.append(f"{row.sample!r} became complaint {row.ticket}; it is not one")
    return out


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def format_table(rows: list[Row]) -> str:
    table = [("ticket", "status", "agency(ies)", "rule (matched words)", "sample")]
    for row in rows:
        if row.ticket is None:
            what = (f"error: {row.error}" if row.status == "quarantined"
                    else f"stored as {row.kind}, not routed")
            table.append((row.message, row.status, "-", _cut(what, 44), row.sample))
            continue
        words = ", ".join(row.matched[:3]) + (", …" if len(row.matched) > 3 else "")
        rule = f"{row.rule} ({words})" if row.rule else "no rule matched"
        table.append((
            row.ticket, row.status, _cut(", ".join(row.agencies) or "-", 24), _cut(rule, 44),
            row.sample,
        ))
    widths = [max(len(line[i]) for line in table) for i in range(4)]
    return "\n".join(
        "  " + "  ".join(cell.ljust(w) for cell, w in zip(line[:4], widths, strict=True))
        + "  " + line[4]
        for line in table
    )


def format_replies(replies: Sequence[tuple[str, str, str]]) -> str:
    """One line each: channel, recipient, the text's first sentence (it has the ticket)."""
    lines = [(ch, to, text.replace(". ", ". …", 1).partition("…")[0].rstrip() + (
        " …" if ". " in text else "")) for ch, to, text in replies]
    w0, w1 = (max(len(line[i]) for line in lines) for i in (0, 1))
    return "\n".join(f"  {ch.ljust(w0)}  {to.ljust(w1)}  {_cut(text, 110)}"
                     for ch, to, text in lines)


def pick_forward(sink: SmtpSink, rows: list[Row]) -> EmailMessage | None:
    """The forward of the showcase complaint (the one with a photo), else the first forward."""
    forwards = [m.message for m in sink.messages if "Auto-Submitted" not in m.message]
    ticket = next((r.ticket for r in rows if r.showcase and r.ticket), None)
    return next((m for m in forwards if m["X-Lapakd-Ticket"] == ticket),
                forwards[0] if forwards else None)


def eml_file(outbox: Path, message: EmailMessage) -> Path | None:
    needle = str(message["Message-ID"]).encode()
    return next((p for p in sorted(outbox.glob("*.eml")) if needle in p.read_bytes()), None)


def format_mail(message: EmailMessage) -> str:
    lines = [f"  {name}: {message[name]}" for name in
             ("From", "To", "Cc", "Subject", "Message-ID", "X-Lapakd-Ticket") if message[name]]
    body = message.get_body(preferencelist=("plain",))
    lines.append("")
    if body is not None:
        lines.extend(f"  | {line}".rstrip() for line in body.get_content().splitlines())
    for part in message.iter_attachments():
        size = len(part.get_payload(decode=True) or b"")
        lines.append(f"  [attachment: {part.get_filename()} ({part.get_content_type()}, "
                     f"{size} bytes)]")
    return "\n".join(lines)


def report(
    args: argparse.Namespace,
    workdir: Path,
    config_path: Path,
    sink: SmtpSink,
    channels: list[DemoChannel],
    rows: list[Row],
    sent: dict[str, int],
    trouble: list[str],
    replies: Sequence[tuple[str, str, str]] = (),
) -> None:
    outbox = workdir / OUTBOX_MAIL
    servers = {f"{ch.name} {kind}": where for ch in channels for kind, where in ch.servers.items()}
    servers["SMTP sink"] = f"{sink.host}:{sink.port}"
    if args.json:
        print(json.dumps({
            "ok": not trouble,
            "problems": trouble,
            "dir": str(workdir),
            "config": str(config_path),
            "servers": servers,
            "items": [
                {k: v for k, v in vars(row).items() if k not in ("showcase",)} for row in rows
            ],
            "sent": sent,
            "replies": [{"channel": ch, "to": to, "text": text} for ch, to, text in replies],
            "outbox_mail": str(outbox),
            "eml_files": len(list(outbox.glob("*.eml"))),
        }, ensure_ascii=False, indent=2))
        return
    status_of = {r.ticket: r.status for r in rows if r.ticket}  # grouped chats share one
    by_status: dict[str, int] = {}
    for status in status_of.values():
        by_status[status] = by_status.get(status, 0) + 1
    others = sum(1 for r in rows if not r.ticket)
    width = max(len(ch.name) for ch in channels)
    print(f"lapakd demo: {len(rows)} messages arrived on {len(channels)} channels, each served "
          "on this machine:")
    for ch in channels:
        where = ", ".join(f"{kind} {where}" for kind, where in ch.servers.items())
        print(f"  {ch.name.ljust(width)}  {where}")
    print(f"lapakd took them in, processed and routed them, and emailed the agencies "
          f"(SMTP sink {sink.host}:{sink.port}):\n")
    print(format_table(rows))
    print()
    print(f"  {len(status_of)} complaints ("
          + ", ".join(f"{n} {s}" for s, n in sorted(by_status.items()))
          + f"); {others} stored, not a complaint. Emails sent: "
          + (", ".join(f"{n} {k}" for k, n in sorted(sent.items())) or "none") + ".")
    if replies:
        print("\nReplies to citizens, as their channels' API replicas received them:\n")
        print(format_replies(replies))
    forward = pick_forward(sink, rows)
    if forward is not None:
        path = eml_file(outbox, forward)
        where = f" ({shown(path)})" if path else ""
        print(f"\nOne forward as the agency receives it{where}:\n")
        print(format_mail(forward))
    cfg, cmd = shown(config_path), lapakd_command()
    ticket = next((r.ticket for r in rows if r.showcase and r.ticket), "LA-…")
    print(f"\nExplore (the store is in {shown(workdir / 'var')}):")
    print(f"  {cmd} list --config {cfg}")
    print(f"  {cmd} show {ticket} --config {cfg}")
    print(f"  {cmd} status --config {cfg}")
    print(f"  {cmd} rules test 'jalan berlubang di Kembaran' --config {cfg}")
    print(f"  every email sent (forwards, triage notes, receipts) is in {shown(outbox)}/")
    if trouble:
        print("\nlapakd did not handle every sample as expected:", file=sys.stderr)
        for line in trouble:
            print(f"  - {line}", file=sys.stderr)


def lapakd_command() -> str:
    """How the user calls lapakd from here: `lapakd` if it is on PATH, else the venv's script."""
    script = Path(sys.executable).parent / "lapakd"  # not resolved: the venv's bin/
    found = shutil.which("lapakd")
    if found and Path(found).resolve() == script.resolve():
        return "lapakd"
    return shown(script) if script.exists() else "lapakd"


def shown(path: Path) -> str:
    """A path as short as it can be for the user to copy."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
