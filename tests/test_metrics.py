"""`[metrics] listen`: /metrics in the Prometheus text format and /healthz, served by `lapakd run`.

The exposition is read by Prometheus' own parser (prometheus_client.parser), and every value is
held against the store the daemon wrote."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime

import pytest
from deskenv import make_mail
from prometheus_client.parser import text_string_to_metric_families

from lapakd.app import Desk
from lapakd.config import load_config
from lapakd.monitor import checks, metrics

FAMILIES = {
    "lapakd_messages_stored": "counter", "lapakd_complaints_total": "gauge",
    "lapakd_outbox_pending": "gauge", "lapakd_outbox_failed": "gauge",
    "lapakd_outbox_sent": "counter", "lapakd_channel_up": "gauge",
    "lapakd_channel_last_success_timestamp_seconds": "gauge", "lapakd_quarantined": "gauge",
    "lapakd_overdue": "gauge", "lapakd_overdue_resolution": "gauge",
    "lapakd_forward_latency_seconds": "histogram",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(port: int, path: str) -> tuple[int, str, str]:
    """(status, content type, body) of GET http://127.0.0.1:port/path, errors included."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def parse(text: str) -> dict[str, dict]:
    """{family name: {"type": ..., "samples": {(sample name, labels as tuple): value}}}."""
    out = {}
    for fam in text_string_to_metric_families(text):
        out[fam.name] = {"type": fam.type, "help": fam.documentation, "samples": {
            (s.name, tuple(sorted(s.labels.items()))): s.value for s in fam.samples}}
    return out


def value(fams: dict, family: str, sample: str | None = None, **labels: str) -> float:
    return fams[family]["samples"][(sample or family, tuple(sorted(labels.items())))]


def wait_for(predicate, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:  # noqa: BLE001 - no store or no listener yet
            pass
        time.sleep(0.2)
    raise AssertionError("timed out")


def start(env) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "lapakd.cli", "run", "--config", str(env.config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=env.root)


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-2000:]
    assert "Traceback" not in err, err[-2000:]
    return err


def test_metrics_and_healthz_tell_what_the_store_holds(desk_env):
    port = free_port()
    # poll_seconds 10: `status` (and /healthz) calls a channel stale after 3 of them, which a
    # loaded test machine must not reach by accident.
    desk_env.write_config(metrics={"listen": f"127.0.0.1:{port}"},
                          **{"channels.email": {"poll_seconds": 10}})
    desk_env.append(make_mail("Jalan", "Jalan rusak di depan SD Negeri 2 Karangsalam"))
    desk_env.append(make_mail("Sampah", "sampah menumpuk di TPS Karangsalam"))
    desk_env.append(make_mail("Tanya", "Kapan pendaftaran beasiswa dibuka?"))  # triage
    proc = start(desk_env)
    try:
        # Forwarded and sent: the forwards' latencies are in the histogram.
        wait_for(lambda: desk_env.count(
            "SELECT count(*) FROM outbox WHERE status = 'sent'") >= 3)
        wait_for(lambda: fetch(port, "/healthz")[0] == 200)
        code, ctype, body = fetch(port, "/healthz")
        assert code == 200 and ctype == "application/json"
        assert json.loads(body)["status"] == "ok"
        assert json.loads(body)["channels"] == {"email": "ok"}

        last_success = ("SELECT last_success FROM channel_health WHERE channel = 'email'")
        db = desk_env.db()
        before = datetime.fromisoformat(db.execute(last_success).fetchone()[0])
        code, ctype, text = fetch(port, "/metrics")
        assert code == 200 and ctype.startswith("text/plain; version=0.0.4")
        fams = parse(text)
        for name, kind in FAMILIES.items():
            assert fams[name]["type"] == kind, name
            assert fams[name]["help"], name
        assert text.count("# HELP ") == text.count("# TYPE ") == len(fams)

        stored = db.execute("SELECT count(*) FROM messages WHERE channel = 'email'").fetchone()[0]
        assert stored == 3
        assert value(fams, "lapakd_messages_stored", "lapakd_messages_stored_total",
                     channel="email") == stored
        by_status = dict(db.execute("SELECT status, count(*) FROM complaints GROUP BY status"))
        assert sum(by_status.values()) == 3
        for status, n in by_status.items():
            assert value(fams, "lapakd_complaints_total", status=status) == n
        assert value(fams, "lapakd_complaints_total", status="quarantined") == 0
        outbox = dict(db.execute("SELECT status, count(*) FROM outbox GROUP BY status"))
        assert value(fams, "lapakd_outbox_sent", "lapakd_outbox_sent_total") == outbox["sent"]
        assert value(fams, "lapakd_outbox_failed") == 0
        assert value(fams, "lapakd_channel_up", channel="email") == 1
        after = datetime.fromisoformat(db.execute(last_success).fetchone()[0])
        # The daemon polls on: the value is the one in the store at the scrape.
        assert (before.timestamp() <= value(
            fams, "lapakd_channel_last_success_timestamp_seconds", channel="email")
            <= after.timestamp())
        assert value(fams, "lapakd_quarantined") == 0
        agencies = {k for (_, labels) in fams["lapakd_overdue"]["samples"] for k in labels}
        assert agencies == {("agency", a) for a in ("dpupr", "dlh", "inspektorat")}
        assert all(v == 0 for v in fams["lapakd_overdue"]["samples"].values())
        assert by_status == {"forwarded": 2, "triage": 1}
        forwarded = db.execute("SELECT count(DISTINCT complaint_id) FROM outbox"
                               " WHERE kind = 'forward' AND status = 'sent'").fetchone()[0]
        hist = "lapakd_forward_latency_seconds"
        assert forwarded == 2
        assert value(fams, hist, f"{hist}_count") == forwarded
        assert value(fams, hist, f"{hist}_bucket", le="+Inf") == forwarded
        assert value(fams, hist, f"{hist}_bucket", le="3600.0") == forwarded  # seconds, not hours
        assert 0 <= value(fams, hist, f"{hist}_sum") < 600 * forwarded
        db.close()

        # A failed send: /healthz is 503 with the reason `lapakd status` gives, the gauge says 1.
        # And a deadline passed: the agency's overdue gauge counts it.
        with desk_env.db() as db:
            db.execute("UPDATE outbox SET status = 'failed', last_error = 'test'"
                       " WHERE id = (SELECT min(id) FROM outbox WHERE status = 'sent')")
            db.execute("UPDATE complaints SET due_at = '2020-01-02T00:00:00+00:00'"
                       " WHERE agencies = '[\"dlh\"]'")
            # and a resolution deadline passed while the agency works on it (`diproses`)
            db.execute("UPDATE complaints SET status = 'answered', budget_dependent = 0,"
                       " resolve_due_at = '2020-01-09T00:00:00+00:00'"
                       " WHERE agencies = '[\"dpupr\"]'")
        db.close()
        code, ctype, body = fetch(port, "/healthz")
        assert code == 503 and ctype == "application/json"
        doc = json.loads(body)
        assert doc["status"] == "needs_admin"
        assert any("1 outgoing message(s) failed" in p for p in doc["problems"]), doc
        assert doc["problems"] == desk_env.cli_json("status")["problems"]
        fams = parse(fetch(port, "/metrics")[2])
        assert value(fams, "lapakd_outbox_failed") == 1
        assert value(fams, "lapakd_healthy") == 0
        assert value(fams, "lapakd_overdue", agency="dlh") == 1
        assert value(fams, "lapakd_overdue", agency="dpupr") == 0  # answered: first clock stops
        assert value(fams, "lapakd_overdue_resolution", agency="dpupr") == 1
        assert value(fams, "lapakd_overdue_resolution", agency="dlh") == 0
        assert fetch(port, "/nothing")[0] == 404
    finally:
        err = stop(proc)
    assert "metrics.listening" in err and "metrics.stopped" in err
    with pytest.raises(OSError):  # closed with the daemon
        fetch(port, "/healthz")


def test_an_address_in_use_is_one_line_and_exit_2(desk_env):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        desk_env.write_config(metrics={"listen": f"127.0.0.1:{port}"})
        proc = desk_env.cli("run", check=False, timeout=60)
    assert proc.returncode == 2
    assert f'[metrics] listen = "127.0.0.1:{port}": cannot listen there' in proc.stderr
    assert "Traceback" not in proc.stderr


# -- no server: the config key, and the exposition of a fresh store ---------------------------


def _config(tmp_path, metrics_section: str) -> str:
    path = tmp_path / "lapakd.toml"
    path.write_text(
        '[desk]\nemail = "a@b.example"\nadmin_email = "c@b.example"\n'
        f'[paths]\ndata_dir = "var"\n{metrics_section}', encoding="utf-8")
    return str(path)


def test_metrics_listen_is_off_by_default_and_checked(tmp_path):
    from lapakd.errors import ConfigError

    assert load_config(_config(tmp_path, "")).metrics.listen == ""
    assert load_config(_config(tmp_path, '[metrics]\nlisten = "[::1]:9464"\n')
                       ).metrics.listen == "[::1]:9464"
    with pytest.raises(ConfigError, match=r'listen.*is not host:port \(or "" for off'):
        load_config(_config(tmp_path, '[metrics]\nlisten = "9464"\n'))


def test_a_fresh_store_renders_a_valid_exposition(tmp_path):
    desk = Desk(load_config(_config(tmp_path, "")))
    try:
        data = checks.status(desk)
        fams = parse(metrics.render(desk, data))
    finally:
        desk.close()
    assert value(fams, "lapakd_outbox_pending") == 0
    assert value(fams, "lapakd_forward_latency_seconds", "lapakd_forward_latency_seconds_count"
                 ) == 0
    assert value(fams, "lapakd_complaints_total", status="forwarded") == 0
    assert metrics.health(data)[0] == 503  # the daemon never ran on it: as `lapakd status`
    assert metrics._escape('a"b\\c\nd') == 'a\\"b\\\\c\\nd'


def test_the_shipped_alert_rules_read_and_name_only_metrics_lapakd_serves(tmp_path):
    import re
    from pathlib import Path

    from ruamel.yaml import YAML

    doc = YAML(typ="safe").load(
        (Path(__file__).resolve().parent.parent / "docs" / "prometheus-alerts.yml").read_text())
    rules = [r for g in doc["groups"] for r in g["rules"]]
    names = {r["alert"] for r in rules}
    assert {"LapakdDown", "LapakdChannelDown", "LapakdOutboxFailed", "LapakdOverdue"} <= names
    for rule in rules:
        assert rule["expr"] and rule["annotations"]["summary"], rule["alert"]
    desk = Desk(load_config(_config(tmp_path, "")))
    try:
        text = metrics.render(desk, checks.status(desk))
    finally:
        desk.close()
    # Every family (also those without samples on a desk with no channels or agencies).
    served = set(re.findall(r"^# TYPE (lapakd_\w+)", text, re.M))
    served |= set(re.findall(r"^(lapakd_\w+)", text, re.M))
    used = {m for r in rules for m in re.findall(r"\blapakd_\w+", r["expr"])}
    assert used and used <= served, used - served


def test_the_shipped_alert_rules_pass_promtool(tmp_path):
    """Prometheus' own checker parses the rules, and its rule unit test (tests/data/
    prometheus-alerts-test.yml) shows they fire when and as documented."""
    import shutil
    import subprocess
    from pathlib import Path

    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: ./dev system-deps installs Debian's prometheus package"
    root = Path(__file__).resolve().parent.parent
    shutil.copy(root / "docs" / "prometheus-alerts.yml", tmp_path / "lapakd-alerts.yml")
    shutil.copy(root / "tests" / "data" / "prometheus-alerts-test.yml", tmp_path / "test.yml")
    check = subprocess.run([promtool, "check", "rules", "lapakd-alerts.yml"], cwd=tmp_path,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    test = subprocess.run([promtool, "test", "rules", "test.yml"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert test.returncode == 0, test.stdout + test.stderr
