"""The `endaction` group: the commands every application shares, and its own commands.

The group knows no domain. Each command that runs or reads work loads the application named
by `--app` (or ENDACTION_APP; the VM example by default); the extra commands an application
declares (`App.commands`: the VM example's `demo` and `agent serve`) are offered beside these,
from the application ENDACTION_APP names, loaded only when asked for.
"""

from __future__ import annotations

import logging
import time

import click

from ..core.engine.application import App
from ..core.errors import EndactionError, NotCancellable
from ..core.operations.operator_requests import request_cancel
from ..toolkit.app_option import app_option, default_app_spec, load_app
from ..toolkit.database import db_option, open_database
from ..toolkit.errors import EndactionGroup, UsageProblem
from ..toolkit.logging_setup import setup_logging, with_logging
from .db_cmd import db
from .diagrams_cmd import diagrams
from .inspect_cmd import history, status, trace
from .list_cmd import list_roots
from .recovery_cmd import cleanup, resume
from .submit_cmd import submit
from .ui_cmd import ui
from .worker_cmd import worker


def with_logging_everywhere(command: click.Command) -> click.Command:
    """Every command, and every command of a sub-group, takes the logging options."""
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            with_logging_everywhere(sub)
        return command
    return with_logging(command)


class ApplicationGroup(EndactionGroup):
    """The group, with the extra commands of the application ENDACTION_APP names."""

    def _app_commands(self) -> dict[str, click.Command]:
        try:
            app = load_app(default_app_spec())
        except EndactionError:
            return {}  # each command's own --app says what is wrong with it
        found: dict[str, click.Command] = {}
        for command in app.commands:
            if not isinstance(command, click.Command) or not command.name:
                raise UsageProblem(f"application {app.name!r}: commands must be click "
                                   f"commands, not {type(command).__name__}")
            if command.name not in self.commands:  # the shared commands cannot be replaced
                found[command.name] = with_logging_everywhere(command)
        return found

    def list_commands(self, ctx: click.Context) -> list[str]:
        """The shared commands and the application's own, sorted, as `--help` lists them."""
        return sorted({*self.commands, *self._app_commands()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The shared command of that name, else the application's own, else None.

        The shared commands are looked up first, so the application is loaded only for a name
        that is not one of them.
        """
        return self.commands.get(cmd_name) or self._app_commands().get(cmd_name)


@click.group(cls=ApplicationGroup)
@click.version_option(package_name="endaction")
def cli() -> None:
    """Persisted command and task state machines that roll back with opposite commands.

    Every option below can also be given as the environment variable shown in each command's
    --help (ENDACTION_APP, ENDACTION_DB, ENDACTION_LOG_LEVEL, ...).
    """


@cli.command()
@click.argument("root_id")
@app_option
@db_option
@click.option("--reason", default="cancelled from the command line", show_default=True,
              help="recorded with the cancellation")
def cancel(root_id: str, app: App, db: str | None, reason: str) -> None:
    """Cancel the running root ROOT_ID.

    What has not started is refused, running tasks are aborted, and what already succeeded is
    reverted like after any other failure.
    """
    store = open_database(db, create=False, missing="nothing to cancel", app=app)
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
    """Let engines work again on ROOT_ID, held after the engine failed on it.

    Fix the cause first: it is held again if the same fault recurs.
    """
    store = open_database(db, create=False, missing="nothing to release")
    try:
        if not store.release_root(root_id):
            raise UsageProblem(f"root {root_id} is not held in {store.url}")
    finally:
        store.dispose()
    click.echo(f"released {root_id}: the next engine to run picks it up again")


for view in (worker, submit, resume, cleanup, list_roots, db, diagrams, status, history,
             trace, ui):
    cli.add_command(view)
with_logging_everywhere(cli)


def main() -> None:
    """The `endaction` console script: the group, with warnings on stderr at first.

    A command's own log level applies once the command sets it.
    """
    # Until a command sets its own level: warnings on stderr, one line each.
    setup_logging(logging.WARNING)
    cli()
