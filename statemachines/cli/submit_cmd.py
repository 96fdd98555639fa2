"""`endaction submit`: write a root for the workers to run, from anywhere, and print its id.

Nothing runs here: a worker of the same application claims the root within its claim
interval. `--key` makes the submit idempotent, so that a client which timed out and retries
gets the root it already made, not a second one.
"""

from __future__ import annotations

import click

from ..core.engine.application import App
from ..core.errors import (
    InvalidParameters,
    NotSubmittable,
    SubmitKeyConflict,
    UnknownCommandType,
)
from ..core.operations.submission import submit_root
from ..toolkit.app_option import app_option
from ..toolkit.database import db_option, open_database
from ..toolkit.errors import UsageProblem
from .params_input import PARAMS_HELP, read_params


@click.command()
@click.argument("type_name", metavar="TYPE")
@click.option("--params", "params", required=True, metavar="JSON|@FILE|-", help=PARAMS_HELP)
@click.option("--key", default=None, metavar="KEY",
              help="an idempotency key: submitting the same key again prints the same root's "
                   "id; with another TYPE or other parameters it is refused (exit 2)")
@app_option
@db_option
def submit(type_name: str, params: str, key: str | None, app: App, db: str | None) -> None:
    """Write a root command of TYPE for the workers to run, and print its id.

    It prints nothing else, so that `ID=$(endaction submit ...)` works.
    """
    parameters = read_params(params)
    store = open_database(db, create=True, app=app)
    try:
        record = submit_root(store, app.registry, type_name, parameters, key=key)
    except (InvalidParameters, UnknownCommandType, SubmitKeyConflict, NotSubmittable) as err:
        raise UsageProblem(str(err)) from err
    finally:
        store.dispose()
    click.echo(record.id)
