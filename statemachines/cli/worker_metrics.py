"""`endaction worker --metrics-port P`: the worker's Prometheus metrics at `/metrics`.

They are served by uvicorn on a thread of their own, with the task host's bounds
(`statemachines.http.bounded_server`): a scraper, or anything else that finds the port, that
holds connections open cannot take the worker's files or stall it, and the worker's loop
never waits for a scrape. The port is bound before the database is opened, so a port in use
is one `Error:` line and exit 1 at once, not after a start that retried the database for a
minute. It binds 127.0.0.1 unless told otherwise: the metrics name the application's command
types and agents, and carry no token (a Prometheus scraper usually has none to give).
"""

from __future__ import annotations

import threading
import time

import uvicorn

from persistence import SqlStore

from ..core.engine.engine import Engine
from ..core.engine.worker import Worker
from ..core.errors import EndactionError
from ..core.records.revert_state import RevertState
from ..http import ConnectionBook, HostLimits, uvicorn_options
from ..http.listening import listen
from ..observability import EngineMetrics, metrics_app

#: A scraper or two, and a person's browser: far fewer connections than a task host takes.
METRICS_LIMITS = HostLimits(max_connections=16)
START_TIMEOUT = 10.0


class CannotServeMetrics(EndactionError):
    """The metrics server cannot serve: its address cannot be listened on, or it did not start.

    The address may be in use, or not this machine's.
    """


class WorkerMetrics:
    """A worker's `EngineMetrics`, served at http://host:port/metrics until `close`."""

    def __init__(self, host: str, port: int) -> None:
        self.metrics = EngineMetrics()
        self.host = host
        self._listening = listen(host, port, "serve metrics on")
        self.port = int(self._listening.getsockname()[1])
        self._book = ConnectionBook(METRICS_LIMITS)
        self._server = uvicorn.Server(uvicorn.Config(
            metrics_app(self.metrics.registry), log_config=None, log_level="warning",
            access_log=False, lifespan="off", **uvicorn_options(self._book)))
        self._thread = threading.Thread(target=self._server.run,
                                        kwargs={"sockets": [self._listening]},
                                        name="endaction-metrics", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.close()
                raise CannotServeMetrics(f"the metrics server on {self.url} did not start")
            time.sleep(0.01)

    @property
    def url(self) -> str:
        """The address a scraper reads the metrics at, an IPv6 host in brackets."""
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{shown}:{self.port}/metrics"

    def watch(self, engine: Engine, worker: Worker, store: SqlStore) -> None:
        """From now on a scrape also reads `engine` and `worker`.

        It also counts the resources left revert_failed in `store`.
        """
        self.metrics.watch(engine, worker,
                           revert_failed=lambda: store.count_reverts(RevertState.REVERT_FAILED))

    def close(self) -> None:
        """Stop serving (the scrape under way is answered first, within a few seconds)."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._listening.close()
        self._book.refusals.flush()
