"""The daemon loop: schedule the stages, handle signals — and nothing else.

Every job is guarded: an exception is logged and the loop goes on (a runner never dies).
Each polled channel has a worker thread of its own (`PollWorker`), so a slow or stuck channel
never delays another; the other jobs run from the main thread's schedule. A channel whose server
pushes news (IMAP IDLE: lapakd/intake/idle.py) wakes its worker at once; a poll that stored
something wakes the main loop, which processes, routes and sends right away.
SIGTERM/SIGINT finish the item in hand and exit 0; SIGHUP reloads lapakd.toml and the rules.
Under systemd (`Type=notify`) the loop tells systemd it is ready, reloading, stopping, and alive
(lapakd/notify.py): the watchdog pings come from the main loop's own iterations.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import schedule
import structlog

from lapakd import runs
from lapakd.delivery import send
from lapakd.delivery.sender import Burst
from lapakd.intake import poll as intake
from lapakd.intake import process, webhook
from lapakd.intake.idle import IdleWatcher
from lapakd.learn import job as learning
from lapakd.lifecycle import scheduled
from lapakd.monitor import metrics, tokens
from lapakd.notify import Notifier
from lapakd.public.job import export_job
from lapakd.routing import route as routing
from lapakd.store import parse_iso

if TYPE_CHECKING:
    from lapakd.app import Desk
    from lapakd.store import Store

log = structlog.get_logger("lapakd.daemon")

PIPELINE_SECONDS = 5
OUTBOX_SECONDS = 10
RULES_SECONDS = 5
STATUS_SECONDS = 30  # how often systemd's STATUS= line is refreshed
# A poll worker that has made no progress (no batch stored) for this long is hung: the main
# loop stops the watchdog pings, and systemd (WatchdogSec=) restarts the daemon.
POLL_STUCK_SECONDS = 900
STOP_GRACE_SECONDS = 5.0  # SIGTERM: how long a poll worker may take to finish its item
MAX_ROUNDS = 10_000  # run_once: pipeline rounds at most
OUTBOX_BATCH = 200  # outbox rows per send_due call
PIPELINE_BATCH = 500  # messages or complaints per process/route call
# run_once sends in a process of its own (lapakd/delivery/sender.py) from this much work waiting
# (pending messages + new complaints + pending outbox rows); None: never.
SENDER_BACKLOG: int | None = 200

# The later stages' jobs: (name, every_seconds, function(desk) -> int | None).
EXTRA_JOBS: list[tuple[str, int, Callable[[Desk], object]]] = [
    *scheduled.JOBS,  # morning reminders + escalation, weekly digest
    ("export", 30, export_job),  # the public site, every [public] export_minutes
    # the routing model: retrained in a process of its own when [routing] retrain_hours old
    ("model", 60, learning.model_job),
    ("tokens", tokens.JOB_SECONDS, tokens.check_due),  # Meta tokens, daily: expiring, invalid
]


def guarded(desk: Desk, name: str, job: Callable[[], object]) -> Callable[[], None]:
    def run() -> None:
        if desk.stopping.is_set():
            return
        try:
            job()
        except Exception as exc:
            log.exception("job.failed", job=name, error=str(exc)[:300])

    return run


def pipeline(desk: Desk) -> int:
    """Process stored messages, route what is due, send what is queued. Returns work done."""
    done = advance(desk)
    done += send.send_due(desk)
    return done


def advance(desk: Desk) -> int:
    """Process stored messages and route what is due (a burst's step). Returns work done."""
    return process.process_pending(desk) + routing.route_due(desk)


def drained(
    desk: Desk, stage: Callable[..., int], batch: int, beat: Callable[[], object] = lambda: None,
) -> Callable[[], int]:
    """A daemon job that runs a stage in batches while they come back full.

    One batch per interval capped the daemon: the outbox at 20 emails a second (a burst of
    10,000 forwards took ~9 minutes; bench/e2e_bench.py sends them in ~40 s), processing and
    routing at 200 a second. `beat` runs after each batch: a long drain is the main loop
    making progress (the watchdog is pinged from there too)."""

    def job() -> int:
        done = 0
        while not desk.stopping.is_set():
            count = stage(desk, limit=batch)
            done += count
            beat()
            if count < batch:
                break
        return done

    return job


def pollers(desk: Desk) -> list[str]:
    return [
        name for name in desk.config.enabled_channels() if desk.adapter(name).polls
    ]


def backlog(store: Store) -> int:
    """Work waiting now: messages to process, complaints to route, outbox rows due."""
    row = store.one(
        "SELECT (SELECT count(*) FROM messages WHERE state = 'pending')"
        " + (SELECT count(*) FROM complaints WHERE status = 'new')"
        " + (SELECT count(*) FROM outbox WHERE status = 'pending')"
    )
    return row[0] if row else 0


def poll(desk: Desk, channels: list[str],
         progress: Callable[[], object] = lambda: None) -> int:
    """Fetch what is new on these channels; `progress` runs after each stored batch. Returns
    the messages stored.

    A burst (SENDER_BACKLOG items waiting) is processed and routed while it is still being
    fetched, and sent meanwhile from a process of its own (lapakd/delivery/sender.py)."""
    with Burst(desk, SENDER_BACKLOG, backlog=lambda: backlog(desk.store),
               advance=lambda: advance(desk), max_rounds=MAX_ROUNDS) as burst:

        def after_batch() -> None:
            progress()
            burst.step()

        stored = 0
        for channel in channels:
            stored += intake.poll_channel(desk, channel, after_batch=after_batch)
        burst.finish()
    return stored


class PollWorker:
    """One channel's polls, in a thread of their own with a desk of their own (an SQLite
    connection serves one thread; writers queue on the store's lock). The first poll runs at
    once, then one every `poll_seconds` after the last one ended, or as soon as `wake()` is
    called (the channel's IDLE watcher heard of news). `on_stored` runs after a poll that
    stored messages (the daemon's main loop then handles them at once)."""

    def __init__(self, desk: Desk, channel: str, repeat: bool = True,
                 on_stored: Callable[[], object] = lambda: None) -> None:
        self.desk = desk
        self.channel = channel
        self.repeat = repeat
        self.on_stored = on_stored
        # Set by wake(): poll now. Cleared before each poll, so news during a poll is
        # another poll right after it.
        self._woken = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"poll:{channel}", daemon=True)
        # monotonic time of the last progress while a poll is in hand; None while it waits
        self.busy_since: float | None = None

    def start(self) -> PollWorker:
        self.thread.start()
        return self

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the worker; True when it has ended."""
        self.thread.join(timeout)
        return not self.thread.is_alive()

    def wake(self) -> None:
        """Poll now (or right after the poll in hand) instead of waiting for `poll_seconds`."""
        self._woken.set()

    def stuck(self, limit: float = POLL_STUCK_SECONDS) -> bool:
        """True when a poll has been in hand for `limit` seconds without storing a batch."""
        since = self.busy_since
        return since is not None and time.monotonic() - since > limit

    def _progress(self) -> None:
        self.busy_since = time.monotonic()

    def _run(self) -> None:
        parent = self.desk
        desk = parent.worker()
        stored = 0

        def polled() -> None:
            nonlocal stored
            stored = poll(desk, [self.channel], progress=self._progress)

        try:
            job = guarded(desk, f"poll:{self.channel}", polled)
            while not parent.stopping.is_set():
                self._woken.clear()
                self._progress()
                stored = 0
                try:
                    job()
                finally:
                    self.busy_since = None
                if stored:
                    self.on_stored()
                if not self.repeat:
                    break
                # Read each time: a SIGHUP reload may have changed it. The daemon wakes the
                # worker on SIGTERM too.
                self._woken.wait(timeout=desk.adapter(self.channel).poll_seconds)
        finally:
            desk.close()


def poll_all(desk: Desk, channels: list[str]) -> None:
    """Poll these channels once each, side by side, and wait for all (`run --once`)."""
    if len(channels) <= 1:
        poll(desk, channels)
        return
    workers = [PollWorker(desk, channel, repeat=False).start() for channel in channels]
    for worker in workers:
        worker.join()


def run_once(desk: Desk) -> list[str]:
    """Every job once, until nothing is left that can be done now (cron and tests).

    Returns what failed during the run, one line each (a failing channel, sends deferred or
    failed); the work that succeeded stays done."""
    desk.store.lock_runner()
    run = runs.Run(desk, "once")
    send.recover_orphans(desk.store)
    desk.reload_rules_if_changed()
    poll_all(desk, pollers(desk))
    # Until a round finds nothing to do: a round handles at most 1000 messages, 1000 complaints
    # and 200 outbox rows. Every round moves rows on and a transient send failure defers its
    # row, so this ends; the cap only guards against a bug that re-queues forever.
    for _ in range(MAX_ROUNDS):
        if pipeline(desk) == 0 or desk.stopping.is_set():
            break
    for _, _, job in EXTRA_JOBS:
        job(desk)
    learning.finish_training(desk)  # a training the model job started: nothing left running
    send.send_due(desk)
    return run.finish()


def summary(desk: Desk) -> str:
    """systemd's one-line STATUS=: channels ok, outbox rows pending, the last mail stored."""
    names = desk.config.enabled_channels()
    bad = {row[0] for row in desk.store.all(
        "SELECT channel FROM channel_health WHERE state != 'ok'")}
    ok = sum(1 for name in names if name not in bad)
    row = desk.store.one("SELECT count(*) FROM outbox WHERE status = 'pending'")
    text = f"{ok}/{len(names)} channels ok, {row[0] if row else 0} pending"
    last = desk.store.one("SELECT max(stored_at) FROM messages")
    stored = parse_iso(last[0]) if last else None
    if stored is not None:
        text += f", last message {stored.astimezone(desk.config.tz):%H:%M}"
    return text


def run_forever(desk: Desk) -> None:
    notifier = Notifier()
    desk.store.lock_runner()
    scrape = metrics.bind(desk)  # before the run is recorded: a taken address stops the start
    run = runs.Run(desk, "daemon")
    send.recover_orphans(desk.store)
    desk.rules  # noqa: B018 - fail fast on broken rules at start, not at the first complaint
    workers: list[PollWorker] = []
    watchers: list[IdleWatcher] = []
    # Set by a poll that stored messages, and by the signals: the main loop acts at once.
    wakeup = threading.Event()

    def beat() -> None:
        """The main loop is alive: ping systemd's watchdog, unless a poll worker hangs."""
        notifier.watchdog(healthy=not any(w.stuck() for w in workers))

    received = _install_signals(desk, notifier, wakeup)
    scheduler = schedule.Scheduler()
    scheduler.every(RULES_SECONDS).seconds.do(
        guarded(desk, "rules", desk.reload_rules_if_changed)
    )
    # What a new message goes through, in order; run on the schedule and, after a poll stored
    # something, at once (from this thread: sending stays single-threaded in the daemon).
    intake_jobs = [
        guarded(desk, "process", drained(desk, process.process_pending, PIPELINE_BATCH, beat)),
        guarded(desk, "route", drained(desk, routing.route_due, PIPELINE_BATCH, beat)),
        guarded(desk, "outbox", drained(desk, send.send_due, OUTBOX_BATCH, beat)),
    ]
    process_job, route_job, outbox_job = intake_jobs
    scheduler.every(PIPELINE_SECONDS).seconds.do(process_job)
    scheduler.every(PIPELINE_SECONDS).seconds.do(route_job)
    scheduler.every(OUTBOX_SECONDS).seconds.do(outbox_job)
    for name, every, job in EXTRA_JOBS:
        scheduler.every(every).seconds.do(guarded(desk, name, lambda j=job: j(desk)))
    scheduler.every(STATUS_SECONDS).seconds.do(
        guarded(desk, "status", lambda: notifier.status(summary(desk)))
    )
    hook = webhook.start(desk)  # Meta's pushes (WhatsApp...), in a thread; None when unused
    if scrape is not None:
        scrape.start()  # /metrics and /healthz, in a thread; each request reads on its own
    log.info("daemon.started", channels=pollers(desk), pid=os.getpid())
    try:
        # Store open, rules loaded, the webhook and /metrics listening: ready for systemd.
        notifier.ready(summary(desk))
        workers = [PollWorker(desk, channel, on_stored=wakeup.set).start()
                   for channel in pollers(desk)]
        watchers = [IdleWatcher(desk, w.channel, on_news=w.wake).start()
                    for w in workers if desk.adapter(w.channel).watches]
        scheduler.run_all()
        while not desk.stopping.is_set():
            beat()
            if reload_requested.is_set():
                guarded(desk, "reload", lambda: reload(desk, notifier))()
            if wakeup.is_set():
                wakeup.clear()
                for job in intake_jobs:  # the forward leaves now, not at the next tick
                    job()
            scheduler.run_pending()
            wait = min(max(scheduler.idle_seconds or 1.0, 0.05), 1.0)
            due = notifier.watchdog_due_in()  # awake for the ping, not up to a second late
            wakeup.wait(timeout=wait if due is None else min(wait, max(due, 0.01)))
    finally:
        if received:
            log.info("daemon.stopping", signal=received[0])
        desk.stopping.set()
        notifier.stopping()
        for worker in workers:
            worker.wake()  # out of its wait for the next poll
        # Each worker finishes the batch in hand; a watcher sees the stop within
        # SLICE_SECONDS and closes its connection. One still waiting for a server that does
        # not answer holds nothing of the store's (a batch is stored only once it has come).
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        waiting = [w.channel for w in workers
                   if not w.join(max(0.0, deadline - time.monotonic()))]
        waiting += [f"{w.channel} (idle)" for w in watchers
                    if not w.join(max(0.0, deadline - time.monotonic()))]
        if hook is not None:
            hook.stop()
        if scrape is not None:
            scrape.stop()
        learning.TRAINER.stop()  # a training in hand ends with the daemon; the last model stays
    if waiting:
        log.warning("daemon.abandoned", channels=waiting,
                    note="still waiting for the server; the next start polls again")
    run.finish()
    log.info("daemon.stopped")
    if waiting:
        # A thread blocked in a socket read cannot be interrupted; rather than wait for its
        # timeout, leave without the interpreter's shutdown, which such a thread could
        # disturb: close what this thread owns, flush the logs, exit 0.
        desk.close()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


reload_requested = threading.Event()  # SIGHUP: lapakd.toml and the rules, by the main loop


def reload(desk: Desk, notifier: Notifier) -> None:
    """SIGHUP's work: lapakd.toml again (what can change live), then the rules; systemd is told
    RELOADING=1 before and READY=1 (with a fresh status) after."""
    reload_requested.clear()
    notifier.reloading()
    try:
        desk.reload_config()
        desk.reload_rules_if_changed()
    finally:
        notifier.ready(summary(desk))


def _install_signals(desk: Desk, notifier: Notifier, wakeup: threading.Event) -> list[str]:
    """SIGTERM/SIGINT stop, SIGHUP reloads. Returns the list the stop signals' names go to:
    the main loop logs them. A handler that logs could interrupt the main thread inside a log
    write (whose lock is not reentrant) and wait for itself forever: it only sets flags."""
    received: list[str] = []

    def stop(signum: int, _frame: object) -> None:
        received.append(signal.Signals(signum).name)
        notifier.stopping()
        desk.stopping.set()
        wakeup.set()

    def request_reload(_signum: int, _frame: object) -> None:
        reload_requested.set()  # done by the main loop
        wakeup.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, request_reload)
    return received
