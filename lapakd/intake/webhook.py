"""Meta's webhooks (WhatsApp Cloud API, Messenger, Instagram) on one URL: `/webhook`.

Served by waitress in a thread of `lapakd run` (`daemon.run_forever`), behind the operator's TLS
reverse proxy. Only intake happens here; the pipeline does the rest.

* `GET /webhook?hub.mode=subscribe&hub.verify_token=T&hub.challenge=C` → 200 `C` when T is the
  `verify_token` of an enabled Meta channel, else 403.
* `POST /webhook` → checked in this order, nothing is stored unless all pass:
  body over `[webhook] max_body_bytes` → 413; no `X-Hub-Signature-256` → 403; signature not
  HMAC-SHA256(app_secret, raw body) for any enabled Meta channel's `app_secret` (compared in
  constant time) → 403.
* A signed body is split into one stored message per message id (wamid, Messenger mid, IG
  message id, comment id: the ids the polling path uses) — all in ONE transaction, committed
  before the 200 is sent. A retried body (Meta retries non-200s for days) stores nothing new.
* A signed body for a Meta channel that is not enabled (`object` = `page` with Facebook off...)
  is answered 200 and dropped (debug log line): the desk does not serve that channel.
* A signed body that cannot be understood (not JSON, nested too deeply, unknown `object`, wrong
  shapes: anything that fails after the signature check) is NOT dropped: it is stored whole as
  `body:<sha256>` and answered 200, and the pipeline quarantines it with the reason (`lapakd
  show msg-N`). Answering 400 would make Meta retry the same bytes for days and finally disable
  the subscription, and the evidence would be lost. The 200 body says `quarantined` so the
  operator sees it in Meta's webhook log.
* The store failing (disk full, database locked too long) → 503: Meta will retry.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import structlog

from lapakd import channels
from lapakd.adapters.base import ChannelError, Inbound
from lapakd.app import Desk
from lapakd.intake.poll import store_batch
from lapakd.store import Store

if TYPE_CHECKING:
    from lapakd.config import Config

log = structlog.get_logger("lapakd.intake.webhook")

PATH = "/webhook"
QUARANTINE_CHANNEL = "whatsapp"  # where an unreadable body is kept (its parse says why)


def signature(secret: str, body: bytes) -> str:
    """The X-Hub-Signature-256 value Meta sends for `body`."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def _secrets(config: Config, key: str) -> list[str]:
    """`key` (app_secret, verify_token) of every enabled channel Meta pushes to."""
    out = []
    for name, section in config.channels.items():
        pushed = channels.adapter_class(name).webhook_object
        if pushed and section.enabled and section.get(key):
            out.append(section.get(key))
    return out


def wanted(config: Config) -> bool:
    """The webhook runs when an enabled Meta channel has an app secret to check signatures."""
    return bool(_secrets(config, "app_secret"))


class WebhookApp:
    """The WSGI application. It has its own Desk (own SQLite connection) behind a lock."""

    def __init__(self, desk: Desk) -> None:
        self.desk = desk
        self.config = desk.config
        self.max_body = int(self.config.webhook.max_body_bytes)
        self.lock = threading.Lock()

    # -- WSGI --------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path.rstrip("/") != PATH:
            return _answer(start_response, 404, {"error": "not found (the webhook is /webhook)"})
        if method == "GET":
            return self._verify(environ, start_response)
        if method == "POST":
            return self._receive(environ, start_response)
        return _answer(start_response, 405, {"error": "use GET or POST"})

    def _verify(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        query = parse_qs(environ.get("QUERY_STRING", ""))
        mode = (query.get("hub.mode") or [""])[0]
        token = (query.get("hub.verify_token") or [""])[0]
        challenge = (query.get("hub.challenge") or [""])[0]
        ok = mode == "subscribe" and token and any(
            hmac.compare_digest(token.encode(), t.encode())
            for t in _secrets(self.config, "verify_token")
        )
        if not ok:
            log.warning("webhook.verify_refused", mode=mode)
            return _answer(start_response, 403, {"error": "verification refused"})
        log.info("webhook.verified")
        start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
        return [challenge.encode("utf-8")]

    def _receive(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return _answer(start_response, 400, {"error": "bad Content-Length"})
        if length > self.max_body:
            log.warning("webhook.too_large", bytes=length, limit=self.max_body)
            return _answer(start_response, 413, {"error": f"body over {self.max_body} bytes"})
        stream = environ["wsgi.input"]
        body = stream.read(length) if length else stream.read(self.max_body + 1)
        if len(body) > self.max_body:
            return _answer(start_response, 413, {"error": f"body over {self.max_body} bytes"})
        given = environ.get("HTTP_X_HUB_SIGNATURE_256", "")
        if not given:
            log.warning("webhook.unsigned")
            return _answer(start_response, 403, {"error": "missing X-Hub-Signature-256"})
        if not any(
            hmac.compare_digest(given.encode(), signature(s, body).encode())
            for s in _secrets(self.config, "app_secret")
        ):
            log.warning("webhook.bad_signature")
            return _answer(start_response, 403, {"error": "invalid X-Hub-Signature-256"})
        channel, messages, problem = self.split(body)
        if channel is None:  # a channel this desk has not enabled: nothing to keep
            log.debug("webhook.channel_disabled", object=problem)
            return _answer(start_response, 200, {"status": "ignored"})
        try:
            with self.lock:
                new = self.store(channel, messages)
        except Exception as exc:  # noqa: BLE001 - answer 503 so Meta retries
            log.error("webhook.store_failed", error=f"{type(exc).__name__}: {str(exc)[:200]}")
            return _answer(start_response, 503, {"error": "could not store, retry later"})
        if problem:
            log.error("webhook.quarantined", error=problem, stored=len(new),
                      hint="lapakd list/show the quarantined message")
            return _answer(start_response, 200, {"status": "quarantined", "error": problem})
        log.info("webhook.stored", channel=channel, messages=len(messages), new=len(new))
        return _answer(start_response, 200, {"status": "ok", "stored": len(new)})

    # -- intake ------------------------------------------------------------------------------

    def split(self, body: bytes) -> tuple[str | None, list[Inbound], str | None]:
        """(channel, messages, problem). A body that cannot be understood becomes one message
        holding it whole, marked so that processing quarantines it with `problem`. A body for
        a Meta channel this desk has not enabled gives (None, [], its object): dropped."""
        try:
            doc = json.loads(body)
            if not isinstance(doc, dict):
                raise ValueError("the body is not a JSON object")
            obj = doc.get("object")
            # Meta's `object` -> the channel whose adapter declares it (the registry).
            channel = channels.webhook_objects().get(obj) if isinstance(obj, str) else None
            if channel is None:
                raise ValueError(f"unknown webhook object {obj!r}")
            section = self.config.channels.get(channel)
            if section is None or not section.enabled:
                return None, [], obj
            adapter = self.desk.adapter(channel)
            return channel, adapter.webhook_messages(doc), None
        except (ValueError, ChannelError, AttributeError, TypeError) as exc:
            problem = f"malformed webhook body: {str(exc)[:200]}"
        except RecursionError:  # nested deeper than json (or the splitting) can follow
            problem = "malformed webhook body: nested too deeply to read"
        except Exception as exc:  # noqa: BLE001 - signed bytes are never lost: kept, quarantined
            problem = f"malformed webhook body: {type(exc).__name__}: {str(exc)[:200]}"
        digest = hashlib.sha256(body).hexdigest()
        return QUARANTINE_CHANNEL, [Inbound(
            f"body:{digest}", body, "json", None,
            {"source": "webhook", "malformed": problem},
        )], problem

    def store(self, channel: str, messages: list[Inbound]) -> list[int]:
        # One transaction for the whole body (store_batch's own), committed before the 200.
        return store_batch(self.desk.store, channel, messages, None)


def _answer(start_response: Callable, status: int, doc: dict[str, Any]) -> list[bytes]:
    reason = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
              405: "Method Not Allowed", 413: "Payload Too Large",
              503: "Service Unavailable"}[status]
    data = json.dumps(doc).encode()
    start_response(f"{status} {reason}", [("Content-Type", "application/json"),
                                          ("Content-Length", str(len(data)))])
    return [data]


def parse_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return (host.strip("[]") or "127.0.0.1"), int(port)


class WebhookServer:
    """waitress serving the app in a daemon thread; `stop()` closes it."""

    def __init__(self, config: Config) -> None:
        import waitress  # why: the HTTP server loads only where a channel is pushed to

        self.desk = Desk(config, Store(config.data_dir))
        self.app = WebhookApp(self.desk)
        host, port = parse_listen(config.webhook.listen)
        self.server = waitress.create_server(
            self.app, host=host, port=port, threads=4,
            max_request_body_size=int(config.webhook.max_body_bytes) + 1,
            ident="lapakd", clear_untrusted_proxy_headers=True,
        )
        self.port = self.server.effective_port
        self.thread = threading.Thread(target=self._run, name="webhook", daemon=True)

    def _run(self) -> None:
        try:
            self.server.run()
        except Exception as exc:  # noqa: BLE001 - closing the socket ends run() this way too
            log.debug("webhook.ended", error=str(exc)[:200])

    def start(self) -> WebhookServer:
        self.thread.start()
        log.info("webhook.listening", listen=self.config_listen, path=PATH)
        return self

    @property
    def config_listen(self) -> str:
        return f"{self.server.effective_host}:{self.port}"

    def stop(self) -> None:
        self.server.close()
        self.server.task_dispatcher.shutdown()
        self.thread.join(timeout=5)
        with self.app.lock:
            self.desk.close()
        log.info("webhook.stopped")


def start(desk: Desk) -> WebhookServer | None:
    """Start the webhook when a Meta channel wants it (called by `daemon.run_forever`)."""
    if not wanted(desk.config):
        return None
    return WebhookServer(desk.config).start()
