"""Many rows at once, below SQLAlchemy's per-row parameter processing.

A tick of a 10,000-disk rollback inserts and updates tens of thousands of rows whose values
are plain strings, numbers and JSON text, so they go to the driver as tuples, in chunks (a
tick's write never holds all its rows' parameters at once). SQLite takes them by
executemany. On PostgreSQL, psycopg's executemany still runs one statement per row, so
inserts go by COPY and large updates by COPY into a temporary table and one
`UPDATE ... FROM` it: one statement however many rows, and its row count still says how many
rows matched their expected version (a conflicting writer is still detected).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Table

from .batching import chunked, placeholder
from .db_errors import guarded, translate_driver

#: Rows per executemany: bounds the parameters held at once, costs a statement per chunk.
CHUNK = 5_000
#: Below this many rows a PostgreSQL update runs row by row: the temporary table's three
#: extra statements cost more than they save.
PG_BULK_UPDATE_MIN = 50
#: How the temporary tables of bulk updates are named (they hold no row past a statement).
SCRATCH_PREFIX = "endaction_bulk_"


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
        not pass for the hook's own failure."""
        with guarded(self._database, doing):
            return self._update(table, columns, keys, rows, doing)

    def delete(self, table: Table, keys: Sequence[str], rows: Sequence[Sequence[Any]],
               doing: str) -> int:
        """`DELETE FROM table WHERE keys` for every row; returns how many rows went."""
        with guarded(self._database, doing):
            mark = self._mark
            q = self._q
            sql = (f"DELETE FROM {q(table.name)} WHERE "
                   + " AND ".join(f"{q(k)} = {mark}" for k in keys))
            return sum(self._conn.exec_driver_sql(sql, chunk).rowcount
                       for chunk in chunked(rows, CHUNK))

    def _insert(self, table: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]],
                doing: str) -> None:
        if self._postgresql:
            self._copy(table.name, columns, rows, doing)
            return
        q = self._q
        sql = (f"INSERT INTO {q(table.name)} ({', '.join(map(q, columns))}) "
               f"VALUES ({', '.join([self._mark] * len(columns))})")
        for chunk in chunked(rows, CHUNK):
            self._conn.exec_driver_sql(sql, chunk)

    def _update(self, table: Table, columns: Sequence[str], keys: Sequence[str],
                rows: Sequence[Sequence[Any]], doing: str) -> int:
        if self._postgresql and len(rows) >= PG_BULK_UPDATE_MIN:
            return self._update_from_copy(table, columns, keys, rows, doing)
        mark = self._mark
        q = self._q
        sql = (f"UPDATE {q(table.name)} SET {', '.join(f'{q(c)} = {mark}' for c in columns)} "
               f"WHERE {' AND '.join(f'{q(k)} = {mark}' for k in keys)}")
        written = 0
        for chunk in chunked(rows, CHUNK):
            written += self._conn.exec_driver_sql(sql, chunk).rowcount
        return written

    def _update_from_copy(self, table: Table, columns: Sequence[str], keys: Sequence[str],
                          rows: Sequence[Sequence[Any]], doing: str) -> int:
        # Positional names (a column may be both set and matched on, like `version`); the
        # types are the table's own, taken by CREATE TABLE AS ... WITH NO DATA.
        sets = [f"s{i}" for i in range(len(columns))]
        wheres = [f"k{i}" for i in range(len(keys))]
        # Named by a digest of the table and the shape: short whatever the table is called
        # (PostgreSQL cuts names at 63 characters), and one per shape.
        shape = hashlib.sha1(repr((table.name, columns, keys)).encode()).hexdigest()[:16]
        scratch = f"{SCRATCH_PREFIX}{shape}"
        q = self._q
        picked = ", ".join(f"{q(c)} AS {s}" for c, s in (*zip(columns, sets, strict=True),
                                                          *zip(keys, wheres, strict=True)))
        self._conn.exec_driver_sql(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {scratch} ON COMMIT DELETE ROWS AS "
            f"SELECT {picked} FROM {q(table.name)} WITH NO DATA")
        self._copy(scratch, [*sets, *wheres], rows, doing, quote=False)
        written = self._conn.exec_driver_sql(
            f"UPDATE {q(table.name)} AS t SET "
            + ", ".join(f"{q(c)} = u.{s}" for c, s in zip(columns, sets, strict=True))
            + f" FROM {scratch} AS u WHERE "
            + " AND ".join(f"t.{q(k)} = u.{w}" for k, w in zip(keys, wheres, strict=True))
        ).rowcount
        self._conn.exec_driver_sql(f"DELETE FROM {scratch}")
        return written

    def _copy(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]],
              doing: str, quote: bool = True) -> None:
        """COPY streams the rows in the tick's own transaction. Below SQLAlchemy, so the
        driver's errors are translated here as the store's are everywhere else."""
        import psycopg

        q = self._q if quote else str
        driver = self._conn.connection.driver_connection
        try:
            with driver.cursor() as cursor, cursor.copy(  # type: ignore[union-attr]
                    f"COPY {q(table)} ({', '.join(map(q, columns))}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        except psycopg.Error as err:
            raise translate_driver(
                err, self._database, doing,
                unavailable=isinstance(err, psycopg.OperationalError | psycopg.InterfaceError),
            ) from err
