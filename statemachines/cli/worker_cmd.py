"""`endaction worker`: run an application's roots as one of several workers on one database.

A worker builds its application's agents from its settings, claims free roots within its
claim interval, and runs them until SIGTERM or SIGINT; then it finishes its tick and gives its
leases back, so another worker takes the roots at once. PostgreSQL spreads workers over
machines; a SQLite file serves several processes on one. With `--metrics-port` it serves its
Prometheus metrics at /metrics (`worker_metrics`).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from contextlib import closing
from dataclasses import replace
from types import FrameType
from typing import TYPE_CHECKING

import click

from ..core.engine.application import App
from ..core.engine.engine import SINGLE_ENGINE
from ..core.engine.leases import WorkerLease, default_worker_name
from ..core.engine.worker import Worker
from ..core.errors import EndactionError, StoreUnavailable, require_extra
from ..core.records.limits import Limits
from ..toolkit.agent_options import AgentChoice, agent_options
from ..toolkit.app_option import app_option
from ..toolkit.app_world import AppWorld, open_app
from ..toolkit.database import db_option, finite
from ..toolkit.errors import UsageProblem
from ..toolkit.logging_setup import logged

if TYPE_CHECKING:
    from .worker_metrics import WorkerMetrics

log = logging.getLogger("endaction.worker")


@logged(logging.INFO)
@click.command()
@app_option
@db_option
@agent_options
@click.option("--name", default=None, metavar="NAME",
              help="this worker's name on its leases, unique among workers; a worker "
                   "restarted under the same name takes its roots back at once "
                   "[default: host:pid]")
@click.option("--interval", type=click.FloatRange(min=0.01, max=60), default=0.5,
              callback=finite, show_default=True, metavar="S",
              help="longest sleep between ticks, and how often free roots are looked for")
@click.option("--lease-ttl", type=click.FloatRange(min=1, max=3600), default=30.0,
              callback=finite, show_default=True, metavar="S",
              help="seconds a dead worker's roots wait before another worker takes them over")
@click.option("--max-roots", type=click.IntRange(min=1, max=100_000), default=2048,
              show_default=True, help="the most roots this worker holds at a time; its share "
              "starts at 64 and grows while its ticks stay short, shrinks when they grow long")
@click.option("--fixed-share", is_flag=True,
              help="hold --max-roots at most, claimed 8 at a time, whatever the ticks take "
                   "(--fixed-share --max-roots 64: the behaviour of earlier releases)")
@click.option("--task-timeout", type=click.FloatRange(min=1, max=10**7), default=None,
              callback=finite, metavar="S",
              help="seconds a task may take before it is aborted [default: the "
                   "application's limits, 600]")
@click.option("--summary-interval", type=click.FloatRange(min=0.1, max=86_400), default=10.0,
              callback=finite, show_default=True, metavar="S",
              help="log one INFO line of what the worker holds and ended every S seconds")
@click.option("--start-timeout", type=click.FloatRange(min=0, max=86_400), default=60.0,
              callback=finite, show_default=True, metavar="S",
              help="how long a starting worker retries a database it cannot reach (a restart "
                   "during a failover), saying so each time, before it gives up (exit 1)")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=None, metavar="P",
              help="serve Prometheus metrics at http://HOST:P/metrics (0: any free port, "
                   "printed) [default: none]")
@click.option("--metrics-host", default="127.0.0.1", show_default=True, metavar="HOST",
              help="address the metrics are served on (no token is asked: anything but "
                   "loopback shows them to the network)")
def worker(app: App, db: str | None, agents_at: AgentChoice, name: str | None,
           interval: float, lease_ttl: float, max_roots: int, fixed_share: bool,
           task_timeout: float | None,
           summary_interval: float, start_timeout: float, metrics_port: int | None,
           metrics_host: str) -> None:
    """Run the application's roots as one of several workers on one database.

    It runs until SIGTERM or SIGINT (it finishes its tick and gives its roots back). With -v,
    it logs every tick.
    """
    if name == SINGLE_ENGINE:
        raise UsageProblem(f"--name {SINGLE_ENGINE} is the single engine's own lease name "
                           "(`demo`, `resume`, `cleanup`): give the worker another")
    try:
        lease = WorkerLease(owner=default_worker_name() if name is None else name,
                            ttl=lease_ttl, max_roots=max_roots, claim_interval=interval,
                            adaptive=not fixed_share)
        limits = app.limits if task_timeout is None \
            else replace(app.limits, task_timeout=task_timeout)
    except EndactionError as err:
        raise UsageProblem(str(err)) from err
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        click.echo(f"worker {lease.owner}: {signal.Signals(signum).name} received, "
                   "stopping after this tick", err=True)
        stop.set()

    served = None if metrics_port is None else _metrics(metrics_host, metrics_port)
    if served is not None:
        click.echo(f"worker {lease.owner}: metrics on {served.url}", err=True)
    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        opened = _open_backing_off(app, db, agents_at, limits, lease, start_timeout, stop,
                                   served)
        if opened is None:
            click.echo(f"worker {lease.owner} stopped before it started", err=True)
            return
        with closing(opened) as world:
            click.echo(f"worker {lease.owner} of application {app.name!r} on "
                       f"{world.store.url}", err=True)
            runner = Worker(world.engine, interval=interval, stop=stop,
                            summary_every=summary_interval,
                            on_tick=None if served is None else served.metrics.on_tick)
            if served is not None:
                served.watch(world.engine, runner, world.store)
            totals = runner.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if served is not None:
            served.close()
    click.echo(f"worker {lease.owner} stopped: {totals.committed} committed tick(s), "
               f"{totals.roots_ended} root(s) ended ({totals.roots_failed} failed), gave back "
               f"{totals.released} lease(s)", err=True)


def _open_backing_off(app: App, db: str | None, agents_at: AgentChoice, limits: Limits,
                      lease: WorkerLease, timeout: float, stop: threading.Event,
                      served: WorkerMetrics | None = None) -> AppWorld | None:
    """Open the application, retrying a database that is unavailable for up to `timeout` s.

    It retries as a running worker does at every tick: a worker restarted during a failover
    must not exit on the first cut connection. None if stopped meanwhile.
    """
    started = time.monotonic()
    backoff = 0.2
    while True:
        try:
            if served is None:
                return open_app(app, db, agents_at, limits=limits, lease=lease)
            return open_app(app, db, agents_at, limits=limits, lease=lease,
                            on_commit=served.metrics.on_commit,
                            engine_agents=served.metrics.meter)
        except StoreUnavailable as err:
            waited = time.monotonic() - started
            if waited + backoff > timeout:
                raise StoreUnavailable(f"{err} (the worker retried for {waited:.0f} s; "
                                       "--start-timeout waits longer)") from err
            log.warning("worker %s: the database is unavailable at start (%s); retrying in "
                        "%.1f s", lease.owner, err, backoff)
        if stop.wait(backoff):
            return None
        backoff = min(backoff * 2, 5.0)


def _metrics(host: str, port: int) -> WorkerMetrics:
    """The metrics server, which needs the `http` extra (without it, `MissingExtra` says so)."""
    require_extra("http", "--metrics-port")
    from .worker_metrics import WorkerMetrics

    return WorkerMetrics(host, port)
