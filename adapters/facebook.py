"""Facebook Page channel: Messenger conversations, visitor posts and comments on the Page's posts.

Polled through the Graph API (`adapters/graph.py`), and also fed by Meta's webhooks
(`object: page`, see `lapakd/webhook.py`): both paths store a message under the SAME external id
(Messenger `mid`, post id, comment id), so a message seen by both makes one record.

Stored raw (JSON) is the Graph object as Meta sent it, in a small envelope saying where it came
from: `{"source": "poll", "product": "messenger", "conversation_id", "message"}`,
`{"source": "poll", "product": "feed", "post"}` / `{..., "post_id", "comment"}`, or
`{"source": "webhook", "object": "page", "entry_id", "event" | "change"}`.

Cursor: `{"messenger": <newest conversation updated_time>, "feed": <newest post updated_time>}`.
It moves only with the last batch of a complete poll; a poll cut short (throttling, crash) is
fetched again and the store drops what it already has.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from lapakd.adapters.base import (
    Attachment,
    Batch,
    Content,
    Inbound,
    PermanentError,
)
from lapakd.adapters.graph import GraphChannel, graph_fields
from lapakd.adapters.paging import MAX_PAGES_PER_POLL, PAGE_CAP, RATE_LIMIT

from lapakd.config import Field, between, seconds, size_bytes
from lapakd.mail.filenames import safe_filename

BATCH_SIZE = 50
RESUME = "_resume"  # cursor key suffix: where a walk stopped at its page cap goes on
MESSAGE_FIELDS = "id,created_time,from,to,message,attachments"
COMMENT_FIELDS = "id,message,created_time,from,attachment"
POST_FIELDS = "id,message,created_time,updated_time,from"


def graph_time(value: Any) -> datetime | None:
    """Graph times: '2021-07-23T09:28:50+0000', unix seconds, or unix milliseconds (webhooks)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value / 1000 if value > 10**11 else value
        return datetime.fromtimestamp(seconds, UTC)
    if isinstance(value, str):
        if value.isdigit():
            return graph_time(int(value))
        try:
            return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S%z").astimezone(UTC)
        except ValueError:
            try:
                return datetime.fromisoformat(value).astimezone(UTC)
            except ValueError:
                return None
    return None


def as_dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PermanentError(f"{what} is not a JSON object")
    return value


def jdump(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, sort_keys=True).encode("utf-8")


class FacebookAdapter(GraphChannel):
    name = "facebook"
    product = "messenger"  # `platform=` of the conversations edge
    webhook_object = "page"
    prefix = "fb"  # conversation keys: fb:<page-scoped id>
    CONFIG: ClassVar[dict[str, Field]] = {
        "page_id": Field(str, ""),
        **graph_fields(),
        "poll_seconds": Field(int, 300, check=seconds()),
        # how far back the first poll reaches
        "lookback_days": Field(int, 7, check=between(0, 36500, "days")),
        "max_pages_per_poll": Field(int, MAX_PAGES_PER_POLL, check=between(1, 1000, "pages")),
        "media_max_bytes": Field(int, 10 * 1024 * 1024, check=size_bytes()),
    }


    @property
    def own_ids(self) -> set[str]:
        return {i for i in (self.section.get("page_id"), self.section.get("ig_user_id")) if i}

    # -- polling -----------------------------------------------------------------------------

    def fetch(self, cursor: dict[str, Any] | None) -> Iterator[Batch]:
        cursor = dict(cursor or {})
        floor = datetime.now(UTC) - timedelta(days=self.section.lookback_days)
        new_cursor = {k: v for k, v in cursor.items() if not k.endswith(RESUME)}
        self._cut = {}
        self._walked = set()
        pending: list[Inbound] = []
        for inbound, mark in self._poll_all(cursor, floor):
            for key, when in mark.items():
                if when and (not new_cursor.get(key) or when > new_cursor[key]):
                    new_cursor[key] = when
            if inbound is not None:
                pending.append(inbound)
            if len(pending) >= BATCH_SIZE:
                # Stored as we go; the watermark moves only with the last batch.
                yield Batch(pending, None)
                pending = []
        for key in self._walked:
            resume = cursor.get(key + RESUME) if isinstance(cursor.get(key + RESUME), dict) \
                else {}
            newest = max((w for w in (new_cursor.get(key), resume.get("newest")) if w),
                         default=None)
            if key in self._cut:
                # Stopped at the page cap (or a used-up window): what lies below the stop is
                # older than all that was fetched, so the watermark stays until a later poll
                # has walked the rest, starting at Graph's `after` cursor.
                new_cursor.pop(key, None)
                if cursor.get(key):
                    new_cursor[key] = cursor[key]
                new_cursor[key + RESUME] = {"after": self._cut[key], "newest": newest}
            elif newest:
                new_cursor[key] = newest
        yield Batch(pending, new_cursor)
        self.check_usage()

    def _top_pages(self, key: str, cursor: dict[str, Any], path: str,
                   **params: Any) -> Iterator[list[Any]]:
        """The pages of a list the cursor keeps a watermark for (conversations, feed, media,
        tags): a walk an earlier poll stopped at its page cap goes on at Graph's `after`."""
        resume = cursor.get(key + RESUME) if isinstance(cursor.get(key + RESUME), dict) else {}
        after = resume.get("after") if isinstance(resume.get("after"), str) else None
        walk = self.graph.walk(path)
        self._walked.add(key)
        try:
            yield from self.graph.pages(path, walk=walk, after=after, **params)
        finally:
            if walk.stopped in (PAGE_CAP, RATE_LIMIT):
                self._cut[key] = walk.after if walk.pages else after

    def _poll_all(
        self, cursor: dict[str, Any], floor: datetime
    ) -> Iterator[tuple[Inbound | None, dict[str, str]]]:
        yield from self._poll_conversations(cursor, floor)
        yield from self._poll_feed(cursor, floor)

    def _poll_conversations(
        self, cursor: dict[str, Any], floor: datetime
    ) -> Iterator[tuple[Inbound | None, dict[str, str]]]:
        since = graph_time(cursor.get(self.product)) or floor
        page_id = self.section.page_id
        for convs in self._top_pages(
            self.product, cursor, f"{page_id}/conversations", platform=self.product,
            fields="id,updated_time",
        ):
            for conv in convs:
                conv = as_dict(conv, "conversation")
                updated = graph_time(conv.get("updated_time"))
                if updated is not None and updated < since:
                    return  # newest first: the rest was seen by an earlier poll
                for inbound in self._conversation_messages(str(conv.get("id")), since):
                    yield inbound, {}
                yield None, {self.product: _iso(updated)}

    def _conversation_messages(self, conv_id: str, since: datetime) -> Iterator[Inbound]:
        """New messages of one conversation, oldest first: Graph lists them newest first, and
        a chat complaint's text must read in the order the citizen wrote it."""
        found: list[Inbound] = []
        pages = self.graph.pages(f"{conv_id}/messages", fields=MESSAGE_FIELDS)
        for msg, created in _newer(pages, "message", since):
            raw = {"source": "poll", "product": self.product,
                   "conversation_id": conv_id, "message": msg}
            found.append(Inbound(str(msg["id"]), jdump(raw), "json", created,
                                 {"source": "poll", "product": self.product}))
        yield from reversed(found)

    def _poll_feed(
        self, cursor: dict[str, Any], floor: datetime
    ) -> Iterator[tuple[Inbound | None, dict[str, str]]]:
        since = graph_time(cursor.get("feed")) or floor
        page_id = self.section.page_id
        for posts in self._top_pages("feed", cursor, f"{page_id}/feed", fields=POST_FIELDS):
            for post in posts:
                post = as_dict(post, "post")
                created = graph_time(post.get("created_time"))
                updated = graph_time(post.get("updated_time")) or created
                if created is not None and created < min(since, floor) and (
                    updated is None or updated < since
                ):
                    return
                if updated is not None and updated < since:
                    continue
                author = str((post.get("from") or {}).get("id", ""))
                if author and author not in self.own_ids and post.get("id"):
                    raw = {"source": "poll", "product": "feed", "post": post}
                    yield Inbound(str(post["id"]), jdump(raw), "json", created,
                                  {"source": "poll", "product": "feed"}), {}
                for comment in self._comments(str(post.get("id")), since):
                    yield comment, {}
                yield None, {"feed": _iso(updated)}

    def _comments(self, post_id: str, since: datetime) -> Iterator[Inbound]:
        pages = self.graph.pages(
            f"{post_id}/comments", fields=COMMENT_FIELDS, filter="stream",
            order="reverse_chronological",
        )
        for comment, created in _newer(pages, "comment", since):
            raw = {"source": "poll", "product": "feed", "post_id": post_id,
                   "comment": comment}
            yield Inbound(str(comment["id"]), jdump(raw), "json", created,
                          {"source": "poll", "product": "comment"})

    # -- webhooks ----------------------------------------------------------------------------

    def webhook_messages(self, body: dict[str, Any]) -> list[Inbound]:
        """Split one webhook body (`object: page`) into stored messages, one per message id."""
        out: list[Inbound] = []
        for entry in body.get("entry") or []:
            entry = as_dict(entry, "webhook entry")
            entry_id = str(entry.get("id", ""))
            for event in entry.get("messaging") or []:
                event = as_dict(event, "messaging event")
                message = event.get("message")
                if not isinstance(message, dict) or not message.get("mid"):
                    continue  # deliveries, reads, reactions: not messages
                raw = {"source": "webhook", "object": body.get("object"),
                       "entry_id": entry_id, "event": event}
                out.append(Inbound(str(message["mid"]), jdump(raw), "json",
                                   graph_time(event.get("timestamp")),
                                   {"source": "webhook", "product": self.product}))
            for change in entry.get("changes") or []:
                change = as_dict(change, "webhook change")
                ext = self._change_id(change)
                if ext is None:
                    continue
                raw = {"source": "webhook", "object": body.get("object"),
                       "entry_id": entry_id, "change": change}
                value = change.get("value") or {}
                out.append(Inbound(ext, jdump(raw), "json",
                                   graph_time(value.get("created_time")),
                                   {"source": "webhook", "product": "comment"}))
        return out

    def _change_id(self, change: dict[str, Any]) -> str | None:
        value = change.get("value")
        if change.get("field") != "feed" or not isinstance(value, dict):
            return None
        if value.get("verb", "add") != "add":
            return None
        if value.get("item") == "comment" and value.get("comment_id"):
            return str(value["comment_id"])
        if value.get("item") in ("post", "status", "photo") and value.get("post_id"):
            return str(value["post_id"])
        return None

    # -- parsing -----------------------------------------------------------------------------

    def parse(self, raw: bytes, meta: dict[str, Any]) -> Content:
        try:
            doc = json.loads(raw)
        except ValueError:
            raise PermanentError(f"{self.name} message is not valid JSON") from None
        doc = as_dict(doc, f"{self.name} message")
        if "message" in doc:
            return self._parse_graph_message(as_dict(doc["message"], "message"))
        if "event" in doc:
            return self._parse_event(as_dict(doc["event"], "messaging event"))
        if "comment" in doc:
            return self._parse_public(as_dict(doc["comment"], "comment"), "comment")
        if "post" in doc:
            return self._parse_public(as_dict(doc["post"], "post"), "post")
        if "change" in doc:
            return self._parse_change(as_dict(doc["change"], "change"))
        raise PermanentError(f"{self.name} message has no message, event, post or comment")

    def _chat(self, sender: str, name: str | None, text: str, when: datetime | None,
              attachments: list[Attachment], notes: list[str]) -> Content:
        kind = "own" if sender in self.own_ids else "complaint"
        return Content(
            kind=kind, text=text, sender=sender, sender_name=name, occurred_at=when,
            attachments=attachments, notes=notes,
            conversation=f"{self.prefix}:{sender}",
            reply_ref={"recipient": sender, "at": _iso(when)},
        )

    def _parse_graph_message(self, msg: dict[str, Any]) -> Content:
        sender = as_dict(msg.get("from") or {}, "message.from")
        if not sender.get("id"):
            raise PermanentError(f"{self.name} message {msg.get('id')!r} has no sender")
        text = msg.get("message") or ""
        if not isinstance(text, str):
            raise PermanentError(f"{self.name} message text is not a string")
        attachments, notes = self._media((msg.get("attachments") or {}).get("data") or [])
        return self._chat(str(sender["id"]), sender.get("name") or sender.get("username"),
                          text, graph_time(msg.get("created_time")), attachments, notes)

    def _parse_event(self, event: dict[str, Any]) -> Content:
        sender = str((event.get("sender") or {}).get("id", ""))
        message = as_dict(event.get("message"), "messaging event message")
        if not sender:
            raise PermanentError(f"{self.name} webhook message has no sender.id")
        text = message.get("text") or ""
        if not isinstance(text, str):
            raise PermanentError(f"{self.name} webhook message text is not a string")
        items = []
        for att in message.get("attachments") or []:
            if isinstance(att, dict):
                payload = att.get("payload") or {}
                items.append({"type": att.get("type"), "url": payload.get("url")})
        attachments, notes = self._media(items)
        content = self._chat(sender, None, text, graph_time(event.get("timestamp")),
                             attachments, notes)
        if message.get("is_echo"):
            content.kind = "own"
        return content

    def _parse_public(self, obj: dict[str, Any], what: str) -> Content:
        author = as_dict(obj.get("from") or {}, f"{what}.from")
        if not obj.get("id"):
            raise PermanentError(f"{self.name} {what} has no id")
        text = obj.get("message") if "message" in obj else obj.get("text", "")
        if not isinstance(text, str):
            raise PermanentError(f"{self.name} {what} text is not a string")
        sender = str(author.get("id") or author.get("username") or "")
        items = [obj["attachment"]] if isinstance(obj.get("attachment"), dict) else []
        attachments, notes = self._media(items)
        return Content(
            kind="own" if sender in self.own_ids else "complaint",
            text=text, sender=sender or None,
            sender_name=author.get("name") or author.get("username"),
            occurred_at=graph_time(obj.get("created_time") or obj.get("timestamp")),
            attachments=attachments, notes=notes,
            reply_ref={"comment_id": str(obj["id"]), "on": what},
            extra={"permalink": obj.get("permalink_url") or obj.get("permalink")},
        )

    def _parse_change(self, change: dict[str, Any]) -> Content:
        value = as_dict(change.get("value"), "change.value")
        obj = {
            "id": value.get("comment_id") or value.get("post_id"),
            "from": value.get("from") or {},
            "message": value.get("message") or "",
            "created_time": value.get("created_time"),
        }
        if value.get("photo"):
            obj["attachment"] = {"type": "photo", "url": value["photo"]}
        return self._parse_public(obj, "comment" if value.get("item") == "comment" else "post")

    # -- media -------------------------------------------------------------------------------

    def _media(self, items: list[Any]) -> tuple[list[Attachment], list[str]]:
        out: list[Attachment] = []
        notes: list[str] = []
        for n, item in enumerate(items, 1):
            if not isinstance(item, dict):
                continue
            url = (
                item.get("url")
                or (item.get("image_data") or {}).get("url")
                or (item.get("media") or {}).get("image", {}).get("src")
                or item.get("file_url")
            )
            if not url:
                continue
            data, ctype = self.graph.download(url)  # transient failures retry the message
            if len(data) > self.section.media_max_bytes:
                notes.append(f"attachment {n} over media_max_bytes: not kept")
                continue
            ctype = item.get("mime_type") or ctype
            name = safe_filename(item.get("name"), f"{self.name}-{n}{_ext(ctype)}")
            out.append(Attachment(name, ctype, data))
        return out, notes

    # -- sending -----------------------------------------------------------------------------

    def send(self, kind: str, payload: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        if kind not in ("ack", "relay"):
            raise PermanentError(f"{self.name} cannot send {kind!r} messages")
        ref = payload.get("reply_ref") or {}
        text = payload.get("text") or ""
        if not text:
            raise PermanentError(f"{self.name} {kind}: nothing to send (empty text)")
        if ref.get("comment_id"):
            result = self.graph.post(self._reply_path(str(ref["comment_id"])), {"message": text})
            return {"id": result.get("id")}
        if ref.get("recipient"):
            result = self.graph.post(
                f"{self._messages_owner()}/messages",
                {"recipient": {"id": ref["recipient"]}, "message": {"text": text},
                 "messaging_type": "RESPONSE"},
            )
            return {"message_id": result.get("message_id"),
                    "recipient_id": result.get("recipient_id")}
        raise PermanentError(f"{self.name} {kind}: the complaint has no reply reference")

    def _reply_path(self, comment_id: str) -> str:
        return f"{comment_id}/comments"

    def _messages_owner(self) -> str:
        return self.section.page_id


def _iso(dt: datetime | None) -> str | None:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000") if dt else None


def _ext(ctype: str) -> str:
    return {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp",
            "application/pdf": ".pdf", "video/mp4": ".mp4"}.get(ctype, "")


def _newer(
    pages: Iterator[list[Any]], kind: str, since: datetime
) -> Iterator[tuple[dict[str, Any], datetime | None]]:
    """Items (with an id) of newest-first Graph pages created at or after `since`, with their
    time; paging stops after the page that reaches older items (seen by an earlier poll)."""
    for items in pages:
        older = False
        for item in items:
            item = as_dict(item, kind)
            created = graph_time(item.get("created_time"))
            if created is not None and created < since:
                older = True
                continue
            if item.get("id"):
                yield item, created
        if older:
            return
