"""`endaction list`: the roots in a database, newest first, a page at a time.

A database of a busy deployment holds hundreds of thousands of roots; the list is read by
keyset paging on an index (`SqlStore.list_roots`), never by loading the table, and the next
page is asked for with the cursor the previous page printed.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import click
from sqlalchemy.engine import make_url

from persistence import normalise_url

from ..core.engine.application import App
from ..core.machines.command_machine import CommandStatus
from ..core.records.records import CommandRecord
from ..toolkit.app_option import APP_SPEC_META, app_option
from ..toolkit.database import db_option, json_option, open_database
from ..toolkit.listing import (
    LIST_LIMIT,
    age,
    cursor_of,
    next_page_command,
    parse_cursor,
    parse_since,
)


def _row(record: CommandRecord, now: float, held: str | None) -> dict[str, Any]:
    return {"id": record.id, "type": record.type, "status": str(record.status),
            "outcome": str(record.outcome) if record.outcome else None,
            "cause": record.error if held is None else f"held: {held}", "held": held,
            "created_at": record.created_at, "updated_at": record.updated_at,
            "age_seconds": round(now - record.created_at, 3)}


def _render(rows: list[dict[str, Any]], next_page: str | None) -> str:
    if not rows:
        return "no roots"
    header = ("ID", "TYPE", "STATUS", "OUTCOME", "AGE", "CAUSE")
    table = [(r["id"], r["type"], r["status"] + (" HELD" if r["held"] else ""),
              r["outcome"] or "-", age(r["age_seconds"]),
              (r["cause"] or "-").replace("\n", " ")[:80]) for r in rows]
    widths = [max(len(header[i]), *(len(line[i]) for line in table)) for i in range(5)]
    lines = ["  ".join(cell.ljust(widths[i]) if i < 5 else cell
                       for i, cell in enumerate(line)).rstrip()
             for line in [header, *table]]
    if next_page is not None:
        lines.append(f"more: {next_page}")
    return "\n".join(lines)


def _printable_db(ctx: click.Context, db: str | None) -> bool:
    """--db as given on the command line, unless it holds a password (never printed)."""
    if db is None or ctx.get_parameter_source("db") is not click.core.ParameterSource.COMMANDLINE:
        return False
    try:
        return make_url(normalise_url(db)).password is None
    except Exception:
        return False


@click.command(name="list")
@app_option
@db_option
@click.option("--status", type=click.Choice([str(s) for s in CommandStatus]), default=None,
              help="only roots in this status")
@click.option("--type", "type_name", default=None, metavar="TYPE",
              help="only roots of this command type")
@click.option("--since", default=None, metavar="TIME",
              help="only roots created since TIME: an age (30m, 2h, 7d), an ISO 8601 time or "
                   "Unix seconds")
@click.option("--limit", type=click.IntRange(1, 10_000), default=LIST_LIMIT, show_default=True,
              help="roots per page")
@click.option("--before", "before", default=None, metavar="CURSOR",
              help="the next page: the cursor the previous page printed")
@json_option
def list_roots(app: App, db: str | None, status: str | None, type_name: str | None,
               since: str | None, limit: int, before: str | None, as_json: bool) -> None:
    """The roots, newest first, with their status, outcome, cause and age."""
    now = time.time()
    since_at = None if since is None else parse_since(since, now)
    cursor = None if before is None else parse_cursor(before)
    store = open_database(db, create=False, app=app,
                          missing="run `endaction demo` or `endaction submit` first")
    try:
        records = store.list_roots(status=status, type_name=type_name, since=since_at,
                                   before=cursor, limit=limit + 1)
        held = store.held_roots()  # a handful at most: roots the engine could not run
    finally:
        store.dispose()
    more = len(records) > limit
    records = records[:limit]
    next_cursor = cursor_of(records[-1]) if more else None
    rows = [_row(r, now, held.get(r.id)) for r in records]
    if as_json:
        click.echo(json.dumps({"roots": rows, "next": next_cursor}, indent=2))
    else:
        ctx = click.get_current_context()
        given = ctx.get_parameter_source("app") is click.core.ParameterSource.COMMANDLINE
        page = None if next_cursor is None else next_page_command(next_cursor, [
            ("--app", ctx.meta.get(APP_SPEC_META) if given else None),
            ("--db", db if _printable_db(ctx, db) else None),
            ("--status", status), ("--type", type_name), ("--since", since),
            ("--limit", limit if limit != 50 else None)])
        click.echo(_render(rows, page),
                   color=False if os.environ.get("NO_COLOR") else None)
