"""Many rows at once, below SQLAlchemy's per-row parameter processing.

A tick of a 10,000-disk rollback inserts and updates tens of thousands of rows whose values
are plain strings, numbers and JSON text, so they go to the driver as tuples, in chunks (a
tick's write never holds all its rows' parameters at once), by the fastest path the
database's dialect has (persistence/dialects): executemany on SQLite; COPY, and updates
joined to arrays, on PostgreSQL. An update's row count still says how many rows matched
their expected version, so a conflicting writer is still detected.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Table

from .db_errors import guarded
from .dialects import dialect_of


class BulkWriter:
    """Bulk inserts and keyed updates on one connection, inside its transaction.

    Every call is guarded: a history chunk is written from wherever the recorder fills up,
    hooks included, and a database error there must abort the tick (StoreError), not pass
    for the hook's own failure.
    """

    def __init__(self, conn: Connection, database: str) -> None:
        self._conn = conn
        self._database = database
        self._dialect = dialect_of(conn)

    def insert(self, table: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]],
               doing: str) -> None:
        """Insert rows given as tuples of `columns`; `doing` names the write in errors."""
        with guarded(self._database, doing):
            self._dialect.insert_rows(self._conn, table, columns, rows)

    def update(self, table: Table, columns: Sequence[str], keys: Sequence[str],
               rows: Sequence[Sequence[Any]], doing: str) -> int:
        """`UPDATE table SET columns WHERE keys` for every row; returns how many matched.

        Each row holds its `columns` values, then its `keys` values.
        """
        with guarded(self._database, doing):
            return self._dialect.keyed_rows(self._conn, table, columns, keys, rows)

    def delete(self, table: Table, keys: Sequence[str], rows: Sequence[Sequence[Any]],
               doing: str) -> int:
        """`DELETE FROM table WHERE keys` for every row; returns how many rows went."""
        with guarded(self._database, doing):
            return self._dialect.keyed_rows(self._conn, table, (), keys, rows)
