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

import re
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Table

from .batching import chunked, placeholder
from .db_errors import guarded, translate_driver

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
        not pass for the hook's own failure."""
        with guarded(self._database, doing):
            return self._update(table, columns, keys, rows, doing)

    def delete(self, table: Table, keys: Sequence[str], rows: Sequence[Sequence[Any]],
               doing: str) -> int:
        """`DELETE FROM table WHERE keys` for every row; returns how many rows went."""
        with guarded(self._database, doing):
            if self._postgresql and len(rows) >= PG_BULK_UPDATE_MIN:
                return self._by_arrays(table, (), keys, rows)
            return self._row_by_row(table, (), keys, rows)

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
            return self._by_arrays(table, columns, keys, rows)
        return self._row_by_row(table, columns, keys, rows)

    def _row_by_row(self, table: Table, columns: Sequence[str], keys: Sequence[str],
                    rows: Sequence[Sequence[Any]]) -> int:
        """`UPDATE table SET columns WHERE keys`, or `DELETE` without columns, by executemany
        (one statement a row on PostgreSQL)."""
        mark = self._mark
        q = self._q
        where = " AND ".join(f"{q(k)} = {mark}" for k in keys)
        sql = (f"UPDATE {q(table.name)} SET {', '.join(f'{q(c)} = {mark}' for c in columns)} "
               f"WHERE {where}" if columns else f"DELETE FROM {q(table.name)} WHERE {where}")
        written = 0
        for chunk in chunked(rows, CHUNK):
            written += self._conn.exec_driver_sql(sql, chunk).rowcount
        return written

    def _by_arrays(self, table: Table, columns: Sequence[str], keys: Sequence[str],
                   rows: Sequence[Sequence[Any]]) -> int:
        """The same as `_row_by_row`, as one statement per chunk joined to
        `unnest(arrays)`: each column's values go as one binary array parameter, so nothing
        is created on the server (no temporary table, which a role may not be allowed) and
        nothing is formatted row by row in Python."""
        casts = [_array_type(table, name, self._conn) for name in (*columns, *keys)]
        if None in casts:
            return self._row_by_row(table, columns, keys, rows)
        sets = [f"s{i}" for i in range(len(columns))]
        wheres = [f"k{i}" for i in range(len(keys))]
        q = self._q
        arrays = (f"unnest({', '.join(f'%b::{cast}' for cast in casts)}) "
                  f"AS u({', '.join((*sets, *wheres))})")
        match = " AND ".join(f"t.{q(k)} = u.{w}" for k, w in zip(keys, wheres, strict=True))
        if columns:
            sql = (f"UPDATE {q(table.name)} AS t SET "
                   + ", ".join(f"{q(c)} = u.{s}" for c, s in zip(columns, sets, strict=True))
                   + f" FROM {arrays} WHERE {match}")
        else:
            sql = f"DELETE FROM {q(table.name)} AS t USING {arrays} WHERE {match}"
        written = 0
        for chunk in chunked(rows, PG_ARRAY_CHUNK):
            values = [_one_type(list(column)) for column in zip(*chunk, strict=True)]
            if any(column is None for column in values):
                written += self._row_by_row(table, columns, keys, chunk)
                continue
            written += self._conn.exec_driver_sql(sql, tuple(values)).rowcount
        return written

    def _copy(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]],
              doing: str) -> None:
        """COPY streams the rows in the tick's own transaction. Below SQLAlchemy, so the
        driver's errors are translated here as the store's are everywhere else."""
        import psycopg

        q = self._q
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


_LENGTH = re.compile(r"\(.*?\)")


def _array_type(table: Table, column: str, conn: Connection) -> str | None:
    """The array type a column's values are sent as, or None where unnest cannot carry them.

    Lengths are dropped (`VARCHAR(64)[]` would cut a longer value silently, where assigning
    the unbounded value to the column refuses it); a column that is itself an array would be
    flattened by unnest, so it goes row by row."""
    declared = table.c[column].type.compile(dialect=conn.dialect)
    if "[" in declared:
        return None
    return f"{_LENGTH.sub('', declared)}[]"


#: Ints below this are floats exactly: only those may join the floats of their column.
_EXACT = 2**53


def _one_type(values: list[Any]) -> list[Any] | None:
    """The values of one column as psycopg can send them in one array, or None if it cannot
    (it refuses lists of mixed types): ints among floats become floats (a Float column holds
    both) where no precision is lost, and anything else mixed goes row by row. The kinds
    are worked out per distinct type, not per value: this runs for every column of every
    bulk-updated row."""
    types = set(map(type, values))
    types.discard(type(None))
    if len(types) <= 1:
        return values
    kinds = {_kind(t) for t in types}
    if len(kinds) == 1:  # a str and a StrEnum, say: psycopg sends both as text
        return values
    if kinds == {int, float} and all(
            -_EXACT < v < _EXACT for v in values if v is not None and type(v) is not float):
        return [v if v is None else float(v) for v in values]
    return None


def _kind(kind: type) -> type:
    for base in (bool, int, float, str):  # bool first: it is an int too
        if issubclass(kind, base):
            return base
    return kind
