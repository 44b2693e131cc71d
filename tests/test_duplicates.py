"""Cross-channel duplicates (lapakd/routing/duplicates.py): FTS5 kept in sync with the
complaints, the kecamatan/category/open/14-day limits, and the hint in the forward, the triage
mail and `lapakd show`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from deskenv import ADMIN_EMAIL, make_mail

from lapakd.routing import duplicates
from lapakd.store import Store, iso

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
POTHOLE = "Jalan berlubang besar di Jl. Soedirman Sokaraja depan SPBU, dua motor sudah jatuh"
POTHOLE_AGAIN = "lubang gede nang Jl Soedirman Sokaraja cedhak SPBU, motor jatuh terus"


# bm25 weighs a word by how rare it is on the desk: a store of a handful of complaints has no
# rare words. A desk's background of other complaints (another kecamatan) gives it some.
BACKGROUND = [
    "Sampah menumpuk di TPS pasar belum diangkut", "Lampu PJU mati di jalan desa",
    "Air PDAM keruh sejak kemarin", "Saluran irigasi sawah jebol", "Pohon tumbang menutup jalan",
    "Pelayanan KTP di kecamatan lambat", "Anjing liar menggigit anak", "Banjir di perumahan",
    "Pungli parkir di alun-alun", "Guru jarang masuk kelas", "Bantuan sosial tidak tepat sasaran",
    "Puskesmas tutup sebelum jam pelayanan", "Trotoar rusak dipakai pedagang kaki lima",
    "Jembatan gantung kayunya lapuk", "Bau limbah pabrik tahu di sungai", "Parkir liar di pasar",
]


def background(store: Store) -> None:
    for text in BACKGROUND:
        add(store, text, kecamatan="Ajibarang", category=None)


def add(store: Store, text: str, *, hours: float = 0, kecamatan: str = "Sokaraja",
        category: str | None = "jalan", status: str = "forwarded") -> dict:
    at = iso(T0 + timedelta(hours=hours))
    with store.transaction() as conn:
        n = conn.execute("SELECT count(*) FROM complaints").fetchone()[0] + 1
        conn.execute(
            "INSERT INTO complaints (ticket, channel, status, text, received_at, route_after,"
            " category, kecamatan, created_at, updated_at) VALUES (?, 'email', ?, ?, ?, ?, ?,"
            " ?, ?, ?)", (f"LA-2026-{n:05d}", status, text, at, at, category, kecamatan, at, at))
    return store.one("SELECT * FROM complaints WHERE ticket = ?", (f"LA-2026-{n:05d}",))


def tickets(store: Store, row) -> list[str]:
    row = store.one("SELECT * FROM complaints WHERE id = ?", (row["id"],))
    return [s.ticket for s in duplicates.similar_open(store, row)]


def test_the_same_problem_is_suggested_and_a_different_one_is_not(tmp_path):
    store = Store(tmp_path)
    background(store)
    first = add(store, POTHOLE)
    add(store, "Marka jalan depan SD Negeri 1 Sokaraja Kulon sudah pudar, mohon dicat ulang")
    again = add(store, POTHOLE_AGAIN, hours=20)
    other = add(store, "Lampu lalu lintas perempatan Sokaraja Tengah mati sejak kemarin", hours=21)
    assert tickets(store, again) == [first["ticket"]]
    assert tickets(store, other) == []
    store.close()


def test_only_open_complaints_of_the_same_place_and_category_within_14_days(tmp_path):
    store = Store(tmp_path)
    background(store)
    add(store, POTHOLE, kecamatan="Kembaran")
    add(store, POTHOLE, category="sampah")
    add(store, POTHOLE, status="resolved")
    add(store, POTHOLE, hours=-15 * 24)
    again = add(store, POTHOLE_AGAIN)
    assert tickets(store, again) == []
    nowhere = add(store, POTHOLE, kecamatan=None)
    assert tickets(store, nowhere) == []  # no place: nothing to call the same
    store.close()


def test_the_index_follows_edits_and_deletes(tmp_path):
    store = Store(tmp_path)
    background(store)
    first = add(store, "Sampah menumpuk di TPS belakang kantor desa")
    again = add(store, POTHOLE_AGAIN, hours=1)
    assert tickets(store, again) == []
    with store.transaction() as conn:
        conn.execute("UPDATE complaints SET text = ? WHERE id = ?", (POTHOLE, first["id"]))
    assert tickets(store, again) == [first["ticket"]]
    with store.transaction() as conn:
        conn.execute("DELETE FROM complaints WHERE id = ?", (first["id"],))
        assert conn.execute("SELECT count(*) FROM complaint_fts WHERE complaint_fts MATCH"
                            " 'spbu'").fetchone()[0] == 1
    store.close()


def test_forward_and_show_say_mungkin_sama_dengan(desk_env):
    desk_env.append(make_mail("Jalan rusak", POTHOLE, sender="Budi <budi.w@example.com>"))
    desk_env.run_once()
    desk_env.append(make_mail("Lubang", POTHOLE_AGAIN, sender="Sri <sri.k@example.com>"))
    desk_env.run_once()
    with desk_env.db() as db:
        rows = db.execute("SELECT ticket, status, kecamatan FROM complaints ORDER BY id").fetchall()
    assert [r["kecamatan"] for r in rows] == ["Sokaraja", "Sokaraja"]
    first, second = rows[0]["ticket"], rows[1]["ticket"]
    mails = [m.message for m in desk_env.sink.messages]
    later = [m for m in mails if m["X-Lapakd-Ticket"] == second]
    assert later, [m["Subject"] for m in mails]
    body = later[0].get_body(("plain",)).get_content()
    assert f"mungkin sama dengan {first}" in body
    earlier = next(m for m in mails if m["X-Lapakd-Ticket"] == first)
    assert "mungkin sama dengan" not in earlier.get_body(("plain",)).get_content()
    data = desk_env.cli_json("show", second)
    assert [s["ticket"] for s in data["similar"]] == [first]
    assert f"mungkin sama dengan {first}" in desk_env.cli("show", second).stdout
    if rows[1]["status"] == "triage":  # the test rules may leave it to the admin
        assert any(ADMIN_EMAIL in m.rcpt_tos for m in desk_env.sink.messages)


def test_triage_mail_says_mungkin_sama_dengan_and_how_to_merge(desk_env):
    first_text = ("Ada kandang kambing berdiri di atas selokan dekat Pasar Sokaraja, baunya"
                  " ke mana-mana")
    again_text = "kandang wedhus nang dhuwur selokan cedhak Pasar Sokaraja, mambu banget"
    desk_env.append(make_mail("Kandang", first_text, sender="Budi <budi.w@example.com>"))
    desk_env.run_once()
    desk_env.append(make_mail("Kambing", again_text, sender="Sri <sri.k@example.com>"))
    desk_env.run_once()
    with desk_env.db() as db:
        rows = db.execute("SELECT ticket, status FROM complaints ORDER BY id").fetchall()
    assert [r["status"] for r in rows] == ["triage", "triage"]
    first, second = rows[0]["ticket"], rows[1]["ticket"]
    triage = [m.message for m in desk_env.sink.messages
              if ADMIN_EMAIL in m.rcpt_tos and m.message["X-Lapakd-Ticket"] == second]
    body = triage[0].get_body(("plain",)).get_content()
    assert f"mungkin sama dengan {first}" in body
    assert f"lapakd merge {second} {first}" in body
