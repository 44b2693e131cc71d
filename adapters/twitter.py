"""X (Twitter) channel: public mentions of the desk and direct messages, over the X API v2.

Talks through tweepy's `Client` (with `return_type=requests.Response`, so the JSON is checked
here). tweepy hard-codes ``https://api.twitter.com``; a transport adapter mounted on the client's
`requests.Session` sends those requests to `api_url` instead (the local replica in tests and the
demo), enforces `timeout_seconds` and refuses bodies over `max_response_bytes`.

Cursor (one dict per channel, stored with the messages it covers):

* ``mentions``: ``since_id`` = newest mention stored. X pages newest → oldest, so while a
  backlog is being paged the cursor keeps the old ``since_id`` plus ``until_id`` (the oldest id
  stored so far) and ``pending_newest``; a crash or rate limit mid-backlog resumes with
  ``since_id`` + ``until_id``, and only the last page moves ``since_id`` up.
* ``dms``: ``newest`` = newest DM event stored. ``GET /2/dm_events`` has no ``since_id``:
  pages are read until an already-stored id appears, then stored oldest first in chunks.

External ids: ``tweet:<id>``, ``dm:<event id>``; the store's UNIQUE(channel, external_id) makes
a re-poll store nothing twice. Photos are downloaded once, at fetch, into the content-addressed
attachment store (``data_dir/attachments``); the raw JSON keeps their hashes.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import requests
import tweepy
from lapakd.adapters.base import (
    Adapter,
    Attachment,
    Batch,
    ChannelError,
    Content,
    Inbound,
    NeedsReauth,
    PermanentError,
    TransientError,
    fingerprint,
)
from lapakd.adapters.paging import MAX_PAGES_PER_POLL, PAGE_CAP, PageWalk
from requests.adapters import HTTPAdapter

from lapakd.config import Field, between, http_url, seconds, size_bytes
from lapakd.mail.filenames import safe_filename
from lapakd.store import blob_path, save_blob

# tweepy logs request headers (the bearer token) at DEBUG: never let that reach our logs.
logging.getLogger("tweepy").setLevel(logging.INFO)

X_HOST = "https://api.twitter.com"
TWEET_FIELDS = ["created_at", "author_id", "conversation_id", "referenced_tweets",
                "in_reply_to_user_id", "attachments", "lang", "geo"]
MENTION_EXPANSIONS = ["author_id", "attachments.media_keys", "geo.place_id"]
PLACE_FIELDS = ["full_name", "geo", "place_type"]  # a place's bbox gives a rough location
USER_FIELDS = ["username", "name"]
MEDIA_FIELDS = ["url", "type", "media_key", "alt_text", "preview_image_url"]
DM_FIELDS = ["id", "text", "event_type", "created_at", "sender_id", "dm_conversation_id",
             "attachments", "referenced_tweets"]
DM_EXPANSIONS = ["sender_id", "attachments.media_keys"]
RATE_WINDOW_SECONDS = 15 * 60.0  # X's rate-limit window: the pause when no reset is given
MAX_PAUSE_SECONDS = 24 * 3600.0  # a reset further away than a day is not believed
MAX_TEXT_CHARS = 25_000  # X's longest posts; anything longer is cut with a note
TWEET_MAX = 280
_ID = re.compile(r"[0-9]{1,19}")


class ResponseTooLarge(requests.exceptions.RequestException):
    """The server's answer is over channels.twitter.max_response_bytes."""


class _Transport(HTTPAdapter):
    """Sends tweepy's https://api.twitter.com requests to `api_url`, with a timeout and a
    size cap. Mounted on the client's session; tweepy itself is not patched."""

    def __init__(self, api_url: str, timeout: float, max_bytes: int) -> None:
        super().__init__(max_retries=0)
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout
        self.max_bytes = max_bytes

    def send(self, request: requests.PreparedRequest, stream: bool = False,  # type: ignore[override]
             timeout: Any = None, verify: Any = True, cert: Any = None,
             proxies: Any = None) -> requests.Response:
        url = request.url or ""
        if url.startswith(X_HOST):
            request.url = self.api_url + url[len(X_HOST):]
        response = super().send(request, stream=True, timeout=timeout or self.timeout,
                                verify=verify, cert=cert, proxies=proxies)
        try:
            data = response.raw.read(self.max_bytes + 1, decode_content=True)
        except Exception as exc:  # noqa: BLE001 - reported as a transport failure
            response.close()
            raise requests.exceptions.ConnectionError(type(exc).__name__) from None
        if len(data) > self.max_bytes:
            response.close()
            raise ResponseTooLarge(f"response over {self.max_bytes} bytes")
        response._content = data
        response._content_consumed = True
        response.close()
        return response


class TwitterAdapter(Adapter):
    name = "twitter"
    CONFIG: ClassVar[dict[str, Field]] = {
        "user_id": Field(str, ""),
        "username": Field(str, "lapakaduanbms"),
        "bearer_token": Field(str, "", secret=True),
        "consumer_key": Field(str, "", secret=True),
        "consumer_secret": Field(str, "", secret=True),
        "access_token": Field(str, "", secret=True),
        "access_token_secret": Field(str, "", secret=True),
        "api_url": Field(str, X_HOST, check=http_url),
        "poll_seconds": Field(int, 120, check=seconds()),
        "direct_messages": Field(bool, True),
        "acknowledge": Field(bool, True),
        "page_size": Field(int, 100, check=between(5, 100, why="the X API's page sizes")),
        "max_pages_per_poll": Field(int, MAX_PAGES_PER_POLL, check=between(1, 1000, "pages")),
        "timeout_seconds": Field(int, 30, check=seconds(1, 600)),
        "max_response_bytes": Field(int, 5 * 1024 * 1024, check=size_bytes()),
        "max_media_bytes": Field(int, 15 * 1024 * 1024, check=size_bytes()),
    }

    def __init__(self, config: Any, section: Any) -> None:
        super().__init__(config, section)
        self._client: tweepy.Client | None = None
        # Endpoints whose rate-limit window this poll used up -> seconds until it resets.
        self._used_up: dict[str, float] = {}

    # -- the client ---------------------------------------------------------------------------

    @property
    def client(self) -> tweepy.Client:
        if self._client is None:
            s = self.section
            client = tweepy.Client(
                bearer_token=s.bearer_token or None, consumer_key=s.consumer_key or None,
                consumer_secret=s.consumer_secret or None, access_token=s.access_token or None,
                access_token_secret=s.access_token_secret or None,
                return_type=requests.Response,
            )
            transport = _Transport(s.api_url, s.timeout_seconds, s.max_response_bytes)
            client.session.mount(X_HOST, transport)
            self._client = client
        return self._client

    @property
    def credential(self) -> str:
        """The fingerprint of the configured keys: one alert per set of keys that X rejects."""
        s = self.section
        return fingerprint(s.bearer_token, s.consumer_key, s.consumer_secret, s.access_token,
                           s.access_token_secret)

    @property
    def _user_keys(self) -> bool:
        s = self.section
        return all((s.consumer_key, s.consumer_secret, s.access_token, s.access_token_secret))

    def close(self) -> None:
        if self._client is not None:
            self._client.session.close()
            self._client = None

    def _call(self, what: str, fn: Callable[..., requests.Response], **kwargs: Any) -> Any:
        """One API call; X's failures become TransientError / NeedsReauth / PermanentError.
        Messages name the endpoint, the status and X's title — never a URL or a token."""
        try:
            response = fn(**kwargs)
        except tweepy.TooManyRequests as exc:
            raise _rate_limited(what, exc.response) from None
        except tweepy.Unauthorized:
            raise NeedsReauth(
                f"X {what}: 401 Unauthorized: the token was rejected (expired or revoked); "
                "renew the channels.twitter keys",
                credential=self.credential,
            ) from None
        except tweepy.TwitterServerError as exc:
            raise TransientError(
                f"X {what}: server error {exc.response.status_code}{_title(exc.response)}"
            ) from None
        except tweepy.HTTPException as exc:
            if _is_v1_rate_limit(exc.response):
                raise _rate_limited(what, exc.response) from None
            raise PermanentError(
                f"X {what}: {exc.response.status_code}{_title(exc.response)}"
            ) from None
        except ResponseTooLarge as exc:
            raise TransientError(f"X {what}: malformed answer: {exc}") from None
        except requests.exceptions.Timeout:
            raise TransientError(
                f"X {what}: timed out after {self.section.timeout_seconds}s") from None
        except requests.exceptions.RequestException as exc:
            raise TransientError(f"X {what}: connection failed ({type(exc).__name__})") from None
        if response.headers.get("x-rate-limit-remaining", "").strip() == "0":
            self._used_up[what] = _reset_wait(response)
        try:
            body = json.loads(response.content)
        except ValueError:
            raise TransientError(
                f"X {what}: malformed answer: not JSON ({len(response.content)} bytes)"
            ) from None
        if not isinstance(body, dict):
            raise TransientError(f"X {what}: malformed answer: not a JSON object")
        return body

    # -- fetching -----------------------------------------------------------------------------

    def fetch(self, cursor: dict[str, Any] | None) -> Iterator[Batch]:
        s = self.section
        if not _ID.fullmatch(s.user_id or ""):
            raise PermanentError(
                "channels.twitter.user_id must be the desk account's numeric X user id")
        if not s.bearer_token and not self._user_keys:
            raise NeedsReauth("channels.twitter has no bearer_token and no user-context keys")
        state = copy.deepcopy(cursor or {})
        state.setdefault("mentions", {})
        state.setdefault("dms", {})
        self._used_up = {}
        yield from self._fetch_mentions(state)
        if s.direct_messages and self._user_keys:
            yield from self._fetch_dms(state)
        if self._used_up:
            # A window ran out (x-rate-limit-remaining: 0): what came is stored; the channel,
            # and only it, waits until the window resets instead of collecting 429s.
            what, wait = max(self._used_up.items(), key=lambda item: item[1])
            raise TransientError(
                f"X {what}: rate limit used up (x-rate-limit-remaining: 0), "
                f"paused for {int(wait)}s", wait)

    def _fetch_mentions(self, state: dict[str, Any]) -> Iterator[Batch]:
        cur = state["mentions"]
        since, until = cur.get("since_id"), cur.get("until_id")
        pending = cur.get("pending_newest")
        token: str | None = None
        user_auth = not self.section.bearer_token
        state["_mentions_last"] = copy.deepcopy(cur)
        walk = PageWalk(self.name, "mentions", self.section.max_pages_per_poll,
                        position=int(until) if until and str(until).isdigit() else None)
        while True:
            params: dict[str, Any] = {
                "id": self.section.user_id, "max_results": max(5, min(100, self.section.page_size)),
                "expansions": MENTION_EXPANSIONS, "tweet_fields": TWEET_FIELDS,
                "user_fields": USER_FIELDS, "media_fields": MEDIA_FIELDS, "user_auth": user_auth,
                "place_fields": PLACE_FIELDS,
            }
            if since:
                params["since_id"] = since
            if until:
                params["until_id"] = until
            if token:
                params["pagination_token"] = token
            body = self._call("mentions", self.client.get_users_mentions, **params)
            walk.fetched()
            tweets, includes, meta = _page_parts("mentions", body)
            messages = [self._inbound(t, includes, _TWEET) for t in tweets]
            ids = [int(t["id"]) for t in tweets if isinstance(t, dict) and _valid_id(t.get("id"))]
            if ids and pending is None:
                pending = str(max(ids))
            token = meta.get("next_token") if isinstance(meta.get("next_token"), str) else None
            lowest = min(ids) if ids else None
            if walk.pages == 1 and not walk.check_start(lowest):
                token = None  # asked for ids below until_id and got others: paging is broken
            elif token and not walk.follow(token, lowest) and walk.stopped != PAGE_CAP:
                # A page cap keeps the place (until_id): the next poll goes on below it.
                # A repeated or backward cursor cannot be followed: the walk ends here.
                token = None
            if token and "mentions" in self._used_up:
                walk.stopped = "rate limit"  # the next page would be refused: keep the place
            if token:
                # Older pages remain: keep since_id, remember how far down we are.
                if ids:
                    cur.update(since_id=since, until_id=str(min(ids)), pending_newest=pending)
            else:
                newest = max([int(x) for x in (since, pending) if x] or [0])
                cur.clear()
                if newest:
                    cur["since_id"] = str(newest)
                token = None
            if messages or cur != state.get("_mentions_last"):
                yield Batch(messages, _public_cursor(state))
                state["_mentions_last"] = copy.deepcopy(cur)
            if not token or walk.stopped:
                if not walk.stopped:
                    walk.complete()
                return

    def _fetch_dms(self, state: dict[str, Any]) -> Iterator[Batch]:
        cur = state["dms"]
        newest = int(cur.get("newest") or 0)
        collected: list[dict[str, Any]] = []
        includes_all: dict[str, list] = {"users": [], "media": []}
        token: str | None = None
        walk = PageWalk(self.name, "direct messages", self.section.max_pages_per_poll)
        try:
            while True:
                params: dict[str, Any] = {
                    "event_types": ["MessageCreate"], "dm_event_fields": DM_FIELDS,
                    "expansions": DM_EXPANSIONS, "user_fields": USER_FIELDS,
                    "media_fields": MEDIA_FIELDS, "max_results": 100, "user_auth": True,
                }
                if token:
                    params["pagination_token"] = token
                body = self._call("direct messages", self.client.get_direct_message_events,
                                  **params)
                walk.fetched()
                events, includes, meta = _page_parts("direct messages", body)
                for key in includes_all:
                    includes_all[key].extend(includes.get(key) or [])
                reached = False
                for e in events:
                    eid = e.get("id") if isinstance(e, dict) else None
                    if _valid_id(eid) and int(eid) <= newest:
                        reached = True
                        continue
                    collected.append(e)
                token = meta.get("next_token") if isinstance(meta.get("next_token"), str) else None
                if reached or not token:
                    walk.complete()
                    break
                ids = [int(e["id"]) for e in events
                       if isinstance(e, dict) and _valid_id(e.get("id"))]
                # No since_id here: a walk stopped early (page cap, broken cursor, used-up
                # window) stores what it read; older events it did not reach are not fetched.
                if "direct messages" in self._used_up or not walk.follow(
                        token, min(ids) if ids else None):
                    break
        except ChannelError:
            if collected:  # keep what arrived (cursor unchanged), then report the failure
                yield Batch([self._inbound(e, includes_all, _DM) for e in reversed(collected)],
                            _public_cursor(state))
            raise
        collected.reverse()  # oldest first: a conversation reads in order
        for start in range(0, len(collected), 100):
            chunk = collected[start:start + 100]
            ids = [int(e["id"]) for e in chunk if isinstance(e, dict) and _valid_id(e.get("id"))]
            if ids:
                cur["newest"] = str(max([newest, *ids]))
                newest = int(cur["newest"])
            yield Batch([self._inbound(e, includes_all, _DM) for e in chunk], _public_cursor(state))

    # -- one message --------------------------------------------------------------------------

    def _inbound(self, obj: Any, includes: dict[str, Any], kind: _Kind) -> Inbound:
        """One tweet or DM event with the parts of the page's includes that belong to it."""
        users = {u.get("id"): u for u in includes.get("users") or [] if isinstance(u, dict)}
        media = {m.get("media_key"): m for m in includes.get("media") or [] if isinstance(m, dict)}
        oid = obj.get("id") if isinstance(obj, dict) else None
        if isinstance(obj, dict) and _valid_id(oid):
            keys = _media_keys(obj)
            author = obj.get(kind.author_field)
            inc = {"users": [users[author]] if author in users else [],
                   "media": [media[k] for k in keys if k in media]}
            if kind.with_places:
                places = {p.get("id"): p for p in includes.get("places") or []
                          if isinstance(p, dict)}
                geo = obj.get("geo") if isinstance(obj.get("geo"), dict) else {}
                if geo.get("place_id") in places:
                    inc["places"] = [places[geo["place_id"]]]
            raw = {"data": obj, "includes": inc}
            meta = {"endpoint": kind.endpoint,
                    "media": self._download(inc["media"], auth=kind.media_auth)}
            return Inbound(f"{kind.prefix}:{oid}", _dumps(raw), "json", _when(obj), meta)
        # Kept, so nothing is lost; parse() quarantines it with the reason.
        raw_bytes = _dumps({"data": obj})
        digest = hashlib.sha256(raw_bytes).hexdigest()[:24]
        return Inbound(f"{kind.prefix}:invalid-{digest}", raw_bytes, "json", None,
                       {"endpoint": kind.endpoint, "media": []})

    def _download(self, media: list[dict[str, Any]], auth: bool) -> list[dict[str, Any]]:
        """Photos into the attachment store, once; their hashes go into the message's meta."""
        out = []
        for m in media:
            url = m.get("url")
            key = str(m.get("media_key") or "")
            if m.get("type") != "photo" or not isinstance(url, str):
                out.append({"media_key": key, "type": m.get("type"),
                            "note": "not a photo: not downloaded"})
                continue
            limit = self.section.max_media_bytes
            try:
                if auth and self._user_keys:  # DM media (ton.twitter.com) needs user context
                    s = self.section
                    oauth: Any = tweepy.OAuth1UserHandler(
                        s.consumer_key, s.consumer_secret, s.access_token,
                        s.access_token_secret).apply_auth()
                else:
                    oauth = None
                with requests.get(url, auth=oauth, timeout=self.section.timeout_seconds,
                                  stream=True) as resp:
                    if resp.status_code in (403, 404, 410):
                        out.append({"media_key": key, "type": "photo",
                                    "note": f"photo unavailable ({resp.status_code})"})
                        continue
                    if resp.status_code != 200:
                        raise TransientError(f"X photo download: HTTP {resp.status_code}")
                    data = resp.raw.read(limit + 1, decode_content=True)
                    ctype = resp.headers.get("content-type", "image/jpeg").split(";")[0]
            except requests.exceptions.RequestException as exc:
                raise TransientError(
                    f"X photo download: connection failed ({type(exc).__name__})") from None
            if len(data) > limit:
                out.append({"media_key": key, "type": "photo",
                            "note": f"photo over {limit} bytes: not downloaded"})
                continue
            ext = {"image/png": "png", "image/gif": "gif", "image/webp": "webp"}.get(ctype, "jpg")
            out.append({"media_key": key, "type": "photo", "sha256": self._save_blob(data),
                        "content_type": ctype, "size": len(data),
                        "filename": f"{_safe(key) or 'foto'}.{ext}"})
        return out

    def _blob_path(self, digest: str) -> Path:
        return blob_path(self.config.data_dir / "attachments", digest)

    def _save_blob(self, data: bytes) -> str:
        return save_blob(self.config.data_dir / "attachments", data)

    # -- parsing ------------------------------------------------------------------------------

    def parse(self, raw: bytes, meta: dict[str, Any]) -> Content:
        try:
            obj = json.loads(raw)
        except ValueError:
            raise ValueError("X message: stored raw is not JSON") from None
        data = obj.get("data") if isinstance(obj, dict) else None
        if not isinstance(data, dict):
            raise ValueError(f"X message: expected a JSON object, got {type(data).__name__}")
        includes = obj.get("includes") if isinstance(obj.get("includes"), dict) else {}
        dm = meta.get("endpoint") == "dm"
        what = "DM event" if dm else "tweet"
        oid = data.get("id")
        if not _valid_id(oid):
            raise ValueError(f"X {what}: missing or invalid 'id' ({_short(oid)})")
        text = data.get("text")
        if not isinstance(text, str):
            raise ValueError(f"X {what} {oid}: 'text' must be a string, got {_typename(text)}")
        who_key = "sender_id" if dm else "author_id"
        who = data.get(who_key)
        if not _valid_id(who):
            raise ValueError(f"X {what} {oid}: missing or invalid '{who_key}' ({_short(who)})")
        user = next((u for u in includes.get("users") or []
                     if isinstance(u, dict) and u.get("id") == who), {})
        username = user.get("username") if isinstance(user.get("username"), str) else None
        name = user.get("name") if isinstance(user.get("name"), str) else None
        notes: list[str] = []
        if len(text) > MAX_TEXT_CHARS:
            notes.append(f"text of {len(text)} characters cut to {MAX_TEXT_CHARS}")
            text = text[:MAX_TEXT_CHARS]
        content = Content(
            kind="complaint", text=_strip_mentions(text) if not dm else text.strip(),
            sender=f"@{username}" if username else f"x:{who}", sender_name=name,
            occurred_at=_when(data), notes=notes,
            extra={"x_user_id": who, "x_id": oid},
            location=_tweet_location(data, includes),
        )
        if dm:
            conv = data.get("dm_conversation_id")
            if not isinstance(conv, str) or not conv:
                raise ValueError(f"X DM event {oid}: missing 'dm_conversation_id'")
            content.conversation = f"dm:{conv}:{who}"
            content.reply_ref = {"type": "dm", "participant_id": who,
                                 "dm_conversation_id": conv, "event_id": oid}
        else:
            content.reply_ref = {"type": "tweet", "tweet_id": oid, "author_id": who,
                                 "username": username}
            refs = data.get("referenced_tweets") or []
            if isinstance(refs, list) and any(
                    isinstance(r, dict) and r.get("type") == "retweeted" for r in refs):
                content.kind = "retweet"
        if who == self.section.user_id:
            content.kind = "own"
        for m in meta.get("media") or []:
            if m.get("note"):
                notes.append(f"media {m.get('media_key')}: {m['note']}")
                continue
            path = self._blob_path(str(m.get("sha256", "")))
            try:
                blob = path.read_bytes()
            except OSError:
                notes.append(f"media {m.get('media_key')}: stored photo missing")
                continue
            content.attachments.append(
                Attachment(safe_filename(m.get("filename"), "foto.jpg"),
                           m.get("content_type") or "image/jpeg", blob))
        return content

    # -- sending ------------------------------------------------------------------------------

    def send(self, kind: str, payload: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        if kind not in ("ack", "relay"):
            raise PermanentError(f"channel twitter cannot send {kind!r} messages")
        if not self._user_keys:
            raise NeedsReauth("X: replying needs the user-context keys (consumer_key, "
                              "consumer_secret, access_token, access_token_secret)")
        ref = payload.get("reply_ref") or {}
        text = payload.get("text")
        if not isinstance(text, str) or not text.strip():
            raise PermanentError("X reply: empty text")
        if ref.get("type") == "tweet" and _valid_id(ref.get("tweet_id")):
            return self._reply_tweet(ref["tweet_id"], _fit_tweet(text))
        if ref.get("type") == "dm" and _valid_id(ref.get("participant_id")):
            return self._send_dm(ref["participant_id"], text)
        raise PermanentError(f"X reply: reply_ref has no tweet or DM to answer ({_short(ref)})")

    def _reply_tweet(self, tweet_id: str, text: str) -> dict[str, Any]:
        try:
            body = self._call("reply", self.client.create_tweet, text=text,
                              in_reply_to_tweet_id=tweet_id, user_auth=True)
        except PermanentError as exc:
            # X refuses the same text twice from one account; the text names the ticket, so
            # this is our own earlier reply (sent before a crash): already done.
            if "duplicate content" in str(exc).lower():
                return {"in_reply_to": tweet_id, "duplicate": True}
            raise
        data = body.get("data") if isinstance(body.get("data"), dict) else {}
        return {"in_reply_to": tweet_id, "tweet_id": data.get("id")}

    def _send_dm(self, participant_id: str, text: str) -> dict[str, Any]:
        # DMs have no duplicate check on X's side: look at the conversation first, so a resend
        # after a crash does not repeat the message.
        body = self._call("DM lookup", self.client.get_direct_message_events,
                          participant_id=participant_id, dm_event_fields=["sender_id", "text"],
                          event_types=["MessageCreate"], max_results=50, user_auth=True)
        events = body.get("data") if isinstance(body.get("data"), list) else []
        for e in events:
            if (isinstance(e, dict) and e.get("sender_id") == self.section.user_id
                    and e.get("text") == text):
                return {"participant_id": participant_id, "dm_event_id": e.get("id"),
                        "duplicate": True}
        body = self._call("DM send", self.client.create_direct_message,
                          participant_id=participant_id, text=text, user_auth=True)
        data = body.get("data") if isinstance(body.get("data"), dict) else {}
        return {"participant_id": participant_id, "dm_event_id": data.get("dm_event_id")}


# -- helpers ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Kind:
    """What differs between a mention and a DM event when it becomes an Inbound."""

    prefix: str  # the external id: "tweet:<id>" / "dm:<id>"
    endpoint: str  # meta["endpoint"]: tells parse() which shape it reads
    author_field: str  # the field naming the user in includes.users
    with_places: bool  # only tweets carry geo.place_id
    media_auth: bool  # DM media needs user-context OAuth


_TWEET = _Kind("tweet", "mentions", "author_id", with_places=True, media_auth=False)
_DM = _Kind("dm", "dm", "sender_id", with_places=False, media_auth=True)


def _public_cursor(state: dict[str, Any]) -> dict[str, Any]:
    return {k: copy.deepcopy(v) for k, v in state.items() if not k.startswith("_")}


# A place's centre stands for the complaint's location only when the place is small (a point of
# interest or a neighbourhood, about 5 km across at most), not a city or a province.
MAX_PLACE_SPAN = 0.05


def _tweet_location(data: dict[str, Any], includes: dict[str, Any]) -> tuple[float, float] | None:
    """(lat, lon) of a post: its exact coordinates (GeoJSON [lon, lat]) or the centre of a small
    tagged place's bounding box [west, south, east, north]."""
    geo = data.get("geo") if isinstance(data.get("geo"), dict) else {}
    point = geo.get("coordinates") if isinstance(geo.get("coordinates"), dict) else {}
    pair = point.get("coordinates")
    try:
        if isinstance(pair, list) and len(pair) == 2:
            lon, lat = float(pair[0]), float(pair[1])
            if abs(lat) <= 90 and abs(lon) <= 180:
                return lat, lon
        place = next((p for p in includes.get("places") or []
                      if isinstance(p, dict) and p.get("id") == geo.get("place_id")), None)
        bbox = ((place or {}).get("geo") or {}).get("bbox")
        if isinstance(bbox, list) and len(bbox) == 4:
            west, south, east, north = (float(v) for v in bbox)
            if 0 <= east - west <= MAX_PLACE_SPAN and 0 <= north - south <= MAX_PLACE_SPAN:
                return (south + north) / 2, (west + east) / 2
    except (TypeError, ValueError):
        return None
    return None


def _page_parts(what: str, body: dict[str, Any]) -> tuple[list, dict, dict]:
    data = body.get("data", [])
    if not isinstance(data, list):
        raise TransientError(f"X {what}: malformed answer: 'data' is {_typename(data)}, "
                             "not a list")
    meta = body.get("meta", {})
    includes = body.get("includes", {})
    if not isinstance(meta, dict) or not isinstance(includes, dict):
        raise TransientError(f"X {what}: malformed answer: 'meta'/'includes' not objects")
    if "errors" in body and not data and "title" in body:
        raise TransientError(f"X {what}: {_short(body.get('title'))}")
    return data, includes, meta


def _valid_id(value: Any) -> bool:
    return isinstance(value, str) and bool(_ID.fullmatch(value))


def _media_keys(obj: dict[str, Any]) -> list[str]:
    att = obj.get("attachments")
    keys = att.get("media_keys") if isinstance(att, dict) else None
    return [k for k in keys if isinstance(k, str)] if isinstance(keys, list) else []


def _when(obj: dict[str, Any]) -> datetime | None:
    value = obj.get("created_at")
    if not isinstance(value, str):
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, sort_keys=True).encode()


def _strip_mentions(text: str) -> str:
    """Drop the leading @handles of a reply/mention ("@lapakaduanbms @dlh jalan rusak...")."""
    return re.sub(r"^(?:@\w{1,15}\s+)+", "", text.strip()).strip() or text.strip()


def _fit_tweet(text: str) -> str:
    """Keep a reply within 280 characters, keeping the trailing link (the ticket page)."""
    if len(text) <= TWEET_MAX:
        return text
    m = re.search(r"\s(https?://\S+)\s*$", text)
    url = m.group(1) if m else ""
    room = TWEET_MAX - (len(url) + 2 if url else 1)
    head = text[: m.start() if m else len(text)][:room].rstrip()
    return f"{head}… {url}" if url else f"{head}…"


def _reset_wait(response: requests.Response | None) -> float:
    """Seconds until X's `x-rate-limit-reset` (epoch seconds); 15 minutes (X's window) when
    the header is missing or unreadable, at most a day whatever it says."""
    reset = None
    if response is not None:
        with contextlib.suppress(TypeError, ValueError):
            reset = int(response.headers.get("x-rate-limit-reset", ""))
    if not reset:
        return RATE_WINDOW_SECONDS
    return min(max(1.0, reset - time.time()), MAX_PAUSE_SECONDS)


def _rate_limited(what: str, response: requests.Response | None) -> TransientError:
    wait = _reset_wait(response)
    return TransientError(f"X {what}: rate limited (429), paused for {int(wait)}s", wait)


def _is_v1_rate_limit(response: requests.Response | None) -> bool:
    try:
        errors = response.json().get("errors") if response is not None else None
    except ValueError:
        return False
    return isinstance(errors, list) and any(
        isinstance(e, dict) and e.get("code") == 88 for e in errors)


def _title(response: requests.Response | None) -> str:
    """': <title> — <detail>' from an X error body, short and token-free."""
    if response is None:
        return ""
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    parts = [body.get("title"), body.get("detail")]
    errors = body.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        parts.append(errors[0].get("message"))
    text = " — ".join(str(p) for p in parts if isinstance(p, str) and p)
    return f": {text[:200]}" if text else ""


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _typename(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", int: "a number",
            float: "a number", bool: "true/false", type(None): "null"}.get(type(value),
                                                                          type(value).__name__)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:60]
