"""Opening the database a command names, with every way that can go wrong said in one line.

`--db` is a SQLAlchemy URL or a SQLite file path, also read from ENDACTION_DB. An empty value
is refused rather than silently meaning the default; a read-only command never creates a
file or a folder for a mistyped path.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from persistence import SqlStore, normalise_url, open_store
from persistence.db_errors import LOCK_WAIT_ENVVAR

from ..core.engine.application import App
from ..core.ports.ledger import Ledger
from .errors import UsageProblem

#: The application a database belongs to, recorded by the first command that writes to it.
APP_SETTING = "endaction.application"

DEFAULT_HOME = Path("endaction-data")
DB_HELP = ("SQLAlchemy URL or SQLite file path [default: ./endaction-data/endaction.db]")
F = TypeVar("F", bound=Callable[..., Any])


def _not_empty(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    # click takes an empty variable for an unset one; a script that exported ENDACTION_DB=
    # from an unset shell variable would then write to the default database unknowingly.
    source = ctx.get_parameter_source(param.name or "db")
    if value is None and source is not click.core.ParameterSource.COMMANDLINE \
            and "ENDACTION_DB" in os.environ and not os.environ["ENDACTION_DB"].strip():
        raise click.BadParameter("ENDACTION_DB is set but empty (unset it for the default)",
                                 param_hint="ENDACTION_DB")
    if value is not None and not value.strip():
        raise click.BadParameter("must not be empty (leave --db out for the default)")
    return value


def db_option(command: F) -> F:
    """The shared `--db` option."""
    return click.option("--db", envvar="ENDACTION_DB", show_envvar=True, default=None,
                        callback=_not_empty, help=DB_HELP)(command)


def finite(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """A click callback: NaN passes click's float ranges, and would make any bound no bound."""
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a number of seconds")
    return value


def json_option(command: F) -> F:
    """The shared `--json` flag."""
    return click.option("--json", "as_json", is_flag=True,
                        help="print one JSON object on stdout")(command)


def default_db_url() -> str:
    """The database a command uses when `--db` is not given: ./endaction-data/endaction.db.

    The path is made absolute now, so the URL names the same file whatever directory the
    store is later opened from.
    """
    return f"sqlite:///{(DEFAULT_HOME / 'endaction.db').absolute()}"


def database_url(db: str | None) -> str:
    """The URL `--db` names; raises UsageProblem for something that is no database URL."""
    try:
        url = normalise_url(db or default_db_url())
        parsed = make_url(url)
        parsed.get_dialect().import_dbapi()
    except (ArgumentError, NoSuchModuleError, ValueError) as err:
        raise UsageProblem(f"--db {db!r} is not a database URL: {err}") from err
    except ModuleNotFoundError as err:
        raise UsageProblem(f"no driver for --db {db!r}: {err.name} is not installed "
                           "(pip install 'endaction[postgres]' for PostgreSQL)") from err
    in_memory = (None, "", ":memory:")
    if parsed.get_backend_name() == "sqlite" and (
            parsed.database in in_memory or (db or "").strip() == ":memory:"
            or "mode=memory" in str(parsed.query.get("mode", ""))):
        raise UsageProblem(f"--db {db!r} is an in-memory SQLite database, which keeps nothing "
                           "across a crash or between commands: name a file")
    return url


def open_database(db: str | None, *, create: bool, missing: str = "",
                  ledgers: Sequence[type[Ledger]] = (), app: App | None = None) -> SqlStore:
    """The store `--db` names, with the schema made if `create` allows it.

    With `create` an empty database gets the schema; without it a missing SQLite file is a
    UsageProblem (`missing` says what that means for the command).

    With `app`, the database must belong to that application (see `check_owner`), checked
    before its ledgers' tables are made; the ledgers are the application's.
    """
    url = database_url(db)
    parsed = make_url(url)
    if not create and parsed.get_backend_name() == "sqlite" and parsed.database:
        try:
            found = Path(parsed.database).exists()
        except OSError as err:  # a name too long for the filesystem, say
            raise UsageProblem(f"--db {db!r} cannot name a file: {err}") from err
        if not found:
            raise UsageProblem(f"no database at {parsed.database}"
                               + (f": {missing}" if missing else ""))
    wait = lock_wait_ms()
    if app is None:
        return open_store(url, create=create, ledgers=ledgers, busy_timeout_ms=wait)
    bare = open_store(url, create=create, busy_timeout_ms=wait)
    try:
        check_owner(bare, app, claim=create)
    finally:
        bare.dispose()
    return open_store(url, create=create, ledgers=app.ledgers, busy_timeout_ms=wait)


def lock_wait_ms() -> int:
    """How long a SQLite database's write lock is waited for, in milliseconds.

    It is ENDACTION_LOCK_TIMEOUT seconds, 10 by default (PostgreSQL waits on its own terms);
    a value that is not from 0 to 3600 seconds is a UsageProblem.
    """
    text = os.environ.get(LOCK_WAIT_ENVVAR, "").strip()
    if not text:
        return 10_000
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or not 0 <= seconds <= 3600:
        raise UsageProblem(f"{LOCK_WAIT_ENVVAR}={text!r}: expected seconds from 0 to 3600")
    return int(seconds * 1000)


def check_owner(store: SqlStore, app: App, *, claim: bool) -> None:
    """Refuse a database another application wrote.

    Its roots are of command types this one does not know (a worker would hold every one),
    and its ledgers' tables would be made in the other's database. The first command that may
    write (`claim`) records the owner; a database from before that was recorded is taken as it
    is.
    """
    owner = store.setting(APP_SETTING)
    if owner is None:
        if claim:
            store.put_setting(APP_SETTING, app.name)
        return
    if owner != app.name:
        raise UsageProblem(f"database {store.url} belongs to application {owner!r}, not "
                           f"{app.name!r}: name its application with --app (or ENDACTION_APP)")
