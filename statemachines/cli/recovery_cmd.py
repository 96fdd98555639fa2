"""`endaction resume` and `endaction cleanup`, for any application.

`resume` finishes what a crashed process left; `cleanup` retries the reverts that gave up.

Both run in this process, as the engine that crashed did, and report with the application's
own report (or the generic one); their exit status means the same for every application.
"""

from __future__ import annotations

import json
import sys
from contextlib import closing

import click

from ..core.engine.application import App
from ..core.errors import WorkersHoldRoots
from ..toolkit.agent_options import AgentChoice, agent_options
from ..toolkit.app_option import app_option
from ..toolkit.app_world import AppWorld, open_app
from ..toolkit.database import db_option, finite, json_option
from ..toolkit.errors import EXIT_TIMED_OUT, UsageProblem
from ..toolkit.progress import Progress, make_progress
from ..toolkit.run_report import (
    cleanup_exit_status,
    cleanup_report,
    render_cleanup_text,
    render_report,
    root_report,
    run_exit_status,
)
from .fleet_cleanup import NotTaken, ask_the_workers


def _existing(app: App, db: str | None, agents_at: AgentChoice, progress: Progress,
              missing: str) -> AppWorld:
    return open_app(app, db, agents_at, create=False, missing=missing,
                    on_commit=progress)


@click.command()
@app_option
@db_option
@agent_options
@json_option
def resume(app: App, db: str | None, agents_at: AgentChoice, as_json: bool) -> None:
    """Recover after a crash and finish whatever was left; report the last root command.

    Exit status: 0 it succeeded, 5 it failed or was cancelled and was rolled back cleanly,
    3 something was left behind or could not end.
    """
    progress = make_progress()
    with progress, closing(_existing(app, db, agents_at, progress,
                                     "nothing to resume")) as world:
        root_id = world.store.last_root_id()
        if root_id is None:
            raise UsageProblem(f"no command in {world.store.url}: nothing to resume")
        world.engine.recover()
        if world.engine.is_idle():
            progress.note("nothing left to do; reporting the last root command")
        else:
            world.engine.run_until_idle(on_wait=progress.note)
        report = root_report(app, world.store, world.agents, root_id)
    click.echo(json.dumps(report, indent=2) if as_json else render_report(app, report))
    sys.exit(run_exit_status(report))


@click.command()
@app_option
@db_option
@agent_options
@click.option("--timeout", type=click.FloatRange(min=1, max=10**6), default=600.0,
              callback=finite, show_default=True, metavar="S",
              help="with workers running: how long to wait for them to take the request "
                   "and finish (exit 4 beyond)")
@json_option
def cleanup(app: App, db: str | None, agents_at: AgentChoice, timeout: float,
            as_json: bool) -> None:
    """Retry the reverts that gave up (revert_failed), now that the fault may be gone.

    Without workers it runs here, and finishes whatever else is unfinished too, as `resume`
    does; while workers hold leases it asks them, and one of them performs it. Exit status 0
    when nothing is left behind, 3 when something still is, 4 when the workers did not take
    the request and finish within --timeout.
    """
    progress = make_progress()
    with progress, closing(_existing(app, db, agents_at, progress,
                                     "nothing to clean up")) as world:
        try:
            world.engine.recover()
        except WorkersHoldRoots:
            try:
                retried = ask_the_workers(world.engine, world.store, timeout, progress.note)
            except NotTaken as late:
                click.echo(f"Error: {late}", err=True)
                sys.exit(EXIT_TIMED_OUT)
        else:
            retried = world.engine.cleanup()
            progress.note(f"retrying {len(retried)} resource(s) left revert_failed")
            world.engine.run_until_idle(on_wait=progress.note)
        report = cleanup_report(app, world.store, world.agents, retried)
    click.echo(json.dumps(report, indent=2) if as_json else render_cleanup_text(report))
    sys.exit(cleanup_exit_status(report))
