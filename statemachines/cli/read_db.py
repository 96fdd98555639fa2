"""Opening a database only to read it: a mistyped path must be an error, not a new empty file."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from persistence import SqlStore, normalise_url, open_store

from .demo_world import default_db_url
from .run_report import EXIT_USAGE


def usage_error(message: str) -> None:
    """Exit 2 with one line on stderr, the CLI's status for bad usage (an unknown id included)."""
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_USAGE)


def open_for_reading(db: str | None) -> SqlStore:
    try:
        url = normalise_url(db or default_db_url())
        parsed = make_url(url)
    except ArgumentError as err:
        raise click.BadParameter(f"{db!r} is not a database URL: {err}", param_hint="--db") from err
    if parsed.get_backend_name() == "sqlite" and parsed.database \
            and not Path(parsed.database).exists():
        usage_error(f"no database at {parsed.database} (run `endaction demo` first, or pass --db)")
    try:
        return open_store(url, create=False)
    except ModuleNotFoundError as err:
        raise click.BadParameter(
            f"no driver for {db!r}: {err.name} is not installed "
            "(pip install 'endaction[postgres]' for PostgreSQL)", param_hint="--db") from err
