"""Email builders for the follow-up mail: relay to citizens, reminders, escalations, digest.

The outbox composes with these and compose's own (`delivery.send.BUILDERS`). Like compose's
builders each returns `(subject, text body, attachments)`, plus a dict of extras: threading
headers for the relay, the HTML part and its embedded PNG bars for the digest.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from lapakd import statuses
from lapakd.adapters.base import PermanentError
from lapakd.lifecycle import pngbars
from lapakd.links import ticket_url
from lapakd.mail.text import header_text, message_ids, tanggal, templates
from lapakd.routing.deadlines import DEFAULT_SLA_DAYS
from lapakd.store import parse_iso

if TYPE_CHECKING:
    from lapakd.app import Desk

_html_env = Environment(
    loader=PackageLoader("lapakd.mail", "templates"),
    autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False),
    undefined=StrictUndefined,
    trim_blocks=True,
)
_html_env.globals["ticket_url"] = ticket_url


def payload_agency(desk: Desk, payload: dict) -> Any:
    """The agency a queued mail is for: gone from agencies.yaml since it was queued, the row
    fails for good (PermanentError) with that reason."""
    agency = desk.rules.agencies.get(payload["agency"])
    if agency is None:
        raise PermanentError(f"agency {payload['agency']!r} is no longer in agencies.yaml")
    return agency


def _day(desk: Desk, value: str | None) -> str:
    return tanggal(parse_iso(value), desk.config.tz, time=False)


# -- relay: the answer, in the citizen's own thread --------------------------------------------


def _in_thread(desk: Desk, c: sqlite3.Row, ref: dict, ticket: str) -> tuple[str, dict]:
    """Subject ("Re: <theirs> [ticket]") and threading headers of a reply to the citizen's
    own mail."""
    original = header_text(ref.get("subject") or c["subject"] or "", 180)
    subject = original or "Aduan Anda"
    if not subject.lower().startswith("re:"):
        subject = f"Re: {subject}"
    if f"[{ticket}]".lower() not in subject.lower():
        subject = f"{subject} [{ticket}]"
    parent = (ref.get("message_id") or "").strip("<> ")
    refs = message_ids(ref.get("references"))
    if parent and parent not in refs:
        refs.append(parent)
    headers = {
        "In-Reply-To": f"<{parent}>" if parent else "",
        "References": " ".join(f"<{r}>" for r in refs[-20:]),
    }
    return subject, headers


def _relay(desk: Desk, row: sqlite3.Row, c: sqlite3.Row | None, payload: dict) -> Any:
    if c is None:
        raise PermanentError("relay without a complaint")
    ref = payload.get("reply_ref") or json.loads(c["reply_ref"] or "{}")
    ticket = payload.get("ticket") or c["ticket"]
    subject, headers = _in_thread(desk, c, ref, ticket)
    body = templates.get_template("relay.txt.j2").render(
        name=c["sender_name"] or "Bapak/Ibu",
        note=payload.get("note"),
        text=payload.get("text") or "",
        sender=payload.get("from") or desk.config.desk.name,
        status_label=payload.get("status_label") or statuses.label(c["status"]),
        ticket=ticket,
        link=ticket_url(desk.config.desk.public_url, ticket),
        desk=desk.config.desk,
    )
    return subject, body, [], {"headers": headers}


# -- the citizen confirms: the SUDAH/BELUM question, in the citizen's thread ------------------


def _agency_names(desk: Desk, keys: list[str]) -> str:
    names = [desk.rules.agencies[k].name if k in desk.rules.agencies else k for k in keys]
    if not names:
        return "Instansi terkait"
    return ", ".join(names[:-1]) + (" dan " if len(names) > 1 else "") + names[-1]


def _confirm_ask(desk: Desk, row: sqlite3.Row, c: sqlite3.Row | None, payload: dict) -> Any:
    if c is None:
        raise PermanentError("confirmation question without a complaint")
    ticket = payload.get("ticket") or c["ticket"]
    ref = payload.get("reply_ref") or json.loads(c["reply_ref"] or "{}")
    subject, headers = _in_thread(desk, c, ref, ticket)
    body = templates.get_template("confirm_ask.txt.j2").render(
        name=c["sender_name"] or "Bapak/Ibu", ticket=ticket,
        agencies=_agency_names(desk, payload.get("agencies") or []),
        until=_day(desk, payload.get("confirm_due_at")) or "-",
        link=ticket_url(desk.config.desk.public_url, ticket), desk=desk.config.desk,
    )
    return subject, body, [], {"headers": headers}


def _reopen(desk: Desk, row: sqlite3.Row, c: sqlite3.Row | None, payload: dict) -> Any:
    """The citizen's BELUM to the agency, threaded to the forward it answered."""
    if c is None:
        raise PermanentError("reopen notice without a complaint")
    agency = payload_agency(desk, payload)
    body = templates.get_template("reopen.txt.j2").render(
        agency=agency, ticket=c["ticket"], words=payload.get("words") or "(tanpa keterangan)",
        resolve_due=_day(desk, payload.get("resolve_due_at"))
        if payload.get("resolve_due_at") else None,
        link=ticket_url(desk.config.desk.public_url, c["ticket"]), desk=desk.config.desk,
    )
    parent = (payload.get("in_reply_to") or "").strip("<> ")
    headers = {"In-Reply-To": f"<{parent}>", "References": f"<{parent}>"} if parent else {}
    subject = header_text(payload.get("subject") or "", 160) or f"Aduan {c['ticket']}"
    if not subject.lower().startswith("re:"):
        subject = f"Re: {subject}"
    if f"[{c['ticket']}]".lower() not in subject.lower():
        subject = f"{subject} [{c['ticket']}]"
    return f"{subject} — BELUM selesai menurut pelapor", body, [], {"headers": headers}


def _budget_ask(desk: Desk, row: sqlite3.Row, c: sqlite3.Row | None, payload: dict) -> Any:
    if c is None:
        raise PermanentError("budget question without a complaint")
    agency = payload_agency(desk, payload)
    body = templates.get_template("budget_ask.txt.j2").render(
        agency=agency, ticket=c["ticket"], since=_day(desk, payload.get("since")),
        days=payload.get("days", 0), summary=payload.get("summary") or "",
        link=ticket_url(desk.config.desk.public_url, c["ticket"]), desk=desk.config.desk,
    )
    return f"[{c['ticket']}] Masih menunggu anggaran?", body, []


# -- receipt: the ticket, in reply to an emailing citizen's complaint ------------------------------


def _receipt(desk: Desk, row: sqlite3.Row, c: sqlite3.Row | None, payload: dict) -> Any:
    if c is None:
        raise PermanentError("receipt without a complaint")
    subject, headers = _in_thread(desk, c, json.loads(c["reply_ref"] or "{}"), c["ticket"])
    # RFC 3834: an automatic answer to a message says so, and asks Exchange not to answer it.
    headers |= {"Auto-Submitted": "auto-replied", "X-Auto-Response-Suppress": "All"}
    agencies = payload.get("agencies") or []
    body = templates.get_template("receipt.txt.j2").render(
        name=c["sender_name"] or "Bapak/Ibu",
        ticket=c["ticket"],
        received=_day(desk, c["received_at"]),
        forwarded=bool(payload.get("forwarded")),
        agencies=", ".join(agencies[:-1]) + (" dan " if len(agencies) > 1 else "")
        + (agencies[-1] if agencies else ""),
        due=_day(desk, payload["due_at"]) if payload.get("due_at") else None,
        budget_dependent=bool(payload.get("budget_dependent")),
        sla_days=payload.get("sla_days") or DEFAULT_SLA_DAYS,
        sla_unit="hari kerja" if desk.config.desk.sla_calendar == "working" else "hari",
        public=payload.get("public", True),
        link=ticket_url(desk.config.desk.public_url, c["ticket"]),
        desk=desk.config.desk,
    )
    return subject, body, [], {"headers": headers}


# -- reminders and escalation ---------------------------------------------------------------------


def _reminder(desk: Desk, row: sqlite3.Row, c: sqlite3.Row | None, payload: dict) -> Any:
    agency = payload_agency(desk, payload)
    items = [i | {"due": _day(desk, i["due_at"])} for i in payload["items"]]
    first = [i for i in items if i.get("clock", "first") == "first"]
    resolve = [i for i in items if i.get("clock") == "resolve"]
    overdue = [i for i in first if i["overdue_days"] > 0]
    soon = [i for i in first if i["overdue_days"] <= 0]
    resolve_overdue = [i for i in resolve if i["overdue_days"] > 0]
    resolve_soon = [i for i in resolve if i["overdue_days"] <= 0]
    day = datetime.combine(date.fromisoformat(payload["date"]), time(12), tzinfo=desk.config.tz)
    today = tanggal(day, desk.config.tz, time=False)
    body = templates.get_template("reminder.txt.j2").render(
        agency=agency, overdue=overdue, soon=soon, today=today, desk=desk.config.desk,
        resolve_overdue=resolve_overdue, resolve_soon=resolve_soon,
        escalate_after_days=desk.config.desk.escalate_after_days,
    )
    parts = []
    if overdue:
        parts.append(f"{len(overdue)} melewati tenggat")
    if soon:
        parts.append(f"{len(soon)} mendekati tenggat")
    if resolve_overdue or resolve_soon:
        parts.append(f"{len(resolve_overdue) + len(resolve_soon)} belum diselesaikan")
    what = "belum ditanggapi" if first else "belum diselesaikan"
    subject = f"Pengingat aduan {what}: {', '.join(parts)} ({today})"
    return subject, body, []


def _escalation(desk: Desk, row: sqlite3.Row, c: sqlite3.Row | None, payload: dict) -> Any:
    if c is None:
        raise PermanentError("escalation without a complaint")
    names = [
        desk.rules.agencies[k].name if k in desk.rules.agencies else k
        for k in payload.get("agencies", [])
    ]
    resolve = payload.get("clock") == "resolve"
    body = templates.get_template("escalation.txt.j2").render(
        c=c, agencies=", ".join(names) or "-", received=_day(desk, c["received_at"]),
        resolve=resolve,
        due=_day(desk, payload.get("due_at")), overdue_days=payload.get("overdue_days", 0),
        link=payload.get("link"), text=c["text"], desk=desk.config.desk,
        escalate_after_days=desk.config.desk.escalate_after_days,
    )
    subject = (f"[{c['ticket']}] Eskalasi: belum "
               f"{'diselesaikan' if resolve else 'ditanggapi'} "
               f"{', '.join(payload.get('agencies', [])) or ''}, terlambat "
               f"{payload.get('overdue_days', 0)} {'hari' if resolve else 'hari kerja'}")
    return subject, body, []


# -- the weekly digest -----------------------------------------------------------------------------


def _dash(value: float | None) -> str:
    return "–" if value is None else f"{value:g}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:g}%"


def _signed(value: float) -> str:
    return f"{value:+g}"


def _digest(desk: Desk, row: sqlite3.Row, c: sqlite3.Row | None, payload: dict) -> Any:
    d = payload
    tz = desk.config.tz
    start, end = parse_iso(d["start"]), parse_iso(d["end"])
    period = (f"{tanggal(start, tz, time=False)} – "
              f"{tanggal(end - timedelta(seconds=1), tz, time=False)}"
              if start and end else "-")
    images: list[tuple[str, bytes]] = []
    domain = desk.desk_domain

    def image(name: str, data: bytes) -> str:
        cid = f"{name}.{row['id']}@{domain}"
        images.append((cid, data))
        return cid

    width = 300
    status_items = list(d["open_by_status"].items())
    px = pngbars.scale([n for _, n in status_items], width)
    status_rows = [
        {"label": statuses.label(st), "n": n, "px": max(p, 1), "bar": "█" * round(p / 12),
         "cid": image(f"status-{st}", pngbars.bar([(p, pngbars.BLUE)], max(p, 1)))}
        for (st, n), p in zip(status_items, px, strict=True)
    ]
    agency_width = 200
    totals = [a["answered"] + a["overdue"] for a in d["agencies"]]
    top = max(totals, default=0) or 1
    agencies = []
    for a in d["agencies"]:
        segs = [
            (a["on_time"], pngbars.GREEN),
            (a["answered"] - a["on_time"], pngbars.AMBER),
            (a["overdue"], pngbars.RED),
        ]
        pixels = [(round(n * agency_width / top), col) for n, col in segs]
        agencies.append(a | {
            "px": agency_width,
            "cid": image(f"agency-{a['key']}", pngbars.bar(pixels, agency_width)),
        })

    def ranked(name: str, pairs: list) -> list[dict[str, Any]]:
        px = pngbars.scale([n for _, n in pairs], 220)
        return [
            {"name": k, "n": n, "px": max(p, 1),
             "cid": image(f"{name}-{i}", pngbars.bar([(p, pngbars.GREY)], max(p, 1)))}
            for i, ((k, n), p) in enumerate(zip(pairs, px, strict=True))
        ]

    legend = {
        "green": image("legend-green", pngbars.bar([(12, pngbars.GREEN)], 12, 12)),
        "amber": image("legend-amber", pngbars.bar([(12, pngbars.AMBER)], 12, 12)),
        "red": image("legend-red", pngbars.bar([(12, pngbars.RED)], 12, 12)),
    }
    ctx = {
        # digests queued before the ranking existed have none
        "d": d | {"ranking": d.get("ranking", [])}, "period": period,
        "pct": _pct, "dash": _dash, "signed": _signed,
        "statuses": status_rows, "agencies": agencies,
        "categories": ranked("category", d["top_categories"]),
        "kecamatan": ranked("kecamatan", d["top_kecamatan"]),
        "open_total": sum(d["open_by_status"].values()),
        "overdue_total": sum(a["overdue"] for a in d["agencies"]),
        "legend": legend, "desk": desk.config.desk,
    }
    text = templates.get_template("digest.txt.j2").render(ctx)
    html = _html_env.get_template("digest.html.j2").render(ctx)
    subject = (f"Ringkasan mingguan Lapak Aduan: {d['new']} aduan baru, "
               f"{ctx['open_total']} terbuka, {ctx['overdue_total']} lewat tenggat")
    return subject, text, [], {"html": html, "images": images}


BUILDERS = {
    "relay": _relay,
    "receipt": _receipt,
    "reminder": _reminder,
    "escalation": _escalation,
    "digest": _digest,
    "confirm_ask": _confirm_ask,
    "reopen": _reopen,
    "budget_ask": _budget_ask,
}
