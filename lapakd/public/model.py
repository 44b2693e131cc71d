"""The public model: what may be published about a complaint, built by ONE function.

Privacy by construction: `build_records` selects a whitelist of complaint columns (never
`reply_ref`, `conversation`, `notes`, raw messages or attachments; `sender` and `sender_name`
only as the names `redact()` must hide) and passes every text through `redact()`. A location
is published only as `lat`/`lon` rounded to 3 decimals. Nothing else reads the store for the
public site.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from lapakd import statuses
from lapakd.lifecycle.boilerplate import cut_desk_text
from lapakd.redact import known_names, redact

COLUMNS = [
    "id", "received_at", "channel", "category", "agencies", "kecamatan", "status", "due_at",
    "overdue", "text", "updates", "lat", "lon",
    # 0011_confirm, appended so readers taking CSV columns by position keep working
    "resolve_due_at", "resolve_days", "resolve_overdue", "budget_dependent",
]
LOCATION_DECIMALS = 3  # about 100 m: where the road is broken, not whose house it is
SNIPPET = 160


def has_table(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).fetchone() is not None


def columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}


def is_overdue(status: str, due_at: str | None, now: str) -> bool:
    late = bool(due_at) and due_at < now  # type: ignore[operator]
    return late and status in statuses.AWAITING_ANSWER


def is_resolve_overdue(status: str, resolve_due_at: str | None, now: str) -> bool:
    """The resolution clock ran out while the agency had not said selesai."""
    late = bool(resolve_due_at) and resolve_due_at < now  # type: ignore[operator]
    return late and status in statuses.RESOLVE_RUNNING


def publishable_sql(cols: set[str], *, reviewed: bool = True) -> str:
    """Complaints on the site; reviewed=False: also those waiting for `lapakd publish`."""
    hidden = " AND hidden = 0" if "hidden" in cols else ""
    review = " AND awaiting_review = 0" if reviewed and "awaiting_review" in cols else ""
    return (
        "public = 1 AND merged_into IS NULL"
        f" AND status NOT IN {statuses.UNPUBLISHED!r}{hidden}{review}"
    )


def source_keys(conn: sqlite3.Connection, now: str, version: str
                ) -> list[tuple[int, str, str | None]]:
    """(id, key, cached key) of every publishable complaint, oldest first; the key changes
    whenever the published form may change (row updated, new event or update, deadline
    passed). Computed in SQL: the last event and update come from their complaint indexes."""
    cols = columns(conn, "complaints")
    last_update = (
        "(SELECT MAX(u.id) FROM updates u WHERE u.complaint_id = c.id)"
        if has_table(conn, "updates") else "NULL"
    )
    open_states = statuses.sql_list(statuses.AWAITING_ANSWER)
    resolving = statuses.sql_list(statuses.RESOLVE_RUNNING)
    # the resolution clock running out changes the page too (0011_confirm)
    resolve_late = (
        " || (CASE WHEN c.resolve_due_at IS NOT NULL"
        f" AND c.status IN ({resolving}) AND c.resolve_due_at < :now THEN 1 ELSE 0 END)"
        if "resolve_due_at" in cols else ""
    )
    where = " AND ".join(f"c.{cond}" for cond in publishable_sql(cols).split(" AND "))
    return conn.execute(
        "SELECT c.id, :version || '|' || COALESCE(c.updated_at, '') || '|'"
        " || COALESCE((SELECT MAX(e.id) FROM events e WHERE e.complaint_id = c.id), 0)"
        f" || '|' || COALESCE({last_update}, 0) || '|'"
        " || (CASE WHEN c.due_at IS NOT NULL AND c.due_at != ''"
        f" AND c.status IN ({open_states}) AND c.due_at < :now THEN 1 ELSE 0 END){resolve_late},"
        " p.source_key FROM complaints c LEFT JOIN public_index p ON p.complaint_id = c.id"
        f" WHERE {where} ORDER BY c.id",
        {"version": version, "now": now},
    ).fetchall()


@dataclass
class PublicComplaint:
    """One complaint as published. `record` is exactly the open-data object."""

    cid: int
    record: dict[str, Any]
    timeline: list[dict[str, Any]] = field(default_factory=list)
    photos: list[dict[str, Any]] = field(default_factory=list)
    first_answer_at: str | None = None
    settled: bool = False

    def row(self) -> list[Any]:
        """Compact row for the list pages, the search index and the statistics."""
        r = self.record
        return [
            r["id"], r["received_at"], r["channel"], r["category"], r["agencies"],
            r["kecamatan"], r["status"], r["overdue"], r["due_at"], self.first_answer_at,
            self.settled, r["text"][:SNIPPET],
        ]

    def csv_line(self) -> str:
        r = self.record
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\r\n").writerow([
            r["id"], r["received_at"], r["channel"], r["category"] or "",
            ";".join(r["agencies"]), r["kecamatan"] or "", r["status"], r["due_at"] or "",
            "true" if r["overdue"] else "false", r["text"],
            json.dumps(r["updates"], ensure_ascii=False),
            "" if r.get("lat") is None else r["lat"], "" if r.get("lon") is None else r["lon"],
            r["resolve_due_at"] or "", "" if r["resolve_days"] is None else r["resolve_days"],
            "true" if r["resolve_overdue"] else "false",
            "true" if r["budget_dependent"] else "false",
        ])
        return buf.getvalue()


ROW_FIELDS = [
    "id", "received_at", "channel", "category", "agencies", "kecamatan", "status", "overdue",
    "due_at", "first_answer_at", "settled", "snippet",
]


def public_text(subject: str, text: str, override: str | None,
                names: list[str] | None = None) -> str:
    names = names or []
    if override is not None:
        return redact(override.strip(), names)
    body = (text or "").strip()
    subject = (subject or "").strip()
    if subject and subject.lower() not in ("aduan", "pengaduan", "laporan") \
            and subject not in body:
        body = f"{subject}\n\n{body}" if body else subject
    return redact(body, names, complaint=True)


def rounded(value: float | None) -> float | None:
    return None if value is None else round(float(value), LOCATION_DECIMALS)


def _chunks(ids: list[int], size: int = 500) -> Iterator[list[int]]:
    for i in range(0, len(ids), size):
        yield ids[i:i + size]


def build_records(
    conn: sqlite3.Connection, ids: Iterable[int], now: str, *, photos: bool = False
) -> dict[int, PublicComplaint]:
    """The public form of the given complaints — the ONE place that decides what is shown."""
    cols = columns(conn, "complaints")
    extra = [c for c in ("first_answer_at", "closed_at", "lat", "lon", "resolve_due_at",
                         "resolve_days", "budget_dependent") if c in cols]
    whitelist = [
        "id", "ticket", "channel", "status", "subject", "text", "public_text", "received_at",
        "category", "agencies", "kecamatan", "due_at", "sender", "sender_name", *extra,
    ]
    with_updates = has_table(conn, "updates")
    out: dict[int, PublicComplaint] = {}
    for chunk in _chunks(list(ids)):
        marks = ",".join("?" * len(chunk))
        updates: dict[int, list[dict[str, Any]]] = {}
        if with_updates:
            ucols = columns(conn, "updates")
            public_only = " AND public = 1" if "public" in ucols else ""
            if "awaiting_review" in ucols:  # 0008_review: held answers wait for publish
                public_only += " AND awaiting_review = 0"
            for u in conn.execute(
                f"SELECT complaint_id, at, source, agency, text, status_set FROM updates"
                f" WHERE complaint_id IN ({marks}){public_only} ORDER BY at, id", chunk
            ):
                updates.setdefault(u[0], []).append({
                    "at": u[1], "source": u[2], "agency": u[3],
                    # answers stored before the guard existed may still carry the forward
                    "text": cut_desk_text(u[4] or ""),
                    "status": u[5],
                })
        forwards: dict[int, list[tuple[str, str]]] = {}
        for cid, sent_at, payload in conn.execute(
            f"SELECT complaint_id, sent_at, payload FROM outbox WHERE kind = 'forward'"
            f" AND status = 'sent' AND complaint_id IN ({marks}) ORDER BY sent_at, id", chunk
        ):
            agency = json.loads(payload or "{}").get("agency")
            forwards.setdefault(cid, []).append((sent_at, agency))
        status_events: dict[int, list[tuple[str, str]]] = {}
        for cid, at, type_, data in conn.execute(
            f"SELECT complaint_id, at, type, data FROM events WHERE complaint_id IN ({marks})"
            " AND type NOT IN ('sent', 'send_retry', 'send_failed', 'bounce', 'message_added')"
            " ORDER BY id", chunk
        ):
            try:
                status = json.loads(data or "{}").get("status")
            except ValueError:
                status = None
            if type_ == "routed":
                action = json.loads(data or "{}").get("action")
                status = {"triage": "triage"}.get(action)
            if isinstance(status, str) and status in statuses.LABELS:
                status_events.setdefault(cid, []).append((at, status))
        photo_rows: dict[int, list[dict[str, Any]]] = {}
        if photos:
            for cid, sha, ctype in conn.execute(
                f"SELECT complaint_id, sha256, content_type FROM attachments"
                f" WHERE complaint_id IN ({marks}) AND content_type IN"
                " ('image/jpeg', 'image/png') ORDER BY id", chunk
            ):
                photo_rows.setdefault(cid, []).append({"sha256": sha, "content_type": ctype})
        for row in conn.execute(
            f"SELECT {', '.join(whitelist)} FROM complaints WHERE id IN ({marks})", chunk
        ):
            c = dict(zip(whitelist, row, strict=True))
            cid = c["id"]
            names = known_names(c["sender_name"], c["sender"])  # to hide, never shown
            ups = [{**u, "text": redact(u["text"], names)} for u in updates.get(cid, [])]
            record = {
                "id": c["ticket"],
                "received_at": c["received_at"],
                "channel": c["channel"],
                "category": c["category"],
                "agencies": json.loads(c["agencies"] or "[]"),
                "kecamatan": c["kecamatan"] or None,
                "status": c["status"],
                "due_at": c["due_at"],
                "overdue": is_overdue(c["status"], c["due_at"], now),
                "text": public_text(c["subject"], c["text"], c["public_text"], names),
                "updates": ups,
                "lat": rounded(c.get("lat")),
                "lon": rounded(c.get("lon")),
                # the second clock: settled within resolve_days (none when budget-bound)
                "resolve_due_at": c.get("resolve_due_at"),
                "resolve_days": c.get("resolve_days"),
                "resolve_overdue": is_resolve_overdue(c["status"], c.get("resolve_due_at"), now),
                "budget_dependent": bool(c.get("budget_dependent")),
            }
            first_answer = c.get("first_answer_at") or next(
                (u["at"] for u in ups if u["source"] == "agency"), None
            )
            timeline = [{"at": c["received_at"], "kind": "received", "channel": c["channel"]}]
            timeline += [
                {"at": at, "kind": "forwarded", "agency": agency}
                for at, agency in forwards.get(cid, []) if at
            ]
            timeline += [{"at": at, "kind": "status", "status": s}
                         for at, s in status_events.get(cid, [])]
            timeline += [{"at": u["at"], "kind": "update", **u} for u in ups]
            if c.get("first_answer_at") and not any(u["source"] == "agency" for u in ups):
                timeline.append({"at": c["first_answer_at"], "kind": "answered"})
            if c.get("closed_at"):
                timeline.append({"at": c["closed_at"], "kind": "closed", "status": c["status"]})
            timeline.sort(key=lambda e: e["at"] or "")
            out[cid] = PublicComplaint(
                cid=cid, record=record, timeline=timeline, photos=photo_rows.get(cid, []),
                first_answer_at=first_answer, settled=c["status"] in statuses.SETTLED,
            )
    return out
