"""Safe to run unattended: the export never deletes or moves what lapakd did not make, its
worker processes neither keep the runner lock nor outlive their parent, and the store is
private to its user whatever the umask."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from publicenv import add_complaint, make_desk

from lapakd.errors import LapakdError, StoreError
from lapakd.public import export
from lapakd.store import Store


@pytest.fixture
def desk(tmp_path):
    d = make_desk(tmp_path)
    yield d
    d.close()


def lapakd(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lapakd.cli", *args, "--config", str(cfg)],
                          capture_output=True, text=True, timeout=120)


def listing(folder: Path) -> dict[str, str]:
    """Every entry under `folder` (not following symlinks) with its kind and content."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        if p.is_symlink():
            out[rel] = "-> " + os.readlink(p)
        elif p.is_file():
            out[rel] = p.read_text(errors="replace")
        else:
            out[rel] = "dir"
    return out


# -- 1. never delete what lapakd did not make -----------------------------------------------


def test_export_into_an_operators_folder_is_refused_and_deletes_nothing(desk, tmp_path):
    """The acceptance check's step 2: a folder with the operator's notes, then two sibling
    sites in one parent (the second export used to delete the first site's live build)."""
    add_complaint(desk, "Lampu PJU mati di Jl. Gatot Subroto, peteng banget nek wengi")
    cfg = tmp_path / "lapakd.toml"
    www = tmp_path / "www"
    (www / "existing").mkdir(parents=True)
    (www / "existing" / "notes.txt").write_text("operator notes")
    before = listing(www / "existing")

    proc = lapakd(cfg, "export", "--out", str(www / "existing"))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(www / "existing") in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert (www / "existing").is_dir() and not (www / "existing").is_symlink()
    assert listing(www / "existing") == before  # not moved, not deleted, nothing added
    assert not any("build" in p.name for p in www.iterdir())

    assert lapakd(cfg, "export", "--out", str(www / "site-a")).returncode == 0
    assert lapakd(cfg, "export", "--out", str(www / "site-b")).returncode == 0
    assert (www / "site-a" / "index.html").is_file()
    assert (www / "site-b" / "index.html").is_file()
    assert (www / "existing" / "notes.txt").read_text() == "operator notes"


def test_sibling_sites_never_touch_each_others_builds(desk, tmp_path):
    add_complaint(desk, "Sampah numpuk nang pinggir kali, mambu banget")
    www = tmp_path / "www"
    a, b = www / "site-a", www / "site-b"
    for _ in range(3):  # each export removes its own older builds, and only those
        export.export(desk, a)
        live_a = a.resolve()
        export.export(desk, b)
        assert a.resolve() == live_a and (a / "index.html").is_file()
        assert (a / "aduan.json").is_file() and (b / "index.html").is_file()
    for target in (a, b):
        builds = [p for p in www.iterdir() if p.name.startswith(f".{target.name}.lapakd-build-")]
        assert 1 <= len(builds) <= export.KEEP_BUILDS
        for build in builds:
            marker = json.loads((build / export.BUILD_MARKER).read_text())
            assert marker["target"] == target.name
    # every name lapakd made beside the targets derives from one of them
    for p in www.iterdir():
        assert p.name in ("site-a", "site-b") or p.name.startswith((".site-a", ".site-b")), p


def test_a_file_or_a_foreign_symlink_is_refused(desk, tmp_path):
    add_complaint(desk, "Jalan rusak parah, akeh bolongane")
    www = tmp_path / "www"
    www.mkdir()
    (www / "page").write_text("a file, not a site")
    (www / "elsewhere").mkdir()
    (www / "elsewhere" / "index.html").write_text("the operator's own site")
    (www / "link").symlink_to("elsewhere")
    (www / "dangling").symlink_to("/nonexistent/site")
    before = listing(www)
    for name in ("page", "link", "dangling"):
        with pytest.raises(LapakdError, match=str(www / name)):
            export.export(desk, www / name)
    assert listing(www) == before | {  # only the locks, named after their targets
        ".page.lock": "", ".link.lock": "", ".dangling.lock": ""}


def test_a_build_of_another_target_is_refused(desk, tmp_path):
    add_complaint(desk, "Banyu PDAM mati telung dina")
    www = tmp_path / "www"
    export.export(desk, www / "site-a")
    (www / "site-b").symlink_to(os.readlink(www / "site-a"))  # site-a's live build
    before = listing(www)
    with pytest.raises(LapakdError, match="site-b"):
        export.export(desk, www / "site-b")
    assert listing(www) == before | {".site-b.lock": ""}
    assert (www / "site-a" / "index.html").is_file()


def test_an_empty_folder_is_taken_over(desk, tmp_path):
    add_complaint(desk, "Got mampet, banjir nek udan")
    target = tmp_path / "www" / "lapakd"
    target.mkdir(parents=True)  # e.g. made by the operator for the web server's root
    export.export(desk, target)
    assert target.is_symlink() and (target / "index.html").is_file()


def test_a_site_of_the_old_layout_is_adopted(desk, tmp_path):
    """Before the marker, builds were `.public-build-*` for every target: the one the target
    points at is lapakd's (it is adopted and marked); the others are never deleted."""
    add_complaint(desk, "Jembatan gantung di desa kami sudah miring")
    www = tmp_path / "www"
    export.export(desk, www / "site")
    build = (www / "site").resolve()
    legacy = www / ".public-build-abc123"
    build.rename(legacy)
    (legacy / export.BUILD_MARKER).unlink()
    (www / "site").unlink()
    (www / "site").symlink_to(legacy.name)
    unknown = www / ".public-build-zzz999"  # maybe another site's: not ours to judge
    unknown.mkdir()
    (unknown / "index.html").write_text("someone else's")
    for _ in range(3):
        export.export(desk, www / "site")
        assert (www / "site" / "index.html").is_file()
    assert not legacy.exists()  # adopted, then removed as an old build of this target
    assert (unknown / "index.html").read_text() == "someone else's"


# -- 2. export workers and the runner lock ----------------------------------------------------


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z"


@contextlib.contextmanager
def _umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def test_sigkill_during_export_frees_the_lock_and_leaves_no_worker(desk, tmp_path):
    for i in range(export.POOL_MIN + 200):  # a full build in a pool of worker processes
        add_complaint(desk, f"Aduan {i}: dalan rusak nang Kec. Kembaran, bolong gede",
                      kecamatan="Kembaran")  # nothing to backfill: the one pool renders
    desk.close()
    cfg = tmp_path / "lapakd.toml"
    daemon = subprocess.Popen([sys.executable, "-m", "lapakd.cli", "run", "--config", str(cfg)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while not workers and daemon.poll() is None and time.monotonic() < deadline:
            workers = _children(daemon.pid)
            time.sleep(0.005)
        assert workers, "the export started no worker process"
        assert all(map(_alive, workers))
        daemon.send_signal(signal.SIGKILL)
        daemon.wait()
        store = Store(tmp_path / "var")  # at once: the next runner must not be refused
        try:
            store.lock_runner()
        except StoreError as exc:
            pytest.fail(f"the runner lock is still held after the runner died: {exc}")
        finally:
            store.close()
        deadline = time.monotonic() + 1  # they die at once (PDEATHSIG); ~2 s without it
        while any(map(_alive, workers)) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not any(map(_alive, workers)), "an export worker outlived its parent"
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        for pid in workers:  # never leave one behind, whatever the outcome
            if _alive(pid):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)


# -- 3. the store is private ------------------------------------------------------------------


@pytest.mark.parametrize("mask", [0o022, 0o002])
def test_store_files_are_private_whatever_the_umask(tmp_path, mask):
    with _umask(mask):
        desk = make_desk(tmp_path)
        try:
            desk.rules  # noqa: B018 - writes rules.cache
            desk.store.lock_runner()
            add_complaint(desk, "Foto jalan rusak terlampir")
            desk.store.save_blob(b"\xff\xd8\xff\xe0 a photo of a pothole")
        finally:
            desk.close()
    var = tmp_path / "var"
    made = [p for p in var.rglob("*") if not p.is_relative_to(var / "public")]
    names = {p.name for p in made}
    assert {"lapakd.sqlite3", "attachments", "rules.cache", "lapakd.lock"} <= names, names
    for p in made:
        mode = stat.S_IMODE(p.lstat().st_mode)
        assert mode & 0o077 == 0, f"{p.relative_to(var)} is {oct(mode)}"


@pytest.mark.parametrize("mask", [0o022, 0o002])
def test_wal_and_shm_are_private_while_in_use(tmp_path, mask):
    with _umask(mask):
        store = Store(tmp_path / "var")
        try:
            with store.transaction() as conn:
                conn.execute("INSERT INTO ticket_sequences (scope, last) VALUES ('LA-2026', 1)")
            extra = [p for p in (tmp_path / "var").iterdir()
                     if p.name.endswith(("-wal", "-shm"))]
            assert extra
            for p in extra:
                assert stat.S_IMODE(p.stat().st_mode) == 0o600, (p.name, oct(p.stat().st_mode))
        finally:
            store.close()


def test_the_site_stays_readable_by_the_web_server_under_umask_077(desk, tmp_path):
    """The unit sets UMask=0077; the public site must still be readable by another user."""
    add_complaint(desk, "Trotoar rusak, bahaya kanggo wong mlaku")
    with _umask(0o077):
        export.export(desk, tmp_path / "www" / "site")
    root = (tmp_path / "www" / "site").resolve()
    for p in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(p.stat().st_mode)  # following aduan/ to the pages directory
        want = 0o755 if p.is_dir() else 0o644
        assert mode & want == want, f"{p} is {oct(mode)}"


def test_unit_sets_a_private_umask():
    unit = Path(__file__).resolve().parent.parent / "systemd" / "lapakd.service"
    assert "UMask=0077" in unit.read_text().splitlines()


def test_a_store_made_before_is_made_private(tmp_path):
    """A store left group/world-readable by an older lapakd is closed on the next open."""
    var = tmp_path / "var"
    Store(var).close()
    (var / "attachments").mkdir()
    os.chmod(var / "attachments", 0o755)
    os.chmod(var / "lapakd.sqlite3", 0o644)
    Store(var).close()
    assert stat.S_IMODE((var / "lapakd.sqlite3").stat().st_mode) == 0o600
    assert stat.S_IMODE((var / "attachments").stat().st_mode) == 0o700


def test_a_complaint_hidden_while_another_site_was_exported_leaves_both(desk, tmp_path):
    """One store, two targets: the cache follows the last one exported, so the other is rebuilt
    in full next time, and a page hidden in between is gone from it too."""
    keep = add_complaint(desk, "Pasar becek, saluran ora mili")
    gone = add_complaint(desk, "Aduan sing arep didhelikake admin")
    a, b = tmp_path / "www" / "site-a", tmp_path / "www" / "site-b"
    export.export(desk, a)
    export.export(desk, b)
    with desk.store.transaction() as conn:
        conn.execute("UPDATE complaints SET hidden = 1, updated_at = '2099-01-01'"
                     " WHERE ticket = ?", (gone,))
    export.export(desk, b)
    assert not (b / "aduan" / f"{gone}.html").exists()
    again = export.export(desk, a)
    assert again.rebuilt == 1  # in full: the cache described site-b
    assert not (a / "aduan" / f"{gone}.html").exists()
    assert (a / "aduan" / f"{keep}.html").is_file()
    assert gone not in (a / "aduan.json").read_text()


def test_dot_dot_and_the_root_are_refused(desk, tmp_path):
    www = tmp_path / "www"
    (www / "site").mkdir(parents=True)
    (www / "notes.txt").write_text("operator notes")
    before = listing(www)
    with pytest.raises(LapakdError, match=f"{www} is a folder with files in it"):
        export.export(desk, www / "site" / "..")
    with pytest.raises(LapakdError, match="root folder"):
        export.export(desk, "/")
    assert listing(www) == before
    assert not [p for p in tmp_path.iterdir() if "build" in p.name or "aduan" in p.name]
    assert not os.path.lexists("/..lock")
