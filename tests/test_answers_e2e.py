"""Agency answers as real clients send them, over the real Dovecot + SMTP sink, down to the
exported site: Outlook (Indonesian and English locale) with the whole forward unquoted under a
header block of display names, Gmail's "Pada ... menulis:", a greeting above the status line."""

from __future__ import annotations

import os
from pathlib import Path

from deskenv import make_mail
from test_lifecycle_e2e import DLH, reply_to, status_of, updates

CITIZEN = "Sri Wahyuni <sri.wahyuni77@example.com>"
ANSWERS = {
    "outlook-id": ("Sampah di TPS Pasar Wage sudah kami angkut Selasa pagi dengan dua armada.\n"
                   "Mulai minggu ini pengangkutan setiap hari pukul 06.00."),
    "outlook-en": "Saluran di Jl. Gatot Subroto sudah dibersihkan petugas kemarin sore.",
    "gmail": "Tim kami akan mengecek lokasi pembakaran sampah pada hari Kamis.",
}
# Lines of the desk's forward that must never be published as an answer.
FORWARD_BITS = ("Kontak pengadu", "sri.wahyuni77", "Wahyuni", "meneruskan aduan masyarakat",
                "Cara menanggapi", "Nomor tiket", "Lapak Aduan Kabupaten Banyumas <",
                "Dikirim:", "Sent:")


def plain(msg) -> str:
    return msg.get_body(("plain",)).get_content()


def outlook(fwd, answer: str, *, locale: str) -> str:
    subject, body = fwd["Subject"], plain(fwd)
    if locale == "id":
        block = ("Dari: Lapak Aduan Kabupaten Banyumas\nDikirim: Senin, 02 Maret 2026 09.15\n"
                 f"Kepada: Dinas Lingkungan Hidup\nSubjek: {subject}\n")
    else:
        block = ("From: Lapak Aduan Kabupaten Banyumas\nSent: Monday, March 2, 2026 9:15 AM\n"
                 f"To: Dinas Lingkungan Hidup\nSubject: {subject}\n")
    return f"{answer}\n\n{block}\n{body}"


def gmail(fwd, answer: str) -> str:
    quoted = "\n".join(f"> {line}" for line in plain(fwd).split("\n"))
    return (f"{answer}\n\nPada Sen, 2 Mar 2026 pukul 09.15 Lapak Aduan Kabupaten Banyumas <\n"
            f"lapakaduanbms@banyumas.example> menulis:\n\n{quoted}\n")


def published_files(root: Path) -> dict[str, str]:
    """Every text file of the site, detail pages included (`aduan/` is a symlink)."""
    out = {}
    for folder, _, names in os.walk(root, followlinks=True):
        for name in names:
            path = Path(folder, name)
            if path.suffix in (".html", ".json", ".csv", ".xml", ".js"):
                out[str(path.relative_to(root))] = path.read_text(encoding="utf-8")
    return out


def test_real_client_replies_publish_only_the_answer(desk_env):
    complaints = {
        "outlook-id": ("Sampah TPS", "Sampun seminggu sampah ning TPS Pasar Wage ora diangkut, "
                       "mambu banget."),
        "outlook-en": ("Got mampet", "Got di Jl. Gatot Subroto mampet, sampah plastik numpuk, "
                       "kalo ujan banjir."),
        "gmail": ("Bakar sampah", "Tetangga bakar sampah tiap sore, asapnya masuk rumah, tolong "
                  "ditegur."),
    }
    for subject, body in complaints.values():
        desk_env.append(make_mail(subject, body, sender=CITIZEN))
    desk_env.run_once()
    forwards = {m.message["Subject"].split(": ", 1)[1]: m.message
                for m in desk_env.sink.wait_for(3)}
    assert all("Kontak pengadu" in plain(f) for f in forwards.values())
    fwd = {key: next(f for s, f in forwards.items() if s.startswith(subject))
           for key, (subject, _) in complaints.items()}
    tickets = {key: f["X-Lapakd-Ticket"] for key, f in fwd.items()}
    desk_env.sink.clear()

    desk_env.append(reply_to(fwd["outlook-id"], outlook(
        fwd["outlook-id"], "Selamat pagi,\nStatus: selesai\n" + ANSWERS["outlook-id"],
        locale="id")))
    desk_env.append(reply_to(fwd["outlook-en"], outlook(
        fwd["outlook-en"], "Salam,\n\n" + ANSWERS["outlook-en"], locale="en")))
    desk_env.append(reply_to(fwd["gmail"], gmail(
        fwd["gmail"], "Yth. Admin Lapak Aduan,\n\nStatus: diproses\n" + ANSWERS["gmail"])))
    desk_env.run_once()

    assert status_of(desk_env, tickets["outlook-id"]) == "resolved"  # status after a greeting
    assert status_of(desk_env, tickets["outlook-en"]) == "answered"
    assert status_of(desk_env, tickets["gmail"]) == "answered"
    for key, ticket in tickets.items():
        (u,) = updates(desk_env, ticket)
        assert u["agency"] == "dlh" and u["actor"] == DLH
        assert u["text"] == ANSWERS[key], key
        assert "Kontak pengadu" in u["raw_text"] or key == "gmail"  # kept privately

    mails = desk_env.sink.wait_for(4)  # three relays; "selesai" also asks the citizen
    relays = [m for m in mails if "Balas SUDAH atau BELUM" not in plain(m.message)]
    assert len(relays) == 3
    assert all(m.rcpt_tos == ["sri.wahyuni77@example.com"] for m in mails)
    for m in relays:
        body = plain(m.message)
        assert any(" ".join(answer.split()) in " ".join(body.split())
                   for answer in ANSWERS.values())
        for bit in ("Kontak pengadu", "meneruskan aduan masyarakat", "Dikirim:", "Sent:"):
            assert bit not in body, bit

    desk_env.cli("export")
    files = published_files(desk_env.data_dir / "public")
    assert any(ANSWERS["outlook-id"].split("\n")[0] in text for text in files.values())
    for name, text in files.items():
        for bit in FORWARD_BITS:
            assert bit not in text, (name, bit)
    for ticket in tickets.values():
        page = files[f"aduan/{ticket}.html"]
        assert "Selamat pagi" not in page and "Yth." not in page
