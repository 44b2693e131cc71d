"""Replies to the desk's own mail: agency answers to forwards, the admin's triage commands.

A reply is matched to its complaint by In-Reply-To/References against the Message-IDs the desk
sent (outbox), else by the `[LA-YYYY-NNNNNN]` tag in the subject, else by `X-Lapakd-Ticket`.
Then who sent it decides what it may do:

- one of the complaint's agencies (email or cc in agencies.yaml): a public update, with an
  optional `Status: ...` line at the top setting the status;
- the desk's admin_email: `Teruskan: dpupr [dinkes ...]` (or `Teruskan: 1`, the model's first
  suggestion in the triage email), `Tolak: <alasan>`, a status line, or
  else an internal note;
- anyone else: stored and shown to the admin for review, never applied.

Auto-replies never get here (the adapter classifies them `auto_reply`), and replies whose subject
says they are automatic are recorded and change nothing.
"""

from __future__ import annotations

import functools
import json
import re
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from lapakd import statuses
from lapakd.errors import LapakdError
from lapakd.lifecycle import boilerplate, confirm
from lapakd.lifecycle import status as lifecycle
from lapakd.mail.text import message_ids
from lapakd.outbox import queue as outbox
from lapakd.routing import route as routing
from lapakd.rules import Decision

if TYPE_CHECKING:
    from lapakd.adapters.base import Content
    from lapakd.app import Desk

log = structlog.get_logger("lapakd.lifecycle.replies")

# "Status: selesai" and its variations → status name.
STATUS_WORDS = {
    "selesai": "resolved", "sudah selesai": "resolved", "tuntas": "resolved",
    "ditolak": "rejected", "tolak": "rejected",
    "menunggu anggaran": "waiting_budget", "tunggu anggaran": "waiting_budget",
    "diproses": "answered", "sedang diproses": "answered", "proses": "answered",
    "dalam proses": "answered",
}
_WORDS = "|".join(sorted((re.escape(w).replace(r"\ ", r"\s+") for w in STATUS_WORDS),
                         key=len, reverse=True))
_LEAD = r"^[\s*_>\-•]*"
_TAIL = r"[\s*_.,;:!\-–—)]*"
STATUS_LINE = re.compile(
    _LEAD + r"status\s*[:=\-–]\s*[*_]*(" + _WORDS + r")\b" + _TAIL + r"(.*)$", re.I
)
FORWARD_LINE = re.compile(_LEAD + r"teruskan\s*[:=]\s*(.+)$", re.I)
REJECT_LINE = re.compile(_LEAD + r"tolak\s*[:=]\s*(.*)$", re.I)

_ATTRIBUTION = re.compile(
    r"^\s*(on\b.*|pada\b.*|le\b.*|am\b.*|\d{1,2}[/.\-]\d{1,2}[/.\-]\d{2,4}.*)"
    r"(wrote|menulis|schrieb|a écrit)\s*:\s*$", re.I
)
_ATTRIBUTION_START = re.compile(r"^\s*(on|pada)\s.*\d", re.I)
_ATTRIBUTION_END = re.compile(r"(wrote|menulis)\s*:\s*$", re.I)
_HISTORY = re.compile(
    r"^\s*(-{2,}\s*(original message|pesan asli|forwarded message|pesan terusan)\s*-{2,}"
    r"|_{10,}\s*$|(from|dari)\s*:\s*.+@.+|(sent from|dikirim dari)\s+.+)", re.I
)
_SIGNATURE = re.compile(
    r"^(--\s*|hormat kami[,.]?|salam( hormat)?[,.]?|regards[,.]?|best regards[,.]?"
    r"|wassalam.*|ttd\.?)$", re.I
)
_DISCLAIMER = re.compile(
    r"^\s*(\**\s*(disclaimer|perhatian|peringatan|confidentiality notice)\s*\**\s*:?"
    r"|.*\b(this (e-?mail|message)( and any attachments?)? (is|are|may be) confidential"
    r"|(email|e-mail|surel|surat elektronik) ini (dan (semua |segala )?lampiran\w*\s*)?"
    r"(bersifat|adalah) rahasia|informasi (yang terdapat|dalam) (dalam )?(email|surel) ini))",
    re.I,
)
_AUTO_SUBJECT = re.compile(
    r"^\s*(automatic reply|auto(matic)?[- ]?reply|out of (the )?office|balasan otomatis"
    r"|sedang cuti|autoreply|abwesenheit)", re.I
)


@dataclass
class ParsedReply:
    status: str | None  # status name when a status line was found
    status_word: str | None
    text: str  # the new text only, status line and history removed


# A salutation line at the top of an answer: dropped, and never mistaken for a sign-off
# ("Salam," opens mail as often as it closes it). Only the whole line counts: "Selamat pagi,
# sampah sudah kami angkut" is an answer.
_ADDRESSEE = (
    r"(?:[\s,.!/&-]+(?:bapak|ibu|bpk|pak|bu|admin|adm|tim|mas|mbak|mba|kak|kakak|rekan"
    r"|rekan-rekan|sdr|saudara|saudari|semua|sekalian|pengelola|petugas|lapak|aduan|banyumas"
    r"|yang|terhormat|dan|wr|wb|warahmatullahi|warohmatullahi|wabarakatuh|wabarokatuh"
    r"|sejahtera|bagi|kita|hormat|sehat|selalu))*"
)
_GREETING = re.compile(
    r"^[\s*_]*(?:"
    r"(?:kepada\s+)?(?:yth|yang\s+terhormat)\b[^,!?\n]{0,80}"  # Yth. Admin Lapak Aduan,
    r"|dengan\s+hormat" + _ADDRESSEE +
    r"|salam" + _ADDRESSEE +
    r"|selamat\s+(?:pagi|siang|sore|malam)" + _ADDRESSEE +
    r"|as+alamu\W?\s*[\'’`]?\s*a?laikum" + _ADDRESSEE +
    r"|(?:halo|hallo|hai|hi|dear|good\s+(?:morning|afternoon|evening)|om\s+swastyastu)"
    r"(?:\s+[^\s,.!:;]+){0,4}"
    r")[\s,.!:;*_]*$",
    re.I,
)
# Outlook puts the forward, unquoted, under a header block that often names people by display
# name only (no address for _HISTORY to see): "From:" / "Dari:" and then Sent/To/Subject lines.
_BLOCK_FROM = re.compile(r"^[\s*_]*(?:from|dari)[\s*_]*:\s*\S", re.I)
_BLOCK_FIELD = re.compile(
    r"^[\s*_]*(?:sent|date|to|cc|subject|dikirim|terkirim|tanggal|tgl|kepada|kpd|tembusan"
    r"|subjek|perihal|hal)[\s*_]*:", re.I,
)


def is_greeting(line: str) -> bool:
    return len(line) <= 120 and bool(_GREETING.match(line))


def _header_block_at(lines: list[str], i: int) -> bool:
    """lines[i] opens a From/Dari header block: another header field within the next lines."""
    if not _BLOCK_FROM.match(lines[i]):
        return False
    following = [line for line in lines[i + 1:i + 5] if line.strip()][:3]
    return any(_BLOCK_FIELD.match(line) for line in following)


def strip_reply(text: str) -> str:
    """The new text of a reply: greeting, quoted history, the desk's own mail, signature and
    disclaimer removed."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    own = boilerplate.desk_text_start([line for line in lines if not line.lstrip().startswith(">")])
    own_line = None
    if own is not None:
        unquoted = [i for i, line in enumerate(lines) if not line.lstrip().startswith(">")]
        own_line = unquoted[own]
    out: list[str] = []
    for i, line in enumerate(lines):
        stripped = line.strip()
        nxt = lines[i + 1].strip() if i + 1 < len(lines) else ""
        if i == own_line:
            break  # the desk's own mail, pasted back without quoting
        if _ATTRIBUTION.match(stripped) or (
            _ATTRIBUTION_START.match(stripped) and _ATTRIBUTION_END.search(nxt)
        ):
            break
        if _HISTORY.match(stripped) or _DISCLAIMER.match(stripped):
            break
        if _header_block_at(lines, i):
            break
        if stripped.startswith(">"):
            continue  # inline quoting (bottom-posting): keep the text between quotes
        if boilerplate.is_contact_line(stripped):
            break  # the citizen's contact (and the forward after it) is never an answer
        if not any(x.strip() for x in out) and is_greeting(stripped):
            continue  # "Salam," / "Selamat pagi," above the answer is not its signature
        if _SIGNATURE.match(line.rstrip()) or _SIGNATURE.match(stripped):
            break
        out.append(line.rstrip())
    # What is left above a cut forward ("Yth. Dinas ...,") is not part of the answer.
    while out and (not out[-1].strip() or is_greeting(out[-1].strip())):
        out.pop()
    while out and not out[0].strip():
        out.pop(0)
    # Collapse the blank runs quoting leaves behind.
    cleaned: list[str] = []
    for line in out:
        if not line.strip() and cleaned and not cleaned[-1].strip():
            continue
        cleaned.append(line)
    return "\n".join(cleaned)


def parse_reply(text: str) -> ParsedReply:
    """Find a `Status: ...` line at the top of the new text; the rest is the public text.

    The status line must be the first line of the answer; greeting lines above it ("Selamat
    pagi,", "Yth. Admin,") do not count, as strip_reply drops them."""
    new = strip_reply(text)
    lines = new.split("\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        m = STATUS_LINE.match(line)
        if m is None:
            break  # only the first non-empty line may carry the status
        word = " ".join(m.group(1).lower().split())
        rest = [m.group(2).strip(), *lines[i + 1:]]
        body = "\n".join(rest).strip()
        return ParsedReply(STATUS_WORDS[word], word, body)
    return ParsedReply(None, None, new.strip())


Match = tuple[sqlite3.Row, str, "sqlite3.Row | None"]


@functools.lru_cache(maxsize=8)
def _ticket_tag(prefix: str) -> re.Pattern[str]:
    """`[LA-2026-000123]` in a subject, for the desk's ticket prefix."""
    return re.compile(r"\[\s*(" + re.escape(prefix) + r"-\d{4}-\d{6})\s*\]", re.I)


def find_complaint(desk: Desk, content: Content) -> Match | None:
    """(complaint, how it matched, the outbox row replied to) or None."""
    store = desk.store
    extra = content.extra or {}
    ids = (message_ids(extra.get("in_reply_to"))
           + list(reversed(message_ids(extra.get("references")))))
    for mid in ids:
        row = store.one(
            "SELECT * FROM outbox WHERE message_id = ? AND complaint_id IS NOT NULL", (mid,)
        )
        if row is not None:
            c = store.one("SELECT * FROM complaints WHERE id = ?", (row["complaint_id"],))
            if c is not None:
                return lifecycle.canonical(desk, c), "thread", row
    subject = content.subject or ""
    # Most mail has no '[' in its subject: no ticket tag, no pattern needed.
    m = _ticket_tag(desk.config.desk.ticket_prefix).search(subject) if "[" in subject else None
    candidates = [("subject", m.group(1))] if m else []
    headers = extra.get("headers") or {}
    header = headers.get("x-lapakd-ticket")
    if isinstance(header, list):
        header = header[0] if header else None
    if header:
        candidates.append(("header", str(header).strip()))
    for via, ticket in candidates:
        c = store.one("SELECT * FROM complaints WHERE ticket = ?", (ticket.upper(),))
        if c is not None:
            return lifecycle.canonical(desk, c), via, None
    return None


def agency_of(desk: Desk, c: sqlite3.Row, sender: str) -> str | None:
    """The key of the complaint's agency this address belongs to (email or cc)."""
    sender = sender.lower()
    for key in json.loads(c["agencies"]):
        agency = desk.rules.agencies.get(key)
        if agency and sender in (a.lower() for a in agency.addresses):
            return key
    return None


# -- the process handler -----------------------------------------------------------------------


def handle(desk: Desk, row: sqlite3.Row, content: Content) -> bool:
    """process.HANDLERS: a reply to the desk's mail is dealt with here, never a new complaint."""
    if row["channel"] != "email" or content.kind != "complaint":
        return False
    found = find_complaint(desk, content)
    if found is None:
        return _reply_to_notice(desk, row, content) or _citizen_by_ticket(desk, row, content)
    c, via, _replied_to = found
    sender = (content.sender or "").lower()
    if _AUTO_SUBJECT.match(content.subject or ""):
        desk.store.mark_processed(row["id"], "auto_reply", c["id"])
        desk.store.event("auto_reply", complaint_id=c["id"], message_id=row["id"],
                         sender=sender, via=via)
        return True
    if sender and sender == desk.config.desk.admin_email.lower():
        admin_reply(desk, row, content, c, via)
        return True
    agency = agency_of(desk, c, sender) if sender else None
    if agency is not None:
        agency_reply(desk, row, content, c, agency, via)
        return True
    if confirm.is_citizen(c, sender, desk) is not None and confirm.citizen_email(
        desk, row, content, c, via, strip_reply(content.text)
    ):
        return True
    unverified_reply(desk, row, content, c, via)
    return True


def _citizen_by_ticket(desk: Desk, row: sqlite3.Row, content: Content) -> bool:
    """A citizen's SUDAH/BELUM in a new mail naming the ticket in its text (not its subject)."""
    text = strip_reply(content.text)
    found = confirm.ticket_in_text(desk, text)
    if found is None:
        return False
    c = lifecycle.canonical(desk, found)
    if confirm.is_citizen(c, content.sender or "", desk) is None:
        return False
    return confirm.citizen_email(desk, row, content, c, "ticket", text)


def _reply_to_notice(desk: Desk, row: sqlite3.Row, content: Content) -> bool:
    """A reply to desk mail about no single complaint (a reminder, the digest): for the admin."""
    extra = content.extra or {}
    ids = message_ids(extra.get("in_reply_to")) + message_ids(extra.get("references"))
    notice = next((r for mid in ids if (r := desk.store.one(
        "SELECT id, kind FROM outbox WHERE message_id = ?", (mid,))) is not None), None)
    if notice is None:
        return False
    sender = content.sender or "-"
    desk.store.mark_processed(row["id"], "reply_to_notice")
    desk.store.event("reply_to_notice", message_id=row["id"], outbox_id=notice["id"],
                     sender=sender, kind=notice["kind"])
    if not _AUTO_SUBJECT.match(content.subject or ""):
        outbox.alert_admin(
            desk.store, f"notice-reply:{row['id']}",
            f"Balasan atas email {notice['kind']} dari {sender}",
            f"{sender} membalas email {notice['kind']} dari desk (msg-{row['id']}). Balasan ini "
            "tidak merujuk satu aduan, jadi tidak diterapkan.\n\n"
            f"Perihal: {content.subject}\n\n{strip_reply(content.text)[:1500]}\n\n"
            "Bila berisi tanggapan atas suatu aduan: lapakd reply <tiket> \"<teks>\"",
        )
    return True


def agency_reply(
    desk: Desk, row: sqlite3.Row, content: Content, c: sqlite3.Row, agency: str, via: str
) -> None:
    sender = (content.sender or "").lower()
    parsed = parse_reply(content.text)
    if parsed.status:
        target = parsed.status
    elif c["status"] in statuses.AWAITING_ANSWER:
        target = "answered"
    else:
        target = None  # a further comment on a closed / budget-bound complaint
    changed = bool(target) and lifecycle.set_status(
        desk, c, target, actor=sender,  # type: ignore[arg-type]
        reason=f"reply from {agency}" + (f" (Status: {parsed.status_word})" if parsed.status
                                         else ""), ask=False,
    )
    text = parsed.text or (lifecycle.status_sentence(target) if target else "")
    desk.store.event("agency_reply", complaint_id=c["id"], message_id=row["id"], actor=sender,
                     agency=agency, via=via, status=parsed.status)
    lifecycle.add_update(
        desk, c, source="agency", agency=agency, actor=sender, text=text,
        raw_text=content.text, status_set=target if changed or parsed.status else None,
        message_id=row["id"],
    )
    if changed and target in statuses.AWAITING_CONFIRMATION:
        lifecycle.ask_confirmation(desk, lifecycle.reload(desk, c), actor=sender)
    desk.store.mark_processed(row["id"], "agency_reply", c["id"])
    log.info("reply.agency", ticket=c["ticket"], agency=agency, status=target, via=via)


def unverified_reply(
    desk: Desk, row: sqlite3.Row, content: Content, c: sqlite3.Row, via: str
) -> None:
    sender = content.sender or "-"
    desk.store.event("reply_unverified", complaint_id=c["id"], message_id=row["id"],
                     sender=sender, via=via)
    desk.store.mark_processed(row["id"], "reply_unverified", c["id"])
    excerpt = strip_reply(content.text)[:1500]
    outbox.alert_admin(
        desk.store, f"review:{row['id']}",
        f"Balasan perlu ditinjau: {c['ticket']} dari {sender}",
        (
            f"Ada balasan untuk aduan {c['ticket']} dari {sender}, yang bukan alamat instansi "
            f"tujuan aduan ini. Balasan disimpan (msg-{row['id']}) tetapi TIDAK diterapkan.\n\n"
            f"Perihal: {content.subject}\n\n{excerpt}\n\n"
            "Bila ini tanggapan yang sah, terapkan dengan:\n"
            f"  lapakd reply {c['ticket']} \"<teks tanggapan>\"\n"
            f"  lapakd set-status {c['ticket']} <status> --note \"<keterangan>\"\n"
            f"Lihat riwayatnya: lapakd show {c['ticket']}"
        ),
    )
    log.warning("reply.unverified", ticket=c["ticket"], sender=sender, message=row["id"])


def admin_reply(desk: Desk, row: sqlite3.Row, content: Content, c: sqlite3.Row, via: str) -> None:
    """The admin answered a triage (or any desk) email: apply the command it carries."""
    actor = desk.config.desk.admin_email
    new = strip_reply(content.text)
    first = next((line for line in new.split("\n") if line.strip()), "")
    try:
        if m := FORWARD_LINE.match(first):
            keys = [k.strip(".)") for k in re.split(r"[\s,;/]+", m.group(1).strip().lower())
                    if k.strip(".)") and k not in ("dan", "and", "&")]
            assign(desk, c, keys, actor=actor)
            kind = "admin_command"
        elif m := REJECT_LINE.match(first):
            reason = "\n".join([m.group(1).strip(), *new.split("\n")[1:]]).strip()
            reject(desk, c, reason, actor=actor, message_id=row["id"])
            kind = "admin_command"
        elif parse_reply(content.text).status:
            parsed = parse_reply(content.text)
            desk_status(desk, c, parsed.status, parsed.text, actor=actor,  # type: ignore[arg-type]
                        message_id=row["id"])
            kind = "admin_command"
        else:
            lifecycle.note(desk, c, new, actor=actor, message_id=row["id"])
            kind = "admin_note"
    except LapakdError as exc:
        desk.store.event("admin_command_failed", complaint_id=c["id"], message_id=row["id"],
                         actor=actor, error=str(exc))
        outbox.alert_admin(
            desk.store, f"command:{row['id']}", f"Perintah tidak dapat diterapkan: {c['ticket']}",
            f"Balasan Anda untuk {c['ticket']} (\"{first[:200]}\") tidak diterapkan:\n{exc}\n\n"
            "Contoh yang benar: \"Teruskan: dpupr\" atau \"Tolak: di luar kewenangan Pemkab\".",
        )
        kind = "admin_command_failed"
    desk.store.mark_processed(row["id"], kind, c["id"])


# -- actions shared with the CLI verbs (inside the caller's transaction) -----------------------


def suggested_keys(desk: Desk, c: sqlite3.Row, keys: list[str]) -> list[str]:
    """Agency keys with `1`, `2`, `3` replaced by the model's suggestions for the complaint
    (as the triage email numbered them)."""
    if not any(k.isdigit() for k in keys):
        return keys
    suggestions = routing.model_suggestions(desk.store, c["id"])
    out = []
    for key in keys:
        if not key.isdigit():
            out.append(key)
            continue
        number = int(key)
        if not 1 <= number <= len(suggestions):
            listed = ", ".join(f"{i}: {s[0]}" for i, s in enumerate(suggestions, 1))
            raise LapakdError(
                f"{c['ticket']} has no suggestion {number} "
                + (f"(the model suggested {listed})" if listed else "(the model made none)")
                + "; name the agency key instead")
        out.append(str(suggestions[number - 1][0]))
    return out


def assign(desk: Desk, c: sqlite3.Row, keys: list[str], *, actor: str) -> list[str]:
    """Forward a triage complaint to these agencies (keys, or suggestion numbers); returns the
    agency keys."""
    if not keys:
        raise LapakdError("name at least one agency key (see rules/agencies.yaml)")
    keys = suggested_keys(desk, c, keys)
    unknown = [k for k in keys if k not in desk.rules.agencies]
    if unknown:
        raise LapakdError(
            f"unknown agency {', '.join(unknown)} (known: {', '.join(sorted(desk.rules.agencies))})"
        )
    if c["status"] not in ("triage", "new", "quarantined"):
        raise LapakdError(
            f"{c['ticket']} is {c['status']}, not triage: use set-status, or reply to it"
        )
    decision = Decision(action="forward", agencies=list(dict.fromkeys(keys)),
                        category=c["category"], rule=None, matched=[],
                        budget_dependent=bool(c["budget_dependent"]))
    routing.apply_decision(desk, c, decision, actor=actor)
    return decision.agencies


def reject(desk: Desk, c: sqlite3.Row, reason: str, *, actor: str,
           message_id: int | None = None) -> None:
    desk_status(desk, c, "rejected", reason, actor=actor, message_id=message_id)


def desk_status(desk: Desk, c: sqlite3.Row, status: str, text: str, *, actor: str,
                message_id: int | None = None) -> None:
    """The desk sets a status; answer statuses become a public update relayed to the citizen."""
    changed = lifecycle.set_status(desk, c, status, actor=actor, reason=text or None,
                                   ask=False)
    if status in statuses.ANSWERS and (changed or text):
        lifecycle.add_update(
            desk, lifecycle.reload(desk, c), source="desk", actor=actor,
            text=text.strip() or lifecycle.status_sentence(status), status_set=status,
            message_id=message_id,
        )
    if changed and status in statuses.AWAITING_CONFIRMATION:
        lifecycle.ask_confirmation(desk, lifecycle.reload(desk, c), actor=actor)
