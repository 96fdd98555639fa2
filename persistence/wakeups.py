"""Wake-ups: a worker told at once that there is work for it.

Without them, a worker finds out only at its next poll.

A transaction that makes work for someone else (a root submitted or given back, a cancel or
a cleanup requested) says so when it commits: on PostgreSQL by `NOTIFY endaction_work`
(delivered on commit, never for a rollback), and in this process to every listener of the
same store (an application that submits and runs a worker in one process, on SQLite too).
A worker waits on its `Wakeups` instead of sleeping; it still polls at its intervals, so a
wake-up lost (the listening connection dropped, another database client, a lease that
lapsed) costs that interval and nothing else.

The PostgreSQL listener is one connection of its own per worker, in autocommit, read by a
daemon thread. It reconnects with a doubling back-off while the database is away, and says
so in the log once per outage; a reconnection wakes the worker, since a notification may
have been missed meanwhile.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any

log = logging.getLogger("endaction.wakeups")

#: The PostgreSQL channel every store notifies and every worker listens on.
CHANNEL = "endaction_work"

#: Longest time the listening thread blocks before it looks whether it should stop.
_LISTEN_SLICE = 0.5
_MAX_BACKOFF = 30.0


class Wakeups:
    """One worker's ear: `wait` returns early when work was made for it."""

    def __init__(self, connect: Callable[[], Any] | None = None,
                 on_close: Callable[[Wakeups], None] | None = None) -> None:
        self._event = threading.Event()
        self._closed = threading.Event()
        self._on_close = on_close
        self._thread: threading.Thread | None = None
        #: Listening now: this process's own work reaches it as a notification too.
        self.connected = False
        if connect is not None:
            self._thread = threading.Thread(target=self._listen, args=(connect,),
                                            name="endaction-wakeups", daemon=True)
            self._thread.start()

    @property
    def listening(self) -> bool:
        """Whether other processes can wake this one (PostgreSQL), not only this process."""
        return self._thread is not None

    def notice(self) -> None:
        """Wake this listener: its current or next `wait` returns True at once."""
        self._event.set()

    def wait(self, timeout: float, stop: threading.Event | None = None) -> bool:
        """Sleep up to `timeout` seconds; True as soon as work was made.

        A True takes the wake-up (the next wait sleeps again); False comes after the whole
        timeout. With `stop`, returns within a short slice of it being set, since one thread
        cannot block on two events.
        """
        if self._event.is_set():
            self._event.clear()
            return True
        if stop is None:
            woke = self._event.wait(timeout)
        else:
            woke, left = False, timeout
            while left > 0 and not stop.is_set():
                step = min(left, 0.05)
                if self._event.wait(step):
                    woke = True
                    break
                left -= step
        if woke:
            self._event.clear()
        return woke

    def close(self) -> None:
        """Stop listening: the hub forgets this listener and the listening thread is joined.

        The join waits a few listening slices at most: the thread is a daemon, and one stuck in
        its driver does not hold up the close.
        """
        self._closed.set()
        if self._on_close is not None:
            self._on_close(self)
        if self._thread is not None:
            self._thread.join(timeout=_LISTEN_SLICE * 4)

    def _listen(self, connect: Callable[[], Any]) -> None:
        """Listen until closed, reconnecting after every failure.

        Every failure (no connection, a connection lost, a driver that cannot listen) waits a
        doubling back-off before the next try and is logged once per outage; only a connection
        that listened for a whole slice resets it.
        """
        backoff, outage = 0.5, False
        while not self._closed.is_set():
            connection = None
            try:
                connection = connect()
                connection.execute(f"LISTEN {CHANNEL}")
                self.connected = True
                self._event.set()  # something may have been sent while nobody listened
                while not self._closed.is_set():
                    for _ in connection.notifies(timeout=_LISTEN_SLICE):
                        self._event.set()
                    if outage:
                        log.warning("listening for wake-ups again")
                    outage, backoff = False, 0.5
            except Exception as err:
                if not self._closed.is_set() and not outage:
                    log.warning("cannot listen for wake-ups (%s: %s); polling meanwhile, "
                                "trying again with a back-off", type(err).__name__, err)
                outage = True
            finally:
                self.connected = False
                if connection is not None:
                    with contextlib.suppress(Exception):  # a connection already gone
                        connection.close()
            self._closed.wait(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF)


class WakeupHub:
    """A store's listeners in this process, and how to make a new one."""

    def __init__(self, connect: Callable[[], Any] | None) -> None:
        self._connect = connect
        self._local: weakref.WeakSet[Wakeups] = weakref.WeakSet()
        self._lock = threading.Lock()

    def listen(self) -> Wakeups:
        """A new listener, woken by this process's `notice` and, on PostgreSQL, by NOTIFY.

        It listens until closed; closing it removes it from this hub.
        """
        wakeups = Wakeups(self._connect, on_close=self._forget)
        with self._lock:
            self._local.add(wakeups)
        return wakeups

    def _forget(self, wakeups: Wakeups) -> None:
        with self._lock:
            self._local.discard(wakeups)

    def notice(self) -> None:
        """A transaction that made work committed: wake this process's listeners.

        Those listening on PostgreSQL hear its notification instead, and are not woken twice.
        """
        with self._lock:
            listeners = list(self._local)
        for wakeups in listeners:
            if not wakeups.connected:
                wakeups.notice()
