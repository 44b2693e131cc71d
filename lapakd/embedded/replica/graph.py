"""A local replica of the Meta Graph API (Facebook Page, Instagram, WhatsApp Cloud API).

A real threaded HTTP server on loopback that answers the endpoints lapakd uses with the shapes
the real API sends (learned from recorded responses): `{"data": [...], "paging": {"cursors":
{"before", "after"}, "next"}}` with `next` URLs pointing back here (token included, as Meta
does), error bodies `{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}` and
the `x-app-usage` / `x-business-use-case-usage` headers.

Switches for the unhappy paths: `throttle(n, code=32, minutes=1)` answers the next n requests
with a throttling error; `rate_limit(n)` with HTTP 429; `usage_full(n)` answers normally with
the usage headers at 100%; `expire_token()` makes every request fail with code 190;
`fail(n, html=True)` answers the next n requests with a 5xx; `stall(seconds, n)` answers late;
`repeat_next()` hands out the same `paging.next` forever. `debug_token` describes a token
(`set_token(expires_at=..., valid=...)` sets what it says; `revoke_token()` is a password
change: error 190/460), asked with the token itself or with the app's token `APP_ID|APP_SECRET`.
POSTed replies are kept in `posted` for assertions. `send_webhook()` delivers a body to lapakd
signed like Meta signs it.

Citizens are simulated with `messenger_message`, `visitor_post`, `comment`, `ig_dm`,
`ig_comment`, `ig_tag` (polled content) and `whatsapp_*_body` (pushed content).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from lapakd.embedded.media import TINY_JPEG

PAGE_ID = "104812345678901"
PAGE_NAME = "Lapak Aduan Banyumas"
IG_USER_ID = "17841400000000001"
IG_USERNAME = "lapakaduanbms"
PHONE_NUMBER_ID = "106540352242922"
DISPLAY_PHONE = "6281125550100"
WABA_ID = "102290129340398"
TOKEN = "replica-page-token"
APP_SECRET = "replica-app-secret"
APP_ID = "1049385610274651"
APP_NAME = "Lapak Aduan Banyumas desk"
USER_ID = "10229384756102938"
SCOPES = ["pages_show_list", "pages_messaging", "pages_read_engagement",
          "pages_manage_metadata", "instagram_basic", "instagram_manage_messages",
          "whatsapp_business_messaging"]
EXPIRED_MESSAGE = "Error validating access token: Session has expired on Tuesday, 21-Oct-25 " \
    "10:00:00 PDT."
REVOKED_MESSAGE = ("Error validating access token: The session has been invalidated because the "
                   "user changed their password or Facebook has changed the session for "
                   "security reasons.")
VERIFY_TOKEN = "replica-verify-token"

PHOTO = TINY_JPEG  # the replica's stand-in for a citizen's photo


def gtime(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _b64(n: int) -> str:
    return base64.urlsafe_b64encode(str(n).encode()).decode().rstrip("=")


def _unb64(s: str) -> int:
    try:
        return int(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)).decode())
    except ValueError:
        return 0


@dataclass
class Conversation:
    id: str
    platform: str
    user: dict[str, str]
    updated: datetime
    messages: list[dict[str, Any]] = field(default_factory=list)  # newest first


class GraphReplica:
    def __init__(self, page_size: int = 25, host: str = "127.0.0.1") -> None:
        self.page_size = page_size
        self.lock = threading.RLock()
        self.ids = itertools.count(1000)
        self.tokens = {TOKEN}
        issued = int(time.time()) - 86400
        # What debug_token says of each token it knows: expires_at 0 = never (a long-lived
        # page token); a token that is no longer in `tokens` is described as invalid.
        self.token_info: dict[str, dict[str, Any]] = {TOKEN: {
            "issued_at": issued, "expires_at": 0,
            "data_access_expires_at": issued + 90 * 86400}}
        self.invalid_reason = (EXPIRED_MESSAGE, 463)
        self.conversations: dict[str, Conversation] = {}
        self.posts: list[dict[str, Any]] = []  # newest first; each with "comments" (newest first)
        self.ig_media: list[dict[str, Any]] = []
        self.ig_tags: list[dict[str, Any]] = []
        self.media: dict[str, tuple[bytes, str]] = {}
        self.posted: list[dict[str, Any]] = []
        self.requests: list[str] = []  # "GET v21.0/xxx/conversations": paths, never tokens
        self._throttle_left = 0
        self._throttle_code = 32
        self._throttle_minutes = 1
        self._fail_left = 0
        self._fail_html = True
        self._repeat_next = False
        self._stall_left = 0
        self._stall_seconds = 0.0
        self._limit_left = 0
        self._limit_minutes = 1
        self._usage_full_left = 0
        self.server = ThreadingHTTPServer((host, 0), _handler(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> GraphReplica:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> GraphReplica:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- switches -----------------------------------------------------------------------------

    def throttle(self, n: int = 1, code: int = 32, minutes: int = 1) -> None:
        with self.lock:
            self._throttle_left, self._throttle_code, self._throttle_minutes = n, code, minutes

    def expire_token(self) -> None:
        with self.lock:
            self.tokens = set()
            self.invalid_reason = (EXPIRED_MESSAGE, 463)

    def revoke_token(self) -> None:
        """The page admin changed their password: every call fails with 190/460."""
        with self.lock:
            self.tokens = set()
            self.invalid_reason = (REVOKED_MESSAGE, 460)

    def set_token(self, token: str = TOKEN, *, expires_at: datetime | None = None,
                  valid: bool = True) -> None:
        """What debug_token says of `token`: its expiry (None: never) and whether it works."""
        with self.lock:
            info = self.token_info.setdefault(token, {
                "issued_at": int(time.time()), "data_access_expires_at": 0})
            info["expires_at"] = int(expires_at.timestamp()) if expires_at else 0
            if valid:
                self.tokens.add(token)
            else:
                self.tokens.discard(token)

    def renew_token(self, token: str = TOKEN) -> None:
        with self.lock:
            self.tokens = {token}
            self.token_info.setdefault(token, {"issued_at": int(time.time()), "expires_at": 0,
                                               "data_access_expires_at": 0})

    def fail(self, n: int = 1, html: bool = True) -> None:
        with self.lock:
            self._fail_left, self._fail_html = n, html

    def repeat_next(self, on: bool = True) -> None:
        """A server stuck on one cursor: every list answer, whatever `after` it was asked
        for, is the first page with a `paging.next` to the same `after` again."""
        with self.lock:
            self._repeat_next = on

    def stall(self, seconds: float, n: int = 1) -> None:
        """The next n requests wait `seconds` before they are answered (a stuck server)."""
        with self.lock:
            self._stall_left, self._stall_seconds = n, seconds

    def rate_limit(self, n: int = 1, minutes: int = 1) -> None:
        """The next n requests get HTTP 429 (no Graph error body) with the usage headers."""
        with self.lock:
            self._limit_left, self._limit_minutes = n, minutes

    def usage_full(self, n: int = 1, minutes: int = 1) -> None:
        """The next n answers succeed but say the app's usage is at 100%."""
        with self.lock:
            self._usage_full_left, self._limit_minutes = n, minutes

    def _usage_headers(self, percent: int) -> dict[str, str]:
        usage = json.dumps({PAGE_ID: [{
            "type": "pages", "call_count": percent, "total_cputime": 25, "total_time": 25,
            "estimated_time_to_regain_access": self._limit_minutes if percent >= 100 else 0}]})
        return {"x-app-usage": json.dumps({"call_count": percent, "total_cputime": 30,
                                           "total_time": 30}),
                "x-business-use-case-usage": usage}

    # -- citizens (polled content) ------------------------------------------------------------

    def _next_id(self) -> int:
        return next(self.ids)

    def messenger_message(self, psid: str, name: str, text: str, *, photo: bytes | None = None,
                          platform: str = "messenger", when: datetime | None = None) -> str:
        """A citizen writes to the Page (or the IG account); returns the message id (mid)."""
        when = when or datetime.now(UTC)
        with self.lock:
            conv_id = f"t_{psid}" if platform == "messenger" else f"aWdfd_{psid}"
            user = ({"name": name, "email": f"{psid}@facebook.com", "id": psid}
                    if platform == "messenger" else {"username": name, "id": psid})
            conv = self.conversations.setdefault(
                conv_id, Conversation(conv_id, platform, user, when)
            )
            conv.updated = max(conv.updated, when)
            mid = f"m_{base64.urlsafe_b64encode(f'{psid}:{self._next_id()}'.encode()).decode()}"
            own = ({"name": PAGE_NAME, "email": f"{PAGE_ID}@facebook.com", "id": PAGE_ID}
                   if platform == "messenger" else {"username": IG_USERNAME, "id": IG_USER_ID})
            msg: dict[str, Any] = {
                "id": mid, "created_time": gtime(when), "from": user,
                "to": {"data": [own]}, "message": text,
            }
            if photo is not None:
                att_id = str(self._next_id())
                self.media[att_id] = (photo, "image/jpeg")
                msg["attachments"] = {"data": [{
                    "id": att_id, "mime_type": "image/jpeg", "name": f"image-{att_id}",
                    "size": len(photo),
                    "image_data": {"width": 1, "height": 1, "max_width": 1, "max_height": 1,
                                   "url": f"{self.url}/cdn/{att_id}.jpg",
                                   "preview_url": f"{self.url}/cdn/{att_id}.jpg",
                                   "image_type": 1, "render_as_sticker": False},
                }]}
            conv.messages.insert(0, msg)
            return mid

    def visitor_post(self, user_id: str, name: str, text: str,
                     when: datetime | None = None) -> str:
        when = when or datetime.now(UTC)
        with self.lock:
            post_id = f"{PAGE_ID}_{self._next_id()}"
            self.posts.insert(0, {
                "id": post_id, "message": text, "created_time": gtime(when),
                "updated_time": gtime(when), "from": {"name": name, "id": user_id},
                "comments": [],
            })
            return post_id

    def page_post(self, text: str, when: datetime | None = None) -> str:
        return self.visitor_post(PAGE_ID, PAGE_NAME, text, when)

    def comment(self, post_id: str, user_id: str, name: str, text: str,
                when: datetime | None = None) -> str:
        when = when or datetime.now(UTC)
        with self.lock:
            post = next(p for p in self.posts if p["id"] == post_id)
            cid = f"{post_id.split('_')[-1]}_{self._next_id()}"
            post["comments"].insert(0, {
                "id": cid, "message": text, "created_time": gtime(when),
                "from": {"name": name, "id": user_id},
                "permalink_url": f"https://www.facebook.com/{post_id}?comment_id={cid}",
            })
            post["updated_time"] = gtime(when)
            return cid

    def ig_post(self, caption: str, when: datetime | None = None) -> str:
        when = when or datetime.now(UTC)
        with self.lock:
            media_id = f"1789{self._next_id():011d}"
            self.ig_media.insert(0, {
                "id": media_id, "caption": caption, "timestamp": gtime(when),
                "permalink": f"https://www.instagram.com/p/{media_id}/", "comments": [],
                "username": IG_USERNAME, "media_type": "IMAGE",
            })
            return media_id

    def ig_comment(self, media_id: str, user_id: str, username: str, text: str,
                   when: datetime | None = None) -> str:
        when = when or datetime.now(UTC)
        with self.lock:
            media = next(m for m in self.ig_media if m["id"] == media_id)
            cid = f"1790{self._next_id():011d}"
            media["comments"].insert(0, {
                "id": cid, "text": text, "timestamp": gtime(when), "username": username,
                "from": {"id": user_id, "username": username},
            })
            return cid

    def ig_tag(self, username: str, caption: str, when: datetime | None = None) -> str:
        when = when or datetime.now(UTC)
        with self.lock:
            media_id = f"1791{self._next_id():011d}"
            self.media[media_id] = (PHOTO, "image/jpeg")
            self.ig_tags.insert(0, {
                "id": media_id, "caption": caption, "timestamp": gtime(when),
                "username": username, "media_type": "IMAGE",
                "media_url": f"{self.url}/cdn/{media_id}.jpg",
                "permalink": f"https://www.instagram.com/p/{media_id}/",
            })
            return media_id

    def ig_dm(self, igsid: str, username: str, text: str, **kw: Any) -> str:
        return self.messenger_message(igsid, username, text, platform="instagram", **kw)

    def add_media(self, data: bytes, mime: str = "image/jpeg") -> str:
        """Media a WhatsApp user sent: served at GET /{media-id} → url → bytes."""
        with self.lock:
            media_id = str(9_000_000_000 + self._next_id())
            self.media[media_id] = (data, mime)
            return media_id

    def seed(self) -> None:
        """Realistic complaints from Banyumas citizens across the polled products."""
        now = datetime.now(UTC)
        self.messenger_message("7301234567890123", "Siti Rahayu",
                               "Selamat siang, lampu PJU di Jl. Gatot Subroto Purwokerto "
                               "mati sudah seminggu.", when=now - timedelta(minutes=50))
        self.messenger_message("7301234567890123", "Siti Rahayu",
                               "Tepatnya di depan Alun-alun, gelap sekali malam hari.",
                               when=now - timedelta(minutes=49))
        post = self.page_post("Sampaikan aduan Anda di kolom komentar.", now - timedelta(days=1))
        self.comment(post, "7309876543210987", "Agus Wibowo",
                     "Jalan rusak dan berlubang di Desa Karangsalam, Baturraden, mohon "
                     "segera diperbaiki.", now - timedelta(hours=3))
        self.visitor_post("7305555555555555", "Dwi Lestari",
                          "Sampah menumpuk di TPS Pasar Wage sudah 3 hari tidak diangkut.",
                          now - timedelta(hours=2))
        media = self.ig_post("Layanan aduan warga Banyumas", now - timedelta(days=2))
        self.ig_comment(media, "17850000000000001", "warga_sokaraja",
                        "Ada pungli di parkiran RSUD, tolong ditindak.", now - timedelta(hours=1))

    # -- the API ------------------------------------------------------------------------------

    def _page(self, items: list[Any], path: str, query: dict[str, str]) -> dict[str, Any]:
        limit = int(query.get("limit") or self.page_size)
        start = _unb64(query["after"]) if query.get("after") else 0
        if self._repeat_next:
            chunk = items[:limit]
            nq = {k: v for k, v in query.items() if k != "after"}
            nq.update({"limit": str(limit), "after": _b64(len(chunk))})
            return {"data": chunk, "paging": {
                "cursors": {"before": _b64(0), "after": _b64(len(chunk))},
                "next": f"{self.url}/{path}?{urlencode(nq)}"}}
        chunk = items[start:start + limit]
        doc: dict[str, Any] = {"data": chunk}
        if items:
            doc["paging"] = {"cursors": {"before": _b64(start),
                                         "after": _b64(start + len(chunk))}}
            if start + limit < len(items):
                nq = {k: v for k, v in query.items() if k != "after"}
                nq.update({"limit": str(limit), "after": _b64(start + len(chunk))})
                doc["paging"]["next"] = f"{self.url}/{path}?{urlencode(nq)}"
        return doc

    def handle(self, method: str, path: str, query: dict[str, str], form: dict[str, Any],
               headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        with self.lock:
            stall = self._stall_seconds if self._stall_left > 0 else 0.0
            self._stall_left = max(0, self._stall_left - 1)
        if stall:
            time.sleep(stall)  # outside the lock: other clients are answered meanwhile
        with self.lock:
            self.requests.append(f"{method} {path}")
            if self._limit_left > 0:
                self._limit_left -= 1
                return 429, {**self._usage_headers(100), "Content-Type": "text/html"}, \
                    b"<html>429 Too Many Requests</html>"
            if self._fail_left > 0:
                self._fail_left -= 1
                if self._fail_html:
                    return 502, {"Content-Type": "text/html"}, b"<html>502 Bad Gateway</html>"
                return 500, {}, _err("An unexpected error has occurred. Please retry your "
                                     "request later.", 2, extra={"is_transient": True})
            if path.startswith("cdn/") or path.startswith("whatsapp_business/attachments"):
                return self._bytes(path, query, headers)
            token = query.get("access_token") or form.get("access_token") or ""
            bearer = headers.get("authorization", "")
            if bearer.lower().startswith("bearer "):
                token = token or bearer[7:]
            if path.split("/")[-1] == "debug_token" and (
                    token in self.tokens or token == f"{APP_ID}|{APP_SECRET}"):
                return 200, {}, json.dumps(self._debug_token(query.get("input_token", ""))
                                           ).encode()
            if token not in self.tokens:
                message, subcode = self.invalid_reason
                return 400, {"WWW-Authenticate": 'OAuth "Facebook Platform" "invalid_token"'}, \
                    _err(message, 190, subcode=subcode)
            if self._throttle_left > 0:
                self._throttle_left -= 1
                usage = json.dumps({PAGE_ID: [{
                    "type": "pages", "call_count": 100, "total_cputime": 25,
                    "total_time": 25,
                    "estimated_time_to_regain_access": self._throttle_minutes}]})
                return 400, {
                    "x-app-usage": json.dumps({"call_count": 100, "total_cputime": 30,
                                               "total_time": 30}),
                    "x-business-use-case-usage": usage,
                }, _err("(#32) Page request limit reached", self._throttle_code)
            parts = path.split("/")
            if not parts or not parts[0].startswith("v"):
                return 400, {}, _err("Unknown path components: /" + path, 2500)
            rest = parts[1:]
            status, doc = (self._post(rest, form) if method == "POST"
                           else self._get(rest, query, path))
            if self._usage_full_left > 0 and status == 200:
                self._usage_full_left -= 1
                return status, self._usage_headers(100), json.dumps(doc).encode()
            usage = json.dumps({"call_count": 5, "total_cputime": 1, "total_time": 2})
            return status, {"x-app-usage": usage}, json.dumps(doc).encode()

    def _debug_token(self, input_token: str) -> dict[str, Any]:
        """The `debug_token` answer: `{"data": {...}}`, with `error` and `is_valid: false` for
        a token that does not work (any more)."""
        info = self.token_info.get(input_token)
        if info is None:
            return {"data": {"error": {
                "code": 190, "message": "Invalid OAuth access token - Cannot parse access token"},
                "is_valid": False, "scopes": []}}
        data: dict[str, Any] = {
            "app_id": APP_ID, "type": "PAGE", "application": APP_NAME,
            "data_access_expires_at": info["data_access_expires_at"],
            "expires_at": info["expires_at"], "is_valid": True,
            "issued_at": info["issued_at"], "profile_id": PAGE_ID, "scopes": list(SCOPES),
            "user_id": USER_ID}
        if input_token not in self.tokens:
            message, subcode = self.invalid_reason
            data.update(is_valid=False, scopes=[],
                        error={"code": 190, "message": message, "subcode": subcode})
        return {"data": data}

    def _get(self, rest: list[str], query: dict[str, str], path: str) -> tuple[int, Any]:
        if len(rest) == 2 and rest[1] == "conversations":
            platform = query.get("platform", "messenger")
            convs = sorted((c for c in self.conversations.values() if c.platform == platform),
                           key=lambda c: c.updated, reverse=True)
            items = [{"id": c.id, "updated_time": gtime(c.updated),
                      "link": f"/{PAGE_ID}/inbox/{c.id}/"} for c in convs]
            return 200, self._page(items, path, query)
        if len(rest) == 2 and rest[1] == "messages" and rest[0] in self.conversations:
            return 200, self._page(self.conversations[rest[0]].messages, path, query)
        if rest == [PAGE_ID, "feed"]:
            items = [{k: v for k, v in p.items() if k != "comments"} for p in self.posts]
            return 200, self._page(items, path, query)
        if len(rest) == 2 and rest[1] == "comments":
            for p in self.posts:
                if p["id"] == rest[0]:
                    return 200, self._page(p["comments"], path, query)
            for m in self.ig_media:
                if m["id"] == rest[0]:
                    return 200, self._page(m["comments"], path, query)
        if rest == [IG_USER_ID, "media"]:
            items = [{**{k: v for k, v in m.items() if k != "comments"},
                      "comments_count": len(m["comments"])} for m in self.ig_media]
            return 200, self._page(items, path, query)
        if rest == [IG_USER_ID, "tags"]:
            return 200, self._page(self.ig_tags, path, query)
        if len(rest) == 1 and rest[0] in self.media:
            data, mime = self.media[rest[0]]
            return 200, {
                "messaging_product": "whatsapp",
                "url": f"{self.url}/whatsapp_business/attachments/?mid={rest[0]}&ext=1&hash=x",
                "mime_type": mime, "sha256": hashlib.sha256(data).hexdigest(),
                "file_size": len(data), "id": rest[0],
            }
        return 400, json.loads(_err(
            f"Unsupported get request. Object with ID '{rest[0] if rest else ''}' does not "
            "exist, cannot be loaded due to missing permissions, or does not support this "
            "operation.", 100, subcode=33))

    def _post(self, rest: list[str], form: dict[str, Any]) -> tuple[int, Any]:
        record = {"path": "/".join(rest), **{k: v for k, v in form.items()
                                              if k != "access_token"}}
        if rest == [PHONE_NUMBER_ID, "messages"]:
            self.posted.append(record)
            wamid = f"wamid.{base64.b64encode(str(self._next_id()).encode()).decode()}"
            to = form.get("to", "")
            return 200, {"messaging_product": "whatsapp",
                         "contacts": [{"input": to, "wa_id": to}],
                         "messages": [{"id": wamid}]}
        if rest in ([PAGE_ID, "messages"], [IG_USER_ID, "messages"]):
            self.posted.append(record)
            recipient = (form.get("recipient") or {}).get("id")
            return 200, {"recipient_id": recipient,
                         "message_id": f"m_reply{self._next_id()}"}
        if len(rest) == 2 and rest[1] in ("comments", "replies", "mentions"):
            self.posted.append(record)
            return 200, {"id": f"{rest[0].split('_')[-1]}_{self._next_id()}"}
        return 400, json.loads(_err("Unsupported post request.", 100, subcode=33))

    def _bytes(self, path: str, query: dict[str, str],
               headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        if path.startswith("whatsapp_business"):
            if headers.get("authorization", "")[7:] not in self.tokens:
                return 401, {"Content-Type": "text/plain"}, b"Unauthorized"
            key = query.get("mid", "")
        else:
            key = path.rsplit("/", 1)[-1].split(".")[0]
        if key not in self.media:
            return 404, {"Content-Type": "text/plain"}, b"Not Found"
        data, mime = self.media[key]
        return 200, {"Content-Type": mime}, data

    # -- pushed content: webhook bodies as Meta sends them ------------------------------------

    def _wa_body(self, wa_id: str, name: str, message: dict[str, Any]) -> dict[str, Any]:
        return {"object": "whatsapp_business_account", "entry": [{"id": WABA_ID, "changes": [{
            "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": DISPLAY_PHONE,
                             "phone_number_id": PHONE_NUMBER_ID},
                "contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
                "messages": [message],
            },
            "field": "messages",
        }]}]}

    def wamid(self) -> str:
        raw = f"HBgN{self._next_id():020d}FQIAEhgg"
        return f"wamid.{base64.b64encode(raw.encode()).decode()}"

    def whatsapp_text_body(self, wa_id: str, name: str, text: str, *, wamid: str | None = None,
                           when: datetime | None = None,
                           context: dict[str, Any] | None = None) -> dict[str, Any]:
        msg: dict[str, Any] = {"from": wa_id, "id": wamid or self.wamid(),
                               "timestamp": str(int((when or datetime.now(UTC)).timestamp())),
                               "text": {"body": text}, "type": "text"}
        if context:
            msg["context"] = context
        return self._wa_body(wa_id, name, msg)

    def whatsapp_media_body(self, wa_id: str, name: str, data: bytes, *, mime: str = "image/jpeg",
                            caption: str = "", kind: str = "image",
                            filename: str | None = None) -> dict[str, Any]:
        media_id = self.add_media(data, mime)
        media: dict[str, Any] = {"mime_type": mime, "sha256": base64.b64encode(
            hashlib.sha256(data).digest()).decode(), "id": media_id}
        if caption:
            media["caption"] = caption
        if filename:
            media["filename"] = filename
        return self._wa_body(wa_id, name, {
            "from": wa_id, "id": self.wamid(), "timestamp": str(int(datetime.now(UTC).timestamp())),
            "type": kind, kind: media})

    def whatsapp_location_body(self, wa_id: str, name: str, lat: float, lon: float,
                               place: str = "", address: str = "") -> dict[str, Any]:
        loc: dict[str, Any] = {"latitude": lat, "longitude": lon}
        if place:
            loc.update(name=place, address=address)
        return self._wa_body(wa_id, name, {
            "from": wa_id, "id": self.wamid(), "timestamp": str(int(datetime.now(UTC).timestamp())),
            "location": loc, "type": "location"})

    def whatsapp_status_body(self, wamid: str, wa_id: str, status: str = "delivered"
                             ) -> dict[str, Any]:
        return {"object": "whatsapp_business_account", "entry": [{"id": WABA_ID, "changes": [{
            "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": DISPLAY_PHONE,
                             "phone_number_id": PHONE_NUMBER_ID},
                "statuses": [{"id": wamid, "status": status,
                              "timestamp": str(int(datetime.now(UTC).timestamp())),
                              "recipient_id": wa_id,
                              "conversation": {"id": "7270432eae37498234f4444b35ffc5",
                                               "origin": {"type": "service"}},
                              "pricing": {"billable": True, "pricing_model": "CBP",
                                          "category": "service"}}],
            },
            "field": "messages",
        }]}]}

    def messenger_webhook_body(self, psid: str, mid: str, text: str, *,
                               platform: str = "messenger",
                               when: datetime | None = None) -> dict[str, Any]:
        """A Messenger (`object: page`) or Instagram (`object: instagram`) message event."""
        ms = int((when or datetime.now(UTC)).timestamp() * 1000)
        own = PAGE_ID if platform == "messenger" else IG_USER_ID
        return {"object": "page" if platform == "messenger" else "instagram", "entry": [{
            "id": own, "time": ms, "messaging": [{
                "sender": {"id": psid}, "recipient": {"id": own}, "timestamp": ms,
                "message": {"mid": mid, "text": text},
            }],
        }]}


def merge(*bodies: dict[str, Any]) -> dict[str, Any]:
    """One webhook body holding the entries of several (Meta batches deliveries)."""
    out = {"object": bodies[0]["object"], "entry": []}
    for b in bodies:
        out["entry"].extend(b["entry"])
    return out


def send_webhook(url: str, body: dict[str, Any] | bytes, app_secret: str = APP_SECRET, *,
                 sign: bool = True, signature_value: str | None = None,
                 timeout: float = 30) -> tuple[int, bytes]:
    """POST a webhook body to lapakd as Meta does: raw JSON, X-Hub-Signature-256 over it."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "facebookexternalua"}
    if sign:
        headers["X-Hub-Signature-256"] = signature_value or signature(app_secret, raw)
    req = urllib.request.Request(url, data=raw, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _err(message: str, code: int, subcode: int | None = None,
         extra: dict[str, Any] | None = None) -> bytes:
    err: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code}
    if subcode is not None:
        err["error_subcode"] = subcode
    err.update(extra or {})
    err["fbtrace_id"] = base64.b64encode(hashlib.sha256(message.encode()).digest()[:9]).decode()
    return json.dumps({"error": err}).encode()


def _handler(replica: GraphReplica) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _serve(self, method: str) -> None:
            parts = urlsplit(self.path)
            query = dict(parse_qsl(parts.query, keep_blank_values=True))
            form: dict[str, Any] = {}
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                raw = self.rfile.read(length)
                ctype = self.headers.get("Content-Type", "")
                if "json" in ctype:
                    form = json.loads(raw or b"{}")
                else:
                    for k, v in parse_qsl(raw.decode(), keep_blank_values=True):
                        try:
                            form[k] = json.loads(v) if v[:1] in "{[" else v
                        except ValueError:
                            form[k] = v
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, extra, body = replica.handle(
                method, parts.path.lstrip("/"), query, form, headers
            )
            self.send_response(status)
            extra = {"Content-Type": "application/json; charset=UTF-8", **extra}
            for k, v in extra.items():
                self.send_header(k, v)
            self.send_header("facebook-api-version", "v21.0")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

    return Handler
