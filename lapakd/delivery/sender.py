"""Send the outbox's emails in a process of its own while the runner processes and routes.

A burst (`Burst`: a poll by `run_once` or by the daemon that leaves a backlog) starts
`python -m lapakd.delivery.sender` (a fresh interpreter: an SQLite connection must not cross a
fork).
The child opens the store on a connection of its own and sends the due `smtp` rows on a few
SMTP connections at once, all kept busy by its one thread (`smtp.send_many`: the server works
on one connection's command while the child reads another's reply or composes the next mail;
a thread per connection cost more CPU in GIL hand-offs than it saved). Every row is claimed
with the conditional UPDATE, so no row is sent twice at once. The composing and the SMTP
dialogue then run beside the parent's parsing and routing, on the second core.

Guarantees kept:
- the child holds the runner's `data_dir/lapakd.lock` too (the same open file, passed down),
  so while it lives no other runner can start and put its `sending` rows back;
- it dies with its parent (PR_SET_PDEATHSIG = SIGKILL): a SIGKILLed runner leaves nothing
  running, and the rows the child left in `sending` are re-sent by the next runner, with the
  same Message-ID, as before;
- the parent closes the child's stdin when its pipeline is done and waits for it to exit, then
  sends whatever is still due itself (other transports, rows the child did not get to), so when
  `run_once` returns everything due has been sent.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import structlog

import lapakd
from lapakd import log as logsetup
from lapakd.app import Desk
from lapakd.config import Section, load_config
from lapakd.delivery import send, smtp

log = structlog.get_logger("lapakd.delivery.sender")

# SMTP connections the child keeps busy from its one thread, so that the server has commands
# waiting while the child composes or records (10 measured no faster than 6; 3 a little slower).
CONNECTIONS = 6
BATCH = 48  # rows per send_batch call
IDLE_WAIT = 0.05  # seconds between looks at the outbox while the parent still works
PR_SET_PDEATHSIG = 1


class Burst:
    """How a poll (`daemon.poll`: run_once's, or the daemon's job) gets through a backlog of
    `threshold` items or more.

    After each intake batch (`step`) it looks at the backlog (`backlog()`: the work waiting);
    from the threshold on it starts the sender process and processes and routes what has come
    in (`advance()`: the work done, 0 when nothing was left), so that the first forwards leave
    while the mailbox is still being fetched. `finish` (after intake) advances the rest, at most
    `max_rounds` times, then helps sending from the newest end of the queue until the child
    exits. Below the threshold it does nothing and the stages' own jobs do the work. The
    daemon, which owns the pipeline, passes both functions in."""

    def __init__(
        self, desk: Desk, threshold: int | None, *, backlog: Callable[[], int],
        advance: Callable[[], int], max_rounds: int,
    ) -> None:
        self.desk = desk
        self.threshold = threshold
        self.backlog = backlog
        self.advance = advance
        self.max_rounds = max_rounds
        self.child: Sender | None = None
        self._started = 0.0
        self._gave_up = False  # the child could not be started: all in this process

    def __enter__(self) -> Burst:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if self.child is not None and exc_type is not None:
            self.child.kill()

    def _running(self) -> bool:
        if self.child is None and not self._gave_up and self.threshold is not None:
            waiting = self.backlog()
            if waiting >= self.threshold:
                log.info("burst.started", backlog=waiting)
                self._started = time.monotonic()
                try:
                    self.child = Sender(self.desk)
                except OSError as exc:  # no process to spare: everything in this one
                    log.warning("sender.not_started", error=str(exc)[:200])
                    self._gave_up = True
        return self.child is not None

    def step(self) -> None:
        if self._running():
            self.advance()

    def finish(self) -> None:
        if not self._running():
            return
        desk, child = self.desk, self.child
        assert child is not None
        for _ in range(self.max_rounds):
            if self.advance() == 0 or desk.stopping.is_set():
                break
        log.info("burst.routed", seconds=round(time.monotonic() - self._started, 2))
        child.done()
        # Help with what is queued, from the newest end, while the child finishes.
        with smtp.connections(desk.config, 1) as sessions:
            while not desk.stopping.is_set() and child.running():
                sent, paused = send.send_batch(desk, 20, newest_first=True, sessions=sessions)
                if paused or sent == 0:
                    break
        if desk.stopping.is_set():  # SIGTERM, now or while helping: the child sends the mail
            child.terminate()       # in hand and exits, instead of sending all that is due
        child.finish()
        self.child = None
        log.info("burst.done", seconds=round(time.monotonic() - self._started, 2))


class Sender:
    """The parent's handle on the child."""

    def __init__(self, desk: Desk, connections: int = CONNECTIONS) -> None:
        lock_fd = desk.store._lock_fd
        if lock_fd is None:
            raise RuntimeError("the sender needs the runner lock (store.lock_runner())")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (_package_root(), env.get("PYTHONPATH", "")) if p
        )
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "lapakd.delivery.sender",
                "--config", str(desk.config.path),
                # The runner's store, even when a reload has read a new data_dir (kept till restart)
                "--data-dir", str(desk.config.data_dir),
                "--parent", str(os.getpid()),
                "--lock-fd", str(lock_fd),
                "--connections", str(connections),
                "--log-level", logsetup.LEVEL,
            ],
            stdin=subprocess.PIPE,
            pass_fds=(lock_fd,),
            env=env,
        )
        log.debug("sender.started", pid=self.proc.pid, connections=connections)

    def done(self) -> None:
        """Tell the child the pipeline is done: it sends what is due, then exits."""
        assert self.proc.stdin is not None
        with contextlib.suppress(OSError):
            self.proc.stdin.close()

    def running(self) -> bool:
        return self.proc.poll() is None

    def finish(self, timeout: float | None = None) -> int:
        """done(), then wait for the child to exit."""
        self.done()
        code = self.proc.wait(timeout)
        if code != 0:
            log.warning("sender.exited", code=code, note="the runner sends what is left")
        return code

    def terminate(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def _package_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(lapakd.__file__)))


def die_with_parent(parent: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    if os.getppid() != parent:  # the parent died before the prctl
        os._exit(1)


class ParentPipe:
    """The parent's pipeline is done when the child's stdin (the parent's pipe) reaches EOF.

    Looked at with select() and os.read() on the descriptor from the sending thread itself,
    never from a thread reading `sys.stdin`: such a (daemon) thread sits in the buffered
    reader's read() holding its lock, and when the child ends before the parent closed the
    pipe (the SMTP server refused connections, so there is nothing to send), interpreter
    finalisation cannot take that lock to close sys.stdin and aborts the process with
    "Fatal Python error: _enter_buffered_busy" (SIGABRT)."""

    def __init__(self, fd: int = 0) -> None:
        self.fd = fd
        self._done = False

    def is_set(self) -> bool:
        return self.wait(0)

    def wait(self, timeout: float) -> bool:
        """Up to `timeout` seconds for EOF (or a broken pipe); True once it came."""
        deadline = time.monotonic() + timeout
        while not self._done:
            remaining = deadline - time.monotonic()
            try:
                readable, _, _ = select.select([self.fd], [], [], max(remaining, 0.0))
                data = os.read(self.fd, 65536) if readable else None
            except OSError:
                data = b""
            if data is None:
                break
            if not data:
                self._done = True
            elif remaining <= 0:
                break
        return self._done


def _send_until_done(desk: Desk, connections: int, done: ParentPipe) -> int:
    """Send the due smtp rows on `connections` SMTP connections at once (smtp.send_many)
    until the parent is done and nothing is left; return the rows sent."""
    total = 0
    last_look = False
    with smtp.connections(desk.config, connections) as sessions:
        while not desk.stopping.is_set():
            sent, paused = send.send_batch(desk, BATCH, transport="smtp", sessions=sessions)
            total += sent
            if paused:
                # The server refused or is down: the row is deferred; the parent's own pass
                # (after this process) tries what is left, once, like run_once always did.
                break
            if sent:
                last_look = False
                continue
            if last_look:
                break
            last_look = done.is_set()  # one more look after the parent said it is done
            if not last_look:
                done.wait(IDLE_WAIT)
    return total


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lapakd.delivery.sender")
    ap.add_argument("--config", required=True)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--parent", type=int, required=True)
    ap.add_argument("--lock-fd", type=int, required=True)
    ap.add_argument("--connections", type=int, default=CONNECTIONS)
    ap.add_argument("--log-level", default="info")
    args = ap.parse_args(argv)
    die_with_parent(args.parent)
    started = time.monotonic()

    logsetup.setup(args.log_level)
    config = load_config(args.config)
    if args.data_dir and args.data_dir != str(config.data_dir):
        config.paths = Section("paths", {**config.paths.as_dict(), "data_dir": args.data_dir})
    desk = Desk(config)

    def stop(_signum: int, _frame: object) -> None:
        desk.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    done = ParentPipe(sys.stdin.fileno())
    failed = False
    sent = 0
    try:
        sent = _send_until_done(desk, args.connections, done)
    except Exception:
        failed = True
        log.exception("sender.failed")
    finally:
        desk.close()
    os.close(args.lock_fd)
    log.info("sender.done", sent=sent, connections=args.connections, failed=failed,
             cpu=round(time.process_time(), 2), wall=round(time.monotonic() - started, 2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
