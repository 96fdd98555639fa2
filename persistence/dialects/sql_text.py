"""Statement text below SQLAlchemy: values in chunks, the driver's placeholder, quoted names.

Every dialect builds some of its statements as text for the driver (a tick writes tens of
thousands of rows, and SQLAlchemy's per-row processing cost more than the database did), and
these are the pieces all of them share.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TypeVar

from sqlalchemy import Connection, Table

T = TypeVar("T")

#: Values per statement where a list goes as bound parameters: drivers and SQLite cap them.
CHUNK = 400


def chunked(items: Iterable[T], size: int = CHUNK) -> Iterator[list[T]]:
    """Lists of at most `size` items, taken as they come (a generator is never held whole)."""
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def table_name(conn: Connection, table: Table) -> str:
    """The table as a statement names it.

    It is quoted as the dialect quotes it (a ledger's table may be called "order"), in its
    schema if it has one, with a `%` doubled where the driver reads `%s` marks.
    """
    return conn.dialect.identifier_preparer.format_table(table)


def placeholder(conn: Connection) -> str:
    """The driver's mark for a positional parameter."""
    return _PLACEHOLDER[conn.dialect.paramstyle]


_PLACEHOLDER = {"qmark": "?", "format": "%s", "pyformat": "%s"}
