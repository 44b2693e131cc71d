"""The citizen confirms: SUDAH closes, BELUM reopens, silence closes after `confirm_days`.

After an agency's `selesai` (status `resolved`) the citizen was asked on their channel
(`status.ask_confirmation`). Their answer comes back as a reply:

- email: threaded to the question (In-Reply-To/References → the outbox row), or any mail of the
  complaint's thread / `[ticket]` in the subject, from the citizen's own address (`replies.py`
  hands it here);
- WhatsApp: a button reply (its `context.id` is the question's wamid) or any message in the
  citizen's conversation; X, Messenger, Instagram: the citizen's conversation — and on every
  channel the ticket number in the text, from the same sender (`handle`, a process handler).

The words are read in Indonesian and Javanese (`parse_answer`), with an optional 1–5 rating in
the same message or a later one ("nilai 5"). Every step is an event: `confirmed`, `reopened`,
`rated`, `auto_closed`, `confirm_unclear`.
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from lapakd import statuses
from lapakd.lifecycle import status as lifecycle
from lapakd.outbox import queue as outbox
from lapakd.redact import known_names, redact
from lapakd.store import now_iso

if TYPE_CHECKING:
    from lapakd.adapters.base import Content
    from lapakd.app import Desk

log = structlog.get_logger("lapakd.lifecycle.confirm")

# Indonesian, slang and Javanese (ngoko and krama) words for "done" and "not yet".
YES = frozenset({"sudah", "sdh", "udah", "udh", "wis", "uwis", "uwes", "wes", "dah", "beres",
                 "selesai", "sampun"})
# "ya" / "sip" say yes only as the whole (short) answer: "ya, jalannya masih rusak" is not.
SHORT_YES = frozenset({"ya", "iya", "yes", "sip", "oke", "ok"})
NO = frozenset({"belum", "blm", "blom", "belom", "blum", "durung", "drung", "urung", "dereng"})
# "tidak beres", "ora uwis": a negation before a yes-word is a no.
NEGATION = frozenset({"tidak", "tdk", "gak", "ga", "nggak", "ngga", "enggak", "ora", "ndak",
                      "dudu", "mboten", "boten", "bukan"})
RATING_WORDS = frozenset({"nilai", "rating", "skor", "bintang", "rate", "poin"})
# "sudah 3 hari lampunya mati" is a new story, not an answer: a number after the word followed
# by a unit of time.
TIME_UNITS = frozenset({"hari", "hr", "minggu", "mgg", "bulan", "bln", "tahun", "thn", "jam",
                        "kali", "x", "dino", "sasi", "taun", "minggon"})
NUMBER_WORDS = frozenset({"satu", "dua", "tiga", "empat", "lima", "beberapa", "berapa", "siji",
                          "loro", "rong", "telu", "telung", "papat", "patang", "limang", "pirang"})
DURATIONS = frozenset({"seminggu", "sebulan", "setahun", "seharian", "lama", "suwe", "sewulan",
                       "setaun", "sedino", "berhari", "berminggu", "berbulan", "bertahun"})
# Only the start of a message answers the question: a text further on is a new story.
ANSWER_WORDS = 5
# Markers the chat adapters put in front of a text ("[Balasan] ", "[Pesan diteruskan] ").
MARKERS = frozenset({"balasan", "pesan", "diteruskan"})
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)


@dataclass(frozen=True)
class Answer:
    verdict: str | None  # "sudah" | "belum" | None
    rating: int | None  # 1..5
    words: str  # what the citizen wrote (for the agency and the timeline)
    short: bool = True  # a few words only: safe to read as a late answer too


def _rating_from(token: str | None) -> int | None:
    if token is not None and token.isdigit() and len(token) == 1 and "1" <= token <= "5":
        return int(token)
    return None


def parse_answer(text: str) -> Answer:
    """The citizen's verdict and rating in the first words of `text` (already stripped of
    quoted history). "BELUM, masih bocor" → belum; "udh beres 5" → sudah, 5; "nilai 4" → 4."""
    words = text.strip()
    tokens = [t.lower() for t in _TOKEN.findall(words)]
    while tokens and tokens[0] in MARKERS:
        tokens.pop(0)
    head = tokens[:ANSWER_WORDS]

    def after(i: int) -> str | None:
        return tokens[i] if i < len(tokens) else None

    verdict: str | None = None
    at = -1
    for i, token in enumerate(head):
        if token in NO:
            verdict, at = "belum", i
            break
        if token in YES or (token in SHORT_YES and i == 0 and len(tokens) <= 2):
            amount = after(i + 1) or ""
            if after(i + 1) in DURATIONS or (
                (amount.isdigit() or amount in NUMBER_WORDS) and after(i + 2) in TIME_UNITS
            ):
                break  # "sudah 3 hari ...", "wis seminggu" tell how long, they do not answer
            negated = i > 0 and head[i - 1] in NEGATION
            verdict, at = ("belum" if negated else "sudah"), i
            break
    rating = None
    for i, token in enumerate(tokens[:ANSWER_WORDS + 8]):
        if token in RATING_WORDS:
            rating = _rating_from(after(i + 1))
            if rating:
                break
    if rating is None and at >= 0 and after(at + 2) in (None, *RATING_WORDS, "dari"):
        rating = _rating_from(after(at + 1))  # "SUDAH 4", "sudah 4 bintang"
    if rating is None and len(tokens) == 1:
        rating = _rating_from(tokens[0])  # a lone "5"
    return Answer(verdict, rating, words, short=len(tokens) <= 8)


# -- applying an answer (inside the caller's transaction) --------------------------------------


def _citizen_update(desk: Desk, c: sqlite3.Row, text: str, status_set: str,
                    message_id: int | None) -> int:
    """The citizen's step on the public timeline (redacted like the complaint), not relayed."""
    names = known_names(c["sender_name"], c["sender"])
    public_text = redact(text.strip(), names)
    update_id = desk.store.conn.execute(
        "INSERT INTO updates (complaint_id, at, source, agency, actor, text, raw_text,"
        " status_set, message_id) VALUES (?, ?, 'citizen', NULL, 'citizen', ?, ?, ?, ?)"
        " RETURNING id",
        (c["id"], now_iso(), public_text, text, status_set, message_id),
    ).fetchone()[0]
    desk.store.event("update", complaint_id=c["id"], message_id=message_id, actor="citizen",
                     update=update_id, source="citizen", status=status_set, text=public_text)
    return update_id


def rate(desk: Desk, c: sqlite3.Row, rating: int, *, via: str,
         message_id: int | None = None) -> None:
    now = now_iso()
    desk.store.conn.execute("UPDATE complaints SET rating = ?, rated_at = ? WHERE id = ?",
                            (rating, now, c["id"]))
    desk.store.event("rated", complaint_id=c["id"], message_id=message_id, actor="citizen",
                     rating=rating, via=via, previous=c["rating"])


def close(desk: Desk, c: sqlite3.Row, *, how: str, via: str,
          message_id: int | None = None) -> bool:
    """SUDAH (how="sudah") or silence (how="auto"): `closed`."""
    actor = "citizen" if how == "sudah" else "lapakd"
    reason = ("the citizen confirmed (SUDAH)" if how == "sudah" else
              f"no objection within {desk.config.desk.confirm_days} working days")
    if not lifecycle.set_status(desk, c, "closed", actor=actor, reason=reason):
        return False
    now = now_iso()
    desk.store.conn.execute(
        "UPDATE complaints SET confirmed_at = ?, confirmation = ? WHERE id = ? OR merged_into = ?",
        (now, how, c["id"], c["id"]),
    )
    if how == "sudah":
        desk.store.event("confirmed", complaint_id=c["id"], message_id=message_id,
                         actor=actor, via=via)
        text = "Pelapor menyatakan masalahnya sudah selesai. Aduan ditutup."
    else:
        desk.store.event("auto_closed", complaint_id=c["id"], actor=actor,
                         confirm_due_at=c["confirm_due_at"],
                         confirm_days=desk.config.desk.confirm_days)
        text = (f"Tidak ada keberatan dari pelapor dalam {desk.config.desk.confirm_days} hari "
                "kerja setelah instansi menyatakan selesai. Aduan ditutup.")
    _citizen_update(desk, c, text, "closed", message_id)
    return True


def reopen(desk: Desk, c: sqlite3.Row, words: str, *, via: str,
           message_id: int | None = None) -> bool:
    """BELUM: `reopened`, a new resolution deadline, the citizen's words to the agency
    (threaded to its forward) and to the admin, and on the public timeline."""
    if not lifecycle.set_status(desk, c, "reopened", actor="citizen",
                                reason="the citizen says it is not solved (BELUM)"):
        return False
    store, now = desk.store, now_iso()
    # set_status gave it a new resolution deadline
    resolve_due = lifecycle.reload(desk, c)["resolve_due_at"]
    store.conn.execute(
        "UPDATE complaints SET confirmed_at = ?, confirmation = 'belum',"
        " reopen_count = reopen_count + 1 WHERE id = ?",
        (now, c["id"]),
    )
    round_ = c["reopen_count"] + 1
    store.event("reopened", complaint_id=c["id"], message_id=message_id, actor="citizen",
                via=via, words=words, resolve_due_at=resolve_due, round=round_)
    _citizen_update(desk, c, "Pelapor menyatakan masalahnya belum selesai: " + words.strip()
                    if words.strip() else "Pelapor menyatakan masalahnya belum selesai.",
                    "reopened", message_id)
    for key in json.loads(c["agencies"]):
        agency = desk.rules.agencies.get(key)
        if agency is None:
            continue
        forward = store.one(
            "SELECT message_id, payload FROM outbox WHERE complaint_id = ? AND kind = 'forward'"
            " AND json_extract(payload, '$.agency') = ? ORDER BY id DESC LIMIT 1",
            (c["id"], key),
        )
        outbox.enqueue(
            store, domain=desk.desk_domain, kind="reopen", complaint=c,
            recipients=list(agency.addresses), dedupe_key=f"reopen:{c['id']}:{round_}:{key}",
            payload={"agency": key, "words": words.strip(), "resolve_due_at": resolve_due,
                     "in_reply_to": forward["message_id"] if forward else None,
                     "subject": c["subject"]},
        )
    outbox.enqueue(
        store, kind="alert", recipients=[], dedupe_key=f"alert:reopened:{c['id']}:{round_}",
        payload={
            "subject": f"Aduan dibuka kembali: {c['ticket']} (pelapor: BELUM)",
            "body": (f"Pelapor aduan {c['ticket']} menyatakan masalahnya BELUM selesai "
                     f"(via {via}). Aduan dibuka kembali dan diteruskan lagi kepada "
                     f"{', '.join(json.loads(c['agencies'])) or '-'}"
                     + (f", tenggat penyelesaian baru {resolve_due}" if resolve_due else "")
                     + f".\n\nTanggapan pelapor:\n{words.strip()[:1500]}\n\n"
                     f"Riwayat: lapakd show {c['ticket']}"),
        },
    )
    return True


def apply(desk: Desk, c: sqlite3.Row, answer: Answer, *, via: str,
          message_id: int | None = None) -> str:
    """Apply the citizen's answer to the canonical complaint `c`; what was done."""
    done = []
    if answer.rating is not None:
        rate(desk, c, answer.rating, via=via, message_id=message_id)
        done.append(f"rated {answer.rating}")
    if c["status"] in statuses.AWAITING_CONFIRMATION:
        if answer.verdict == "sudah" and close(desk, c, how="sudah", via=via,
                                               message_id=message_id):
            done.append("closed")
        elif answer.verdict == "belum" and reopen(desk, c, answer.words, via=via,
                                                  message_id=message_id):
            done.append("reopened")
    if not done:
        desk.store.event("confirm_unclear", complaint_id=c["id"], message_id=message_id,
                         actor="citizen", via=via, status=c["status"], text=answer.words[:500])
        if answer.verdict == "belum" and c["status"] in statuses.CLOSED:
            # too late to reopen by itself (closed): a person decides
            outbox.enqueue(
                desk.store, kind="alert", recipients=[],
                dedupe_key=f"alert:late-belum:{c['id']}:{message_id}",
                payload={"subject": f"Pelapor menyatakan BELUM setelah ditutup: {c['ticket']}",
                         "body": (f"Pelapor aduan {c['ticket']} menyatakan masalahnya belum "
                                  f"selesai (via {via}), tetapi aduan sudah ditutup.\n\n"
                                  f"{answer.words[:1500]}\n\nBila perlu dibuka kembali: "
                                  f"lapakd set-status {c['ticket']} reopened --note \"...\"")},
            )
    return ", ".join(done) or "nothing"


def wants(c: sqlite3.Row, answer: Answer) -> bool:
    """Whether this answer is one for `c`: a verdict while it waits for one, or a rating
    once the citizen was asked (resolved or closed)."""
    if c["status"] in statuses.AWAITING_CONFIRMATION:
        return answer.verdict is not None or answer.rating is not None
    return answer.rating is not None and c["status"] == "closed" and c["rated_at"] is None


def citizen_email(desk: Desk, row: sqlite3.Row, content: Content, c: sqlite3.Row,
                  via: str, text: str) -> bool:
    """replies.py: the citizen answered by email in the complaint's thread. False: not an
    answer to the question (the caller goes on as before)."""
    answer = parse_answer(text)
    if not wants(c, answer):
        return False
    done = apply(desk, c, answer, via=f"email:{via}", message_id=row["id"])
    desk.store.mark_processed(row["id"], "confirmation", c["id"])
    log.info("confirm.email", ticket=c["ticket"], done=done, via=via)
    return True


def is_citizen(c: sqlite3.Row, sender: str, desk: Desk) -> sqlite3.Row | None:
    """The complaint (c or one merged into it) whose citizen wrote from `sender`."""
    sender = sender.strip().lower()
    if not sender:
        return None
    for target in [c, *desk.store.all("SELECT * FROM complaints WHERE merged_into = ?",
                                      (c["id"],))]:
        ref = json.loads(target["reply_ref"] or "{}")
        own = {str(x).strip().lower() for x in (target["sender"], ref.get("address")) if x}
        if sender in own:
            return target
    return None


# -- chat and social channels: a process handler ------------------------------------------------


def _by_context(desk: Desk, row: sqlite3.Row, content: Content) -> sqlite3.Row | None:
    """WhatsApp: the message replies to (or is a button of) the question the desk sent."""
    extra = content.extra or {}
    context = extra.get("context") or {}
    wamid = context.get("id") if isinstance(context, dict) else None
    if not wamid:
        return None
    asked = desk.store.one(
        "SELECT complaint_id FROM outbox WHERE transport = ? AND complaint_id IS NOT NULL"
        " AND json_extract(result, '$.wamid') = ? LIMIT 1", (row["channel"], wamid),
    )
    if asked is None:
        return None
    return desk.store.one("SELECT * FROM complaints WHERE id = ?", (asked["complaint_id"],))


def ticket_in_text(desk: Desk, text: str) -> sqlite3.Row | None:
    prefix = re.escape(desk.config.desk.ticket_prefix)
    m = re.search(r"\b(" + prefix + r"-\d{4}-\d{6})\b", text or "", re.I)
    if m is None:
        return None
    return desk.store.one("SELECT * FROM complaints WHERE ticket = ?", (m.group(1).upper(),))


def _by_ticket(desk: Desk, row: sqlite3.Row, content: Content) -> sqlite3.Row | None:
    c = ticket_in_text(desk, content.text or "")
    # anyone can type a ticket number: only its own citizen answers for it
    if c is None or c["channel"] != row["channel"] or c["sender"] != content.sender:
        return None
    return c


def _by_button(desk: Desk, row: sqlite3.Row, content: Content) -> sqlite3.Row | None:
    """WhatsApp's reply button: its id (`confirm:<ticket>:sudah`) names the ticket."""
    button = str((content.extra or {}).get("button_id") or "")
    if not button.startswith("confirm:"):
        return None
    c = desk.store.one("SELECT * FROM complaints WHERE ticket = ?",
                       (button.split(":")[1].upper(),))
    if c is None or c["channel"] != row["channel"] or c["sender"] != content.sender:
        return None
    return c


def _by_conversation(desk: Desk, row: sqlite3.Row, content: Content) -> sqlite3.Row | None:
    """The citizen's latest complaint on this channel that was asked (or waits to be)."""
    if not content.sender:
        return None
    return desk.store.one(
        "SELECT * FROM complaints WHERE channel = ? AND (sender = ? OR"
        " (conversation IS NOT NULL AND conversation = ?))"
        f" AND status IN ({statuses.sql_list((*statuses.AWAITING_CONFIRMATION, 'closed'))})"
        " AND resolved_at IS NOT NULL ORDER BY resolved_at DESC, id DESC LIMIT 1",
        (row["channel"], content.sender, content.conversation or ""),
    )


def handle(desk: Desk, row: sqlite3.Row, content: Content) -> bool:
    """process.HANDLERS: a chat or social message answering the SUDAH/BELUM question."""
    if row["channel"] == "email" or content.kind != "complaint":
        return False
    answer = parse_answer(content.text or "")
    if answer.verdict is None and answer.rating is None:
        return False  # not an answer: a new complaint (or a chat message) as before
    for how, finder in (("context", _by_context), ("button", _by_button),
                        ("ticket", _by_ticket), ("conversation", _by_conversation)):
        found = finder(desk, row, content)
        if found is None:
            continue
        c = lifecycle.canonical(desk, found)
        asked = c["status"] in statuses.AWAITING_CONFIRMATION or (
            c["status"] == "closed" and c["resolved_at"] is not None)
        # once closed, only a short message is taken as a late answer (a second "Sudah", a
        # rating); a longer one is a new complaint
        if not asked or (c["status"] == "closed" and not answer.short):
            continue
        done = apply(desk, c, answer, via=f"{row['channel']}:{how}", message_id=row["id"])
        desk.store.mark_processed(row["id"], "confirmation", c["id"])
        log.info("confirm.chat", ticket=c["ticket"], channel=row["channel"], via=how, done=done)
        return True
    return False


# -- no objection: closed after confirm_days working days --------------------------------------


def auto_close(desk: Desk) -> int:
    """Close every `resolved` complaint whose confirm_due_at has passed. Returns how many."""
    store = desk.store
    rows = store.all(
        "SELECT * FROM complaints WHERE confirm_due_at IS NOT NULL AND confirm_due_at < ?"
        f" AND status IN ({statuses.sql_list(statuses.AWAITING_CONFIRMATION)})"
        " AND merged_into IS NULL ORDER BY confirm_due_at, id",
        (now_iso(),),
    )
    closed = 0
    for c in rows:
        with store.transaction():
            fresh = lifecycle.reload(desk, c)
            if fresh["status"] in statuses.AWAITING_CONFIRMATION and close(
                desk, fresh, how="auto", via="timer"
            ):
                closed += 1
    if closed:
        log.info("confirm.auto_closed", complaints=closed)
    return closed
