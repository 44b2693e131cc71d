"""Media downloads send the access token only to Meta's hosts or the configured graph_url.

A media URL comes from outside (a webhook body's `url`, an attachment in an API answer): a URL
naming another host must never receive the token. Real HTTP servers on loopback stand for the
Graph host and for a stranger's host.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest
from lapakd.adapters.base import PermanentError
from lapakd.adapters.graph import GraphClient

from lapakd.config import Section


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[str | None]

    def do_GET(self) -> None:
        self.seen.append(self.headers.get("Authorization"))
        body = b"\xff\xd8jpeg"
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def host() -> Iterator[tuple[str, list[str | None]]]:
    """A loopback HTTP server that records the Authorization header of each request."""
    seen: list[str | None] = []
    handler = type("Handler", (_Recorder,), {"seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def client(graph_url: str) -> GraphClient:
    return GraphClient("whatsapp", Section("channels.whatsapp", {
        "access_token": "rahasia-token", "graph_url": graph_url, "graph_version": "v21.0",
        "timeout_seconds": 5,
    }))


def test_the_token_goes_to_the_configured_graph_host(host) -> None:
    url, seen = host
    data, ctype = client(url).download(f"{url}/whatsapp_business/attachments/?mid=1")
    assert (data, ctype) == (b"\xff\xd8jpeg", "image/jpeg")
    assert seen == ["Bearer rahasia-token"]


def test_a_url_on_another_host_gets_no_token(host) -> None:
    stranger, seen = host
    graph = client("http://127.0.0.2:9")  # the desk's Graph host is elsewhere
    graph.download(f"{stranger}/steal?x=1")
    assert seen == [None]


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/x", "//evil/x"])
def test_only_http_urls_are_fetched(url: str) -> None:
    with pytest.raises(PermanentError, match="not an http"):
        client("http://127.0.0.1:9").download(url)
