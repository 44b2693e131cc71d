"""Instagram channel (professional account linked to the desk's Page), via the same Graph client.

DMs come from `/{page-id}/conversations?platform=instagram` (same shapes as Messenger, so this
adapter is the Facebook one with other public edges); public complaints are comments on the
account's recent media (`/{ig-user-id}/media` → `/{media-id}/comments`) and media the account is
tagged in (`/{ig-user-id}/tags`). Webhooks arrive as `object: instagram` (messaging events and
`comments` changes) and share the external ids (IG message id, comment id, media id).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, ClassVar

from lapakd.adapters.base import Content, Inbound, PermanentError
from lapakd.adapters.facebook import FacebookAdapter, _iso, as_dict, graph_time, jdump
from lapakd.adapters.graph import graph_fields
from lapakd.adapters.paging import MAX_PAGES_PER_POLL

from lapakd.config import Field, between, seconds, size_bytes

MEDIA_FIELDS = "id,caption,timestamp,permalink,comments_count,username"
IG_COMMENT_FIELDS = "id,text,timestamp,username,from"
TAG_FIELDS = "id,caption,timestamp,permalink,username,media_type,media_url"


class InstagramAdapter(FacebookAdapter):
    name = "instagram"
    product = "instagram"
    webhook_object = "instagram"
    prefix = "ig"
    CONFIG: ClassVar[dict[str, Field]] = {
        "ig_user_id": Field(str, ""),
        "page_id": Field(str, ""),
        **graph_fields(),
        "poll_seconds": Field(int, 300, check=seconds()),
        "lookback_days": Field(int, 7, check=between(0, 36500, "days")),
        "max_pages_per_poll": Field(int, MAX_PAGES_PER_POLL, check=between(1, 1000, "pages")),
        "media_max_bytes": Field(int, 10 * 1024 * 1024, check=size_bytes()),
    }

    def _poll_all(
        self, cursor: dict[str, Any], floor: datetime
    ) -> Iterator[tuple[Inbound | None, dict[str, str]]]:
        yield from self._poll_conversations(cursor, floor)
        yield from self._poll_media(cursor, floor)
        yield from self._poll_tags(cursor, floor)

    def _poll_media(
        self, cursor: dict[str, Any], floor: datetime
    ) -> Iterator[tuple[Inbound | None, dict[str, str]]]:
        since = graph_time(cursor.get("media")) or floor
        newest: str | None = None
        for media in self._recent(cursor, f"{self.section.ig_user_id}/media",
                                  min(since, floor)):
            if not media.get("id") or not media.get("comments_count", 1):
                continue
            for comments in self.graph.pages(
                f"{media['id']}/comments", fields=IG_COMMENT_FIELDS
            ):
                for comment in comments:
                    comment = as_dict(comment, "comment")
                    when = graph_time(comment.get("timestamp"))
                    if not comment.get("id") or (when is not None and when < since):
                        continue
                    raw = {"source": "poll", "product": "media",
                           "media_id": media["id"], "comment": comment}
                    stamp = _stamp(when)
                    if stamp and (newest is None or stamp > newest):
                        newest = stamp
                    yield Inbound(str(comment["id"]), jdump(raw), "json", when,
                                  {"source": "poll", "product": "comment"}), {}
        yield None, ({"media": newest} if newest else {})

    def _recent(self, cursor: dict[str, Any], path: str,
                oldest: datetime) -> Iterator[dict[str, Any]]:
        """The account's media, newest first, down to `oldest`."""
        for medias in self._top_pages("media", cursor, path, fields=MEDIA_FIELDS):
            for media in medias:
                media = as_dict(media, "media")
                created = graph_time(media.get("timestamp"))
                if created is not None and created < oldest:
                    return
                yield media

    def _poll_tags(
        self, cursor: dict[str, Any], floor: datetime
    ) -> Iterator[tuple[Inbound | None, dict[str, str]]]:
        since = graph_time(cursor.get("tags")) or floor
        for medias in self._top_pages("tags", cursor, f"{self.section.ig_user_id}/tags",
                                      fields=TAG_FIELDS):
            for media in medias:
                media = as_dict(media, "tagged media")
                when = graph_time(media.get("timestamp"))
                if when is not None and when < since:
                    return
                if not media.get("id"):
                    continue
                raw = {"source": "poll", "product": "tags", "tagged": media}
                yield Inbound(str(media["id"]), jdump(raw), "json", when,
                              {"source": "poll", "product": "tags"}), {"tags": _stamp(when)}

    # -- webhooks: `comments` and `mentions` changes ------------------------------------------

    def _change_id(self, change: dict[str, Any]) -> str | None:
        value = change.get("value")
        if not isinstance(value, dict):
            return None
        if change.get("field") in ("comments", "live_comments") and value.get("id"):
            return str(value["id"])
        if change.get("field") == "mentions" and value.get("comment_id"):
            return str(value["comment_id"])
        return None

    def parse(self, raw: bytes, meta: dict[str, Any]) -> Content:
        import json

        try:
            doc = json.loads(raw)
        except ValueError:
            raise PermanentError("instagram message is not valid JSON") from None
        if isinstance(doc, dict) and "tagged" in doc:
            media = as_dict(doc["tagged"], "tagged media")
            content = self._parse_public(
                {"id": media.get("id"), "text": media.get("caption") or "",
                 "from": {"username": media.get("username")},
                 "timestamp": media.get("timestamp"), "permalink": media.get("permalink"),
                 "attachment": {"url": media["media_url"]} if media.get("media_url") else None},
                "tagged media",
            )
            content.reply_ref = {"mention_media_id": str(media.get("id"))}
            return content
        return super().parse(raw, meta)

    def _parse_public(self, obj: dict[str, Any], what: str) -> Content:
        if "from" not in obj and obj.get("username"):
            obj = {**obj, "from": {"username": obj["username"]}}
        return super()._parse_public(obj, what)

    def _parse_change(self, change: dict[str, Any]) -> Content:
        value = as_dict(change.get("value"), "change.value")
        if change.get("field") == "mentions":
            obj = {"id": value.get("comment_id"), "text": value.get("text") or "",
                   "from": value.get("from") or {}}
            return self._parse_public(obj, "mention")
        obj = {"id": value.get("id"), "text": value.get("text") or "",
               "from": value.get("from") or {}, "timestamp": value.get("timestamp")}
        return self._parse_public(obj, "comment")

    # -- sending -----------------------------------------------------------------------------

    def send(self, kind: str, payload: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        ref = payload.get("reply_ref") or {}
        if ref.get("mention_media_id") and kind in ("ack", "relay"):
            result = self.graph.post(
                f"{self.section.ig_user_id}/mentions",
                {"media_id": ref["mention_media_id"], "message": payload.get("text") or ""},
            )
            return {"id": result.get("id")}
        return super().send(kind, payload, idempotency_key)

    def _reply_path(self, comment_id: str) -> str:
        return f"{comment_id}/replies"


def _stamp(when: datetime | None) -> str | None:
    return _iso(when)
