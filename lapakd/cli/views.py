"""What the admin's CLI verbs show: read-only views over the store."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from lapakd import statuses
from lapakd.monitor.checks import status as status  # `lapakd status`: the checks live below
from lapakd.routing import duplicates
from lapakd.routing.deadlines import CLOCK_SQL, clocks_late
from lapakd.store import now_iso, utcnow

if TYPE_CHECKING:
    from lapakd.app import Desk


def complaint_summary(row: Any, now: str | None = None) -> dict[str, Any]:
    now = now or now_iso()
    return {
        "id": row["ticket"],
        "channel": row["channel"],
        "status": row["status"],
        "agencies": json.loads(row["agencies"]),
        "category": row["category"],
        "rule": row["rule"],
        "received_at": row["received_at"],
        "due_at": row["due_at"],
        "resolve_due_at": row["resolve_due_at"],
        "overdue": clocks_late(row, now),
        "subject": row["subject"],
        "text": row["text"],
    }


def list_complaints(
    desk: Desk,
    *,
    status: str | None = None,
    agency: str | None = None,
    overdue: bool | str = False,
    limit: int = 0,
) -> list[dict[str, Any]]:
    """`overdue`: True or "both" — either clock late; "first" / "resolve" — that clock."""
    store = desk.store
    now = now_iso()
    where, params = ["1 = 1"], {"now": now}
    if status:
        where.append("status = :status")
        params["status"] = status
    if agency:
        where.append("EXISTS (SELECT 1 FROM json_each(complaints.agencies) WHERE value = :agency)")
        params["agency"] = agency
    if overdue:
        clocks = ["first", "resolve"] if overdue in (True, "both") else [str(overdue)]
        # Past a running clock's deadline; duplicates excluded.
        where.append("(" + " OR ".join(f"({CLOCK_SQL[k]})" for k in clocks) + ")"
                     " AND merged_into IS NULL")
    sql = f"SELECT * FROM complaints WHERE {' AND '.join(where)} ORDER BY id"
    if limit:
        sql += f" LIMIT {int(limit)}"
    out = [complaint_summary(r, now) for r in store.all(sql, params)]
    if status in (None, "quarantined") and not agency and not overdue:
        for m in store.all("SELECT * FROM messages WHERE state = 'quarantined' ORDER BY id"):
            out.append({
                "id": f"msg-{m['id']}", "channel": m["channel"], "status": "quarantined",
                "agencies": [], "category": None, "rule": None,
                "received_at": m["received_at"], "due_at": None, "subject": "",
                "text": m["error"] or "",
            })
    if status == "seen_before" and not agency and not overdue:
        # Mail that was in the mailbox before lapakd's first poll: kept, not processed.
        for m in store.all("SELECT * FROM messages WHERE state = 'seen_before' ORDER BY id"):
            out.append({
                "id": f"msg-{m['id']}", "channel": m["channel"], "status": "seen_before",
                "agencies": [], "category": None, "rule": None,
                "received_at": m["received_at"], "due_at": None, "subject": "",
                "text": json.loads(m["meta"]).get("seen_before") or "",
            })
    return out


def unreviewed(desk: Desk) -> list[dict[str, Any]]:
    """The review queue ([public] review): complaints and agency answers that would be on the
    site but wait for `lapakd publish`, each with the text as it would be published."""
    from lapakd.public import model  # why: phonenumbers (redaction) loads for this view only

    store = desk.store
    where = model.publishable_sql(model.columns(store.conn, "complaints"), reviewed=False)
    out: list[dict[str, Any]] = [
        complaint_summary(r) | {
            "review": "complaint",
            "public_text": model.public_text(r["subject"], r["text"], r["public_text"]),
        }
        for r in store.all(
            f"SELECT * FROM complaints WHERE awaiting_review = 1 AND {where} ORDER BY id")
    ]
    c_where = " AND ".join(f"c.{cond}" for cond in where.split(" AND "))
    out += [
        {"id": f"upd-{u['id']}", "review": "answer", "ticket": u["ticket"], "at": u["at"],
         "agency": u["agency"], "by": u["actor"], "status": u["status_set"],
         "complaint_waiting": bool(u["c_waiting"]), "public_text": u["text"]}
        for u in store.all(
            "SELECT u.*, c.ticket, c.awaiting_review AS c_waiting FROM updates u"
            " JOIN complaints c ON c.id = u.complaint_id"
            f" WHERE u.awaiting_review = 1 AND u.public = 1 AND {c_where} ORDER BY u.id")
    ]
    return out


def show(desk: Desk, ref: str) -> dict[str, Any]:
    store = desk.store
    if ref.strip().lower().startswith("msg-"):
        m = store.message(ref)
        return {
            "type": "message",
            "id": f"msg-{m['id']}",
            "channel": m["channel"],
            "external_id": m["external_id"],
            "state": m["state"],
            "kind": m["kind"],
            "error": m["error"],
            "received_at": m["received_at"],
            "meta": json.loads(m["meta"]),
            "raw_bytes": len(m["raw"]),
            "complaint": _ticket(desk, m["complaint_id"]),
            "events": _events(desk, "message_id", m["id"]),
        }
    c = store.complaint(ref)
    data = complaint_summary(c) | {
        "type": "complaint",
        "sender": c["sender"],
        "sender_name": c["sender_name"],
        "matched": json.loads(c["matched"]),
        "budget_dependent": bool(c["budget_dependent"]),
        "clocks": clocks(desk, c),
        "confirmation": {
            "resolved_at": c["resolved_at"], "confirm_due_at": c["confirm_due_at"],
            "answer": c["confirmation"], "answered_at": c["confirmed_at"],
            "reopened": c["reopen_count"], "rating": c["rating"], "rated_at": c["rated_at"],
        },
        "rating": c["rating"],
        "notes": json.loads(c["notes"]),
        "messages": [
            {"id": f"msg-{m['id']}", "external_id": m["external_id"], "state": m["state"],
             "received_at": m["received_at"]}
            for m in store.all(
                "SELECT id, external_id, state, received_at FROM messages"
                " WHERE complaint_id = ? ORDER BY id", (c["id"],))
        ],
        "attachments": [
            {"filename": a["filename"], "content_type": a["content_type"], "size": a["size"],
             "sha256": a["sha256"]}
            for a in store.all(
                "SELECT * FROM attachments WHERE complaint_id = ? ORDER BY id", (c["id"],))
        ],
        "outbox": [
            {"id": o["id"], "kind": o["kind"], "to": json.loads(o["recipients"]),
             "status": o["status"], "attempts": o["attempts"], "message_id": o["message_id"],
             "last_error": o["last_error"], "sent_at": o["sent_at"]}
            for o in store.all("SELECT * FROM outbox WHERE complaint_id = ? ORDER BY id",
                               (c["id"],))
        ],
        "updates": _updates(desk, c["id"]),
        "events": _events(desk, "complaint_id", c["id"]),
    }
    data["awaiting_review"] = bool(c["awaiting_review"])  # [public] review
    from lapakd.routing.route import model_suggestions

    data["suggestions"] = [  # the model's top 3 when it was routed: `Teruskan: 1` picks one
        {"agency": key, "probability": p} for key, p in model_suggestions(store, c["id"])]
    # Open complaints that may be the same problem; merging is the admin's call (lapakd merge).
    data["similar"] = [{"ticket": s.ticket, "score": s.score, "status": s.status,
                        "channel": s.channel}
                       for s in duplicates.similar_open(desk.store, c)]
    # the latest routing decision's score and runners-up (the rules' or an admin's)
    routed = [e for e in data["events"] if e["type"] == "routed"]
    data["score"] = routed[-1].get("score") if routed else None
    data["runners_up"] = routed[-1].get("runners_up") or [] if routed else []
    return data


def clocks(desk: Desk, c: Any) -> dict[str, Any]:
    """Both clocks of a complaint for `show`: deadline, running or not, late or not; a
    budget-bound complaint has no resolution clock but a waiting time."""
    from lapakd.lifecycle.scheduled import waiting_since  # why: the lifecycle loads for show only

    now = now_iso()
    late = clocks_late(c, now)
    out: dict[str, Any] = {
        "first": {"due_at": c["due_at"], "sla_days": c["sla_days"],
                  "running": c["status"] in statuses.DEADLINE_RUNNING and bool(c["due_at"]),
                  "late": "first" in late, "answered_at": c["first_answer_at"]},
        "resolve": {"due_at": c["resolve_due_at"], "resolve_days": c["resolve_days"],
                    "running": (c["status"] in statuses.RESOLVE_RUNNING
                                and bool(c["resolve_due_at"]) and not c["budget_dependent"]),
                    "late": "resolve" in late, "resolved_at": c["resolved_at"]},
    }
    if c["budget_dependent"] and c["status"] in statuses.OPEN:
        since = waiting_since(desk, c)
        out["budget_waiting"] = {"since": since.isoformat(),
                                 "days": (utcnow() - since).days}
    return out


def _updates(desk: Desk, complaint_id: int) -> list[dict[str, Any]]:
    """Public updates (agency answers, desk replies) — table from 0002_lifecycle."""
    return [
        {"id": f"upd-{u['id']}", "at": u["at"], "source": u["source"], "agency": u["agency"],
         "by": u["actor"], "status": u["status_set"], "text": u["text"],
         "public": "awaiting review" if u["awaiting_review"] else
                   "published" if u["public"] else "hidden"}
        for u in desk.store.all(
            "SELECT * FROM updates WHERE complaint_id = ? ORDER BY id", (complaint_id,))
    ]


def _ticket(desk: Desk, complaint_id: int | None) -> str | None:
    if complaint_id is None:
        return None
    row = desk.store.one("SELECT ticket FROM complaints WHERE id = ?", (complaint_id,))
    return row["ticket"] if row else None


def _events(desk: Desk, column: str, value: int) -> list[dict[str, Any]]:
    return [
        {"at": e["at"], "type": e["type"], "actor": e["actor"], **json.loads(e["data"])}
        for e in desk.store.all(
            f"SELECT * FROM events WHERE {column} = ? ORDER BY id", (value,)
        )
    ]


def format_show(data: dict[str, Any]) -> str:
    lines = []
    if data["type"] == "message":
        lines.append(f"{data['id']}  {data['channel']}  {data['state']}  kind={data['kind']}")
        lines.append(f"external id: {data['external_id']}  received {data['received_at']}")
        if data["error"]:
            lines.append(f"error: {data['error']}")
        if data["complaint"]:
            lines.append(f"complaint: {data['complaint']}")
    else:
        waiting = "  AWAITING REVIEW (lapakd publish)" if data.get("awaiting_review") else ""
        lines.append(f"{data['id']}  [{data['status']}]  {data['channel']}  "
                     f"received {data['received_at']}{waiting}")
        who = data["sender_name"] or ""
        lines.append(f"from: {who} <{data['sender'] or '-'}>".replace(" <", " <", 1).strip())
        lines.append(f"category: {data['category'] or '-'}   agencies: "
                     f"{', '.join(data['agencies']) or '-'}")
        ck = data["clocks"]
        first, resolve = ck["first"], ck["resolve"]

        def clock_state(clock: dict[str, Any], stopped: str) -> str:
            if clock["late"]:
                return "LATE"
            return "running" if clock["running"] else stopped
        lines.append(f"first answer due: {first['due_at'] or '-'} "
                     f"({clock_state(first, 'stopped')})   resolution due: "
                     f"{resolve['due_at'] or '-'} ({clock_state(resolve, 'stopped')})")
        if ck.get("budget_waiting"):
            lines.append(f"waiting for budget since {ck['budget_waiting']['since'][:10]} "
                         f"({ck['budget_waiting']['days']} days)")
        conf = data["confirmation"]
        if conf["resolved_at"]:
            lines.append(f"selesai by the agency {conf['resolved_at']}; citizen: "
                         f"{conf['answer'] or 'asked, until ' + str(conf['confirm_due_at'])}"
                         f"; reopened {conf['reopened']}x; rating {conf['rating'] or '-'}")
        score = f"   score: {data['score']:g}" if data.get("score") is not None else ""
        lines.append(f"rule: {data['rule'] or '-'}{score}   "
                     f"matched: {', '.join(data['matched']) or '-'}")
        if data.get("runners_up"):
            lines.append("runners-up: " + ", ".join(
                f"{r['rule']} {r['score']:g} → {', '.join(r['agencies']) or r['action']}"
                for r in data["runners_up"]
            ))
        if data.get("suggestions"):
            lines.append("model suggests: " + ", ".join(
                f"{i}. {s['agency']} {s['probability']:.0%}"
                for i, s in enumerate(data["suggestions"], 1)))
        if data["subject"]:
            lines.append(f"subject: {data['subject']}")
        if data.get("similar"):
            lines.append("mungkin sama dengan " + ", ".join(
                f"{s['ticket']} ({s['score']:.2f}, {s['channel']})" for s in data["similar"])
                + f"   (lapakd merge {data['id']} TICKET)")
        lines.append("")
        lines.extend("  " + t for t in (data["text"] or "").splitlines()[:40])
        lines.append("")
        for a in data["attachments"]:
            lines.append(f"attachment: {a['filename']} ({a['content_type']}, {a['size']} bytes)")
        for u in data.get("updates") or []:
            who = u.get("agency") or u.get("source")
            status = f" [status → {u['status']}]" if u.get("status") else ""
            state = f" ({u['public']})" if u.get("public") not in (None, "published") else ""
            lines.append(f"update {u.get('id', '')} {u.get('at')} from {who}{status}{state}: "
                         f"{' '.join((u.get('text') or '').split())[:200]}")
        for o in data["outbox"]:
            err = f"  error: {o['last_error']}" if o["last_error"] else ""
            lines.append(f"outbox #{o['id']} {o['kind']} → {', '.join(o['to']) or 'admin'}: "
                         f"{o['status']} (attempts {o['attempts']}){err}")
    lines.append("history:")
    for e in data["events"]:
        extra = {k: v for k, v in e.items() if k not in ("at", "type", "actor")}
        detail = _event_detail(e["type"], extra)
        lines.append(f"  {e['at']}  {e['type']:<16} {e['actor']:<10} {detail}")
    return "\n".join(lines)


def _event_detail(type_: str, data: dict[str, Any]) -> str:
    if type_ == "routed":
        target = ", ".join(data.get("agencies") or []) or data.get("action", "")
        hits = data.get("hits") or []
        where = f" at {hits[0]['where']}" if hits and hits[0].get("where") else ""
        model = data.get("model") or {}
        said = ""
        if model.get("probability") is not None:
            said = f" (probability {model['probability']:.0%})"
        elif model.get("disagrees"):
            other = model["disagrees"]
            said = f"; the model says {other['agency']} ({other['probability']:.0%})"
        score = f" score {data['score']:g}" if data.get("score") is not None else ""
        losers = "; ".join(
            f"{r['rule']} {r['score']:g}" for r in data.get("runners_up") or []
        )
        matched = f" (matched: {', '.join(data.get('matched') or []) or '-'})"
        return (f"{data.get('action')} → {target} by rule {data.get('rule') or '-'}{where}"
                f"{score}{matched if data.get('rule') != 'model' else ''}{said}"
                + (f" (runners-up: {losers})" if losers else ""))
    if type_ == "sent":
        to = ", ".join(data.get("to") or [])
        return f"{data.get('kind')} to {to} <{data.get('rfc_message_id')}>"
    return ", ".join(f"{k}={v}" for k, v in data.items() if v not in (None, [], {}, ""))


def format_status(data: dict[str, Any]) -> str:
    lines = ["channels:"]
    for name, ch in data["channels"].items():
        failing = ch["last_error"] and ch["state"] != "ok"
        err = f"  last error: {ch['last_error']}" if failing else ""
        if ch.get("paused_until") and ch["enabled"]:
            err = f"  paused until {ch['paused_until']}{err}"
        extra = "".join(
            f" {label} {ch[key]}" for key, label in
            (("seen_before", "seen-before"), ("duplicates_dropped", "duplicates-dropped"))
            if ch.get(key)
        )
        token = f"  token {ch['token']['text']}" if ch.get("token") else ""
        lines.append(f"  {name:<10} {ch['state']:<12} stored {ch['messages_stored']:<6} "
                     f"last success {ch['last_success'] or '-'}{extra}{token}{err}")
    lines.append("complaints: " + (", ".join(
        f"{k} {v}" for k, v in sorted(data["complaints"].items())) or "none"))
    lines.append("outbox: " + ", ".join(f"{k} {v}" for k, v in data["outbox"].items()))
    lines.append(f"quarantined: {data['quarantined']}")
    d = data["daemon"]
    lines.append(f"runs: {d['runs']}, the last ({d['last_mode']}) started {d['last_started_at']}"
                 f", finished {d['last_finished_at'] or '-'}" if d["runs"] else "runs: none")
    for login in data.get("oauth2", {}).values():
        state = "FAILING" if login["error"] else "ok"
        lines.append(f"oauth2 [{login['section']}]: {state}, refresh token from "
                     f"{'data_dir/oauth2' if login['refresh_token'] == 'stored' else 'the config'}")
    r = data["rules"]
    lines.append(f"rules: {r['rules']} rules, {r['agencies']} agencies" if r["ok"]
                 else "rules: BROKEN — run lapakd rules check")
    if data["problems"]:
        lines.append("needs an admin:")
        lines.extend(f"  - {x}" for x in data["problems"])
    else:
        lines.append("all good")
    return "\n".join(lines)
