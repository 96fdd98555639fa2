"""`column IN (...)` over many values: drivers and SQLite cap bound parameters.

SQLite gets chunks of `CHUNK` values, one statement each. PostgreSQL gets one statement with
the whole list as one array parameter (`column = ANY(:values)`): a 10,000-value IN list in
chunks of 400 cost 25 statements, each compiled with 400 bind names, and a row-value IN list
could not use the primary key at all.

`rows_matching` reads such rows below SQLAlchemy, as the driver's tuples: a tick prefetches
the inventory rows and revert states of every resource its commands name, 20,000 rows for
a 10,000-disk rollback, and building SQLAlchemy statements and result rows for them cost
several times what SQLite took to find them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Connection, CursorResult, String, Table, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY

T = TypeVar("T")

CHUNK = 400


def chunked(items: Iterable[T], size: int = CHUNK) -> Iterator[list[T]]:
    """Lists of at most `size` items, taken as they come (a generator is never held whole)."""
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


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
    """The same, statement by statement: a result's `cursor.description` holds the type
    codes some of SQLAlchemy's conversions need (PostgreSQL's numerics).
    """
    if not values:
        return
    mark, q = placeholder(conn), conn.dialect.identifier_preparer.quote
    head = (f"SELECT {', '.join(map(q, columns))} FROM {table_name(conn, table)} WHERE "
            + (f"{where} AND " if where else ""))
    if conn.dialect.name == "postgresql":
        yield conn.exec_driver_sql(f"{head}{q(key)} = ANY({mark})", (*params, list(values)))
        return
    for chunk in chunked(values):
        yield conn.exec_driver_sql(
            f"{head}{q(key)} IN ({', '.join([mark] * len(chunk))})", (*params, *chunk))


def table_name(conn: Connection, table: Table) -> str:
    """The table as a statement names it: quoted as the dialect quotes it (a ledger's table
    may be called "order"), in its schema if it has one, a `%` doubled where the driver
    reads `%s` marks.
    """
    return conn.dialect.identifier_preparer.format_table(table)


def placeholder(conn: Connection) -> str:
    """The driver's mark for a positional parameter."""
    return _PLACEHOLDER[conn.dialect.paramstyle]


_PLACEHOLDER = {"qmark": "?", "format": "%s", "pyformat": "%s"}


def matching(conn: Connection, column: ColumnElement[Any],
             values: Sequence[str]) -> Iterator[ColumnElement[bool]]:
    """Conditions that together match `column` against every one of `values`."""
    if not values:
        return
    if conn.dialect.name == "postgresql":
        # An unbounded element type: a cast to the column's own varchar(n)[] would truncate
        # a longer value silently, and match the row of its prefix.
        element = String() if isinstance(column.type, String) else column.type
        yield column == any_(bindparam(None, list(values), type_=ARRAY(element)))
        return
    for chunk in chunked(values):
        yield column.in_(chunk)
