"""Which endaction schema a database holds, and bringing it to the one this code needs.

Three promises. Creating or upgrading a schema is one transaction, so a process killed half-way
leaves the database as it found it and the next run simply starts again (a schema created in
steps, killed between the tables and the version row, used to poison the database for good).
A database that is not endaction's (another application's SQLite file, or one with a table of
ours that we did not create) is refused before anything is written to it. And an engine never
runs on a schema older or newer than its own: it names `endaction db upgrade` instead of
failing later on a missing column with work in flight.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import DBAPIError

from statemachines.core.errors import StoreError

from .database import WRITE_OPTION
from .db_errors import translate
from .dialects import dialect_of
from .schema import metadata

log = logging.getLogger("endaction.schema")

# Alembic's version table, under a name of our own: another application's Alembic history in
# the same database is never mistaken for ours.
VERSION_TABLE = "endaction_version"
# The revision this code's `persistence.schema` describes; a test holds it equal to Alembic's head.
HEAD = "0009"
KNOWN_REVISIONS = ("0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008",
                   "0009")
# Schema version 1 kept its own version table before migrations existed.
LEGACY_VERSION_TABLE = "endaction_schema"
OUR_TABLES = frozenset(metadata.tables) | {VERSION_TABLE, LEGACY_VERSION_TABLE}
MIGRATIONS = Path(__file__).parent / "migrations"

class NotAnEndactionDatabase(StoreError):
    """The database belongs to something else; nothing was written to it."""


class NoSchema(StoreError):
    """The database is empty and was opened only to be read or resumed."""


class SchemaMismatch(StoreError):
    """The schema is older or newer than this endaction's.

    Attributes:
        found: the revision the database holds.
        needed: the revision this endaction needs.
    """

    def __init__(self, message: str, found: str, needed: str) -> None:
        super().__init__(message)
        self.found = found
        self.needed = needed


class SchemaState(StrEnum):
    """How a database's schema stands against this code's `HEAD`: what an engine may do with it.

    An EMPTY database may be created, an OLDER one upgraded (`endaction db upgrade`), a CURRENT
    one used; a NEWER or FOREIGN one is refused before anything is written to it.
    """

    EMPTY = "empty"
    CURRENT = "current"
    OLDER = "older"
    NEWER = "newer"
    FOREIGN = "foreign"


@dataclass(frozen=True)
class Found:
    """What a database holds: its state, our revision if it has one, and why it is foreign."""

    state: SchemaState
    revision: str | None = None
    detail: str = ""
    legacy: bool = False


def inspect_schema(conn: Connection, database: str) -> Found:
    """Read, never write, what schema the connection's database holds."""
    tables = set(inspect(conn).get_table_names())
    if VERSION_TABLE in tables:
        revisions = list(conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars())
        if len(revisions) != 1:
            return Found(SchemaState.FOREIGN, detail=f"its {VERSION_TABLE} table holds "
                                                     f"{len(revisions)} rows, not one")
        return _by_revision(str(revisions[0]))
    if LEGACY_VERSION_TABLE in tables:
        versions = list(conn.execute(text(f"SELECT version FROM {LEGACY_VERSION_TABLE}")).scalars())
        if versions == [1]:
            return Found(SchemaState.OLDER, "0001", legacy=True)
        return Found(SchemaState.NEWER, f"legacy {versions}")
    ours = sorted(tables & OUR_TABLES)
    if ours:
        return Found(SchemaState.FOREIGN, detail=f"it has table(s) {', '.join(ours)} that "
                                                 "endaction did not create")
    if tables and not dialect_of(conn).shares_database:
        shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        return Found(SchemaState.FOREIGN, detail=f"it holds another application's tables "
                                                 f"({shown})")
    return Found(SchemaState.EMPTY)


def _by_revision(revision: str) -> Found:
    if revision == HEAD:
        return Found(SchemaState.CURRENT, revision)
    if revision in KNOWN_REVISIONS:
        return Found(SchemaState.OLDER, revision)
    return Found(SchemaState.NEWER, revision)


def refusal(found: Found, database: str) -> StoreError | None:
    """The error that stops an engine from working on what was found; None when it may."""
    if found.state == SchemaState.FOREIGN:
        return NotAnEndactionDatabase(
            f"{database} is not an endaction database: {found.detail}; nothing was written "
            "to it (use another --db)")
    if found.state == SchemaState.OLDER:
        return SchemaMismatch(
            f"database {database} has endaction schema {found.revision}, this endaction needs "
            f"{HEAD}: run `endaction db upgrade --db {database}` (work in flight is kept)",
            str(found.revision), HEAD)
    if found.state == SchemaState.NEWER:
        return SchemaMismatch(
            f"database {database} has endaction schema {found.revision}, newer than this "
            f"endaction's {HEAD}: use the endaction that upgraded it",
            str(found.revision), HEAD)
    return None


def ensure_schema(engine: Engine, database: str, create: bool) -> None:
    """Check the schema; create it in one transaction when the database is empty and `create`."""
    with _schema_errors(database, "read its schema"), engine.connect() as conn:
        found = inspect_schema(conn, database)
        conn.rollback()
    if found.state == SchemaState.EMPTY:
        if not create:
            raise NoSchema(f"database {database} holds no endaction schema: nothing was ever "
                           "run there (run `endaction demo` or `endaction db upgrade` first)")
        found = upgrade(engine, database, only_if_empty=True)[1]
    problem = refusal(found, database)
    if problem is not None:
        raise problem
    dialect_of(engine).after_schema(engine)


def upgrade(engine: Engine, database: str, only_if_empty: bool = False) -> tuple[Found, Found]:
    """Bring the schema to HEAD in one transaction; returns what was found and what is now.

    Creation and upgrade share this path, so a fresh database and an upgraded one are built by
    the same steps. Another process doing the same waits for this one and then finds nothing
    left to do.
    """
    with _schema_errors(database, "create or upgrade the schema"), \
            engine.connect().execution_options(**{WRITE_OPTION: True}) as conn, conn.begin():
        dialect_of(conn).lock_schema(conn)
        before = inspect_schema(conn, database)
        may_migrate = before.state == SchemaState.EMPTY or (
            not only_if_empty and before.state == SchemaState.OLDER)
        if not may_migrate:
            return before, before
        _run_migrations(conn, before)
        after = inspect_schema(conn, database)
    dialect_of(engine).after_schema(engine)
    return before, after


@contextmanager
def _schema_errors(database: str, doing: str) -> Iterator[None]:
    try:
        yield
    except DBAPIError as err:
        if "not a database" in str(err.orig):
            raise NotAnEndactionDatabase(f"{database} is not a SQLite database") from err
        raise translate(err, database, doing) from err


def _run_migrations(conn: Connection, before: Found) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    if before.legacy:
        command.stamp(config, "0001")
    command.upgrade(config, "head")
