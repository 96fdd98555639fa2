"""`column IN (...)` over many values, as the database's dialect best matches them.

SQLite gets chunks of values, one statement each; PostgreSQL one statement with the whole
list as one array parameter (persistence/dialects).

`rows_matching` reads such rows below SQLAlchemy, as the driver's tuples: a tick prefetches
the inventory rows and revert states of every resource its commands name, 20,000 rows for
a 10,000-disk rollback, and building SQLAlchemy statements and result rows for them cost
several times what SQLite took to find them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, CursorResult, Table

from .dialects import dialect_of
from .dialects.sql_text import placeholder, table_name


def rows_matching(conn: Connection, table: Table, columns: Sequence[str], key: str,
                  values: Sequence[str], where: str = "",
                  params: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
    """`SELECT columns FROM table WHERE [where AND] key IN values`, as the driver's tuples.

    `where` and `params` use the driver's own placeholder (`?` on SQLite, `%s` on
    PostgreSQL: see `placeholder`). Names are quoted as the dialect quotes them (a ledger's
    table may be called "order"); `where` is the caller's own SQL, never user input.
    """
    for result in results_matching(conn, table, columns, key, values, where, params):
        yield from result


def results_matching(conn: Connection, table: Table, columns: Sequence[str], key: str,
                     values: Sequence[str], where: str = "",
                     params: Sequence[Any] = ()) -> Iterator[CursorResult[Any]]:
    """The same, statement by statement.

    A result's `cursor.description` holds the type codes some of SQLAlchemy's conversions
    need (PostgreSQL's numerics).
    """
    if not values:
        return
    q = conn.dialect.identifier_preparer.quote
    head = (f"SELECT {', '.join(map(q, columns))} FROM {table_name(conn, table)} WHERE "
            + (f"{where} AND " if where else ""))
    for statement, bound in dialect_of(conn).in_list(head, q(key), placeholder(conn),
                                                     values, params):
        yield conn.exec_driver_sql(statement, bound)


def matching(conn: Connection, column: ColumnElement[Any],
             values: Sequence[str]) -> Iterator[ColumnElement[bool]]:
    """Conditions that together match `column` against every one of `values`."""
    if not values:
        return
    yield from dialect_of(conn).matching(column, values)
