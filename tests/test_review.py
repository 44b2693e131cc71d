"""Review before publishing ([public] review = true), over the real Dovecot + SMTP sink and the
real export: new complaints and agency answers stay off every published file until an admin
runs `lapakd publish`; what was published before review was switched on stays published."""

from __future__ import annotations

import json
import os
from pathlib import Path

from deskenv import make_mail
from test_lifecycle_e2e import reply_to

OLD = "Jalan berlubang di perempatan Karanglewas, sudah dua motor jatuh minggu ini"
NEW = "Sampah depan pasar Sokaraja numpuk, got mampet, banyune mlebu ning warung"
OLD_ANSWER = "Lubang di perempatan Karanglewas dijadwalkan ditambal hari Jumat."
NEW_ANSWER = "Got pasar Sokaraja sudah dikeruk, ternyata tersumbat karung semen bekas."


def site_text(root: Path) -> str:
    """Every published file's text, detail pages included (`aduan/` is a symlink)."""
    parts = []
    for folder, _, names in os.walk(root, followlinks=True):
        for name in names:
            if Path(name).suffix in (".html", ".json", ".csv", ".xml"):
                parts.append(Path(folder, name).read_text(encoding="utf-8"))
    return "\n".join(parts)


def export(desk_env) -> str:
    desk_env.cli("export")
    return site_text(desk_env.data_dir / "public")


def test_review_holds_new_complaints_and_answers_until_published(desk_env):
    desk_env.append(make_mail("Jalan rusak", OLD, sender="Warga Satu <warga1@example.com>"))
    desk_env.run_once()
    old_fwd = desk_env.sink.wait_for(1)[-1].message
    old_ticket = old_fwd["X-Lapakd-Ticket"]
    assert old_ticket in export(desk_env)

    desk_env.write_config(public={"review": True})
    desk_env.sink.clear()
    desk_env.append(make_mail("Sampah pasar", NEW, sender="Warga Dua <warga2@example.com>"))
    desk_env.append(reply_to(old_fwd, f"Selamat siang,\n{OLD_ANSWER}",
                             sender="DPUPR <dpupr@banyumas.example>"))
    desk_env.run_once()
    new_fwd = next(m.message for m in desk_env.sink.wait_for(2)
                   if m.message["X-Lapakd-Ticket"] not in (None, old_ticket))
    new_ticket = new_fwd["X-Lapakd-Ticket"]
    # The citizen is told at once: review holds the site, not the relay.
    assert any(m.rcpt_tos == ["warga1@example.com"] for m in desk_env.sink.messages)

    site = export(desk_env)
    assert old_ticket in site and OLD.split(",")[0] in site  # published before: stays
    assert new_ticket not in site and "Sokaraja numpuk" not in site
    assert "dijadwalkan ditambal" not in site

    queue = desk_env.cli_json("list", "--unreviewed")
    assert [(r["review"], r.get("ticket", r["id"])) for r in queue] == [
        ("complaint", new_ticket), ("answer", old_ticket)]
    answer_id = queue[1]["id"]
    assert answer_id.startswith("upd-") and queue[1]["public_text"] == OLD_ANSWER
    text = desk_env.cli("list", "--unreviewed").stdout
    assert new_ticket in text and answer_id in text and "2 awaiting review" in text
    assert desk_env.cli_json("show", new_ticket)["awaiting_review"] is True

    out = desk_env.cli("publish", new_ticket, "--by", "admin.satu").stdout
    assert "published the complaint" in out
    site = export(desk_env)
    assert new_ticket in site and "Sokaraja numpuk" in site
    assert "dijadwalkan ditambal" not in site  # the older complaint's answer still waits
    records = json.loads((desk_env.data_dir / "public" / "aduan.json").read_text())
    assert {r["id"] for r in records} == {old_ticket, new_ticket}
    story = desk_env.cli_json("show", new_ticket)
    (event,) = [e for e in story["events"] if e["type"] == "published"]
    assert event["actor"] == "admin.satu" and event["complaint"] is True
    assert "published" in desk_env.cli("show", new_ticket).stdout

    desk_env.cli("publish", answer_id, "--by", "admin.dua")
    assert "dijadwalkan ditambal" in export(desk_env)
    story = desk_env.cli_json("show", old_ticket)
    assert [u["public"] for u in story["updates"]] == ["published"]
    assert any(e["type"] == "update_published" and e["actor"] == "admin.dua"
               for e in story["events"])

    # An answer an admin does not want public: hidden, out of the queue, never exported.
    desk_env.append(reply_to(new_fwd, f"Status: selesai\n{NEW_ANSWER}",
                             sender="DLH <dlh@banyumas.example>"))
    desk_env.run_once()
    (held,) = desk_env.cli_json("list", "--unreviewed")
    assert held["ticket"] == new_ticket and held["status"] == "resolved"
    desk_env.cli("hide", held["id"], "--by", "admin.satu")
    assert desk_env.cli_json("list", "--unreviewed") == []
    site = export(desk_env)
    assert "karung semen" not in site
    assert desk_env.cli("list", "--unreviewed").stdout.strip().endswith(
        "0 awaiting review (lapakd publish ID, lapakd hide ID)")
    assert desk_env.cli("publish", held["id"], check=False).returncode == 2  # hidden


def test_review_off_publishes_as_before(desk_env):
    desk_env.append(make_mail("Sampah pasar", NEW))
    desk_env.run_once()
    fwd = desk_env.sink.wait_for(1)[-1].message
    desk_env.append(reply_to(fwd, NEW_ANSWER, sender="DLH <dlh@banyumas.example>"))
    desk_env.run_once()
    assert desk_env.cli_json("list", "--unreviewed") == []
    site = export(desk_env)
    assert fwd["X-Lapakd-Ticket"] in site and "karung semen" in site
