"""`endaction worker` and `endaction submit`: the VM example run by several workers.

A worker runs the example's commands on its local-disk host, over a database it shares with
other workers (PostgreSQL to spread them over machines; the storage directory must then be
shared too, as a real storage domain is). `submit` writes a root without running it, from
anywhere; some worker claims it within its claim interval.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from contextlib import closing
from types import FrameType
from typing import Any

import click

from statemachines import (
    AgentError,
    EndactionError,
    InvalidParameters,
    Limits,
    UnknownCommandType,
    Worker,
    WorkerLease,
    submit_root,
)
from statemachines.cli.database import db_option, finite, open_database
from statemachines.cli.errors import UsageProblem
from statemachines.core.leases import default_worker_name

from .commands import vm_registry
from .demo_cli import HostChoice, host_options
from .demo_world import TEMPLATE_BYTES, StorageUnusable, template_name
from .inventory import ImageInventory

log = logging.getLogger("endaction.worker")


@click.command()
@db_option
@host_options
@click.option("--name", default=None, metavar="NAME",
              help="this worker's name on its leases, unique among workers; a worker "
                   "restarted under the same name takes its roots back at once "
                   "[default: host:pid]")
@click.option("--interval", type=click.FloatRange(min=0.01, max=60), default=0.5,
              callback=finite,
              show_default=True, metavar="S",
              help="longest sleep between ticks, and how often free roots are looked for")
@click.option("--lease-ttl", type=click.FloatRange(min=1, max=3600), default=30.0,
              callback=finite,
              show_default=True, metavar="S",
              help="seconds a dead worker's roots wait before another worker takes them over")
@click.option("--max-roots", type=click.IntRange(min=1, max=100_000), default=64,
              show_default=True, help="roots this worker holds at a time")
@click.option("--templates", type=click.IntRange(min=0, max=100_000), default=0,
              show_default=True, metavar="N",
              help="make sure template-disk0..N-1 exist in the storage before starting")
@click.option("--task-timeout", type=click.FloatRange(min=1, max=10**7), default=600.0,
              callback=finite,
              show_default=True, metavar="S", help="seconds a copy or delete may take")
@click.option("--verbose", "-v", is_flag=True, help="log every committed tick")
def worker(db: str | None, host: HostChoice, name: str | None, interval: float,
           lease_ttl: float, max_roots: int, templates: int, task_timeout: float,
           verbose: bool) -> None:
    """Run the VM example's commands as one of several workers on one database, until
    SIGTERM or SIGINT (it finishes its tick and gives its roots back)."""
    logging.getLogger("endaction").setLevel(logging.INFO if verbose else logging.WARNING)
    try:
        lease = WorkerLease(owner=default_worker_name() if name is None else name,
                            ttl=lease_ttl, max_roots=max_roots, claim_interval=interval)
        limits = Limits(task_timeout=task_timeout)
    except EndactionError as err:
        raise UsageProblem(str(err)) from err
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        click.echo(f"worker {lease.owner}: {signal.Signals(signum).name} received, "
                   "stopping after this tick", err=True)
        stop.set()

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with closing(host.open(db, limits=limits, lease=lease)) as world:
            try:
                for index in range(templates):
                    world.agent.ensure_template(template_name(index), TEMPLATE_BYTES)
            except (OSError, AgentError) as err:
                raise StorageUnusable(f"cannot write the template disks in "
                                      f"{world.agent.templates}: {err}") from err
            click.echo(f"worker {lease.owner} on {world.store.url}, storage "
                       f"{world.agent.storage}", err=True)
            totals = Worker(world.engine, interval=interval, stop=stop).run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo(f"worker {lease.owner} stopped: {totals.committed} committed tick(s), "
               f"gave back {totals.released} lease(s)", err=True)


@click.command()
@click.argument("type_name", metavar="TYPE")
@click.option("--params", "params", required=True, metavar="JSON",
              help='the command\'s parameters, e.g. \'{"vm": "vm1", "disks": '
                   '[{"source": "template-disk0"}]}\'')
@db_option
def submit(type_name: str, params: str, db: str | None) -> None:
    """Write a root command of TYPE for the workers to run; print its id (and nothing else,
    so that `ID=$(endaction submit ...)` works)."""
    try:
        parameters: Any = json.loads(params)
    except json.JSONDecodeError as err:
        raise UsageProblem(f"--params is not JSON: {err}") from err
    except RecursionError:
        raise UsageProblem("--params is nested too deeply to be parameters") from None
    if not isinstance(parameters, dict):
        raise UsageProblem(f"--params must be a JSON object, not {type(parameters).__name__}")
    store = open_database(db, create=True, ledgers=[ImageInventory])
    try:
        record = submit_root(store, vm_registry(), type_name, parameters)
    except (InvalidParameters, UnknownCommandType) as err:
        raise UsageProblem(str(err)) from err
    finally:
        store.dispose()
    click.echo(record.id)
