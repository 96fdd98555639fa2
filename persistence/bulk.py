"""Many rows at once, below SQLAlchemy's per-row parameter processing.

A tick of a 10,000-disk rollback inserts and updates tens of thousands of rows whose values
are plain strings, numbers and JSON text, so they go to the driver as tuples, in chunks (a
tick's write never holds all its rows' parameters at once). SQLite takes them by
executemany. On PostgreSQL, psycopg's executemany still runs one statement per row, so
inserts go by COPY, and large updates and deletes as one `UPDATE ... FROM unnest(arrays)`
(`DELETE ... USING`) per chunk, each column's values one array: its row count still says
how many rows matched their expected version (a conflicting writer is still detected), and
it needs no privilege beyond the tables' own (no temporary table).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Table

from .batching import chunked, placeholder, table_name
from .db_errors import guarded, translate_driver
from .pg_arrays import array_casts, one_array

#: Rows per executemany: bounds the parameters held at once, costs a statement per chunk.
CHUNK = 5_000
#: Below this many rows a PostgreSQL update or delete runs row by row (one round trip each).
PG_BULK_UPDATE_MIN = 50
#: Rows per PostgreSQL `UPDATE ... FROM unnest(arrays)` (or `DELETE ... USING`): bounds
#: the arrays held at once.
PG_ARRAY_CHUNK = 20_000


class BulkWriter:
    """Bulk inserts and keyed updates on one connection, inside its transaction."""

    def __init__(self, conn: Connection, database: str) -> None:
        self._conn = conn
        self._database = database
        self._postgresql = conn.dialect.name == "postgresql"
        self._mark = placeholder(conn)
        # Names as the dialect quotes them: a ledger's table may be called "order".
        self._q = conn.dialect.identifier_preparer.quote

    def insert(self, table: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]],
               doing: str) -> None:
        with guarded(self._database, doing):
            self._insert(table, columns, rows, doing)

    def update(self, table: Table, columns: Sequence[str], keys: Sequence[str],
               rows: Sequence[Sequence[Any]], doing: str) -> int:
        """`UPDATE table SET columns WHERE keys` for every row (its `columns` values, then its
        `keys` values); returns how many rows matched.

        Both are guarded at the call: a history chunk is written from wherever the recorder
        fills up, hooks included, and a database error there must abort the tick (StoreError),
        not pass for the hook's own failure.
        """
        with guarded(self._database, doing):
            return self._keyed(table, columns, keys, rows)

    def delete(self, table: Table, keys: Sequence[str], rows: Sequence[Sequence[Any]],
               doing: str) -> int:
        """`DELETE FROM table WHERE keys` for every row; returns how many rows went."""
        with guarded(self._database, doing):
            return self._keyed(table, (), keys, rows)

    def _insert(self, table: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]],
                doing: str) -> None:
        if self._postgresql:
            self._copy(table, columns, rows, doing)
            return
        q = self._q
        sql = (f"INSERT INTO {table_name(self._conn, table)} ({', '.join(map(q, columns))}) "
               f"VALUES ({', '.join([self._mark] * len(columns))})")
        for chunk in chunked(rows, CHUNK):
            self._conn.exec_driver_sql(sql, chunk)

    def _keyed(self, table: Table, columns: Sequence[str], keys: Sequence[str],
               rows: Sequence[Sequence[Any]]) -> int:
        """An update of `columns` by `keys`, or a delete by `keys` without columns."""
        if self._postgresql and len(rows) >= PG_BULK_UPDATE_MIN:
            return self._by_arrays(table, columns, keys, rows)
        return self._row_by_row(table, columns, keys, rows)

    def _row_by_row(self, table: Table, columns: Sequence[str], keys: Sequence[str],
                    rows: Sequence[Sequence[Any]]) -> int:
        """`UPDATE table SET columns WHERE keys`, or `DELETE` without columns, by executemany
        (one statement a row on PostgreSQL).
        """
        mark = self._mark
        q = self._q
        where = " AND ".join(f"{q(k)} = {mark}" for k in keys)
        name = table_name(self._conn, table)
        sql = (f"UPDATE {name} SET {', '.join(f'{q(c)} = {mark}' for c in columns)} "
               f"WHERE {where}" if columns else f"DELETE FROM {name} WHERE {where}")
        written = 0
        for chunk in chunked(rows, CHUNK):
            written += self._conn.exec_driver_sql(sql, chunk).rowcount
        return written

    def _by_arrays(self, table: Table, columns: Sequence[str], keys: Sequence[str],
                   rows: Sequence[Sequence[Any]]) -> int:
        """The same as `_row_by_row`, as one statement per chunk joined to
        `unnest(arrays)`: each column's values go as one binary array parameter, so nothing
        is created on the server (no temporary table, which a role may not be allowed) and
        nothing is formatted row by row in Python. What the arrays cannot carry exactly
        goes row by row (persistence/pg_arrays.py). Rows must not repeat a key: joined,
        a table row matches once however many times it is listed.
        """
        casts = array_casts(self._conn, table, tuple(columns), tuple(keys))
        if casts is None:
            return self._row_by_row(table, columns, keys, rows)
        sets = [f"s{i}" for i in range(len(columns))]
        wheres = [f"k{i}" for i in range(len(keys))]
        q = self._q
        arrays = (f"unnest({', '.join(f'%b::{c.cast}' for c in casts)}) "
                  f"AS u({', '.join((*sets, *wheres))})")
        match = " AND ".join(f"t.{q(k)} = u.{w}" for k, w in zip(keys, wheres, strict=True))
        name = table_name(self._conn, table)
        if columns:
            sql = (f"UPDATE {name} AS t SET "
                   + ", ".join(f"{q(c)} = u.{s}" for c, s in zip(columns, sets, strict=True))
                   + f" FROM {arrays} WHERE {match}")
        else:
            sql = f"DELETE FROM {name} AS t USING {arrays} WHERE {match}"
        written = 0
        for chunk in chunked(rows, PG_ARRAY_CHUNK):
            values = [one_array(list(column), cast)
                      for column, cast in zip(zip(*chunk, strict=True), casts, strict=True)]
            if any(column is None for column in values):
                written += self._row_by_row(table, columns, keys, chunk)
                continue
            written += self._conn.exec_driver_sql(sql, tuple(values)).rowcount
        return written

    def _copy(self, table: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]],
              doing: str) -> None:
        """COPY streams the rows in the tick's own transaction. Below SQLAlchemy, so the
        driver's errors are translated here as the store's are everywhere else.
        """
        import psycopg

        # No parameters go with COPY, so psycopg leaves a doubled `%` doubled.
        name, listed = (text.replace("%%", "%") for text in (
            table_name(self._conn, table), ", ".join(map(self._q, columns))))
        driver = self._conn.connection.driver_connection
        try:
            with driver.cursor() as cursor, cursor.copy(  # type: ignore[union-attr]
                    f"COPY {name} ({listed}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        except psycopg.Error as err:
            raise translate_driver(
                err, self._database, doing,
                unavailable=isinstance(err, psycopg.OperationalError | psycopg.InterfaceError),
            ) from err

