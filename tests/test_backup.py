"""`lapakd backup`: snapshots of real SQLite stores taken while another process writes, `--verify`,
restore into a new data_dir, `--keep`; the CLI runs as a subprocess, nothing is mocked."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # subprocesses of lapakd and a writer process

ROOT = Path(__file__).resolve().parent.parent

WRITER = textwrap.dedent("""\
    import sqlite3, sys, time
    db, stop = sys.argv[1], sys.argv[2]
    conn = sqlite3.connect(db, timeout=30, isolation_level=None)
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("CREATE TABLE IF NOT EXISTS load_test (id INTEGER PRIMARY KEY, body TEXT)")
    n = 0
    print("started", flush=True)
    import os
    while not os.path.exists(stop):
        conn.execute("BEGIN IMMEDIATE")
        for _ in range(50):
            conn.execute("INSERT INTO load_test (body) VALUES (?)", ("x" * 500,))
        conn.execute("COMMIT")
        n += 50
    print(n, flush=True)
""")


def write_config(home: Path, data_dir: str = "var", rules_dir: str = "rules") -> Path:
    cfg = home / "lapakd.toml"
    cfg.write_text(textwrap.dedent(f"""\
        [desk]
        email = "lapakaduan@banyumas.example"
        admin_email = "admin@banyumas.example"

        [paths]
        rules_dir = "{rules_dir}"
        data_dir = "{data_dir}"
        """), encoding="utf-8")
    return cfg


def lapakd(home: Path, *args: str, config: bool = True) -> subprocess.CompletedProcess[str]:
    extra = ["--config", str(home / "lapakd.toml")] if config else []
    proc = subprocess.run(
        [sys.executable, "-m", "lapakd.cli", *args, *extra],
        cwd=home, text=True, capture_output=True, timeout=120, check=False,
    )
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    return proc


@pytest.fixture
def desk(tmp_path: Path) -> Path:
    """A desk with the shipped rules and three complaints, one with a photo."""
    home = tmp_path / "desk"
    home.mkdir()
    shutil.copytree(ROOT / "rules", home / "rules")
    write_config(home)
    (home / "foto.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg " + os.urandom(64))
    for text, photo in [("Jalan di Desa Karangsalam rusak, lubangnya besar", True),
                        ("Warga diare sejak kemarin di Kedungbanteng", False),
                        ("Lampu jalan mati di depan pasar Wangon", False)]:
        args = ["add", "--text", text, "--name", "Budi", "--contact", "081234567890"]
        if photo:
            args += ["--photo", str(home / "foto.jpg")]
        out = lapakd(home, *args)
        assert out.returncode == 0, out.stderr
    return home


def snapshot_of(out: subprocess.CompletedProcess[str]) -> Path:
    assert out.returncode == 0, out.stderr
    return Path(json.loads(out.stdout)["snapshot"])


def backup(home: Path, target: Path, *extra: str) -> Path:
    return snapshot_of(lapakd(home, "backup", str(target), "--json", *extra))


def test_backup_while_another_process_writes_is_consistent(desk: Path, tmp_path: Path) -> None:
    db = desk / "var" / "lapakd.sqlite3"
    stop = tmp_path / "stop"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(db), str(stop)],
                              text=True, stdout=subprocess.PIPE)
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "started"
        time.sleep(0.3)
        snaps = [backup(desk, tmp_path / "backups") for _ in range(3)]
    finally:
        stop.touch()
        written = int(writer.communicate(timeout=30)[0].strip())
    assert writer.returncode == 0
    counts = []
    for snap in snaps:
        copy = snap / "data" / "lapakd.sqlite3"
        conn = sqlite3.connect(f"file:{copy}?mode=ro&immutable=1", uri=True)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        (n,) = conn.execute("SELECT count(*) FROM load_test").fetchone()
        assert conn.execute("SELECT count(*) FROM complaints").fetchone()[0] == 3
        conn.close()
        assert n % 50 == 0  # whole transactions only
        counts.append(n)
        assert not any(p.name.endswith(("-wal", "-shm", "-journal"))
                       for p in copy.parent.iterdir())
    assert counts == sorted(counts) and 0 < counts[-1] <= written
    assert len(set(counts)) > 1, "the writer was not writing during the backups"
    out = lapakd(desk, "backup", "--verify", str(tmp_path / "backups"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("files ok, database integrity ok") == 3


def test_snapshot_layout_and_modes(desk: Path, tmp_path: Path) -> None:
    target = tmp_path / "backups"
    (desk / "var" / "state.json").write_text("{}")  # a state file a later feature keeps there
    snap = backup(desk, target)
    assert snap.parent == target and snap.name.startswith("lapakd-") and snap.name.endswith("Z")
    assert not [p for p in target.iterdir() if p.name.endswith(".partial")]
    manifest = json.loads((snap / "manifest.json").read_text())
    files = set(manifest["files"])
    assert "data/lapakd.sqlite3" in files
    assert {f"rules/{p.name}" for p in (desk / "rules").iterdir()} <= files
    attachments = [f for f in files if f.startswith("data/attachments/")]
    assert len(attachments) == 1
    original = desk / "var" / attachments[0].removeprefix("data/")
    assert (snap / attachments[0]).read_bytes() == original.read_bytes()
    assert (snap / attachments[0]).stat().st_ino == original.stat().st_ino  # hard link
    assert "data/state.json" in files
    assert not {"rules.cache", "lapakd.writer.lock"} & {Path(f).name for f in files}
    for p in [snap, *snap.rglob("*")]:
        mode = stat.S_IMODE(p.stat().st_mode)
        assert mode == (0o700 if p.is_dir() else 0o600), f"{p} is {oct(mode)}"


def test_verify_names_each_corrupted_file(desk: Path, tmp_path: Path) -> None:
    snap = backup(desk, tmp_path / "backups")
    copy = snap / "data" / "lapakd.sqlite3"
    data = bytearray(copy.read_bytes())
    for i in range(4096 + 100, 4096 + 4000):  # scribble over page 2 (a b-tree page)
        data[i] ^= 0x5A
    copy.write_bytes(bytes(data))
    rule = sorted((snap / "rules").iterdir())[0]
    rule.write_text(rule.read_text() + "\n# edited\n")
    attachment = next(p for p in (snap / "data" / "attachments").rglob("*") if p.is_file())
    attachment.unlink()  # a link of its own: the desk's file is untouched
    out = lapakd(desk, "backup", "--verify", str(snap))
    assert out.returncode == 1
    lines = out.stderr.splitlines()
    assert any(str(copy) in ln and "sha256" in ln for ln in lines), out.stderr
    assert any(str(copy) in ln and "integrity" in ln for ln in lines), out.stderr
    assert [ln for ln in lines if str(rule) in ln] == [f"{rule}: sha256 differs from the "
                                                     "manifest (changed or corrupted)"]
    assert [ln for ln in lines if str(attachment) in ln] == [f"{attachment}: missing"]
    assert lines[-1].endswith("problem(s) in 1 snapshot(s)")
    # the desk itself is unharmed
    assert lapakd(desk, "list", "--json").returncode == 0


def test_restore_into_a_new_data_dir_gives_the_same_complaints(desk: Path,
                                                                tmp_path: Path) -> None:
    before = lapakd(desk, "list", "--json")
    assert before.returncode == 0 and len(json.loads(before.stdout)) == 3
    snap = backup(desk, tmp_path / "backups")
    # restore = stop, copy back, start: here into a fresh machine's folders
    new = tmp_path / "restored"
    new.mkdir()
    shutil.copytree(snap / "data", new / "var")
    shutil.copytree(snap / "rules", new / "rules")
    write_config(new)
    after = lapakd(new, "list", "--json")
    assert after.returncode == 0, after.stderr
    assert json.loads(after.stdout) == json.loads(before.stdout)
    ticket = json.loads(before.stdout)[0]["id"]
    shown = [json.loads(lapakd(home, "show", ticket, "--json").stdout) for home in (desk, new)]
    assert shown[0] == shown[1]
    # the restored desk keeps working: a new complaint gets the next number
    out = lapakd(new, "add", "--text", "Jalan rusak lagi di Karangsalam")
    assert out.returncode == 0 and "000004" in out.stdout


def test_keep_removes_only_old_lapakd_snapshots(desk: Path, tmp_path: Path) -> None:
    target = tmp_path / "backups"
    old = []
    for stamp in ("20250101T000000Z", "20250102T000000Z", "20250103T000000Z"):
        snap = backup(desk, target)
        old.append(snap.rename(target / f"lapakd-{stamp}"))
    # Folders lapakd did not make, even ones named like a snapshot, are never removed.
    foreign = [target / "lapakd-20240101T000000Z", target / "photos",
               target / "lapakd-20240102T000000Z"]
    for f in foreign:
        f.mkdir()
        (f / "keep.txt").write_text("mine")
    (foreign[2] / "manifest.json").write_text(json.dumps({"format": "something-else"}))
    out = lapakd(desk, "backup", str(target), "--keep", "2", "--json")
    result = json.loads(out.stdout)
    assert out.returncode == 0, out.stderr
    newest = Path(result["snapshot"])
    assert sorted(result["removed"]) == [str(old[0]), str(old[1])]
    assert sorted(p.name for p in target.iterdir() if not p.name.startswith(".")) == sorted(
        [old[2].name, newest.name, *(f.name for f in foreign)])
    for f in foreign:
        assert (f / "keep.txt").read_text() == "mine"


def test_admin_errors_are_one_line(desk: Path, tmp_path: Path) -> None:
    out = lapakd(desk, "backup", "--verify", str(tmp_path / "nowhere"))
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    out = lapakd(desk, "backup", "--verify", str(empty))
    assert out.returncode == 2 and "no lapakd snapshot" in out.stderr
    out = lapakd(desk, "backup", str(tmp_path / "b"), "--keep", "0")
    assert out.returncode == 2 and "--keep 0" in out.stderr and not (tmp_path / "b").exists()
    no_db = tmp_path / "nodb"
    no_db.mkdir()
    shutil.copytree(ROOT / "rules", no_db / "rules")
    write_config(no_db)
    out = lapakd(no_db, "backup", str(tmp_path / "c"))
    assert out.returncode == 2 and "no database" in out.stderr
    assert not [p for p in (tmp_path / "c").iterdir() if not p.name.startswith(".lapakd-backup")]


def test_shipped_units() -> None:
    service = (ROOT / "systemd" / "lapakd-backup.service").read_text().splitlines()
    timer = (ROOT / "systemd" / "lapakd-backup.timer").read_text().splitlines()
    assert "Type=oneshot" in service and "User=lapakd" in service
    assert ("ExecStart=/opt/lapakd/venv/bin/lapakd backup /var/backups/lapakd --keep 14"
            in service)
    assert "OnCalendar=daily" in timer and "Persistent=true" in timer


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="no systemd-analyze")
def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    lapakd_bin = Path(sys.executable).with_name("lapakd")
    install = shutil.which("install") or "/usr/bin/install"
    text = (ROOT / "systemd" / "lapakd-backup.service").read_text()
    text = text.replace("/opt/lapakd/venv/bin/lapakd", str(lapakd_bin))
    text = text.replace("/usr/bin/install", install)
    (tmp_path / "lapakd-backup.service").write_text(text)
    shutil.copy(ROOT / "systemd" / "lapakd-backup.timer", tmp_path)
    out = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(tmp_path / "lapakd-backup.service"),
         str(tmp_path / "lapakd-backup.timer")],
        capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr


def test_attachments_are_copied_across_filesystems(desk: Path) -> None:
    """Where a hard link is impossible (DIR on another filesystem) the files are copied."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == desk.stat().st_dev:
        pytest.skip("no second filesystem at /dev/shm")
    target = Path(tempfile.mkdtemp(prefix="lapakd-backup-test-", dir=shm))
    try:
        out = lapakd(desk, "backup", str(target), "--json")
        assert out.returncode == 0, out.stderr
        result = json.loads(out.stdout)
        assert result["linked"] == 0
        snap = Path(result["snapshot"])
        copied = next(p for p in (snap / "data" / "attachments").rglob("*") if p.is_file())
        assert stat.S_IMODE(copied.stat().st_mode) == 0o600
        assert lapakd(desk, "backup", "--verify", str(snap)).returncode == 0
    finally:
        shutil.rmtree(target)
