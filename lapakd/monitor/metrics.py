"""`/metrics` (Prometheus text exposition format 0.0.4) and `/healthz`, for `[metrics] listen`.

Served by the stdlib's ThreadingHTTPServer in a thread of `lapakd run` (`daemon.run_forever`).
Every request reads the store through a connection of its own, opened read-only
(`PRAGMA query_only`) and closed after the answer, so a scrape never writes and never holds
anything the daemon needs. The exposition is written by hand: a few gauges, counters and one
histogram, all read from the store (nothing is kept in the process, so a restart loses nothing).

* `GET /metrics` → 200, `text/plain; version=0.0.4`.
* `GET /healthz` → 200 `{"status": "ok", ...}` when `lapakd status` would exit 0, else 503
  `{"status": "needs_admin", "problems": [...]}` (the same checks: lapakd/monitor/checks.py).
* Anything else → 404; the store failing → 500 with one line (and a log line).
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import structlog

from lapakd import statuses
from lapakd.app import Desk
from lapakd.errors import LapakdError
from lapakd.monitor import checks
from lapakd.routing.deadlines import CLOCK_SQL
from lapakd.store import Store, now_iso, parse_iso

if TYPE_CHECKING:
    from lapakd.config import Config

log = structlog.get_logger("lapakd.monitor.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# lapakd_forward_latency_seconds: a complaint's received_at → its first forward's sent_at.
LATENCY_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 86400.0)


# -- the exposition ------------------------------------------------------------------------------


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if isinstance(value, float) and math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)


class Exposition:
    """Families in order, each with # HELP and # TYPE before its samples."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str,
               samples: Iterable[tuple[dict[str, str], float]]) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            self.sample(name, labels, value)

    def sample(self, name: str, labels: dict[str, str], value: float) -> None:
        text = ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items())
        self.lines.append(f"{name}{{{text}}} {_number(value)}" if text
                          else f"{name} {_number(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _timestamp(value: str | None) -> float | None:
    when = parse_iso(value)
    return when.timestamp() if when else None


def overdue_by_agency(desk: Desk, clock: str = "first") -> dict[str, int]:
    """Complaints whose `clock` ran out, per agency (as `lapakd list --overdue first|resolve`):
    the first answer or the resolution; every agency of the rules is there, 0 when it has none."""
    out: dict[str, int] = {}
    # Broken rules: /healthz says so; the agencies seen in the store still count.
    with contextlib.suppress(LapakdError):
        out = dict.fromkeys(desk.rules.agencies, 0)
    for row in desk.store.all(
        "SELECT a.value agency, count(*) n FROM complaints, json_each(complaints.agencies) a"
        f" WHERE merged_into IS NULL AND {CLOCK_SQL[clock]} GROUP BY a.value",
        {"now": now_iso()}):
        out[row["agency"]] = row["n"]
    return out


def forward_latencies(desk: Desk) -> list[float]:
    """Seconds from each forwarded complaint's arrival to its first forward's sending."""
    rows = desk.store.all(
        "SELECT (julianday(min(o.sent_at)) - julianday(c.received_at)) * 86400.0 s"
        " FROM outbox o JOIN complaints c ON c.id = o.complaint_id"
        " WHERE o.kind = 'forward' AND o.status = 'sent' AND o.sent_at IS NOT NULL"
        " GROUP BY o.complaint_id")
    return [max(0.0, float(r["s"])) for r in rows if r["s"] is not None]


def render(desk: Desk, data: dict[str, Any]) -> str:
    """The exposition for this desk; `data` is `checks.status(desk)`."""
    out = Exposition()
    chans = data["channels"]
    out.family("lapakd_messages_stored_total", "counter",
               "Messages stored by intake, per channel (every state).",
               (({"channel": n}, c["messages_stored"]) for n, c in chans.items()))
    complaints = dict.fromkeys(statuses.KEYS, 0) | data["complaints"]
    # A gauge (a complaint moves between statuses); `_total` as in "all of them with it".
    out.family("lapakd_complaints_total", "gauge", "Complaints in the store, per status.",
               (({"status": s}, n) for s, n in complaints.items()))
    outbox = data["outbox"]
    out.family("lapakd_outbox_pending", "gauge",
               "Outgoing messages waiting to be sent (pending or being sent).",
               [({}, outbox["pending"] + outbox["sending"])])
    out.family("lapakd_outbox_failed", "gauge",
               "Outgoing messages that failed for good (lapakd requeue --failed).",
               [({}, outbox["failed"])])
    out.family("lapakd_outbox_sent_total", "counter", "Outgoing messages sent.",
               [({}, outbox["sent"])])
    enabled = {n: c for n, c in chans.items() if c["enabled"]}
    out.family("lapakd_channel_up", "gauge",
               "1 when an enabled channel's last fetch worked (state ok), else 0.",
               (({"channel": n}, 1 if c["state"] == "ok" else 0) for n, c in enabled.items()))
    last = {n: _timestamp(c["last_success"]) for n, c in enabled.items()}
    out.family("lapakd_channel_last_success_timestamp_seconds", "gauge",
               "Unix time of an enabled channel's last successful fetch.",
               (({"channel": n}, t) for n, t in last.items() if t is not None))
    out.family("lapakd_quarantined", "gauge",
               "Messages and complaints quarantined (lapakd list --status quarantined).",
               [({}, data["quarantined"])])
    out.family("lapakd_overdue", "gauge",
               "Forwarded complaints past their due date, per agency.",
               (({"agency": a}, n) for a, n in sorted(overdue_by_agency(desk).items())))
    out.family("lapakd_overdue_resolution", "gauge",
               "Complaints past their resolution deadline (resolve_days) while the agency has"
               " not said selesai, per agency.",
               (({"agency": a}, n)
                for a, n in sorted(overdue_by_agency(desk, "resolve").items())))
    latencies = forward_latencies(desk)
    name = "lapakd_forward_latency_seconds"
    out.lines.append(f"# HELP {name} Seconds from a complaint's arrival to its first forward "
                     "being sent.")
    out.lines.append(f"# TYPE {name} histogram")
    for bound in (*LATENCY_BUCKETS, math.inf):
        # Bounds as Prometheus' own clients write them ("1.0", "+Inf"): the same series.
        out.sample(f"{name}_bucket", {"le": "+Inf" if math.isinf(bound) else repr(bound)},
                   sum(1 for x in latencies if x <= bound))
    out.sample(f"{name}_sum", {}, float(sum(latencies)))
    out.sample(f"{name}_count", {}, len(latencies))
    out.family("lapakd_healthy", "gauge",
               "1 when lapakd status finds nothing for an admin (as /healthz), else 0.",
               [({}, 0 if data["needs_admin"] else 1)])
    out.family("lapakd_problems", "gauge", "How many problems lapakd status reports.",
               [({}, len(data["problems"]))])
    return out.text()


def health(data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) for /healthz from `checks.status`."""
    if data["needs_admin"]:
        return 503, {"status": "needs_admin", "problems": data["problems"]}
    return 200, {"status": "ok", "channels": {n: c["state"] for n, c in data["channels"].items()
                                              if c["enabled"]},
                 "outbox_pending": data["outbox"]["pending"]}


# -- the server ----------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    server: MetricsHTTPServer
    server_version = "lapakd"
    sys_version = ""

    def do_GET(self) -> None:  # http.server's name
        path = self.path.split("?", 1)[0].rstrip("/")
        if path not in ("/metrics", "/healthz"):
            self._send(404, "application/json", b'{"error": "not found (/metrics, /healthz)"}')
            return
        try:
            with self.server.reading() as desk:
                data = checks.status(desk)
                if path == "/metrics":
                    body, ctype, code = render(desk, data).encode(), CONTENT_TYPE, 200
                else:
                    code, doc = health(data)
                    body, ctype = json.dumps(doc).encode(), "application/json"
        except Exception as exc:  # noqa: BLE001 - a scrape failing must not end the server
            log.error("metrics.failed", path=path, error=f"{type(exc).__name__}: {str(exc)[:200]}")
            self._send(500, "application/json", json.dumps(
                {"error": f"cannot read the store: {type(exc).__name__}"}).encode())
            return
        self._send(code, ctype, body)

    def _send(self, code: int, ctype: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # a scrape every 15 s is not worth a log line


class MetricsHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], desk: Desk, ipv6: bool) -> None:
        if ipv6:
            import socket

            self.address_family = socket.AF_INET6
        self.desk = desk
        super().__init__(address, _Handler)

    def reading(self) -> _Reading:
        return _Reading(self.desk)


class _Reading:
    """A read-only desk for one request: its own connection, the daemon's rules."""

    def __init__(self, parent: Desk) -> None:
        self.parent = parent
        self.desk: Desk | None = None

    def __enter__(self) -> Desk:
        store = Store(self.parent.config.data_dir)
        store.conn.execute("PRAGMA query_only = ON")
        self.desk = Desk(self.parent.config, store, parent=self.parent)
        return self.desk

    def __exit__(self, *_exc: object) -> None:
        if self.desk is not None:
            self.desk.close()


def parse_listen(listen: str) -> tuple[str, int, bool]:
    """(host, port, is IPv6) from a checked `host:port`."""
    host, _, port = listen.rpartition(":")
    ipv6 = host.startswith("[")
    return host.strip("[]"), int(port), ipv6


class MetricsServer:
    """Binds at construction (an address in use is one line for the admin, before the daemon
    records its run); `start()` serves in a daemon thread; `stop()` closes."""

    def __init__(self, desk: Desk, listen: str) -> None:
        host, port, ipv6 = parse_listen(listen)
        try:
            self.httpd = MetricsHTTPServer((host, port), desk, ipv6)
        except OSError as exc:
            raise LapakdError(f'[metrics] listen = "{listen}": cannot listen there: '
                              f"{exc.strerror or exc} (choose a free address, or \"\" for "
                              "no metrics)") from None
        self.listen = listen
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={
            "poll_interval": 0.5}, name="metrics", daemon=True)

    def start(self) -> MetricsServer:
        self.thread.start()
        log.info("metrics.listening", listen=self.listen, port=self.port,
                 paths=["/metrics", "/healthz"])
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
        log.info("metrics.stopped")


def bind(desk: Desk) -> MetricsServer | None:
    """The metrics listener when `[metrics] listen` is set (called by `daemon.run_forever`)."""
    config: Config = desk.config
    listen = config.metrics.listen
    return MetricsServer(desk, listen) if listen else None
