"""A local replica of the X API v2 endpoints lapakd uses, for tests and `lapakd demo`.

A real HTTP server on loopback (``ThreadingHTTPServer``) that answers like api.twitter.com:

* ``GET  /2/users/:id/mentions``  — newest first, ``since_id`` / ``until_id`` / ``max_results``
  (5..100, default 10) / ``pagination_token``; ``tweet.fields``, ``expansions`` (author_id,
  attachments.media_keys, referenced_tweets.id, geo.place_id), ``user.fields``, ``media.fields``,
  ``place.fields``; ``meta`` with
  result_count, newest_id, oldest_id, next_token.
* ``GET  /2/dm_events`` and ``GET /2/dm_conversations/with/:participant_id/dm_events`` — newest
  first, ``max_results`` (1..100, default 100), ``pagination_token``, ``event_types``,
  ``dm_event.fields``, ``expansions`` (sender_id, attachments.media_keys); user context only.
* ``POST /2/tweets`` (``reply.in_reply_to_tweet_id``) — 201 ``{"data": {"id", "text",
  "edit_history_tweet_ids"}}``; the same text twice from one account is refused with X's 403
  "duplicate content" problem.
* ``POST /2/dm_conversations/with/:participant_id/messages`` — 201 ``{"data":
  {"dm_conversation_id", "dm_event_id"}}``.
* ``GET  /media/<key>.jpg`` — the photo bytes (X serves them from pbs.twimg.com).

Every API answer carries ``x-rate-limit-limit / -remaining / -reset`` (epoch seconds) per
endpoint window; when a window is used up the answer is 429. Errors use X's bodies: v2 problems
(``{"title": "Too Many Requests", "type": "about:blank", "status": 429, "detail": ...}``) or,
with ``style="v1"``, the old ``{"errors": [{"code": 88, "message": "Rate limit exceeded"}]}``.
The ``Authorization`` header is checked (Bearer token or OAuth 1.0a consumer key + token); DM
endpoints and posting need user context (OAuth 1.0a), as on X.

Switches for tests: ``fail(...)`` (429 both styles, 401, 5xx, for N requests),
``serve_raw(...)`` (a malformed or huge body), ``stall(...)`` (a slow answer),
``repeat_token(...)`` (the same ``next_token`` forever), ``revoke_tokens()`` /
``restore_tokens()``.
``posted`` records every POST (accepted or refused); ``requests`` every request.
"""

from __future__ import annotations

import base64
import json
import random
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

DESK_USER_ID = "1650000000000000001"
DESK_USERNAME = "lapakaduanbms"

BEARER = "replica-bearer-AAAAAAAAAAAAAAAAAAAAAL4pK"
CONSUMER_KEY = "replica-consumer-key"
CONSUMER_SECRET = "replica-consumer-secret"
ACCESS_TOKEN = f"{DESK_USER_ID}-replica-access-token"
ACCESS_TOKEN_SECRET = "replica-access-token-secret"

# Per-endpoint limits per 15-minute window, as documented for user context (rate-limits.mdx).
DEFAULT_LIMITS = {
    "mentions": 300,
    "dm_events": 15,
    "dm_lookup": 300,
    "create_tweet": 200,
    "create_dm": 200,
}
# Limits a test never reaches: for tests about something other than the rate limits.
NO_LIMITS = {endpoint: 100_000 for endpoint in DEFAULT_LIMITS}


# Realistic complaints from Banyumas, as citizens write them.
SAMPLE_MENTIONS = [
    "Min, jalan rusak parah di Jl. Raya Sokaraja–Banyumas km 3, lubangnya dalam, minggu ini "
    "sudah 2 motor jatuh. Mohon segera diperbaiki 🙏",
    "Sampah di TPS Pasar Wage Purwokerto sudah seminggu tidak diangkut, baunya sampai ke "
    "rumah warga. Tolong ditindaklanjuti @DLH_Banyumas",
    "Lapor, ada pungli di parkir RSUD Banyumas, ditarik 5rb padahal karcisnya 2rb. Tiap hari "
    "begitu.",
    "Jalan berlubang di depan SD Negeri 1 Kedungwuluh, anak-anak sekolah lewat situ tiap pagi.",
    "Aspal Jl. Kaliputih Desa Karangsalam mengelupas setelah hujan kemarin, tolong dicek.",
    "Tumpukan sampah di pinggir Kali Kranji dekat jembatan Pasar Manis, banjir kalau hujan.",
]
SAMPLE_PEOPLE = [
    ("1700000000000000011", "sitiaminah_pwt", "Siti Aminah"),
    ("1700000000000000012", "budi.santoso88", "Budi Santoso"),
    ("1700000000000000013", "warga_sokaraja", "Warga Sokaraja"),
    ("1700000000000000014", "rina_kedungwuluh", "Rina Lestari"),
    ("1700000000000000015", "agus_karangsalam", "Agus Prasetyo"),
]

_FIRST_ID = 1_850_000_000_000_000_000


def problem(status: int, title: str, detail: str, type_: str = "about:blank") -> dict[str, Any]:
    return {"title": title, "type": type_, "status": status, "detail": detail}


RATE_LIMIT_V2 = problem(429, "Too Many Requests", "Too Many Requests")
RATE_LIMIT_V1 = {"errors": [{"code": 88, "message": "Rate limit exceeded"}]}
UNAUTHORIZED = problem(401, "Unauthorized", "Unauthorized")
UNSUPPORTED_AUTH = problem(
    403, "Unsupported Authentication",
    "Authenticating with OAuth 2.0 Application-Only is forbidden for this endpoint.  Supported "
    "authentication types are [OAuth 1.0a User Context, OAuth 2.0 User Context].",
    "https://api.twitter.com/2/problems/unsupported-authentication",
)
DUPLICATE = problem(
    403, "Forbidden", "You are not allowed to create a Tweet with duplicate content."
)


@dataclass
class Fault:
    endpoint: str  # an endpoint key (see DEFAULT_LIMITS) or "*"
    status: int
    times: int = 1
    style: str = "v2"  # 429 body: "v2" problem or "v1" {"errors": [{"code": 88}]}
    reset_in: float = 2.0  # 429: seconds until x-rate-limit-reset
    body: bytes | None = None  # serve these bytes verbatim (malformed payloads)
    content_type: str = "application/json; charset=utf-8"
    after: int = 0  # let this many matching requests through first
    delay: float = 0.0  # stall this long, then answer normally (client timeouts)


@dataclass
class _Window:
    limit: int
    reset: float
    remaining: int


@dataclass
class XReplica:
    """The replica's state; `start()` serves it on 127.0.0.1 (random free port)."""

    limits: dict[str, int] = field(default_factory=dict)
    window_seconds: float = 900.0
    host: str = "127.0.0.1"
    desk_id: str = DESK_USER_ID
    desk_username: str = DESK_USERNAME

    def __post_init__(self) -> None:
        self.limits = {**DEFAULT_LIMITS, **self.limits}
        self.lock = threading.RLock()
        self.users: dict[str, dict[str, Any]] = {
            self.desk_id: {"id": self.desk_id, "name": "Lapak Aduan Banyumas",
                           "username": self.desk_username},
        }
        for uid, username, name in SAMPLE_PEOPLE:
            self.users[uid] = {"id": uid, "name": name, "username": username}
        self.tweets: dict[str, dict[str, Any]] = {}
        self.media: dict[str, dict[str, Any]] = {}
        self.places: dict[str, dict[str, Any]] = {}
        self.dm_events: dict[str, dict[str, Any]] = {}
        self.faults: list[Fault] = []
        self.posted: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self.tokens_valid = True
        self.stuck_tokens: set[str] = set()  # endpoints stuck on one next_token
        self._windows: dict[str, _Window] = {}
        self._next_id = _FIRST_ID
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> XReplica:
        replica = self

        class Handler(_Handler):
            pass

        Handler.replica = replica
        self._server = _Server((self.host, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="x-replica", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> XReplica:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "replica not started"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def channel_config(self, **extra: Any) -> dict[str, Any]:
        """A `[channels.twitter]` section that reaches this replica."""
        return {
            "enabled": True, "user_id": self.desk_id, "username": self.desk_username,
            "bearer_token": BEARER, "consumer_key": CONSUMER_KEY,
            "consumer_secret": CONSUMER_SECRET, "access_token": ACCESS_TOKEN,
            "access_token_secret": ACCESS_TOKEN_SECRET, "api_url": self.url,
            "poll_seconds": 1, **extra,
        }

    # -- seeding ----------------------------------------------------------------------------

    def _new_id(self) -> str:
        with self.lock:
            self._next_id += random.randint(1000, 9_000_000)
            return str(self._next_id)

    def add_user(self, username: str, name: str, user_id: str | None = None) -> str:
        with self.lock:
            for u in self.users.values():
                if u["username"] == username:
                    return u["id"]
            uid = user_id or str(1_700_000_000_000_000_100 + len(self.users))
            self.users[uid] = {"id": uid, "name": name, "username": username}
            return uid

    def _user_for(self, author: str | None) -> str:
        if author is None:
            return SAMPLE_PEOPLE[0][0]
        if author in self.users:
            return author
        for u in self.users.values():
            if u["username"] == author.lstrip("@"):
                return u["id"]
        return self.add_user(author.lstrip("@"), author.lstrip("@").replace("_", " ").title())

    def _add_photo(self, data: bytes) -> str:
        key = f"3_{self._new_id()}"
        self.media[key] = {
            "media_key": key, "type": "photo", "width": 1, "height": 1,
            "url": f"{{base}}/media/{key}.jpg", "_data": data,
        }
        return key

    def add_mention(
        self,
        text: str,
        author: str | None = None,
        *,
        photos: list[bytes] = (),  # type: ignore[assignment]
        retweet_of: str | None = None,
        created_at: datetime | None = None,
        coordinates: tuple[float, float] | None = None,
        place: dict[str, Any] | None = None,
    ) -> str:
        """A public post mentioning the desk (`@lapakaduanbms` is prefixed when missing).

        `coordinates` (lat, lon) tag an exact point (`geo.coordinates`, GeoJSON [lon, lat]);
        `place` ({"id", "full_name", "place_type", "bbox": [w, s, e, n]}) a place."""
        with self.lock:
            author_id = self._user_for(author)
            tid = self._new_id()
            handle = f"@{self.desk_username}"
            if handle.lower() not in text.lower():
                text = f"{handle} {text}"
            tweet: dict[str, Any] = {
                "id": tid, "text": text, "edit_history_tweet_ids": [tid],
                "author_id": author_id, "conversation_id": tid,
                "created_at": _ts(created_at or datetime.now(UTC)), "lang": "in",
                "_mentions": [self.desk_id],
            }
            if retweet_of is not None:
                orig = self.tweets[retweet_of]
                orig_user = self.users[orig["author_id"]]["username"]
                tweet["text"] = f"RT @{orig_user}: {orig['text']}"[:280]
                tweet["referenced_tweets"] = [{"type": "retweeted", "id": retweet_of}]
                tweet["conversation_id"] = orig["conversation_id"]
            if coordinates is not None or place is not None:
                geo: dict[str, Any] = {}
                if coordinates is not None:
                    geo["coordinates"] = {"type": "Point",
                                          "coordinates": [coordinates[1], coordinates[0]]}
                if place is not None:
                    self.places[place["id"]] = {
                        "id": place["id"], "full_name": place.get("full_name", ""),
                        "name": place.get("full_name", ""), "country": "Indonesia",
                        "country_code": "ID", "place_type": place.get("place_type", "poi"),
                        "geo": {"type": "Feature", "bbox": place["bbox"], "properties": {}},
                    }
                    geo["place_id"] = place["id"]
                tweet["geo"] = geo
            if photos:
                keys = [self._add_photo(p) for p in photos]
                tweet["attachments"] = {"media_keys": keys}
                tweet["text"] += f" https://t.co/{tid[-10:]}"
            self.tweets[tid] = tweet
            return tid

    def add_dm(
        self,
        text: str,
        sender: str | None = None,
        *,
        photos: list[bytes] = (),  # type: ignore[assignment]
        created_at: datetime | None = None,
    ) -> str:
        """A direct message to the desk; the 1:1 conversation id is `<low id>-<high id>`."""
        with self.lock:
            sender_id = self._user_for(sender)
            eid = self._new_id()
            a, b = sorted((sender_id, self.desk_id), key=int)
            event: dict[str, Any] = {
                "id": eid, "event_type": "MessageCreate", "text": text, "sender_id": sender_id,
                "dm_conversation_id": f"{a}-{b}",
                "created_at": _ts(created_at or datetime.now(UTC)),
            }
            if photos:
                event["attachments"] = {"media_keys": [self._add_photo(p) for p in photos]}
            self.dm_events[eid] = event
            return eid

    def seed_sample(self) -> list[str]:
        """A handful of realistic mentions (the demo and smoke tests)."""
        ids = []
        for i, text in enumerate(SAMPLE_MENTIONS):
            ids.append(self.add_mention(text, SAMPLE_PEOPLE[i % len(SAMPLE_PEOPLE)][0]))
        return ids

    def seed_many(self, count: int, seed: int = 7) -> list[str]:
        """`count` mentions from many citizens (load and crash tests)."""
        rng = random.Random(seed)
        ids = []
        for i in range(count):
            base = rng.choice(SAMPLE_MENTIONS)
            who = self.add_user(f"warga{i:04d}_bms", f"Warga {i}")
            ids.append(self.add_mention(f"{base} (laporan #{i})", who))
        return ids

    # -- switches ---------------------------------------------------------------------------

    def fail(self, endpoint: str = "*", status: int = 503, times: int = 1, *,
             style: str = "v2", reset_in: float = 2.0, after: int = 0) -> None:
        """The next `times` requests to `endpoint` (after `after` good ones) fail."""
        with self.lock:
            self.faults.append(Fault(endpoint, status, times, style, reset_in, after=after))

    def stall(self, endpoint: str, seconds: float, times: int = 1) -> None:
        """The next `times` requests to `endpoint` wait `seconds` before answering."""
        with self.lock:
            self.faults.append(Fault(endpoint, 200, times, delay=seconds))

    def serve_raw(self, endpoint: str, body: bytes, *, status: int = 200, times: int = 1,
                  content_type: str = "application/json; charset=utf-8") -> None:
        with self.lock:
            self.faults.append(Fault(endpoint, status, times, body=body,
                                     content_type=content_type))

    def repeat_token(self, endpoint: str = "mentions", on: bool = True) -> None:
        """A server stuck on one `next_token`: every page of `endpoint`, whatever token it
        was asked for, is the first page again with the same `next_token`."""
        with self.lock:
            (self.stuck_tokens.add if on else self.stuck_tokens.discard)(endpoint)

    def revoke_tokens(self) -> None:
        self.tokens_valid = False

    def restore_tokens(self) -> None:
        self.tokens_valid = True

    # -- views for assertions ---------------------------------------------------------------

    def replies(self) -> list[dict[str, Any]]:
        """Tweets the desk posted (accepted)."""
        with self.lock:
            return [t for t in self.tweets.values() if t["author_id"] == self.desk_id]

    def sent_dms(self) -> list[dict[str, Any]]:
        with self.lock:
            return [e for e in self.dm_events.values() if e.get("sender_id") == self.desk_id]

    # -- request handling (called from the server threads) ----------------------------------

    def _take_fault(self, endpoint: str) -> Fault | None:
        with self.lock:
            for f in self.faults:
                if f.endpoint in (endpoint, "*") and f.times > 0:
                    if f.after > 0:
                        f.after -= 1
                        return None
                    f.times -= 1
                    if f.times == 0:
                        self.faults.remove(f)
                    return f
        return None

    def _window(self, endpoint: str) -> _Window:
        now = time.time()
        w = self._windows.get(endpoint)
        if w is None or now >= w.reset:
            limit = self.limits.get(endpoint, 900)
            w = _Window(limit, float(int(now + self.window_seconds) + 1), limit)
            self._windows[endpoint] = w
        return w


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up early (a size cap, a SIGKILLed daemon) is not an error here.
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _ts(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _token(boundary: str) -> str:
    return base64.b32encode(f"p:{boundary}".encode()).decode().lower().rstrip("=")


def _untoken(token: str) -> str | None:
    try:
        raw = base64.b32decode(token.upper() + "=" * (-len(token) % 8)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    return raw[2:] if raw.startswith("p:") and raw[2:].isdigit() else None


def _invalid(param: str, value: str, message: str) -> dict[str, Any]:
    return {
        "errors": [{"parameters": {param: [value]}, "message": message}],
        "title": "Invalid Request",
        "detail": "One or more parameters to your request was invalid.",
        "type": "https://api.twitter.com/2/problems/invalid-request",
    }


class _Reply(Exception):
    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self.status, self.body, self.headers = status, body, headers or {}


class _Handler(BaseHTTPRequestHandler):
    replica: XReplica
    protocol_version = "HTTP/1.1"
    server_version = "tsa_b"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    # -- plumbing ---------------------------------------------------------------------------

    def _dispatch(self, method: str) -> None:
        r = self.replica
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        route = self._route(method, path)
        auth = self._auth_kind()
        with r.lock:
            r.requests.append({"method": method, "path": path, "query": query, "auth": auth,
                               "endpoint": route[0] if route else None})
        if method == "GET" and path.startswith("/media/"):
            return self._media(path)
        if route is None:
            return self._send(404, problem(404, "Not Found Error", f"{path} is not served"))
        endpoint, handler, args = route
        self.route_endpoint = endpoint
        headers: dict[str, str] = {}
        try:
            if auth is None or not r.tokens_valid:
                raise _Reply(401, UNAUTHORIZED)
            fault = r._take_fault(endpoint)
            if fault is not None and fault.delay:
                time.sleep(fault.delay)
                fault = None
            with r.lock:
                w = r._window(endpoint)
                if fault is None and w.remaining <= 0:
                    raise _Reply(429, RATE_LIMIT_V2, self._rl_headers(w))
                w.remaining = max(0, w.remaining - 1)
                headers = self._rl_headers(w)
            if fault is not None:
                self._fault(fault, w, headers)
            status, payload = handler(method, query, body, auth, *args)
        except _Reply as reply:
            status, payload = reply.status, reply.body
            headers = {**headers, **reply.headers}
        self._send(status, payload, headers)

    def _fault(self, fault: Fault, w: _Window, headers: dict[str, str]) -> None:
        if fault.body is not None:
            raise _Reply(fault.status, fault.body, {**headers, "content-type": fault.content_type})
        if fault.status == 429:
            reset = int(time.time() + fault.reset_in) + (1 if fault.reset_in % 1 else 0)
            rl = {"x-rate-limit-limit": str(w.limit), "x-rate-limit-remaining": "0",
                  "x-rate-limit-reset": str(reset)}
            raise _Reply(429, RATE_LIMIT_V1 if fault.style == "v1" else RATE_LIMIT_V2, rl)
        if fault.status == 401:
            raise _Reply(401, UNAUTHORIZED)
        titles = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
                  504: "Gateway Timeout"}
        title = titles.get(fault.status, "Error")
        raise _Reply(fault.status, problem(fault.status, title, title), headers)

    @staticmethod
    def _rl_headers(w: _Window) -> dict[str, str]:
        return {"x-rate-limit-limit": str(w.limit), "x-rate-limit-remaining": str(w.remaining),
                "x-rate-limit-reset": str(int(w.reset))}

    def _auth_kind(self) -> str | None:
        """"app" (valid Bearer), "user" (OAuth 1.0a with the desk's keys), or None."""
        value = self.headers.get("Authorization") or ""
        if value.startswith("Bearer "):
            return "app" if value[7:] == BEARER else None
        if value.startswith("OAuth "):
            fields = dict(re.findall(r'(\w+)="([^"]*)"', value))
            ok = (unquote(fields.get("oauth_consumer_key", "")) == CONSUMER_KEY
                  and unquote(fields.get("oauth_token", "")) == ACCESS_TOKEN
                  and fields.get("oauth_signature"))
            return "user" if ok else None
        return None

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        headers = dict(headers or {})
        ctype = headers.pop("content-type", "application/json; charset=utf-8")
        data = payload if isinstance(payload, bytes) else json.dumps(
            payload, ensure_ascii=False).encode()
        reason = {200: "OK", 201: "Created", 400: "Bad Request", 401: "Unauthorized",
                  403: "Forbidden", 404: "Not Found", 429: "Too Many Requests"}
        self.send_response(status, reason.get(status))
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(data)))
        self.send_header("api-version", "2.52")
        self.send_header("cache-control", "no-cache, no-store, max-age=0")
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _media(self, path: str) -> None:
        key = path.rsplit("/", 1)[-1].removesuffix(".jpg")
        m = self.replica.media.get(key)
        if m is None:
            self._send(404, b"", {"content-type": "text/html"})
            return
        self._send(200, m["_data"], {"content-type": "image/jpeg"})

    # -- routes -----------------------------------------------------------------------------

    def _route(self, method: str, path: str) -> tuple[str, Any, tuple] | None:
        if method == "GET":
            m = re.fullmatch(r"/2/users/(\d+)/mentions", path)
            if m:
                return "mentions", self._mentions, (m.group(1),)
            if path == "/2/dm_events":
                return "dm_events", self._dm_events, (None,)
            m = re.fullmatch(r"/2/dm_conversations/with/(\d+)/dm_events", path)
            if m:
                return "dm_lookup", self._dm_events, (m.group(1),)
        if method == "POST":
            if path == "/2/tweets":
                return "create_tweet", self._create_tweet, ()
            m = re.fullmatch(r"/2/dm_conversations/with/(\d+)/messages", path)
            if m:
                return "create_dm", self._create_dm, (m.group(1),)
        return None

    @staticmethod
    def _list(query: dict[str, str], key: str) -> list[str]:
        return [v for v in query.get(key, "").split(",") if v]

    def _page(self, items: list[dict], query: dict[str, str], default: int, low: int,
              high: int) -> tuple[list[dict], str | None]:
        """Newest-first paging by an opaque token that names the next id to serve."""
        raw_max = query.get("max_results", str(default))
        if not raw_max.isdigit() or not low <= int(raw_max) <= high:
            raise _Reply(400, _invalid(
                "max_results", raw_max,
                f"The `max_results` query parameter value [{raw_max}] is not between {low} "
                f"and {high}"))
        size = int(raw_max)
        if self.route_endpoint in self.replica.stuck_tokens:
            return items[:size], _token(items[0]["id"]) if items else "stuck"
        token = query.get("pagination_token")
        if token is not None:
            boundary = _untoken(token)
            if boundary is None:
                raise _Reply(400, _invalid(
                    "pagination_token", token,
                    "The `pagination_token` query parameter value is not valid"))
            items = [t for t in items if int(t["id"]) <= int(boundary)]
        page, rest = items[:size], items[size:]
        return page, (_token(rest[0]["id"]) if rest else None)

    def _expand(self, objs: list[dict], query: dict[str, str], fields_key: str,
                base_fields: tuple[str, ...], user_key: str) -> dict[str, Any]:
        r = self.replica
        wanted = set(base_fields) | set(self._list(query, fields_key))
        expansions = set(self._list(query, "expansions"))
        if "attachments.media_keys" in expansions:
            wanted.add("attachments")
        data = [{k: v for k, v in o.items() if k in wanted} for o in objs]
        out: dict[str, Any] = {"data": data} if data else {}
        includes: dict[str, list] = {}
        if user_key in expansions:
            ids = list(dict.fromkeys(o[user_key] for o in objs if o.get(user_key)))
            ufields = {"id", "name", "username", *self._list(query, "user.fields")}
            users = [{k: v for k, v in r.users[i].items() if k in ufields}
                     for i in ids if i in r.users]
            if users:
                includes["users"] = users
        if "attachments.media_keys" in expansions:
            mfields = {"media_key", "type", *self._list(query, "media.fields")}
            media = []
            for o in objs:
                for key in (o.get("attachments") or {}).get("media_keys", []):
                    m = r.media[key]
                    item = {k: v for k, v in m.items() if k in mfields and not k.startswith("_")}
                    if "url" in item:
                        item["url"] = item["url"].format(base=f"http://{self.headers['Host']}")
                    media.append(item)
            if media:
                includes["media"] = media
        if "geo.place_id" in expansions:
            pfields = {"id", "full_name", *self._list(query, "place.fields")}
            pids = list(dict.fromkeys((o.get("geo") or {}).get("place_id") for o in objs))
            places = [{k: v for k, v in r.places[p].items() if k in pfields}
                      for p in pids if p in r.places]
            if places:
                includes["places"] = places
        if includes:
            out["includes"] = includes
        return out

    def _mentions(self, method: str, query: dict, body: bytes, auth: str,
                  user_id: str) -> tuple[int, Any]:
        r = self.replica
        for key in ("since_id", "until_id"):
            if key in query and not re.fullmatch(r"[0-9]{1,19}", query[key]):
                raise _Reply(400, _invalid(key, query[key],
                                           f"The `{key}` query parameter value is not valid"))
        with r.lock:
            items = [t for t in r.tweets.values() if user_id in t.get("_mentions", [])]
        if "since_id" in query:
            items = [t for t in items if int(t["id"]) > int(query["since_id"])]
        if "until_id" in query:
            items = [t for t in items if int(t["id"]) < int(query["until_id"])]
        items.sort(key=lambda t: int(t["id"]), reverse=True)
        page, next_token = self._page(items, query, 10, 5, 100)
        out = self._expand(page, query, "tweet.fields", ("id", "text", "edit_history_tweet_ids"),
                           "author_id")
        meta: dict[str, Any] = {"result_count": len(page)}
        if page:
            meta["newest_id"], meta["oldest_id"] = page[0]["id"], page[-1]["id"]
        if next_token:
            meta["next_token"] = next_token
        out["meta"] = meta
        return 200, out

    def _dm_events(self, method: str, query: dict, body: bytes, auth: str,
                   participant: str | None) -> tuple[int, Any]:
        r = self.replica
        if auth != "user":
            raise _Reply(403, UNSUPPORTED_AUTH)
        types = self._list(query, "event_types") or ["MessageCreate", "ParticipantsJoin",
                                                      "ParticipantsLeave"]
        with r.lock:
            items = [e for e in r.dm_events.values() if e["event_type"] in types]
        if participant is not None:
            a, b = sorted((participant, r.desk_id), key=int)
            items = [e for e in items if e["dm_conversation_id"] == f"{a}-{b}"]
        items.sort(key=lambda e: int(e["id"]), reverse=True)
        page, next_token = self._page(items, query, 100, 1, 100)
        out = self._expand(page, query, "dm_event.fields", ("id", "event_type", "text"),
                           "sender_id")
        meta: dict[str, Any] = {"result_count": len(page)}
        if next_token:
            meta["next_token"] = next_token
        if query.get("pagination_token"):
            meta["previous_token"] = _token(page[0]["id"]) if page else query["pagination_token"]
        out["meta"] = meta
        return 200, out

    def _json_body(self, body: bytes) -> dict[str, Any]:
        try:
            data = json.loads(body or b"null")
        except ValueError:
            raise _Reply(400, problem(
                400, "Invalid Request", "Request body is not valid JSON",
                "https://api.twitter.com/2/problems/invalid-request")) from None
        if not isinstance(data, dict) or not isinstance(data.get("text"), str):
            raise _Reply(400, _invalid("text", str(data)[:50], "text is required"))
        return data

    def _record(self, endpoint: str, data: dict, status: int, **facts: Any) -> None:
        r = self.replica
        with r.lock:
            r.posted.append({"endpoint": endpoint, "body": data, "status": status,
                             "at": time.time(), **facts})

    def _create_tweet(self, method: str, query: dict, body: bytes, auth: str) -> tuple[int, Any]:
        r = self.replica
        if auth != "user":
            raise _Reply(403, UNSUPPORTED_AUTH)
        data = self._json_body(body)
        text = data["text"]
        reply_to = (data.get("reply") or {}).get("in_reply_to_tweet_id")
        with r.lock:
            if len(text) > 280:
                self._record("create_tweet", data, 400)
                return 400, _invalid("text", text[:50], "Your Tweet text is too long.")
            if reply_to is not None and reply_to not in r.tweets:
                self._record("create_tweet", data, 400)
                return 400, _invalid("reply.in_reply_to_tweet_id", str(reply_to),
                                     "The Tweet you are replying to does not exist")
            if any(t["author_id"] == r.desk_id and t["text"] == text for t in r.tweets.values()):
                self._record("create_tweet", data, 403, in_reply_to=reply_to)
                return 403, DUPLICATE
            tid = r._new_id()
            tweet = {"id": tid, "text": text, "edit_history_tweet_ids": [tid],
                     "author_id": r.desk_id, "created_at": _ts(datetime.now(UTC)),
                     "conversation_id": tid, "_mentions": []}
            if reply_to is not None:
                parent = r.tweets[reply_to]
                tweet.update(conversation_id=parent["conversation_id"],
                             in_reply_to_user_id=parent["author_id"],
                             referenced_tweets=[{"type": "replied_to", "id": reply_to}])
            r.tweets[tid] = tweet
            self._record("create_tweet", data, 201, id=tid, in_reply_to=reply_to)
        return 201, {"data": {"id": tid, "text": text, "edit_history_tweet_ids": [tid]}}

    def _create_dm(self, method: str, query: dict, body: bytes, auth: str,
                   participant: str) -> tuple[int, Any]:
        r = self.replica
        if auth != "user":
            raise _Reply(403, UNSUPPORTED_AUTH)
        data = self._json_body(body)
        with r.lock:
            if participant not in r.users:
                self._record("create_dm", data, 400, participant_id=participant)
                return 400, _invalid("participant_id", participant,
                                     "You cannot send messages to this user.")
            a, b = sorted((participant, r.desk_id), key=int)
            eid = r._new_id()
            r.dm_events[eid] = {
                "id": eid, "event_type": "MessageCreate", "text": data["text"],
                "sender_id": r.desk_id, "dm_conversation_id": f"{a}-{b}",
                "created_at": _ts(datetime.now(UTC)),
            }
            self._record("create_dm", data, 201, id=eid, participant_id=participant)
        return 201, {"data": {"dm_conversation_id": f"{a}-{b}", "dm_event_id": eid}}


def minutes_ago(n: float) -> datetime:
    return datetime.now(UTC) - timedelta(minutes=n)
