"""Agency answers as real mail clients write them: greetings, Outlook's unquoted forward under a
header block of display names, Gmail's attribution, and the desk's own forward pasted back.

The forward is rendered from the shipped template (lapakd/templates/forward.txt.j2), so these
tests follow the template when it changes."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from lapakd.lifecycle import boilerplate
from lapakd.lifecycle.replies import is_greeting, parse_reply, strip_reply
from lapakd.mail.text import templates

CONTACT = "Sri Wahyuni <sri.wahyuni77@example.com> (Email)"
COMPLAINT = (
    "Sampun seminggu sampah ning TPS Pasar Wage ora diangkut, mambu banget lan akeh laler.\n"
    "Mohon segera ditindaklanjuti nggih."
)


def forward_text(*, budget: bool = False, contact: str = CONTACT) -> str:
    """The forward as the desk sends it (rendered by the real template)."""
    desk = SimpleNamespace(name="Lapak Aduan Kabupaten Banyumas",
                           email="lapakaduanbms@banyumas.example",
                           public_url="https://lapakaduan.example")
    return templates.get_template("forward.txt.j2").render(
        agency=SimpleNamespace(name="Dinas Lingkungan Hidup"),
        c={"ticket": "LA-2026-000042", "category": "LINGKUNGAN HIDUP", "subject": "Sampah TPS"},
        channel_label="Email", received="Senin, 2 Maret 2026 09.14 WIB",
        budget_dependent=budget, due="Rabu, 11 Maret 2026", sla_days=7, sla_unit="hari kerja",
        public_link="https://lapakaduan.example/aduan/LA-2026-000042.html",
        text=COMPLAINT, attachments=[{"filename": "tps.jpg"}], skipped=[], contact=contact,
        desk=desk,
    )


def outlook_en(answer: str) -> str:
    return (
        f"{answer}\n\n"
        "From: Lapak Aduan Kabupaten Banyumas\n"
        "Sent: Monday, March 2, 2026 9:15 AM\n"
        "To: Dinas Lingkungan Hidup\n"
        "Cc: Kabid Persampahan\n"
        "Subject: [LA-2026-000042] LINGKUNGAN HIDUP: Sampah TPS\n\n"
        + forward_text()
    )


def outlook_id(answer: str) -> str:
    return (
        f"{answer}\n\n"
        "Dari: Lapak Aduan Kabupaten Banyumas\n"
        "Dikirim: Senin, 02 Maret 2026 09.15\n"
        "Kepada: Dinas Lingkungan Hidup\n"
        "Subjek: [LA-2026-000042] LINGKUNGAN HIDUP: Sampah TPS\n\n"
        + forward_text()
    )


ANSWER = ("Sampah di TPS Pasar Wage sudah kami angkut hari Selasa pagi dengan dua armada.\n"
          "Jadwal pengangkutan kini setiap hari pukul 06.00.")


@pytest.mark.parametrize("make", [outlook_en, outlook_id], ids=["outlook-en", "outlook-id"])
@pytest.mark.parametrize("signature", ["", "\n\nHormat kami,\nKasi Sampah"])
def test_outlook_reply_with_the_whole_forward_unquoted_is_cut_at_its_header_block(
        make, signature):
    parsed = parse_reply(make("Status: selesai\n" + ANSWER + signature))
    assert (parsed.status, parsed.text) == ("resolved", ANSWER)


def test_outlook_header_with_bold_markers_from_html_conversion():
    text = (f"{ANSWER}\n\n*From:* Lapak Aduan Kabupaten Banyumas\n*Sent:* Monday, March 2, "
            "2026 9:15 AM\n*To:* DLH\n\n" + forward_text())
    assert strip_reply(text) == ANSWER


def test_one_from_line_alone_is_not_a_header_block():
    text = "Dari: Bidang Persampahan DLH\nSampah sudah kami angkut."
    assert strip_reply(text) == text


@pytest.mark.parametrize("header", [
    "",  # the header block is gone (a client that prints none, or a locale we do not know)
    "Von: Lapak Aduan Kabupaten Banyumas\nGesendet: Montag, 2. März 2026 09:15\n\n",
])
def test_the_forward_pasted_back_without_a_known_header_is_cut_at_its_first_line(header):
    text = f"{ANSWER}\n\n{header}" + forward_text()
    assert strip_reply(text) == ANSWER + ("\n\nVon: Lapak Aduan Kabupaten Banyumas\nGesendet: "
                                          "Montag, 2. März 2026 09:15" if header else "")


def test_a_budget_forward_is_recognised_too():
    assert strip_reply(f"{ANSWER}\n\n{forward_text(budget=True)}") == ANSWER


def test_the_contact_line_never_survives_even_alone():
    pasted = (f"{ANSWER}\n\nKontak pengadu (untuk klarifikasi, jangan dipublikasikan):\n"
              f"  {CONTACT}\n")
    assert strip_reply(pasted) == ANSWER
    inline = f"{ANSWER}\nKontak pengadu: {CONTACT}"
    assert strip_reply(inline) == ANSWER


def test_one_courtesy_line_the_forward_also_has_is_kept():
    # "Terima kasih atas kerja samanya." ends the forward, but alone it is the agency's words.
    text = f"Terima kasih atas kerja samanya.\n{ANSWER}"
    assert strip_reply(text) == text


def test_gmail_indonesian_attribution_and_quote():
    quoted = "\n".join("> " + line for line in forward_text().split("\n"))
    for attribution in (
        "Pada Sen, 2 Mar 2026 pukul 09.15 Lapak Aduan Kabupaten Banyumas <"
        "lapakaduanbms@banyumas.example> menulis:",
        "Pada tanggal Sen, 2 Mar 2026 pukul 09.15 Lapak Aduan Kabupaten Banyumas\n"
        "<lapakaduanbms@banyumas.example> menulis:",
    ):
        text = f"Status: diproses\n{ANSWER}\n\n{attribution}\n\n{quoted}\n"
        assert parse_reply(text).text == ANSWER
        assert parse_reply(text).status == "answered"


@pytest.mark.parametrize("greeting", [
    "Salam,", "Selamat pagi,", "Selamat siang Bapak/Ibu Admin,", "Dengan hormat,",
    "Assalamualaikum wr wb", "Assalamu'alaikum Wr. Wb.", "Yth. Admin,",
    "Kepada Yth. Admin Lapak Aduan Kabupaten Banyumas", "Halo admin Lapak Aduan,",
])
def test_a_greeting_line_keeps_the_answer_and_is_not_published(greeting):
    parsed = parse_reply(f"{greeting}\n\n{ANSWER}\n\nSalam,\nKasi Pengelolaan Sampah\n")
    assert (parsed.status, parsed.text) == (None, ANSWER)


def test_a_status_line_after_a_greeting_counts():
    parsed = parse_reply(f"Selamat pagi,\nStatus: selesai\n{ANSWER}")
    assert (parsed.status, parsed.text) == ("resolved", ANSWER)
    parsed = parse_reply("Yth. Admin,\n\nAssalamualaikum wr wb\n\nStatus: ditolak - bukan "
                         "wilayah kami")
    assert (parsed.status, parsed.text) == ("rejected", "bukan wilayah kami")
    # ... but only greetings: a sentence before it makes it part of the answer (as before).
    assert parse_reply("Selamat pagi,\nKami sudah cek.\nStatus: selesai").status is None


@pytest.mark.parametrize("line", [
    "Selamat pagi, sampah sudah kami angkut.", "Yth. Admin, sampah sudah kami angkut.",
    "Salam kenal, kami dari DLH sudah ke lokasi", "Halo, armada sudah berangkat ke TPS tadi pagi",
])
def test_a_greeting_that_carries_the_answer_is_the_answer(line):
    assert not is_greeting(line)
    assert parse_reply(line).text == line


def test_markers_follow_the_templates():
    edited = {"forward.txt.j2": (
        "Yth. {{ agency.name }},\n\nDesk Banyumas menyampaikan laporan warga di bawah ini.\n"
        "Nomor tiket : {{ c.ticket }}\n\nData pelapor (rahasia, jangan disebarkan):\n"
        "  {{ contact }}\n\nSilakan balas email ini untuk menanggapi laporan tersebut.\n"
    )}
    m = boilerplate.derive(edited)
    assert any(p.match("Desk Banyumas menyampaikan laporan warga di bawah ini.") for p in m.lines)
    assert any(p.match("Data pelapor (rahasia, jangan disebarkan):") for p in m.contact)
    assert not any(p.match("Nomor tiket : LA-2026-000042") for p in m.lines)  # too short
    assert not any(p.match("Yth. Dinas Lingkungan Hidup,") for p in m.lines)
    # The shipped templates: the forward's contact line and its first fixed line.
    assert boilerplate.is_contact_line("Kontak pengadu (untuk klarifikasi, jangan dipublikasikan):")
    first = next(line for line in forward_text().split("\n") if boilerplate.is_desk_line(line))
    assert first.startswith("Lapak Aduan Kabupaten Banyumas meneruskan")


def test_scrub_removes_the_contact_as_the_forward_wrote_it():
    text = f"Sudah kami hubungi pelapor.\n{CONTACT}\nTerima kasih."
    assert boilerplate.scrub(text, CONTACT) == "Sudah kami hubungi pelapor.\nTerima kasih."


def test_an_answer_stored_before_the_guard_is_published_without_the_forward(tmp_path):
    from publicenv import add_complaint, make_desk

    from lapakd.public import export

    desk = make_desk(tmp_path)
    try:
        ticket = add_complaint(desk, "Sampah TPS Pasar Wage belum diangkut", agencies=("dlh",),
                               answer=f"{ANSWER}\n\nYth. Dinas Lingkungan Hidup,\n\n"
                                      + forward_text())
        export.export(desk)
        root = desk.config.public_dir.resolve()
        record = next(r for r in json.loads((root / "aduan.json").read_text())
                      if r["id"] == ticket)
        assert [u["text"] for u in record["updates"]] == [ANSWER]
        for name in ("aduan.json", "aduan.csv", f"aduan/{ticket}.html"):
            text = (root / name).read_text()
            assert "Kontak pengadu" not in text and "Wahyuni" not in text, name
    finally:
        desk.close()
