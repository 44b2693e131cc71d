"""The store's write transactions queue on a file lock (data_dir/lapakd.writer.lock), so a
second writer — the sender process beside the runner — is woken when the first commits
instead of sleeping in SQLite's busy handler."""

from __future__ import annotations

import fcntl
import os
import threading

from lapakd.store import Store


def _lock_is_free(path) -> bool:
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def test_a_write_transaction_holds_the_writer_lock_until_it_ends(tmp_path):
    store = Store(tmp_path)
    lock = tmp_path / "lapakd.writer.lock"
    try:
        with store.transaction():
            store.event("one")
            assert not _lock_is_free(lock)
            with store.transaction():  # nested: joins, no second lock
                store.event("two")
        assert _lock_is_free(lock)
        try:
            with store.transaction():
                raise RuntimeError("rolled back")
        except RuntimeError:
            pass
        assert _lock_is_free(lock)  # released on rollback too
        assert store.one("SELECT count(*) FROM events")[0] == 2
    finally:
        store.close()


def test_a_second_writer_waits_for_the_first_and_then_goes_on(tmp_path):
    first, second = Store(tmp_path), Store(tmp_path)
    order: list[str] = []

    def write() -> None:
        with second.transaction():
            second.event("second")
            order.append("second")

    try:
        with first.transaction():
            first.event("first")
            other = threading.Thread(target=write)
            other.start()
            other.join(0.3)
            assert other.is_alive()  # queued behind the first writer
            order.append("first")
        other.join(10)
        assert order == ["first", "second"]
        types = [r[0] for r in first.all("SELECT type FROM events ORDER BY id")]
        assert types == ["first", "second"]
    finally:
        first.close()
        second.close()
