"""What the store asks of a database, in portable SQL: the defaults each dialect refines.

The store runs the same transactions on SQLite and PostgreSQL; where the two differ (how a
claim skips rows another worker holds, how other processes are woken, how many rows go in
one statement, whether the server has a clock) the difference is a method here, answered by
`SQLiteDialect` or `PostgreSQLDialect`, so the store's code never asks which database it is
on. Another SQLAlchemy dialect gets these defaults: correct, one worker process, no bulk
paths.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Select,
    Table,
    insert,
    select,
)

from .sql_text import chunked, placeholder, table_name

#: Rows per executemany: bounds the parameters held at once, costs a statement per chunk.
ROWS_PER_EXECUTEMANY = 5_000


class Dialect:
    """The portable answers; a subclass overrides what its database does better or must do.

    One instance serves every connection of its database kind: it holds no state.
    """

    #: SQLAlchemy's name for the dialect (`conn.dialect.name`).
    name = "default"
    #: Whether the database has a server whose clock every worker can read, so that leases
    #: and deadlines are measured on one clock rather than on each machine's.
    has_server_clock = False
    #: Whether one database may hold other applications' tables beside endaction's (a
    #: PostgreSQL database holds many applications' tables; a SQLite file is one
    #: application's, so a file with other tables in it is refused as foreign).
    shares_database = True

    def __repr__(self) -> str:
        """The class's name, as errors and logs name the dialect in use."""
        return f"{type(self).__name__}()"

    def listens(self, engine: Engine) -> bool:
        """Whether this engine can hear other processes' wake-ups (else only its own)."""
        return False

    def read_clock(self, conn: Connection) -> float:
        """The server's clock in seconds since the epoch; only asked if `has_server_clock`."""
        raise NotImplementedError(f"{self!r} has no server clock")

    def lock_schema(self, conn: Connection) -> None:
        """Serialise schema changes across processes until this transaction ends.

        Portable SQL has no such lock; a database without one runs one worker process.
        """

    def notify(self, conn: Connection, channel: str) -> None:
        """Tell other processes, on commit, that this transaction made work for them."""

    def snapshot(self, conn: Connection) -> Connection:
        """The connection, reading as of one moment for the whole of its transaction."""
        return conn

    def claimable(self, query: Select[Any]) -> Select[Any]:
        """The claim's query, made to pass over rows another worker is claiming right now."""
        return query

    def insert_if_absent(self, conn: Connection, table: Table,
                         rows: Sequence[dict[str, Any]]) -> None:
        """Insert each row unless its primary key is already there.

        Portable SQL reads the key first, one row at a time: correct for one writer, which
        is what a database without an upsert runs.
        """
        key = table.primary_key.columns.values()[0]
        for values in rows:
            if conn.execute(select(key).where(key == values[key.name])).first() is None:
                conn.execute(insert(table).values(**values))

    def matching(self, column: ColumnElement[Any],
                 values: Sequence[str]) -> Iterator[ColumnElement[bool]]:
        """Conditions that together match `column` against every one of `values`.

        Drivers and SQLite cap bound parameters, so a long list goes in chunks, one
        condition (and one statement) each.
        """
        for chunk in chunked(values):
            yield column.in_(chunk)

    def in_list(self, head: str, key: str, mark: str, values: Sequence[str],
                params: Sequence[Any]) -> Iterator[tuple[str, tuple[Any, ...]]]:
        """Statements, as driver text and parameters, that end `head` with `key IN values`."""
        for chunk in chunked(values):
            yield f"{head}{key} IN ({', '.join([mark] * len(chunk))})", (*params, *chunk)

    def insert_rows(self, conn: Connection, table: Table, columns: Sequence[str],
                    rows: Iterable[Sequence[Any]]) -> None:
        """Insert many rows given as tuples of `columns`, by executemany in chunks."""
        q = conn.dialect.identifier_preparer.quote
        mark = placeholder(conn)
        sql = (f"INSERT INTO {table_name(conn, table)} ({', '.join(map(q, columns))}) "
               f"VALUES ({', '.join([mark] * len(columns))})")
        for chunk in chunked(rows, ROWS_PER_EXECUTEMANY):
            conn.exec_driver_sql(sql, chunk)

    def keyed_rows(self, conn: Connection, table: Table, columns: Sequence[str],
                   keys: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
        """Update `columns` of the rows matching `keys` (or delete them, without columns).

        Each row holds its `columns` values, then its `keys` values. Returns how many rows
        matched, so that a version mismatch (a row another writer changed) is seen.
        """
        return update_row_by_row(conn, table, columns, keys, rows)

    def after_schema(self, engine: Engine) -> None:
        """Settings the database keeps once the schema is known to be endaction's."""


def update_row_by_row(conn: Connection, table: Table, columns: Sequence[str],
                      keys: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
    """`UPDATE table SET columns WHERE keys`, or `DELETE` without columns, by executemany.

    This is every dialect's path for a few rows, and the fallback for values a bulk path
    cannot carry exactly (one statement a row on PostgreSQL).
    """
    q = conn.dialect.identifier_preparer.quote
    mark = placeholder(conn)
    where = " AND ".join(f"{q(k)} = {mark}" for k in keys)
    name = table_name(conn, table)
    sql = (f"UPDATE {name} SET {', '.join(f'{q(c)} = {mark}' for c in columns)} "
           f"WHERE {where}" if columns else f"DELETE FROM {name} WHERE {where}")
    written = 0
    for chunk in chunked(rows, ROWS_PER_EXECUTEMANY):
        written += conn.exec_driver_sql(sql, chunk).rowcount
    return written
