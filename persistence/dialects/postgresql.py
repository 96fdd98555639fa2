"""PostgreSQL: many workers on one server, each claiming its own roots.

Claims skip the rows another worker is locking (SKIP LOCKED); schema changes wait on one
advisory lock; a transaction that made work notifies the other workers' listeners (LISTEN/
NOTIFY, with psycopg 3); the server's clock is the one every lease is measured on. Many rows
go to the server in one statement: inserts by COPY, updates and deletes joined to
`unnest(arrays)`, because psycopg's executemany still runs one statement per row.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, Select, String, Table, any_, bindparam
from sqlalchemy import select as sql_select
from sqlalchemy import text as sql
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.exc import DBAPIError

from .base import Dialect, update_row_by_row
from .pg_arrays import array_casts, one_array
from .sql_text import chunked, table_name

#: The advisory lock every schema change takes ("endact"), so that workers starting together
#: never race CREATE TABLE or a migration (PostgreSQL's catalog refuses the loser).
SCHEMA_LOCK_KEY = 0x656E64616374
#: Below this many rows an update or delete runs row by row (one round trip each).
PG_BULK_UPDATE_MIN = 50
#: Rows per `UPDATE ... FROM unnest(arrays)` (or `DELETE ... USING`): bounds the arrays held.
PG_ARRAY_CHUNK = 20_000


class PostgreSQLDialect(Dialect):
    """A PostgreSQL server, for several worker processes."""

    name = "postgresql"
    has_server_clock = True

    def listens(self, engine: Engine) -> bool:
        """Listening needs psycopg 3's notifications.

        With another driver, a transaction wakes this process only, and other processes find
        the work at their next poll.
        """
        return engine.dialect.driver == "psycopg"

    def read_clock(self, conn: Connection) -> float:
        """`clock_timestamp()`, which moves within a transaction (`now()` would not)."""
        return float(conn.execute(sql("SELECT extract(epoch FROM clock_timestamp())"))
                     .scalar_one())

    def lock_schema(self, conn: Connection) -> None:
        """The schema's advisory lock, held until this transaction ends."""
        conn.execute(sql_select(sql(f"pg_advisory_xact_lock({SCHEMA_LOCK_KEY})")))

    def notify(self, conn: Connection, channel: str) -> None:
        """Delivered to the listeners on commit, and never if the transaction rolls back."""
        conn.execute(sql(f"NOTIFY {channel}"))

    def snapshot(self, conn: Connection) -> Connection:
        """A repeatable-read transaction, so a load of unfinished work never sees half a tick.

        PostgreSQL otherwise reads committed data statement by statement.
        """
        return conn.execution_options(isolation_level="REPEATABLE READ")

    def claimable(self, query: Select[Any]) -> Select[Any]:
        """`FOR UPDATE SKIP LOCKED`: two workers claiming at once take different roots."""
        return query.with_for_update(skip_locked=True)

    def insert_if_absent(self, conn: Connection, table: Table,
                         rows: Sequence[dict[str, Any]]) -> None:
        """`INSERT ... ON CONFLICT DO NOTHING`, many rows as one executemany.

        Two writers racing (both reading committed data, both seeing no row) never collide
        on the key: the second one does nothing.
        """
        if rows:
            conn.execute(postgresql_insert(table).on_conflict_do_nothing(), list(rows))

    def matching(self, column: ColumnElement[Any],
                 values: Sequence[str]) -> Iterator[ColumnElement[bool]]:
        """One condition, `column = ANY(:values)`, with the whole list as one array.

        A 10,000-value IN list in chunks of 400 cost 25 statements, each compiled with 400
        bind names. The element type is unbounded: a cast to the column's own varchar(n)[]
        would truncate a longer value silently, and match the row of its prefix.
        """
        if not values:
            return
        element = String() if isinstance(column.type, String) else column.type
        yield column == any_(bindparam(None, list(values), type_=ARRAY(element)))

    def in_list(self, head: str, key: str, mark: str, values: Sequence[str],
                params: Sequence[Any]) -> Iterator[tuple[str, tuple[Any, ...]]]:
        """One statement, `key = ANY(array)`: a row-value IN list could not use the key."""
        yield f"{head}{key} = ANY({mark})", (*params, list(values))

    def insert_rows(self, conn: Connection, table: Table, columns: Sequence[str],
                    rows: Iterable[Sequence[Any]]) -> None:
        """COPY streams the rows in the transaction's own connection.

        It runs below SQLAlchemy, so the driver's errors are raised as SQLAlchemy's own (an
        OperationalError stays one), for the store to translate them as it does every other.
        """
        import psycopg

        q = conn.dialect.identifier_preparer.quote
        # No parameters go with COPY, so psycopg leaves a doubled `%` doubled.
        name, listed = (text.replace("%%", "%") for text in (
            table_name(conn, table), ", ".join(map(q, columns))))
        driver = conn.connection.driver_connection
        statement = f"COPY {name} ({listed}) FROM STDIN"
        try:
            with driver.cursor() as cursor, cursor.copy(  # type: ignore[union-attr]
                    statement) as copy:
                for row in rows:
                    copy.write_row(row)
        except psycopg.Error as err:
            raise DBAPIError.instance(statement, None, err, psycopg.Error,
                                      dialect=conn.dialect) from err

    def keyed_rows(self, conn: Connection, table: Table, columns: Sequence[str],
                   keys: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
        """Row by row for a few rows; past `PG_BULK_UPDATE_MIN`, joined to arrays."""
        if len(rows) < PG_BULK_UPDATE_MIN:
            return update_row_by_row(conn, table, columns, keys, rows)
        return _by_arrays(conn, table, columns, keys, rows)


def _by_arrays(conn: Connection, table: Table, columns: Sequence[str], keys: Sequence[str],
               rows: Sequence[Sequence[Any]]) -> int:
    """An update or delete as one statement per chunk, joined to `unnest(arrays)`.

    Each column's values go as one binary array parameter, so nothing is created on the
    server (no temporary table, which a role may not be allowed) and nothing is formatted
    row by row in Python; the row count still says how many rows matched their expected
    version. What the arrays cannot carry exactly goes row by row (pg_arrays.py). Rows must
    not repeat a key: joined, a table row matches once however many times it is listed.
    """
    casts = array_casts(conn, table, tuple(columns), tuple(keys))
    if casts is None:
        return update_row_by_row(conn, table, columns, keys, rows)
    sets = [f"s{i}" for i in range(len(columns))]
    wheres = [f"k{i}" for i in range(len(keys))]
    q = conn.dialect.identifier_preparer.quote
    arrays = (f"unnest({', '.join(f'%b::{c.cast}' for c in casts)}) "
              f"AS u({', '.join((*sets, *wheres))})")
    match = " AND ".join(f"t.{q(k)} = u.{w}" for k, w in zip(keys, wheres, strict=True))
    name = table_name(conn, table)
    if columns:
        statement = (f"UPDATE {name} AS t SET "
                     + ", ".join(f"{q(c)} = u.{s}" for c, s in zip(columns, sets, strict=True))
                     + f" FROM {arrays} WHERE {match}")
    else:
        statement = f"DELETE FROM {name} AS t USING {arrays} WHERE {match}"
    written = 0
    for chunk in chunked(rows, PG_ARRAY_CHUNK):
        values = [one_array(list(column), cast)
                  for column, cast in zip(zip(*chunk, strict=True), casts, strict=True)]
        if any(column is None for column in values):
            written += update_row_by_row(conn, table, columns, keys, chunk)
            continue
        written += conn.exec_driver_sql(statement, tuple(values)).rowcount
    return written
