"""Serving on an address of one's own, for the task host, the web view and a worker's metrics.

All three bind their socket before anything else (so a port in use is one clear error, before
a token, a journal or a database is touched), and stop on SIGTERM as on Ctrl-C.
"""

from __future__ import annotations

import signal
import socket
from types import FrameType

from ..core.errors import EndactionError, extra_missing

try:
    import uvicorn
except ModuleNotFoundError as err:
    raise extra_missing(err, "http", "serving over HTTP") from err


class CannotListen(EndactionError):
    """The address cannot be listened on (in use, not this machine's, privileged)."""


def listen(host: str, port: int, doing: str = "listen on") -> socket.socket:
    """A listening socket on host:port (port 0: any free one), or CannotListen naming it."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        return socket.create_server((host, port), family=family)
    except OSError as err:
        raise CannotListen(f"cannot {doing} {host}:{port}: {err.strerror or err}") from err


class _Stopped(Exception):
    pass


def _stopped(signum: int, frame: FrameType | None) -> None:
    raise _Stopped


def serve_until_stopped(server: uvicorn.Server, listening: socket.socket) -> None:
    """Run `server` on `listening` until SIGTERM or SIGINT, and return normally then.

    uvicorn stops gracefully on either signal and then raises it again with the handler it
    found: this one turns that into a clean return, so that the caller closes what it opened
    and the exit status is 0.
    """
    previous = signal.signal(signal.SIGTERM, _stopped)
    try:
        server.run(sockets=[listening])
    except (_Stopped, KeyboardInterrupt):
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
