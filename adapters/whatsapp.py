"""WhatsApp Cloud API channel. WhatsApp only pushes: messages arrive at lapakd's webhook.

`lapakd/webhook.py` verifies the signature and calls `webhook_messages(body)`, which splits the
body into one stored message per `wamid` — each stored raw is Meta's own body shape holding just
that message (`object`, `entry[].id`, `changes[].value` with `metadata`, `contacts` and one
`messages[]` or `statuses[]` item). Meta retries deliveries; the wamid dedupes them.

Status updates (sent/delivered/read/failed of the desk's own messages) are stored as
`status:<wamid>:<status>` and recorded as kind `status`, never as complaints.

Media (image, document, video, audio, sticker) is fetched when the message is processed:
`GET /{media-id}` gives a short-lived URL, fetched with the token as a Bearer header.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from lapakd.adapters.base import (
    Attachment,
    Content,
    Inbound,
    PermanentError,
)
from lapakd.adapters.facebook import _ext, as_dict, graph_time, jdump
from lapakd.adapters.graph import GraphChannel, graph_fields

from lapakd.config import Field, between, size_bytes
from lapakd.mail.filenames import safe_filename

MEDIA_TYPES = ("image", "document", "video", "audio", "voice", "sticker")
SERVICE_WINDOW = timedelta(hours=24)
# A Meta media id is a number; anything else (a path, a query) never becomes part of a Graph URL.
MEDIA_ID = re.compile(r"[0-9A-Za-z_-]{1,128}")


class WhatsAppAdapter(GraphChannel):
    name = "whatsapp"
    webhook_object = "whatsapp_business_account"
    polls: ClassVar[bool] = False
    CONFIG: ClassVar[dict[str, Field]] = {
        "phone_number_id": Field(str, ""),
        **graph_fields(),
        "media_max_bytes": Field(int, 16 * 1024 * 1024, check=size_bytes()),
        # `lapakd status` exits 1 when no webhook arrived for this long (Meta stopped calling:
        # an expired subscription, a broken proxy, a changed callback URL).
        "silence_alert_hours": Field(int, 24, check=between(1, 24 * 90, "hours")),
        # Outside the 24-hour window WhatsApp allows only an approved template: the one that
        # asks the citizen whether the problem is solved (body parameter {{1}}: the ticket).
        "followup_template": Field(str, ""),
        "followup_template_language": Field(str, "id"),
    }


    # -- webhooks ----------------------------------------------------------------------------

    def webhook_messages(self, body: dict[str, Any]) -> list[Inbound]:
        out: list[Inbound] = []
        for entry in body.get("entry") or []:
            entry = as_dict(entry, "webhook entry")
            for change in entry.get("changes") or []:
                change = as_dict(change, "webhook change")
                value = change.get("value")
                if not isinstance(value, dict):
                    raise PermanentError("webhook change has no value object")
                common = {k: v for k, v in value.items() if k not in ("messages", "statuses")}
                for msg in value.get("messages") or []:
                    msg = as_dict(msg, "whatsapp message")
                    if not isinstance(msg.get("id"), str) or not msg["id"]:
                        raise PermanentError("whatsapp message without an id")
                    out.append(self._one(body, entry, change, common, "messages", msg,
                                         msg["id"]))
                for st in value.get("statuses") or []:
                    st = as_dict(st, "whatsapp status")
                    ext = f"status:{st.get('id')}:{st.get('status')}"
                    out.append(self._one(body, entry, change, common, "statuses", st, ext))
        return out

    def _one(self, body: dict, entry: dict, change: dict, common: dict, key: str,
             item: dict, ext: str) -> Inbound:
        doc = {"object": body.get("object"), "entry": [{
            "id": entry.get("id"),
            "changes": [{"field": change.get("field"), "value": {**common, key: [item]}}],
        }]}
        return Inbound(ext, jdump(doc), "json", graph_time(item.get("timestamp")),
                       {"source": "webhook", "type": item.get("type") or "status"})

    # -- parsing -----------------------------------------------------------------------------

    def parse(self, raw: bytes, meta: dict[str, Any]) -> Content:
        if meta.get("malformed"):  # kept whole by the webhook: quarantine with the reason
            raise PermanentError(str(meta["malformed"]))
        try:
            doc = as_dict(json.loads(raw), "whatsapp message")
            value = as_dict(doc["entry"][0]["changes"][0]["value"], "change.value")
        except (ValueError, KeyError, IndexError, TypeError):
            raise PermanentError(
                "whatsapp message is not a webhook body with entry[0].changes[0].value"
            ) from None
        if value.get("statuses"):
            st = as_dict(value["statuses"][0], "status")
            errors = st.get("errors") or []
            notes = [f"{e.get('code')}: {e.get('title')}" for e in errors if isinstance(e, dict)]
            return Content(kind="status", sender=st.get("recipient_id"),
                           occurred_at=graph_time(st.get("timestamp")), notes=notes,
                           extra={"status": st.get("status"), "wamid": st.get("id")})
        messages = value.get("messages")
        if not isinstance(messages, list) or not messages:
            raise PermanentError("whatsapp change holds neither messages nor statuses")
        msg = as_dict(messages[0], "whatsapp message")
        sender = msg.get("from")
        if not isinstance(sender, str) or not sender:
            raise PermanentError(f"whatsapp message {msg.get('id')!r} has no sender ('from')")
        names = {
            c.get("wa_id"): (c.get("profile") or {}).get("name")
            for c in value.get("contacts") or [] if isinstance(c, dict)
        }
        when = graph_time(msg.get("timestamp"))
        text, attachments, notes = self._body(msg)
        location = _location(msg)
        context = msg.get("context") if isinstance(msg.get("context"), dict) else {}
        if context.get("frequently_forwarded"):
            notes.append("pesan diteruskan berkali-kali (frequently forwarded)")
        elif context.get("forwarded"):
            notes.append("pesan diteruskan (forwarded)")
        if context.get("id"):
            notes.append(f"balasan atas pesan {context['id']}")
        # Grouped chat messages keep only their text: the markers go into it.
        if context.get("forwarded") or context.get("frequently_forwarded"):
            text = f"[Pesan diteruskan] {text}"
        if context.get("id"):
            text = f"[Balasan] {text}"
        own = (value.get("metadata") or {}).get("display_phone_number")
        kind = "complaint"
        if msg.get("type") in ("reaction", "system", "request_welcome"):
            kind = msg.get("type")
        elif own and sender == own:
            kind = "own"
        return Content(
            kind=kind, text=text, sender=sender, sender_name=names.get(sender),
            occurred_at=when, attachments=attachments, notes=notes, location=location,
            conversation=f"wa:{sender}",
            reply_ref={"to": sender, "at": when.isoformat() if when else None},
            extra={"wamid": msg.get("id"), "context": context,
                   "button_id": _button_id(msg)},
        )

    def _body(self, msg: dict[str, Any]) -> tuple[str, list[Attachment], list[str]]:
        mtype = msg.get("type")
        notes: list[str] = []
        if mtype == "text":
            body = (msg.get("text") or {}).get("body")
            if not isinstance(body, str):
                raise PermanentError("whatsapp text message without text.body")
            return body, [], notes
        if mtype in MEDIA_TYPES:
            media = as_dict(msg.get(mtype), f"whatsapp {mtype}")
            caption = media.get("caption") or ""
            att = self._download(media, mtype, notes)
            return caption, [att] if att else [], notes
        if mtype == "location":
            loc = as_dict(msg.get("location"), "whatsapp location")
            lat, lon = loc.get("latitude"), loc.get("longitude")
            parts = [f"Lokasi: {lat}, {lon}"]
            if loc.get("name") or loc.get("address"):
                parts.append(" — ".join(str(x) for x in (loc.get("name"), loc.get("address"))
                                       if x))
            parts.append(f"https://www.openstreetmap.org/?mlat={lat}&mlon={lon}")
            return "\n".join(parts), [], notes
        if mtype == "contacts":
            names = [((c.get("name") or {}).get("formatted_name") or "?")
                     for c in msg.get("contacts") or [] if isinstance(c, dict)]
            return "Kontak dibagikan: " + ", ".join(names), [], notes
        if mtype == "button":
            return str((msg.get("button") or {}).get("text") or ""), [], notes
        if mtype == "interactive":
            inter = msg.get("interactive") or {}
            reply = inter.get("button_reply") or inter.get("list_reply") or {}
            return str(reply.get("title") or ""), [], notes
        if mtype == "reaction":
            return str((msg.get("reaction") or {}).get("emoji") or ""), [], notes
        notes.append(f"whatsapp message type {mtype!r} not shown")
        return "", [], notes

    def _download(self, media: dict[str, Any], mtype: str, notes: list[str]) -> Attachment | None:
        media_id = media.get("id")
        if not media_id:
            notes.append(f"{mtype} without a media id")
            return None
        if not isinstance(media_id, str | int) or not MEDIA_ID.fullmatch(str(media_id)):
            # The message is kept; this attachment is refused, no request is made.
            notes.append(f"{mtype} refused: media id {str(media_id)[:60]!r} is not a Meta media id")
            return None
        info = self.graph.get(str(media_id))  # transient failures keep the message pending
        url = info.get("url") or media.get("url")
        if not url:
            raise PermanentError(f"whatsapp media {media_id}: Graph gave no url")
        data, ctype = self.graph.download(url)
        if len(data) > self.section.media_max_bytes:
            notes.append(f"{mtype} of {len(data)} bytes over media_max_bytes: not kept")
            return None
        ctype = media.get("mime_type") or info.get("mime_type") or ctype
        ctype = ctype.split(";")[0].strip()
        name = safe_filename(media.get("filename"), f"whatsapp-{media_id}{_ext(ctype)}")
        return Attachment(name, ctype, data)

    # -- sending -----------------------------------------------------------------------------

    def send(self, kind: str, payload: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        if kind not in ("ack", "relay", "confirm_ask"):
            raise PermanentError(f"whatsapp cannot send {kind!r} messages")
        ref = payload.get("reply_ref") or {}
        to = ref.get("to")
        if not to:
            raise PermanentError(f"whatsapp {kind}: the complaint has no phone number to answer")
        at = graph_time(ref.get("at")) if ref.get("at") else None
        outside = at is not None and datetime.now(UTC) - at > SERVICE_WINDOW
        if kind == "confirm_ask":
            return self._ask(to, payload, outside)
        if outside:
            raise PermanentError(
                f"whatsapp {kind}: outside the 24-hour customer service window (the citizen "
                f"wrote at {at:%Y-%m-%d %H:%M} UTC); WhatsApp allows only an approved template "
                "now — answer the citizen another way"
            )
        result = self.graph.post(
            f"{self.section.phone_number_id}/messages",
            {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to,
             "type": "text", "text": {"body": payload.get("text") or "", "preview_url": False}},
        )
        ids = [m.get("id") for m in result.get("messages") or [] if isinstance(m, dict)]
        return {"wamid": ids[0] if ids else None}


    def _ask(self, to: str, payload: dict[str, Any], outside: bool) -> dict[str, Any]:
        """The SUDAH/BELUM question: reply buttons inside the 24-hour window, else the
        approved `followup_template` (its body parameter: the ticket)."""
        ticket = str(payload.get("ticket") or "")
        message: dict[str, Any] = {"messaging_product": "whatsapp",
                                   "recipient_type": "individual", "to": to}
        if not outside:
            message |= {"type": "interactive", "interactive": {
                "type": "button",
                "body": {"text": (payload.get("text") or "")[:1024]},
                "action": {"buttons": [
                    {"type": "reply", "reply": {"id": f"confirm:{ticket}:sudah",
                                                "title": "Sudah"}},
                    {"type": "reply", "reply": {"id": f"confirm:{ticket}:belum",
                                                "title": "Belum"}},
                ]},
            }}
        elif self.section.followup_template:
            message |= {"type": "template", "template": {
                "name": self.section.followup_template,
                "language": {"code": self.section.followup_template_language},
                "components": [{"type": "body",
                                "parameters": [{"type": "text", "text": ticket}]}],
            }}
        else:
            raise PermanentError(
                "whatsapp confirm_ask: outside the 24-hour customer service window and no "
                "[channels.whatsapp] followup_template set — set an approved template, or ask "
                "the citizen another way"
            )
        result = self.graph.post(f"{self.section.phone_number_id}/messages", message)
        ids = [m.get("id") for m in result.get("messages") or [] if isinstance(m, dict)]
        return {"wamid": ids[0] if ids else None,
                "via": "buttons" if not outside else "template"}


def _button_id(msg: dict[str, Any]) -> str | None:
    """The id of the reply button the citizen pressed (interactive) or the template button's
    payload, for matching the answer to the question that offered it."""
    if msg.get("type") == "interactive":
        inter = msg.get("interactive") or {}
        reply = inter.get("button_reply") or inter.get("list_reply") or {}
        return str(reply.get("id")) if reply.get("id") else None
    if msg.get("type") == "button":
        payload = (msg.get("button") or {}).get("payload")
        return str(payload) if payload else None
    return None


def _location(msg: dict[str, Any]) -> tuple[float, float] | None:
    """(lat, lon) of a location message; None for other types or nonsense values."""
    if msg.get("type") != "location" or not isinstance(msg.get("location"), dict):
        return None
    loc = msg["location"]
    try:
        lat, lon = float(loc.get("latitude")), float(loc.get("longitude"))
    except (TypeError, ValueError):
        return None
    if abs(lat) <= 90 and abs(lon) <= 180:
        return lat, lon
    return None
