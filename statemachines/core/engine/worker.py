"""A worker's loop: tick, sleep until work is due or made for it, survive the database going away.

Several workers (each an `Engine` with a `WorkerLease`) share one database; this loop is what
keeps one of them running for days. A lost race (another worker's transaction won, or this
worker's lease lapsed) costs the tick and nothing else: the engine reloads what it holds. The
database going away costs the tick too; the loop waits with a doubling back-off (bounded) and
says so in the log each time, then reconnects, and nothing committed is lost. A stop request
(SIGTERM, SIGINT) is honoured between ticks: the tick in hand finishes, then the leases are
given back so that other workers take the roots over at once.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import (
    ConcurrentModification,
    EndactionError,
    InvalidConfiguration,
    StoreUnavailable,
)
from ..ports.store_protocol import WakeSource
from ..records.limits import check_seconds
from ..records.tick_report import TickReport
from .engine import Engine

log = logging.getLogger("endaction.worker")


@dataclass
class WorkerTotals:
    """What a worker did before it stopped, for its last log line and for tests."""

    ticks: int = 0
    committed: int = 0
    lost_races: int = 0
    outages: int = 0
    released: int = 0
    roots_ended: int = 0
    roots_failed: int = 0


class Worker:
    """Runs `engine` (which must have a `WorkerLease`) until `stop` is set.

    Args:
        engine: an `Engine(..., lease=WorkerLease(...))`.
        interval: the longest sleep between ticks when nothing is due. A submitted root
            wakes the worker at once (`Store.wakeups`); this and the lease's claim_interval
            are how soon it is noticed when no wake-up arrives (SQLite across processes, a
            lease that lapsed).
        max_backoff: the longest wait between reconnection attempts while the database is
            unavailable.
        stop: set it (from a signal handler, another thread) to stop after the current tick.
        on_tick: called with every tick's report (committed or not).
        summary_every: seconds between the INFO summary lines (roots held, ended, failed),
            logged even while idle so that a quiet worker is seen alive; None for none.
    """

    def __init__(self, engine: Engine, *, interval: float = 0.5, max_backoff: float = 30.0,
                 stop: threading.Event | None = None,
                 on_tick: Callable[[TickReport], None] | None = None,
                 summary_every: float | None = None) -> None:
        if engine.lease is None:
            raise InvalidConfiguration("a Worker needs an Engine made with lease=WorkerLease()")
        check_seconds("interval", interval, positive=True)
        check_seconds("max_backoff", max_backoff, positive=True)
        if summary_every is not None:
            check_seconds("summary_every", summary_every, positive=True)
        self.summary_every = summary_every
        self.engine = engine
        self.name = engine.lease.owner
        self.interval = interval
        self.max_backoff = max_backoff
        self.stop = stop or threading.Event()
        self.on_tick = on_tick
        self.totals = WorkerTotals()

    def run(self) -> WorkerTotals:
        """Tick until stopped; then give the leases back (if the database lets us)."""
        log.info("worker %s starting on %s", self.name, self.engine.store_name())
        wakeups = _wakeups_of(self.engine.store)
        try:
            self._loop(wakeups)
        finally:
            wakeups.close()
            self._release()
        return self.totals

    def _summarise(self, due: float) -> float:
        """Log the summary line if it is due; return when the next one is."""
        if self.summary_every is None:
            return float("inf")
        now = time.monotonic()
        if now < due:
            return due
        t = self.totals
        log.info("worker %s: holding %d root(s); %d ended (%d failed), %d committed tick(s), "
                 "%d lost race(s), %d outage(s) so far", self.name, self.engine.roots_held,
                 t.roots_ended, t.roots_failed, t.committed, t.lost_races, t.outages)
        return now + self.summary_every

    def _loop(self, wakeups: WakeSource) -> None:
        backoff = self.interval
        outage_since: float | None = None
        summary_due = time.monotonic() + (self.summary_every or 0.0)
        cleanup_due = 0.0
        while not self.stop.is_set():
            summary_due = self._summarise(summary_due)
            try:
                report = self.engine.tick()
            except ConcurrentModification as err:
                self.totals.lost_races += 1
                log.info("worker %s: %s", self.name, err)
                # A short, random pause: two workers that collided do not collide again.
                self.stop.wait(random.uniform(0, self.interval / 4))
                continue
            except StoreUnavailable as err:
                self.totals.outages += 1
                now = time.monotonic()
                outage_since = now if outage_since is None else outage_since
                log.warning("worker %s: the database is unavailable for %.0f s (%s); "
                            "retrying in %.1f s", self.name, now - outage_since, err, backoff)
                self.stop.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff)
                continue
            if outage_since is not None:
                log.warning("worker %s: the database is back after %.0f s", self.name,
                            time.monotonic() - outage_since)
                outage_since, backoff = None, self.interval
            self._count(report)
            cleanup_due = self._serve_cleanup(cleanup_due)
            wait = min(self.engine.next_wait(self.interval),
                       max(0.0, summary_due - time.monotonic()))
            # Work was made for some worker: look for it now, not at the next poll (a busy
            # worker, whose next tick is due at once, looks without waiting).
            if wakeups.wait(max(0.0, wait), self.stop):
                self.engine.wake()

    def _count(self, report: TickReport) -> None:
        """A tick that ran: its figures in the totals, its errors in the log, `on_tick`."""
        self.totals.ticks += 1
        if report.committed:
            self.totals.committed += 1
            self.totals.roots_ended += report.roots_ended
            self.totals.roots_failed += report.roots_failed
            log.debug("worker %s tick %d: %s", self.name, report.number, report.summary())
        for error in report.errors:
            log.error("worker %s: %s", self.name, error)
        if self.on_tick is not None:
            self.on_tick(report)

    def _serve_cleanup(self, due: float) -> float:
        """Take an operator's cleanup request, if one waits; returns when to look next.

        One worker takes it (see `Engine.serve_cleanup_request`); it is looked for once per
        interval, not every tick.
        """
        if time.monotonic() < due:
            return due
        due = time.monotonic() + self.interval
        try:
            self.engine.serve_cleanup_request()
        except (ConcurrentModification, StoreUnavailable) as err:
            # Rolled back with the request still there: the next look takes it, or the next
            # tick meets the outage and backs off.
            log.info("worker %s: a cleanup request waits: %s", self.name, err)
        return due

    def _release(self) -> None:
        try:
            self.totals.released = self.engine.release()
        except EndactionError as err:
            log.warning("worker %s stopped without giving back its leases (%s): other "
                        "workers take its roots over when they lapse", self.name, err)
            return
        log.info("worker %s stopped: %d tick(s), %d committed, gave back %d lease(s)",
                 self.name, self.totals.ticks, self.totals.committed, self.totals.released)


class _Polling:
    """The ear of a store that cannot wake anyone (no `wakeups`).

    It only sleeps until the next poll, or until stopped.
    """

    def wait(self, timeout: float, stop: threading.Event | None = None) -> bool:
        if stop is not None:
            stop.wait(timeout)
        elif timeout > 0:
            time.sleep(timeout)
        return False

    def close(self) -> None:
        pass


def _wakeups_of(store: object) -> WakeSource:
    """The store's wake-ups, or polling alone for a store of its own that has none."""
    listen = getattr(store, "wakeups", None)
    if listen is None:
        log.info("the store %r cannot wake workers: polling alone", type(store).__name__)
        return _Polling()
    wakeups: WakeSource = listen()
    return wakeups
