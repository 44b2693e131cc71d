"""`lapakd demo` end to end, as a newcomer runs it: a subprocess, real servers, real rules.

The demo starts its own IMAP server (pymap) and SMTP sink on loopback, so these tests need
neither Dovecot nor the network.
"""

from __future__ import annotations

import email
import email.policy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

TIMEOUT = 180


# The demo starts its embedded servers in a subprocess.
pytestmark = pytest.mark.slow


def lapakd(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lapakd.cli", *args],
        cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT, check=False,
    )


def complaints(demo_dir: Path) -> list[dict[str, Any]]:
    done = lapakd("list", "--json", "--config", str(demo_dir / "lapakd.toml"), cwd=demo_dir)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def email_items(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The demo's email samples (other channels add their own; checked by their tests)."""
    return [i for i in summary["items"] if i["channel"] == "email"]


def by_subject(rows: list[dict[str, Any]], words: str) -> dict[str, Any]:
    found = [r for r in rows if words.lower() in (r["subject"] or "").lower()]
    assert len(found) == 1, f"{words!r}: {[r['subject'] for r in rows]}"
    return found[0]


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """One demo run shared by the checks below (it takes a few seconds)."""
    demo_dir = tmp_path_factory.mktemp("demo") / "demo"
    done = lapakd("demo", "--dir", str(demo_dir), "--json", cwd=demo_dir.parent)
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return demo_dir, json.loads(done.stdout)


def test_every_sample_is_handled(first_run: tuple[Path, dict[str, Any]]) -> None:
    demo_dir, summary = first_run
    assert summary["ok"] is True and summary["problems"] == []
    rows = complaints(demo_dir)
    assert all(r["status"] in ("forwarded", "triage") for r in rows), rows
    assert all(r["id"].startswith("LA-") for r in rows)  # nothing quarantined (msg-N)
    # Every email became its own complaint, except the auto-reply.
    emails = [r for r in rows if r["channel"] == "email"]
    assert len(emails) >= 10
    assert len(email_items(summary)) == len(emails) + 1
    assert {i["ticket"] for i in summary["items"] if i["ticket"]} == {r["id"] for r in rows}


def test_routing_of_the_telling_cases(first_run: tuple[Path, dict[str, Any]]) -> None:
    demo_dir, _ = first_run
    rows = complaints(demo_dir)
    pungli = by_subject(rows, "mengurus KTP")
    assert pungli["status"] == "forwarded"
    assert "inspektorat" in pungli["agencies"]
    pln = by_subject(rows, "Listrik PLN")
    assert pln["status"] == "triage" and pln["agencies"] == []
    pothole = by_subject(rows, "Jalan berlubang")
    assert pothole["status"] == "forwarded"
    # The out-of-office reply was stored but is no complaint.
    assert not [r for r in rows if "Balasan otomatis" in (r["subject"] or "")]
    [auto] = [i for i in email_items(first_run[1]) if not i["expected_complaint"]]
    assert auto["ticket"] is None and auto["kind"] == "auto_reply"


def test_chats_and_webhook_are_routed_and_acknowledged(
    first_run: tuple[Path, dict[str, Any]],
) -> None:
    """The Messenger chat (polled from the Graph replica) and the WhatsApp message (a signed
    webhook to lapakd's own /webhook) are complaints next to the emails, and each citizen got
    the ticket number back on their own channel."""
    demo_dir, summary = first_run
    rows = {r["id"]: r for r in complaints(demo_dir)}
    tickets = {}
    for channel, agency, messages in (("facebook", "dinhub", 3), ("whatsapp", "dlh", 1)):
        items = [i for i in summary["items"] if i["channel"] == channel]
        assert len(items) == messages, items
        # A chat's messages make one complaint (the demo's group window is 0: no waiting).
        [ticket] = {i["ticket"] for i in items}
        assert ticket is not None and all(i["kind"] == "complaint" for i in items)
        assert rows[ticket]["channel"] == channel
        assert rows[ticket]["status"] == "forwarded"
        assert agency in rows[ticket]["agencies"]
        tickets[channel] = ticket
    # Acknowledged once per complaint, on its channel, as the replicas received it.
    for channel in ("twitter", "facebook", "whatsapp"):
        mine = {r["id"] for r in rows.values() if r["channel"] == channel}
        acks = [r for r in summary["replies"] if r["channel"] == channel]
        assert sorted(t for a in acks for t in mine if t in a["text"]) == sorted(mine), acks
    [wa] = [r for r in summary["replies"] if r["channel"] == "whatsapp"]
    assert wa["to"] == "+6281327654321" and tickets["whatsapp"] in wa["text"]
    [fb] = [r for r in summary["replies"] if r["channel"] == "facebook"]
    assert "(Messenger)" in fb["to"] and tickets["facebook"] in fb["text"]
    config = (demo_dir / "lapakd.toml").read_text(encoding="utf-8")
    assert "group_window_minutes = 0" in config and "[webhook]" in config


def test_forwards_are_in_outbox_mail(first_run: tuple[Path, dict[str, Any]]) -> None:
    demo_dir, summary = first_run
    files = sorted((demo_dir / "outbox-mail").glob("*.eml"))
    assert files and len(files) == sum(summary["sent"].values())
    mails = [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in files]
    pothole = by_subject(complaints(demo_dir), "Jalan berlubang")
    mine = [m for m in mails if m["X-Lapakd-Ticket"] == pothole["id"]]
    [forward] = [m for m in mine if m["Auto-Submitted"] is None]
    [receipt] = [m for m in mine if m["Auto-Submitted"] == "auto-replied"]  # to the citizen
    assert receipt["Subject"].endswith(f"[{pothole['id']}]")
    assert forward["From"].addresses[0].addr_spec == "aduan@lapak.test"
    [photo] = list(forward.iter_attachments())
    data = photo.get_payload(decode=True)
    assert photo.get_content_type() == "image/jpeg"
    assert data.startswith(b"\xff\xd8") and data.endswith(b"\xff\xd9")


def test_second_run_in_the_same_dir_starts_fresh(
    first_run: tuple[Path, dict[str, Any]],
) -> None:
    demo_dir, summary = first_run
    mine = demo_dir / "notes.txt"  # something the user put there: must survive
    mine.write_text("keep me", encoding="utf-8")
    done = lapakd("demo", "--dir", str(demo_dir), cwd=demo_dir.parent)
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert "LA-" in done.stdout and "lapakd list --config" in done.stdout
    assert "Replies to citizens" in done.stdout and "+6281327654321" in done.stdout
    rows = complaints(demo_dir)
    # The same complaints again, not twice as many.
    assert len(rows) == len({i["ticket"] for i in summary["items"] if i["ticket"]})
    assert len(list((demo_dir / "outbox-mail").glob("*.eml"))) == sum(summary["sent"].values())
    assert mine.read_text(encoding="utf-8") == "keep me"


def test_refuses_a_folder_it_did_not_make(tmp_path: Path) -> None:
    target = tmp_path / "important"
    target.mkdir()
    (target / "thesis.tex").write_text("do not delete", encoding="utf-8")
    done = lapakd("demo", "--dir", str(target), cwd=tmp_path)
    assert done.returncode == 1
    assert "not made by lapakd demo" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in target.iterdir()) == ["thesis.tex"]
