"""The outbox's low half: every side effect (email, reply, DM) is a row before it happens.

Every stage queues here (`enqueue`, `alert_admin`) and marks what cannot be sent (`fail`,
`record_bounce`); the admin puts failed rows back (`retry_failed`, `requeue_failed`). Sending
them is the high half, `lapakd.delivery`. Imports no stage, so every stage may use it.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from typing import Any

import structlog

from lapakd.mail.text import make_message_id
from lapakd.store import Store, dumps, iso, now_iso, parse_iso, utcnow

log = structlog.get_logger("lapakd.outbox.queue")


def enqueue(
    store: Store,
    *,
    kind: str,
    recipients: list[str],
    dedupe_key: str,
    payload: dict[str, Any],
    complaint: sqlite3.Row | None = None,
    transport: str = "smtp",
    domain: str | None = None,
    not_before: str | None = None,
) -> int | None:
    """Queue a side effect once: a second enqueue with the same dedupe_key does nothing.

    `domain`: the right side of its Message-ID (`Desk.desk_domain`)."""
    ticket = complaint["ticket"] if complaint is not None else None
    domain = domain or "lapakd.invalid"
    now = now_iso()
    row = store.conn.execute(
        "INSERT INTO outbox (kind, transport, complaint_id, recipients, payload, dedupe_key,"
        " message_id, next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT(dedupe_key) DO NOTHING RETURNING id",
        (
            kind, transport, complaint["id"] if complaint is not None else None,
            dumps(recipients), dumps(payload), dedupe_key,
            make_message_id(dedupe_key, ticket, domain), not_before or now, now,
        ),
    ).fetchone()
    return row[0] if row else None


def alert_admin(store: Store, key: str, subject: str, body: str) -> None:
    """Tell the admin something needs attention (recipient resolved from config at send time)."""
    with store.transaction():
        enqueue(
            store, kind="alert", recipients=[], dedupe_key=f"alert:{key}",
            payload={"subject": subject, "body": body},
        )


def fail(store: Store, outbox_id: int, error: str, *, alert: bool) -> None:
    """Mark a row failed; with `alert`, count it in the admin's next failure alert.

    An alert that fails is never alerted about (that could loop, e.g. when the admin's own
    address bounces)."""
    row = store.one("SELECT * FROM outbox WHERE id = ?", (outbox_id,))
    if row is None:
        return
    with store.transaction() as conn:
        conn.execute(
            "UPDATE outbox SET status = 'failed', last_error = ? WHERE id = ?",
            (error[:500], outbox_id),
        )
        store.event(
            "send_failed", complaint_id=row["complaint_id"], outbox_id=outbox_id,
            kind=row["kind"], error=error[:300],
        )
        if alert and row["kind"] != "alert":
            _count_in_alert(store, row, error)
    log.error("outbox.failed", outbox=outbox_id, kind=row["kind"], error=error[:200])


# Failed sends are told to the admin in one alert per ALERT_EVERY at most, with their count:
# an SMTP relay that refused everything made one alert per forward (532 mails).
ALERT_EVERY = timedelta(hours=1)
ALERT_KEY = "alert:failures:"  # + the alert's due time (ISO); sorts by time on the unique index
ALERT_LINES = 50  # failures listed in one alert; the count covers them all


def _count_in_alert(store: Store, row: sqlite3.Row, error: str) -> None:
    """Add a failed row to the pending failure alert, or queue the next one: due now, or an
    ALERT_EVERY after the previous alert's due time (inside the caller's transaction; a row
    the sender has already claimed is left as it is and a new alert is started)."""
    ticket = None
    if row["complaint_id"]:
        c = store.one("SELECT ticket FROM complaints WHERE id = ?", (row["complaint_id"],))
        ticket = c["ticket"] if c else None
    to = ", ".join(json.loads(row["recipients"])) or "admin"
    line = f"- {ticket or '-'} ({row['kind']}) ke {to}: {' '.join(error.split())[:200]}"
    latest = store.one(
        "SELECT id, status, payload FROM outbox WHERE dedupe_key >= ? AND dedupe_key < ?"
        " ORDER BY dedupe_key DESC LIMIT 1",
        (ALERT_KEY, ALERT_KEY[:-1] + ";"),  # ';' follows ':': every key with the prefix
    )
    if latest is not None and latest["status"] == "pending":
        payload = json.loads(latest["payload"])
        payload["failures"] += 1
        if len(payload["lines"]) < ALERT_LINES:
            payload["lines"].append(line)
        payload.update(_failure_alert_text(payload))
        store.conn.execute("UPDATE outbox SET payload = ? WHERE id = ?",
                           (dumps(payload), latest["id"]))
        return
    due = utcnow()
    if latest is not None:
        due = max(due, parse_iso(json.loads(latest["payload"])["due"]) + ALERT_EVERY)
    payload = {"due": iso(due), "failures": 1, "lines": [line]}
    payload.update(_failure_alert_text(payload))
    enqueue(store, kind="alert", recipients=[], dedupe_key=f"{ALERT_KEY}{iso(due)}",
            payload=payload, not_before=iso(due))


def _failure_alert_text(payload: dict[str, Any]) -> dict[str, str]:
    n = payload["failures"]
    more = n - len(payload["lines"])
    lines = payload["lines"] + ([f"... dan {more} lainnya (lapakd list)"] if more > 0 else [])
    return {
        "subject": f"Pengiriman gagal: {n} pesan",
        "body": (
            f"{n} pesan gagal terkirim dan tidak akan dicoba lagi:\n"
            + "\n".join(lines)
            + "\n\nSetelah alamat/penyebabnya diperbaiki, kirim ulang semuanya dengan:\n"
            "  lapakd requeue --failed\n"
            "atau satu per satu: lapakd requeue NOMOR-TIKET\n"
            "(Peringatan ini dikirim paling sering sekali per jam.)"
        ),
    }


def record_bounce(
    store: Store, bounced_ids: list[str], status: str | None, message_row: int
) -> list[int]:
    """Mark the outbox rows a bounce refers to as failed (inside the caller's transaction)."""
    matched = []
    for mid in bounced_ids:
        row = store.one(
            "SELECT id, status FROM outbox WHERE message_id = ?", (mid.strip("<> ").strip(),)
        )
        if row is None:
            continue
        matched.append(row["id"])
        if row["status"] != "failed":
            fail(store, row["id"], f"bounced ({status or 'no status'}), see msg-{message_row}",
                 alert=True)
    return matched


def retry_failed(store: Store, complaint_id: int, actor: str) -> int:
    with store.transaction() as conn:
        cur = conn.execute(
            "UPDATE outbox SET status = 'pending', next_attempt_at = ?, created_at = ?,"
            " attempts = 0 WHERE complaint_id = ? AND status = 'failed'",
            (now_iso(), now_iso(), complaint_id),
        )
        if cur.rowcount:
            store.event("requeued", complaint_id=complaint_id, actor=actor,
                        outbox_rows=cur.rowcount)
    return cur.rowcount


def requeue_failed(
    store: Store, actor: str, *, since: str | None = None, agency: str | None = None
) -> tuple[int, int]:
    """Put every failed row back in the queue (same Message-ID; attempts and the 5-day limit
    start again): those that failed at or after `since` (ISO time), those for `agency` (its
    forwards, or any row of a complaint routed to it). Returns (rows, complaints)."""
    where, params = ["status = 'failed'"], []
    if since is not None:
        where.append("id IN (SELECT outbox_id FROM events WHERE type = 'send_failed'"
                     " AND at >= ? AND outbox_id IS NOT NULL)")
        params.append(since)
    if agency is not None:
        where.append(
            "(json_extract(payload, '$.agency') = ? OR (json_extract(payload, '$.agency')"
            " IS NULL AND complaint_id IN (SELECT c.id FROM complaints c, json_each(c.agencies)"
            " WHERE json_each.value = ?)))")
        params += [agency, agency]
    now = now_iso()
    with store.transaction() as conn:
        rows = conn.execute(
            "UPDATE outbox SET status = 'pending', next_attempt_at = ?, created_at = ?,"
            f" attempts = 0 WHERE {' AND '.join(where)} RETURNING id, complaint_id",
            (now, now, *params),
        ).fetchall()
        per_complaint: dict[int | None, int] = {}
        for r in rows:
            per_complaint[r["complaint_id"]] = per_complaint.get(r["complaint_id"], 0) + 1
        for complaint_id, count in per_complaint.items():
            if complaint_id is not None:
                store.event("requeued", complaint_id=complaint_id, actor=actor,
                            outbox_rows=count)
        for r in rows:
            if r["complaint_id"] is None:  # alerts and other rows of no complaint
                store.event("requeued", outbox_id=r["id"], actor=actor, outbox_rows=1)
    return len(rows), len([c for c in per_complaint if c is not None])
