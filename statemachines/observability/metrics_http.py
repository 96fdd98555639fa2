"""Metrics over HTTP: `/metrics` of a registry as an ASGI app, and a task host's own metrics.

A task host is watched from outside as any HTTP service is: requests by route and status, and
how long they took; plus what only it knows, the tasks it runs and how long copies and
deletes take. `HostMetrics.serving(app, token)` wraps the host's ASGI app: it counts every
request (those its token gate refuses too) and answers `GET /metrics` itself.

Who may read `/metrics`: with a token, only callers that present it, as for every other route
of the host (the metrics name its routes and its load, and a host bound beyond loopback shows
them to the network); with none (`endaction agent serve --metrics-open`), anyone, for a
scraper that carries no bearer token. Routes are labelled by their template
(`/v1/tasks/{task_id}`), never the path a caller sent: a label per task id, or per junk path
probed by a scanner, would grow the host's memory without bound.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_asgi_app

from ..core.errors import extra_missing
from .metered_agent import SECONDS_BUCKETS

try:
    from starlette.responses import PlainTextResponse
    from starlette.types import ASGIApp, Message, Receive, Scope, Send
except ModuleNotFoundError as err:
    raise extra_missing(err, "http", "the metrics endpoint (/metrics)") from err

log = logging.getLogger("endaction.metrics")

METRICS_PATH = "/metrics"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})


def metrics_app(registry: CollectorRegistry) -> ASGIApp:
    """`GET /metrics` of `registry` (text format, or OpenMetrics if asked); 404 elsewhere."""
    exposition: ASGIApp = make_asgi_app(registry)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan: nothing to start or stop
        if scope.get("path") != METRICS_PATH or scope.get("method") not in ("GET", "HEAD"):
            await PlainTextResponse("only GET /metrics is served here\n", status_code=404)(
                scope, receive, send)
            return
        await exposition(scope, receive, send)

    return app


class HostMetrics:
    """A task host's metrics, on a registry of their own (by default a new one)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        on = self.registry
        self.requests = Counter(
            "endaction_host_requests",
            "Requests the task host answered, by route template, method and status "
            "(route 'unrouted': refused before routing, e.g. 401 without the token, or 404).",
            ["route", "method", "status"], registry=on)
        self.request_duration = Histogram(
            "endaction_host_request_duration_seconds",
            "Seconds the task host took to answer a request, by route template and method.",
            ["route", "method"], buckets=SECONDS_BUCKETS, registry=on)
        self.task_duration = Histogram(
            "endaction_host_task_duration_seconds",
            "Seconds a task (a copy, a delete) ran on the host, from a worker thread taking "
            "it up to its end, by verb and result.", ["verb", "result"],
            buckets=SECONDS_BUCKETS, registry=on)
        self.tasks_running = Gauge(
            "endaction_host_tasks_running",
            "Tasks the host is running now (queued for a worker thread, or copying or "
            "deleting).", registry=on)

    def watch_tasks(self, running: Callable[[], int]) -> None:
        """Read `running()` at each scrape for the tasks-running gauge."""
        self.tasks_running.set_function(lambda: float(running()))

    def task_ended(self, verb: str, result: str, seconds: float) -> None:
        """A host's callback when a task it ran ends."""
        self.task_duration.labels(verb, str(result)).observe(seconds)

    def serving(self, app: ASGIApp, token: str | None) -> ASGIApp:
        """`app`, counted, with `GET /metrics` answered.

        `token` is what a reader of the metrics must present (None: anyone may read them).
        """
        return _MeteredHost(app, self, metrics_app(self.registry),
                            None if token is None else b"Bearer " + token.encode())


class _MeteredHost:
    """ASGI middleware outside the host's own token gate, so refusals are counted too."""

    def __init__(self, app: ASGIApp, metrics: HostMetrics, exposition: ASGIApp,
                 expected: bytes | None) -> None:
        self.app = app
        self.metrics = metrics
        self.exposition = exposition
        self.expected = expected

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = str(scope.get("method", ""))
        method = method if method in _METHODS else "other"
        if scope.get("path") == METRICS_PATH:
            await self._metrics(scope, receive, send, method)
            return
        status = 500  # what the server sends if the app raises before answering
        started = time.perf_counter()

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unrouted"
            self.metrics.requests.labels(route, method, str(status)).inc()
            self.metrics.request_duration.labels(route, method).observe(
                time.perf_counter() - started)

    async def _metrics(self, scope: Scope, receive: Receive, send: Send, method: str) -> None:
        if self.expected is not None and not self._authorized(scope):
            client = scope.get("client") or ("?", 0)
            log.warning("refused %s %s from %s: no valid token", method, METRICS_PATH,
                        client[0])
            self.metrics.requests.labels(METRICS_PATH, method, "401").inc()
            await PlainTextResponse("a valid bearer token is required\n", status_code=401)(
                scope, receive, send)
            return
        status = 200 if method in ("GET", "HEAD") else 404
        self.metrics.requests.labels(METRICS_PATH, method, str(status)).inc()
        await self.exposition(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        assert self.expected is not None
        given = [value for name, value in scope.get("headers") or []
                 if name == b"authorization"]
        return len(given) == 1 and hmac.compare_digest(given[0], self.expected)
