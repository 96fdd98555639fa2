"""`endaction status`, `history` and `trace`: read-only views of what the engine did."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from persistence import SqlStore

from ..core.engine.application import App
from ..core.errors import StoreUnavailable
from ..core.machines.command_machine import COMMAND_MACHINE
from ..core.records.records import CommandRecord
from ..diagrams import GraphvizMissing, render, require_graphviz
from ..diagrams.trace import path_of, trace_drawing
from ..toolkit.app_option import app_option
from ..toolkit.database import db_option, finite, json_option, open_database
from ..toolkit.errors import EXIT_LEFT_BEHIND, EXIT_TIMED_OUT, UsageProblem
from ..toolkit.history_view import history_view, render_history
from ..toolkit.inspect_views import locate
from ..toolkit.run_report import ending_status
from ..toolkit.status_view import render_status, status_view
from ..toolkit.trace_view import render_trace, trace_view
from .diagrams_cmd import formats_option

TRACE_FORMATS = ("mmd", "dot", "svg", "png")


@contextmanager
def _reading(db: str | None, app: App) -> Iterator[SqlStore]:
    """The store, opened only to read: a missing file is an error, never created."""
    store = open_database(db, create=False, app=app,
                          missing="run `endaction demo` first, or pass --db")
    try:
        yield store
    finally:
        store.dispose()


def _emit(view: dict[str, Any], as_json: bool, text: str) -> None:
    # https://no-color.org: any non-empty NO_COLOR means no colour, even on a terminal.
    colour = False if os.environ.get("NO_COLOR") else None
    click.echo(json.dumps(view, indent=2) if as_json else text, color=colour)


@click.command()
@click.argument("command_id", required=False)
@app_option
@db_option
@click.option("--wait", is_flag=True,
              help="wait for the command to end: exit 0 if it succeeded, 5 if it failed or "
                   "was cancelled and was rolled back, 3 if something was left behind")
@click.option("--timeout", type=click.FloatRange(min=0, max=10**7), default=3600.0,
              callback=finite,
              show_default=True, metavar="S",
              help="with --wait: give up after S seconds (exit 4)")
@json_option
def status(command_id: str | None, app: App, db: str | None, wait: bool, timeout: float,
           as_json: bool) -> None:
    """The tree of COMMAND_ID (default: the last root): children, tasks, opposite commands."""
    with _reading(db, app) as store:
        if command_id is None:
            command_id = store.last_root_id()
            if command_id is None:
                raise UsageProblem(f"no command in {store.url}")
        found = locate(store, str(command_id))
        if found.command is None:
            raise UsageProblem(f"{command_id} is a {found.kind}, not a command: "
                               f"try `endaction status {found.root_id}`")
        command = found.command
        held: str | None = None
        if wait:
            command, held = _wait_for_end(store, command, timeout)
        view = status_view(store, command)
        _emit(view, as_json, render_status(view))
        if wait:
            if held is not None:
                click.echo(f"Error: root {command.root_id} is held, no engine works on it: "
                           f"{held} (fix the cause, then `endaction release "
                           f"{command.root_id}`)", err=True)
                sys.exit(EXIT_LEFT_BEHIND)
            if not COMMAND_MACHINE.is_terminal(command.status):
                click.echo(f"Error: {command.id} is still {command.status} after {timeout:g} s",
                           err=True)
                sys.exit(EXIT_TIMED_OUT)
            sys.exit(ending_status(command.status, command.outcome))


def _wait_for_end(store: SqlStore, command: CommandRecord, timeout: float,
                  notice_seconds: float = 10.0) -> tuple[CommandRecord, str | None]:
    """Poll the command's row until it is terminal, its root is held, or `timeout` passes.

    A held root is one no engine will move. Every `notice_seconds` it says on stderr what it
    is waiting for: never silently, never unbounded. A database that is away for a while is
    waited for too, within the same timeout. Returns the command and the hold's error, if
    held.
    """
    started = last_notice = time.monotonic()
    delay = 0.05
    while not COMMAND_MACHINE.is_terminal(command.status):
        now = time.monotonic()
        if now - started >= timeout:
            break
        if now - last_notice >= notice_seconds:
            click.echo(f"waiting for {command.id} ({command.type}): {command.status} for "
                       f"{now - started:.0f} s", err=True)
            last_notice = now
        time.sleep(min(delay, max(0.0, timeout - (now - started))))
        delay = min(delay * 2, 1.0)
        try:
            fresh = store.command(command.id)
            held = store.held_roots().get(command.root_id)
        except StoreUnavailable as err:
            if time.monotonic() - started >= timeout:
                raise
            click.echo(f"the database is unavailable ({err}); still waiting", err=True)
            continue
        if fresh is None:
            raise UsageProblem(f"{command.id} is gone from {store.url}")
        command = fresh
        if held is not None and not COMMAND_MACHINE.is_terminal(command.status):
            return command, held
    return command, None


@click.command()
@click.argument("object_id", metavar="COMMAND_ID")
@app_option
@db_option
@click.option("--tree", "whole_tree", is_flag=True,
              help="the history of the whole root, not of this command or task alone")
@json_option
def history(object_id: str, app: App, db: str | None, whole_tree: bool,
            as_json: bool) -> None:
    """The transitions history of COMMAND_ID (a task id works too), as a table."""
    with _reading(db, app) as store:
        view = history_view(store, object_id, whole_tree)
        _emit(view, as_json, render_history(view))


@click.command()
@click.argument("object_id", metavar="COMMAND_ID")
@app_option
@db_option
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="directory for trace-COMMAND_ID.<format>")
@click.option("--format", "formats", default="mmd", show_default=True,
              help=f"comma-separated, from {', '.join(TRACE_FORMATS)} (svg, png need Graphviz)")
@json_option
def trace(object_id: str, app: App, db: str | None, out: Path, formats: str,
          as_json: bool) -> None:
    """Draw COMMAND_ID's machine with the states it visited, numbered, with their times."""
    chosen = formats_option(formats, TRACE_FORMATS)
    try:
        require_graphviz(chosen)
    except GraphvizMissing as err:
        raise click.ClickException(str(err)) from err
    with _reading(db, app) as store:
        view = trace_view(store, object_id)
        title = f"{view['kind']} {view['type']} {object_id}: {view['status']}"
        drawing, highlight = trace_drawing(view["kind"], object_id,
                                           path_of(store.history(object_id)), title)
        try:
            out.mkdir(parents=True, exist_ok=True)
            for fmt in chosen:
                path = out / f"{drawing.name}.{fmt}"
                path.write_bytes(render(drawing, fmt, highlight))
                view["files"].append(str(path))
        except OSError as err:
            raise UsageProblem(f"--out {out}: cannot write the trace there: "
                               f"{err.strerror or err}") from err
        _emit(view, as_json, render_trace(view))
