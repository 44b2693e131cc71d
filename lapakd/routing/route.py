"""Routing: apply the rules to complaints whose intake is complete.

The decision, its event (which rule, which words) and the outbox rows it implies commit in one
transaction (with up to PER_TRANSACTION-1 other complaints' decisions, each in a savepoint of its
own), so a complaint is never routed without its forwards, nor forwarded twice.
"""

from __future__ import annotations

import json
import re
import sqlite3
from typing import TYPE_CHECKING

import structlog

from lapakd.links import ticket_url
from lapakd.outbox import queue as outbox
from lapakd.routing import deadlines, kecamatan
from lapakd.routing.deadlines import DEFAULT_SLA_DAYS
from lapakd.rules import Decision, RuleSet
from lapakd.store import Store, dumps, in_transactions, now_iso, parse_iso, utcnow

if TYPE_CHECKING:
    from lapakd.app import Desk
    from lapakd.config import Config

log = structlog.get_logger("lapakd.routing.route")



def routing_text(complaint: sqlite3.Row) -> str:
    return "\n".join(p for p in (complaint["subject"], complaint["text"]) if p)


def evaluate_complaint(rules: RuleSet, complaint: sqlite3.Row) -> Decision:
    """The rules' decision for a stored complaint: its subject and text (routing_text), the
    subject and the text's first sentence read as the lead."""
    return rules.evaluate(
        complaint["text"] or "", complaint["channel"], complaint["sender"],
        subject=complaint["subject"] or None,
    )


PER_TRANSACTION = 20  # complaints committed together (each in a savepoint of its own)


def route_due(desk: Desk, limit: int = 1000) -> int:
    """Route complaints due now, PER_TRANSACTION to a transaction.

    The rules are evaluated before the transaction opens. A complaint that breaks has its own
    writes undone (a savepoint) and is quarantined in the same transaction; the others go on."""
    store = desk.store
    with desk.pipeline_lock:  # rows read here are changed below: one thread at a time
        rows = store.all(
            "SELECT * FROM complaints WHERE status = 'new' AND route_after <= ?"
            " ORDER BY id LIMIT ?",
            (now_iso(), limit),
        )
        rules = desk.rules
        return in_transactions(
            store, rows,
            lambda c: evaluate_complaint(rules, c),
            lambda c, decision: _route_one(desk, c, decision),
            PER_TRANSACTION, desk.stopping,
        )


def _route_one(desk: Desk, c: sqlite3.Row, decision: Decision | Exception) -> int:
    store = desk.store
    try:
        if isinstance(decision, Exception):
            raise decision
        with store.savepoint():
            apply_decision(desk, c, decision, actor="rules")
        return 1
    except Exception as exc:  # noqa: BLE001 - quarantine the complaint, go on
        error = f"{type(exc).__name__}: {exc}"[:300]
        store.conn.execute(
            "UPDATE complaints SET status = 'quarantined', updated_at = ? WHERE id = ?",
            (now_iso(), c["id"]),
        )
        store.event("quarantined", complaint_id=c["id"], error=error)
        log.error("complaint.quarantined", ticket=c["ticket"], error=error,
                  hint=f"fix the cause, then: lapakd requeue {c['ticket']}")
        return 0


def effective_sla(rules: RuleSet, decision: Decision) -> int:
    """The rule's sla_days, else the shortest of its agencies', else DEFAULT_SLA_DAYS."""
    if decision.sla_days is not None:
        return decision.sla_days
    agency_slas = [
        rules.agencies[a].sla_days for a in decision.agencies
        if a in rules.agencies and rules.agencies[a].sla_days
    ]
    return min(agency_slas) if agency_slas else DEFAULT_SLA_DAYS


def due_date(
    config: Config, complaint: sqlite3.Row, decision: Decision, sla_days: int
) -> str | None:
    """received + sla_days (effective_sla) on the desk's calendar (deadlines.py); none when
    budget-bound."""
    if decision.action != "forward" or decision.budget_dependent:
        return None
    received = parse_iso(complaint["received_at"]) or utcnow()
    return deadlines.due_at(config, received, sla_days)


_STATUS = {"forward": "forwarded", "triage": "triage", "ignore": "ignored"}
# One UPDATE per complaint; the kecamatan is only filled in when it is not known yet.
_UPDATE = (
    "UPDATE complaints SET status = ?, category = ?, agencies = ?, rule = ?, matched = ?,"
    " budget_dependent = ?, public = ?, sla_days = ?, due_at = ?, updated_at = ?{} WHERE id = ?"
)
_UPDATE_KEEP_KECAMATAN = _UPDATE.format("")
_UPDATE_SET_KECAMATAN = _UPDATE.format(", kecamatan = ?")


def apply_decision(desk: Desk, complaint: sqlite3.Row, decision: Decision, actor: str) -> None:
    """Record a routing decision and queue what it implies (inside the caller's transaction)."""
    store, rules = desk.store, desk.rules
    status = _STATUS[decision.action]
    sla = effective_sla(rules, decision)
    due_at = due_date(desk.config, complaint, decision, sla)
    now = now_iso()
    params: tuple[object, ...] = (
        status, decision.category, dumps(decision.agencies), decision.rule,
        dumps(decision.matched), int(decision.budget_dependent), int(decision.public),
        sla if due_at else decision.sla_days, due_at, now,
    )
    if complaint["kecamatan"] is None:  # for the public statistics per kecamatan
        sql = _UPDATE_SET_KECAMATAN
        params += (kecamatan.detect(routing_text(complaint)), complaint["id"])
    else:
        sql = _UPDATE_KEEP_KECAMATAN
        params += (complaint["id"],)
    store.conn.execute(sql, params)
    store.event(
        "routed", complaint_id=complaint["id"], actor=actor, at=now, action=decision.action,
        rule=decision.rule, matched=decision.matched, hits=decision.hits, score=decision.score,
        runners_up=decision.runners_up, agencies=decision.agencies, category=decision.category,
        due_at=due_at,
    )
    if decision.action == "forward":
        for key in decision.agencies:
            agency = rules.agencies[key]
            outbox.enqueue(
                store, domain=desk.desk_domain, kind="forward", complaint=complaint,
                recipients=list(agency.addresses), dedupe_key=f"forward:{complaint['id']}:{key}",
                payload={"agency": key},
            )
    elif decision.action == "triage":
        outbox.enqueue(
            store, domain=desk.desk_domain, kind="triage", complaint=complaint,
            recipients=[desk.config.desk.admin_email], dedupe_key=f"triage:{complaint['id']}",
            payload={},
        )
    if decision.action != "ignore":
        acknowledge(desk, complaint, decision, due_at, sla)


def acknowledge(
    desk: Desk, complaint: sqlite3.Row, decision: Decision, due_at: str | None, sla_days: int
) -> None:
    """Queue the citizen's receipt (ticket + public link) on their channel, once per complaint.

    `due_at`, `sla_days`: what apply_decision worked out (due_date, effective_sla).

    Never for what the rules ignore (a receipt would confirm a spammer's address) nor for a
    quarantined complaint: neither gets here."""
    forwarded = decision.action == "forward"
    section = desk.config.channels.get(complaint["channel"])
    if section is None or not section.get("acknowledge", False):
        return
    if complaint["channel"] == "email":
        _email_receipt(desk, complaint, decision, due_at, sla_days)
        return
    outbox.enqueue(
        desk.store, domain=desk.desk_domain, kind="ack", complaint=complaint,
        transport=complaint["channel"],
        recipients=[complaint["sender"]] if complaint["sender"] else [],
        dedupe_key=f"ack:{complaint['id']}",
        payload={
            "reply_ref": json.loads(complaint["reply_ref"]),
            "text": ack_text(desk.config.desk.public_url, complaint, forwarded),
        },
    )


# Local parts of addresses no person reads (RFC 2142 roles, notification senders).
_AUTOMATED_LOCAL = re.compile(
    r"(?:no|do[-_.]?not)[-_.]?reply.*|(?:mailer[-_.]?daemon|postmaster|bounces?)(?:[-_.+].*)?",
    re.I,
)


def receipt_blocked(desk_address: str, address: str, reply_ref: dict) -> str | None:
    """Why an email receipt must not go to `address` (None: it may); `desk_address`: the
    desk's own (`[desk] email`)."""
    if not address or "@" not in address:
        return "no address to answer"
    if reply_ref.get("no_receipt"):
        return str(reply_ref["no_receipt"])
    local = address.rpartition("@")[0]
    if _AUTOMATED_LOCAL.fullmatch(local):
        return f"automated address ({address})"
    if address == desk_address.strip().lower():
        return "the desk's own address"
    return None


def _email_receipt(
    desk: Desk, complaint: sqlite3.Row, decision: Decision, due_at: str | None, sla_days: int
) -> None:
    """The receipt of an emailing citizen: a reply to their mail (compose builds it)."""
    ref = json.loads(complaint["reply_ref"] or "{}")
    address = str(ref.get("address") or complaint["sender"] or "").strip().lower()
    reason = receipt_blocked(desk.config.desk.email, address, ref)
    if reason:
        desk.store.event("receipt_skipped", complaint_id=complaint["id"], reason=reason)
        return
    forwarded = decision.action == "forward"
    agencies = desk.rules.agencies
    outbox.enqueue(
        desk.store, domain=desk.desk_domain, kind="receipt", complaint=complaint,
        recipients=[address],
        dedupe_key=f"ack:{complaint['id']}",
        payload={
            "forwarded": forwarded,
            "agencies": [
                agencies[k].name if k in agencies else k
                for k in decision.agencies
            ] if forwarded else [],
            "due_at": due_at,
            "sla_days": sla_days,
            "budget_dependent": bool(decision.budget_dependent) and forwarded,
            "public": bool(decision.public),
        },
    )


def ack_text(public_url: str, complaint: sqlite3.Row, forwarded: bool) -> str:
    url = ticket_url(public_url, complaint['ticket'])
    step = "diteruskan ke instansi terkait" if forwarded else "sedang diverifikasi oleh admin"
    return (
        f"Terima kasih, aduan Anda sudah kami terima dengan nomor {complaint['ticket']} dan "
        f"{step}. Pantau perkembangannya di {url}"
    )


def requeue_complaint(store: Store, complaint: sqlite3.Row, actor: str) -> str:
    """Put a quarantined complaint back to routing, or retry its failed outbox rows."""
    with store.transaction() as conn:
        if complaint["status"] == "quarantined":
            conn.execute(
                "UPDATE complaints SET status = 'new', route_after = ?, updated_at = ?"
                " WHERE id = ?",
                (now_iso(), now_iso(), complaint["id"]),
            )
            store.event("requeued", complaint_id=complaint["id"], actor=actor)
            return "queued for routing again"
        retried = outbox.retry_failed(store, complaint["id"], actor)
    if retried:
        return f"{retried} failed message(s) queued for sending again"
    return "nothing to requeue (not quarantined, no failed messages)"


def decision_from_row(complaint: sqlite3.Row) -> dict:
    return {
        "category": complaint["category"],
        "agencies": json.loads(complaint["agencies"]),
        "rule": complaint["rule"],
        "matched": json.loads(complaint["matched"]),
    }
