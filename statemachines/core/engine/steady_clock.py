"""The engine's clock: the database's time, carried forward by this machine's monotonic clock.

Every time an engine writes is compared with times other processes wrote: a lease's expiry
with the claiming worker's "now", a task's deadline and retry time with whichever worker
holds the root next. Read from each machine's wall clock, one worker whose clock is an hour
ahead sees every other worker's lease as lapsed and takes their roots, writing leases that
nobody can take back for an hour if it then dies; one whose clock steps back writes leases
that have already lapsed for everyone else, and its deadlines come an hour late. So the
engine reads the time from the database (PostgreSQL's `clock_timestamp()`; a SQLite file's
clock is this machine's), now and then, and between readings adds the monotonic clock's
elapsed seconds, which no step of the wall clock moves. All workers of one database then
agree on the time, whatever their own clocks say.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger("endaction.clock")

# How often the database is asked again: often enough that the monotonic clock's drift
# (parts per million) stays far below a lease, rarely enough to cost nothing per tick.
RESYNC_SECONDS = 60.0

def _elapsed_clock() -> Callable[[], float]:
    """A clock that never steps and counts the time a suspended machine (a paused VM) slept.

    `time.monotonic` on Linux does not count it: carried forward by that clock, a worker would
    think its leases fresh after a pause longer than them.
    """
    boottime = getattr(time, "CLOCK_BOOTTIME", None)
    if boottime is None:
        return time.monotonic
    return lambda: time.clock_gettime(boottime)


# A difference between this machine's wall clock and the database's worth a warning: the
# engine does not need them to agree, but the operator's logs and `date` will disagree with
# the times the database holds.
SKEW_WARNING_SECONDS = 2.0


class SteadyClock:
    """Seconds since the epoch by the database's clock; never steps back.

    Args:
        source: the database's time (`Store.database_time`); a reading that fails keeps
            the last one carried forward, and is tried again at the next resync.
        resync: seconds between readings of `source`.
        monotonic, wall: this machine's clocks, injectable for tests (the monotonic one
            defaults to one that counts a suspend, `_elapsed_clock`).
    """

    def __init__(self, source: Callable[[], float], *, resync: float = RESYNC_SECONDS,
                 monotonic: Callable[[], float] | None = None,
                 wall: Callable[[], float] = time.time) -> None:
        self._source, self._resync = source, resync
        self._monotonic = monotonic or _elapsed_clock()
        self._wall = wall
        self._offset: float | None = None  # database time minus monotonic time
        self._synced_at = 0.0
        self._last = 0.0
        self._warned_skew = False

    def __call__(self) -> float:
        """The time now, never less than any earlier answer, reading the database when due.

        Until a first reading of the database succeeds, the time is this machine's wall clock.
        """
        mono = self._monotonic()
        if self._offset is None or mono - self._synced_at >= self._resync:
            self._sync(mono)
        assert self._offset is not None
        # A resync that finds the database's clock behind where this one had carried it
        # must not move leases and deadlines back: time stands still until it catches up.
        self._last = max(self._last, self._offset + self._monotonic())
        return self._last

    def _sync(self, mono: float) -> None:
        self._synced_at = mono
        try:
            before = self._monotonic()
            reading = self._source()
            after = self._monotonic()
        except Exception as error:  # the clock must not fail a tick
            if self._offset is None:
                self._offset = self._wall() - mono
                log.warning("cannot read the database's time (%s); using this machine's "
                            "clock until it answers", error)
                self._synced_at = mono - self._resync + min(5.0, self._resync)
            else:
                log.debug("cannot read the database's time (%s); carrying on from the last "
                          "reading", error)
            return
        if self._offset is not None:  # what the old reading carried to, seen or not
            self._last = max(self._last, self._offset + before)
        self._offset = reading - (before + after) / 2
        skew = self._wall() - (self._offset + after)
        if abs(skew) >= SKEW_WARNING_SECONDS and not self._warned_skew:
            self._warned_skew = True
            log.warning("this machine's clock is %.1f s %s the database's; leases and deadlines "
                        "follow the database's", abs(skew), "ahead of" if skew > 0 else "behind")
        elif abs(skew) < SKEW_WARNING_SECONDS:
            self._warned_skew = False
