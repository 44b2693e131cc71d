"""The Meta Graph API client shared by the Facebook, Instagram and WhatsApp channels.

facebook-sdk's `GraphAPI.request()` does the calls. It builds every URL from its module constant
`FACEBOOK_GRAPH_URL` and sends through a `requests.Session`; the session carries a transport
adapter mounted on https://graph.facebook.com that (1) sends to the configured `graph_url`
instead (the local replica in tests and the demo) and (2) remembers the last response's status
and headers, which facebook-sdk throws away (they hold the throttling hints).

The version is part of each path (`v21.0/{page-id}/conversations`): facebook-sdk 3.1.0 refuses
any `version=` newer than 3.1.

facebook-sdk puts the access token in the query string, and requests' exception texts contain
the URL. No URL and no exception text from requests ever reaches a log or an error message here:
every error text is built from the Graph error body's code and message.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import facebook
import requests
from lapakd.adapters.base import (
    Adapter,
    NeedsReauth,
    PermanentError,
    TransientError,
    fingerprint,
)
from lapakd.adapters.paging import MAX_PAGES_PER_POLL, RATE_LIMIT, PageWalk
from requests.adapters import HTTPAdapter

from lapakd.config import Field, http_url, pattern, seconds

GRAPH_HOST = "https://graph.facebook.com"
THROTTLE_CODES = frozenset({4, 17, 32, 613, 80001, 80002, 80004, 80006, 130429, 131048, 131056})
TOKEN_CODES = frozenset({190, 102})
TIMEOUT_SECONDS = 30
# Every segment of a Graph path: ids (`123_456`, `t_1`), versions, edge names. Ids come from
# outside (webhook bodies); a `..`, `/`, `?` or `%` in one must never reach a URL with the token.
PATH_SEGMENT = re.compile(r"[0-9A-Za-z_-][0-9A-Za-z_.-]*")
# Hosts Meta serves media from. A media URL comes from outside (a webhook body, an API answer):
# the access token goes only to these hosts and to the configured graph_url, never elsewhere.
MEDIA_HOST_SUFFIXES = (".facebook.com", ".fbsbx.com", ".fbcdn.net", ".whatsapp.net",
                       ".cdninstagram.com")
USAGE_HEADERS = ("x-business-use-case-usage", "x-page-usage", "x-app-usage",
                 "x-ad-account-usage")
USAGE_KEYS = frozenset({"call_count", "total_cputime", "total_time"})  # percent of the limit
DEFAULT_PAUSE_SECONDS = 60.0  # throttled without an estimate of when access returns
MAX_PAUSE_SECONDS = 24 * 3600.0  # an estimate further away than a day is not believed


def graph_fields() -> dict[str, Field]:
    """Config keys every Graph channel has."""
    return {
        "access_token": Field(str, "", secret=True),
        "graph_url": Field(str, GRAPH_HOST, check=http_url),
        "graph_version": Field(str, "v21.0", check=pattern(r"v\d+\.\d+", '"v21.0"')),
        "timeout_seconds": Field(int, TIMEOUT_SECONDS, check=seconds(1, 600)),
        "acknowledge": Field(bool, True),
        # The Meta app's secret and webhook verify token: needed only for push (webhooks).
        "app_secret": Field(str, "", secret=True),
        # The Meta app's id: with app_secret, the daily token check asks debug_token with the
        # app's own token, which can still describe a page token that no longer works.
        "app_id": Field(str, "", check=pattern(r"\d{0,32}", '"1234567890123456"')),
        "verify_token": Field(str, "", secret=True),
    }


class _RewriteAdapter(HTTPAdapter):
    """Send graph.facebook.com requests to `base` and remember the last response's headers."""

    def __init__(self, base: str) -> None:
        super().__init__(max_retries=0)
        self.base = base.rstrip("/")
        self.local = threading.local()

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        url = request.url or ""
        if url.startswith(GRAPH_HOST) and self.base != GRAPH_HOST:
            request.url = self.base + url[len(GRAPH_HOST):]
        response = super().send(request, **kwargs)
        self.local.status = response.status_code
        self.local.headers = dict(response.headers)
        return response


class GraphClient:
    """One channel's view of the Graph API: GET/POST with errors mapped to lapakd's."""

    def __init__(self, channel: str, section: Any) -> None:
        self.channel = channel
        self.token = section.access_token
        self.credential = fingerprint(self.token)
        app_id, app_secret = section.get("app_id", ""), section.get("app_secret", "")
        self.app_token = f"{app_id}|{app_secret}" if app_id and app_secret else None
        self.version = section.graph_version.strip("/")
        self.timeout = section.get("timeout_seconds", TIMEOUT_SECONDS)
        self.session = requests.Session()
        self.transport = _RewriteAdapter(section.graph_url)
        self.own = urlsplit(section.graph_url)
        self.session.mount(GRAPH_HOST, self.transport)
        # The replica (and a self-hosted proxy) may be plain http on loopback.
        base = section.graph_url.rstrip("/")
        if not base.startswith(GRAPH_HOST):
            self.session.mount(base, self.transport)
        self.api = facebook.GraphAPI(
            access_token=self.token, timeout=self.timeout, session=self.session
        )
        self.max_pages = int(section.get("max_pages_per_poll", MAX_PAGES_PER_POLL))
        # Seconds to wait, once a usage header said 100% (x-app-usage...): the walks stop and
        # the poll ends with the channel paused (see `GraphChannel.check_usage`).
        self.used_up: float | None = None

    def close(self) -> None:
        self.session.close()

    def _path(self, path: str) -> str:
        return f"{self.version}/{path.lstrip('/')}"

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        return self._call("GET", self._path(path), params, None)

    def post(self, path: str, data: dict[str, Any]) -> dict[str, Any]:
        form = {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in data.items()}
        return self._call("POST", self._path(path), {}, form)

    def debug_token(self) -> dict[str, Any]:
        """Graph's description of the configured token (`GET {version}/debug_token`): the
        `data` object with `is_valid`, `expires_at` (0 = never), `scopes`, and `error` for a
        token that no longer works. Asked with the app's token when app_id and app_secret are
        set, else with the token itself (a dead token then fails with error 190: NeedsReauth)."""
        args = {"input_token": self.token}
        if self.app_token:
            args["access_token"] = self.app_token
        answer = self.get("debug_token", **args)
        data = answer.get("data")
        if not isinstance(data, dict):
            raise PermanentError(f"Graph {self.channel} debug_token: answer has no data object")
        return data

    def get_next(self, next_url: str) -> dict[str, Any]:
        """Follow a `paging.next` URL (absolute, with the token in it) through the same client."""
        parts = urlsplit(next_url)
        params = {k: v for k, v in parse_qsl(parts.query) if k != "access_token"}
        base_path = urlsplit(self.transport.base).path.rstrip("/")
        path = parts.path
        if base_path and path.startswith(base_path):
            path = path[len(base_path):]
        return self._call("GET", path.lstrip("/"), params, None)

    def pages(self, path: str, walk: PageWalk | None = None, after: str | None = None,
              **params: Any) -> Iterator[list[Any]]:
        """Yield each page's `data` list, following `paging.next`, at most
        `max_pages_per_poll` pages and never the same cursor twice (`adapters/paging.py`).

        `after` starts at that Graph cursor (a walk resumed where an earlier poll stopped);
        `walk` (see `walk()`) tells the caller why and where the walk stopped early."""
        walk = walk or self.walk(path)
        if self.used_up is not None:  # a usage header said 100%: no more calls this poll
            walk.stopped = RATE_LIMIT
            return
        page = self.get(path, **params, **({"after": after} if after else {}))
        walk.fetched()
        try:
            while True:
                data = page.get("data")
                if not isinstance(data, list):
                    raise PermanentError(f"Graph {self._what(path)}: answer has no data list")
                paging = page.get("paging") if isinstance(page.get("paging"), dict) else {}
                cursors = paging.get("cursors") if isinstance(paging.get("cursors"), dict) else {}
                after = cursors.get("after")
                walk.after = after if isinstance(after, str) and after else None
                yield data
                nxt = paging.get("next")
                if not isinstance(nxt, str) or not nxt or not data:
                    return
                if self.used_up is not None:
                    walk.stopped = RATE_LIMIT
                    return
                if not walk.follow(walk.after or _without_token(nxt)):
                    return
                page = self.get_next(nxt)
                walk.fetched()
        finally:
            if walk.stopped is None:  # the end, or the caller had all it wanted
                walk.complete()

    def walk(self, path: str) -> PageWalk:
        """A bounded walk over `path`, named in logs without ids that are not the edge's."""
        return PageWalk(self.channel, path.split("?")[0].strip("/"), self.max_pages)

    def _token_may_go_to(self, url: str) -> bool:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if (parts.scheme, parts.netloc) == (self.own.scheme, self.own.netloc):
            return True
        return parts.scheme == "https" and ("." + host).endswith(MEDIA_HOST_SUFFIXES)

    def download(self, url: str) -> tuple[bytes, str]:
        """Fetch media bytes (WhatsApp media URLs want the token as a Bearer header).

        The token is sent only to Meta's media hosts or the configured graph_url; any other
        host gets no token (its answer is then most likely a refusal, kept as a note)."""
        if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
            raise PermanentError(f"Graph media download ({self.channel}): not an http(s) URL")
        headers = {"Authorization": f"Bearer {self.token}"} if self._token_may_go_to(url) else {}
        try:
            response = self.session.get(url, headers=headers, timeout=self.timeout)
        except requests.Timeout:
            raise TransientError(f"Graph media download ({self.channel}): timed out") from None
        except requests.RequestException as exc:
            raise TransientError(
                f"Graph media download ({self.channel}): {type(exc).__name__}"
            ) from None
        if response.status_code >= 500 or response.status_code == 429:
            raise TransientError(
                f"Graph media download ({self.channel}): HTTP {response.status_code}"
            )
        if response.status_code >= 400:
            raise PermanentError(
                f"Graph media download ({self.channel}): HTTP {response.status_code}"
            )
        ctype = response.headers.get("content-type", "application/octet-stream")
        return response.content, ctype.split(";")[0].strip()

    # -- errors ------------------------------------------------------------------------------

    def _what(self, path: str) -> str:
        # The endpoint's last segment names it well enough; ids and tokens stay out.
        last = path.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
        return f"{self.channel} {last}" if not last.isdigit() else self.channel

    def _call(
        self, method: str, path: str, args: dict[str, Any], post: dict[str, Any] | None
    ) -> dict[str, Any]:
        self.transport.local.status = None
        self.transport.local.headers = {}
        if not all(PATH_SEGMENT.fullmatch(seg) for seg in path.split("/")):
            raise PermanentError(
                f"Graph {self.channel}: refused a request for a path that is not made of Graph "
                "ids (an id from outside held '/', '..', '?' or '%')"
            )
        try:
            result = self.api.request(path, args=dict(args), post_args=post, method=method)
        except facebook.GraphAPIError as exc:
            raise self._classify(path, exc) from None
        except requests.Timeout:
            raise TransientError(f"Graph {self._what(path)}: timed out") from None
        except requests.ConnectionError:
            raise TransientError(f"Graph {self._what(path)}: cannot connect") from None
        except requests.RequestException as exc:
            raise TransientError(f"Graph {self._what(path)}: {type(exc).__name__}") from None
        except (ValueError, KeyError):  # JSON that is not JSON, no content-type
            raise TransientError(
                f"Graph {self._what(path)}: HTTP {self.transport.local.status}, not JSON"
            ) from None
        status = self.transport.local.status or 200
        if status >= 500:
            raise TransientError(f"Graph {self._what(path)}: HTTP {status}")
        if status == 429:
            raise TransientError(f"Graph {self._what(path)}: HTTP 429",
                                 retry_after=pause_seconds(self.transport.local.headers or {}))
        if usage_full(self.transport.local.headers or {}):
            wait = pause_seconds(self.transport.local.headers or {})
            self.used_up = max(self.used_up or 0.0, wait)
        if not isinstance(result, dict):
            raise PermanentError(f"Graph {self._what(path)}: answer is not a JSON object")
        return result

    def _classify(self, path: str, exc: facebook.GraphAPIError) -> Exception:
        status = self.transport.local.status
        headers = self.transport.local.headers or {}
        err = exc.result.get("error") if isinstance(exc.result, dict) else None
        if not isinstance(err, dict):
            if status == 429:
                return TransientError(f"Graph {self._what(path)}: HTTP 429",
                                      retry_after=pause_seconds(headers))
            if status is not None and status >= 500:
                return TransientError(f"Graph {self._what(path)}: HTTP {status}")
            return TransientError(f"Graph {self._what(path)}: HTTP {status}, unexpected answer")
        code = err.get("code")
        sub = err.get("error_subcode")
        message = str(err.get("message", ""))[:200]
        text = f"Graph {self._what(path)}: error {code}" + (f"/{sub}" if sub else "")
        text += f": {message}" if message else ""
        # Classified by code, never by type: throttling errors are OAuthException too.
        if code in TOKEN_CODES:
            return NeedsReauth(
                f"{text} (renew channels.{self.channel}.access_token)",
                credential=self.credential,
            )
        if code in THROTTLE_CODES or status == 429:
            return TransientError(text, retry_after=pause_seconds(headers))
        if code in (1, 2) or err.get("is_transient") or (status or 0) >= 500:
            return TransientError(text)
        return PermanentError(text)


def retry_after(headers: dict[str, str]) -> float | None:
    """Seconds until access returns, from Graph's usage headers (the largest one given)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    best: float | None = None
    for value in _usage_values(lowered):
        for minutes in _regain_minutes(value):
            seconds = float(minutes) * 60.0
            best = seconds if best is None else max(best, seconds)
    if best is None and lowered.get("retry-after", "").isdigit():
        best = float(lowered["retry-after"])
    return best if best else None


def pause_seconds(headers: dict[str, str]) -> float:
    """How long a throttled channel waits: Graph's estimate (or Retry-After), else
    DEFAULT_PAUSE_SECONDS; never more than MAX_PAUSE_SECONDS."""
    return min(retry_after(headers) or DEFAULT_PAUSE_SECONDS, MAX_PAUSE_SECONDS)


def usage_full(headers: dict[str, str]) -> bool:
    """A usage header (x-app-usage, x-business-use-case-usage, ...) at 100% or more: the
    next calls would be throttled."""
    lowered = {k.lower(): v for k, v in headers.items()}
    return any(any(percent >= 100 for percent in _percents(value))
               for value in _usage_values(lowered))


def _usage_values(lowered: dict[str, str]) -> Iterator[Any]:
    """The parsed JSON of each usage header present (headers with lower-case names)."""
    for name in USAGE_HEADERS:
        raw = lowered.get(name)
        if not raw:
            continue
        try:
            yield json.loads(raw)
        except ValueError:
            continue


def _percents(value: Any) -> Iterator[float]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key in USAGE_KEYS and isinstance(item, int | float) and not isinstance(item, bool):
                yield float(item)
            elif isinstance(item, dict | list):
                yield from _percents(item)
    elif isinstance(value, list):
        for item in value:
            yield from _percents(item)


def _without_token(url: str) -> str:
    """A `paging.next` URL without its access_token: what identifies the page."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "access_token"]
    return f"{parts.path}?{query}"


def _regain_minutes(value: Any):
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "estimated_time_to_regain_access" and isinstance(item, int | float):
                yield item
            else:
                yield from _regain_minutes(item)
    elif isinstance(value, list):
        for item in value:
            yield from _regain_minutes(item)


class GraphChannel(Adapter):
    """Base for the channels that talk to the Graph API: one client, opened on first use."""

    def __init__(self, config: Any, section: Any) -> None:
        super().__init__(config, section)
        self._graph: GraphClient | None = None

    @property
    def graph(self) -> GraphClient:
        if self._graph is None:
            self._graph = GraphClient(self.name, self.section)
        return self._graph

    def check_usage(self) -> None:
        """At the end of a poll: a usage header at 100% pauses this channel (only it) until
        Graph's estimate; what the poll fetched is stored by then."""
        graph = self._graph
        if graph is not None and graph.used_up is not None:
            wait, graph.used_up = graph.used_up, None
            raise TransientError(
                f"Graph {self.name}: usage at 100% (x-app-usage / x-business-use-case-usage), "
                f"paused for {int(wait)}s", retry_after=wait)

    def close(self) -> None:
        if self._graph is not None:
            self._graph.close()
            self._graph = None
