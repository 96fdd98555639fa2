"""Serving a task host so that bad clients cannot stall it.

Its connections are bounded, and so is the time a client has to send a request; refusals are
logged at a bounded rate.

uvicorn bounds what it can by its own settings (`timeout_keep_alive` closes an idle
keep-alive connection; `h11_max_incomplete_event_size` caps a request's headers), but it has
no deadline for a request that is sent slowly, and it accepts connections until the process
runs out of files. A client that sends a header line and then nothing holds a connection
forever; a few hundred of them exhaust the host, and engines that hold the token time out.
So the host's HTTP/1.1 protocol is uvicorn's with three bounds added:

- **A request deadline**: a connection must send a whole request (headers and body) within
  `request_timeout` seconds of opening, or of the last response; otherwise it is closed.
- **A connection bound**: beyond `max_connections`, the oldest connection that is not in the
  middle of a request being answered (idle, or still sending one) is closed to make room; if
  every connection is being answered, the newcomer gets `503` and is closed. A flood of
  half-open connections therefore evicts itself, never the engine's quick requests.
- **Files in reserve**: the connection bound is kept `fd_reserve` below the process's limit
  of open files (raised to fit where the hard limit allows), so that accepting never fails
  with "Too many open files" and the journal and the storage always have files to open.

Each refusal is counted: the first is logged at once, the rest in one line per `log_every`
seconds saying how many of each there were (and once more when the host stops).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import Counter
from typing import Any

from ..core.errors import extra_missing
from .host_limits import HostLimits

try:
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol
except ModuleNotFoundError as err:
    raise extra_missing(err, "http", "a bounded HTTP server") from err

log = logging.getLogger("endaction.host")
BACKLOG = 16


class RefusalLog:
    """Counts refusals and says so in one line per interval, never a line per event."""

    def __init__(self, every: float, clock: Any = time.monotonic) -> None:
        self.every = every
        self.clock = clock
        self.counts: Counter[str] = Counter()
        self.since = clock()
        self.said = -float("inf")  # when the last line was logged

    def note(self, what: str) -> None:
        """Count one refusal of the kind `what`; the counts are logged if `every` has passed.

        The first refusal is therefore logged at once, and the others at most once an interval.
        """
        self.counts[what] += 1
        now = self.clock()
        if now - self.said >= self.every:
            self.flush(now)

    def flush(self, now: float | None = None) -> None:
        """Log the counts since the last line, if any, in one line, and start counting afresh.

        The host calls it once more when it stops, so that the last counts are not lost.
        """
        now = self.clock() if now is None else now
        if self.counts:
            log.warning("in the last %.0f s: %s", now - self.since,
                        ", ".join(f"{count} {what}" for what, count in sorted(
                            self.counts.items())))
            self.said = now
        self.counts.clear()
        self.since = now


class ConnectionBook:
    """The host's open connections, oldest first, shared by every connection's protocol.

    Its `limits` are the ones given, fitted to the process's open-file limit.
    """

    def __init__(self, limits: HostLimits) -> None:
        limits = limits.fitted()
        self.limits = limits
        self.open: dict[BoundedH11Protocol, None] = {}
        self.refusals = RefusalLog(limits.log_every)


_BUSY = b'{"error": "the host has too many connections open; retry later"}'
_REFUSED = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_BUSY), _BUSY))


class BoundedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a request deadline and a connection bound."""

    def __init__(self, *args: Any, book: ConnectionBook, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.book = book
        self._deadline: asyncio.TimerHandle | None = None

    # -- the connection bound -----------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Book the new connection and start its request deadline.

        Beyond `max_connections`, the oldest connection not being answered is closed to make
        room; if every one is being answered, the newcomer gets 503 and is closed.
        """
        super().connection_made(transport)
        self.book.open[self] = None
        if len(self.book.open) > self.book.limits.max_connections and not self._evict():
            self.book.refusals.note("connection(s) refused with 503 (all busy)")
            transport.write(_REFUSED)
            transport.close()
            return
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        """Take the connection out of the book and cancel its deadline: it holds neither."""
        self.book.open.pop(self, None)
        self._disarm()
        super().connection_lost(exc)

    def _evict(self) -> bool:
        """Close the oldest connection that is not being answered; False if there is none."""
        for other in self.book.open:
            if other is not self and other._unanswered():
                self.book.refusals.note("connection(s) closed to make room (oldest first)")
                other.book.open.pop(other, None)
                other._disarm()
                other.transport.close()
                return True
        return False

    def _unanswered(self) -> bool:
        """Idle, or still sending its request: nothing of it is being worked on."""
        return self.cycle is None or self.cycle.response_complete \
            or self.conn.their_state is h11.SEND_BODY

    # -- the request deadline -----------------------------------------------------------
    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.book.limits.request_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if self.conn.their_state in (h11.IDLE, h11.SEND_BODY) and self._unanswered() \
                and not self.transport.is_closing():
            self.book.refusals.note(f"connection(s) closed for not sending a request within "
                                    f"{self.book.limits.request_timeout:g} s")
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        """Hand uvicorn the bytes; once the whole request is in, its deadline is lifted."""
        super().data_received(data)
        if self.conn.their_state not in (h11.IDLE, h11.SEND_BODY):
            self._disarm()  # the whole request is in: answering it has no deadline here

    def on_response_complete(self) -> None:
        """Start the deadline again, for the next request on the connection, unless it closes."""
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request on this connection gets the same deadline


def uvicorn_options(book: ConnectionBook) -> dict[str, Any]:
    """uvicorn.Config keyword arguments that apply the book's limits.

    Call `book.refusals.flush()` when the server stops, for the last counts.
    """
    fitted = book.limits
    return {"http": functools.partial(BoundedH11Protocol, book=book),
            "timeout_keep_alive": fitted.keep_alive,
            "h11_max_incomplete_event_size": 16 * 1024,
            # asyncio accepts up to `backlog` connections per wake-up before any of their
            # protocols runs (and evicts): a small batch keeps that overshoot inside the
            # reserve of files. It is the listen queue too; a longer queue waits in the kernel.
            "backlog": min(BACKLOG, fitted.fd_reserve // 2)}
