"""The `endaction` group: `cancel` and `release` here, every other command in its own module.

The group knows no domain: `demo`, `resume` and `cleanup` run the VM example on its local-disk
host and come from `statemachines.example.vm.demo_cli`.
"""

from __future__ import annotations

import logging
import time

import click

from ..core.errors import NotCancellable
from ..core.operator_requests import request_cancel
from ..example.vm.agent_cli import agent
from ..example.vm.demo_cli import cleanup, demo, resume
from ..example.vm.worker_cli import submit, worker
from .database import db_option, open_database
from .db_cmd import db
from .diagrams_cmd import diagrams
from .errors import EndactionGroup, UsageProblem
from .inspect_cmd import history, status, trace


@click.group(cls=EndactionGroup)
@click.version_option(package_name="endaction")
def cli() -> None:
    """Persisted command and task state machines that roll back with opposite commands."""


@cli.command()
@click.argument("root_id")
@db_option
@click.option("--reason", default="cancelled from the command line", show_default=True,
              help="recorded with the cancellation")
def cancel(root_id: str, db: str | None, reason: str) -> None:
    """Cancel the running root ROOT_ID: what has not started is refused, running tasks are
    aborted, and what already succeeded is compensated like after any other failure."""
    store = open_database(db, create=False, missing="nothing to cancel")
    try:
        request_cancel(store, root_id, reason, time.time())
    except NotCancellable as err:
        raise UsageProblem(str(err)) from err
    finally:
        store.dispose()
    click.echo(f"cancel requested for {root_id}: the engine running it acts at its next tick "
               "(if none runs, `endaction resume` does)")


@cli.command()
@click.argument("root_id")
@db_option
def release(root_id: str, db: str | None) -> None:
    """Let engines work again on ROOT_ID, held after the engine failed on it (fix the cause
    first: it is held again if the same fault recurs)."""
    store = open_database(db, create=False, missing="nothing to release")
    try:
        if not store.release_root(root_id):
            raise UsageProblem(f"root {root_id} is not held in {store.url}")
    finally:
        store.dispose()
    click.echo(f"released {root_id}: the next engine to run picks it up again")


for view in (demo, resume, cleanup, worker, submit, agent, db, diagrams, status, history,
             trace):
    cli.add_command(view)


def main() -> None:
    # The engine logs what it gives up on; say so in one line each, on stderr with progress.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    cli()
