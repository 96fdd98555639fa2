"""Which columns' values PostgreSQL can take as one array parameter each, and as what.

A bulk update or delete sends each column's values as one array and joins the table to
`unnest(arrays)` (persistence/bulk.py). It must land exactly what one statement per row
would, so the array's element type is the column's own type *without* its modifiers, read
from the catalog: `VARCHAR(64)[]` would cut a longer value silently where assigning it to the
column refuses it, and SQLAlchemy's spelling of a type is no guide (`CHAR[]` is
`character(1)[]`, which cuts every value to one character; `COLLATE` cannot precede `[]`).
Whatever one array cannot carry as a row would go (a column that is an array itself, a key
compared under its own collation, a list psycopg refuses or would change) goes row by row.
"""

from __future__ import annotations

import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, Table, text

#: Ints below this are floats exactly: only those may join the floats of their column.
_EXACT = 2**53
_FLOATS = frozenset({"float4", "float8"})


class ColumnType(NamedTuple):
    """What the catalog says of one column."""

    cast: str  # the element type, schema-qualified and quoted, with no modifier: an array cast
    name: str  # pg_type.typname
    is_array: bool
    collated: bool  # a collation other than its type's default


def column_types(conn: Connection, table: Table) -> dict[str, ColumnType]:
    """The table's columns as the catalog has them now. Read for every bulk statement, not
    cached: a fraction of a millisecond against statements of thousands of rows, and never
    stale when a table is dropped and made again under a pooled connection."""
    rows = conn.execute(text(
        "SELECT a.attname, quote_ident(n.nspname) || '.' || quote_ident(t.typname), "
        "t.typname, t.typcategory = 'A', a.attcollation <> t.typcollation "
        "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
        "JOIN pg_namespace n ON n.oid = t.typnamespace "
        "WHERE a.attrelid = to_regclass(:table) AND a.attnum > 0 AND NOT a.attisdropped"),
        {"table": conn.dialect.identifier_preparer.format_table(table)})
    return {r[0]: ColumnType(f"{r[1]}[]", r[2], r[3], r[4]) for r in rows}


def array_casts(conn: Connection, table: Table, columns: tuple[str, ...],
                keys: tuple[str, ...]) -> list[ColumnType] | None:
    """Each column's type, or None if one of them cannot go as an array."""
    types = column_types(conn, table)
    found = [types.get(c) for c in (*columns, *keys)]
    usable = [t for t in found if t is not None and not t.is_array]
    if len(usable) != len(found) or any(t.collated for t in usable[len(columns):]):
        return None
    return usable


def one_array(values: list[Any], column: ColumnType) -> list[Any] | None:
    """The values of one column as psycopg can send them in one array, and as the column
    would take them one by one; or None where it cannot.

    psycopg refuses lists of mixed types and dumps a list by its first element's kind, so:
    ints among floats become floats only in a float column and only where exact (in a text
    column they would land as '1e+15'), a bool goes only to a boolean column (the array's
    explicit cast would turn it into 1 where assigning refuses it), and naive and aware
    times do not mix. The kinds are worked out per distinct type, not per value: this runs
    for every column of every bulk-written row."""
    types = set(map(type, values))
    types.discard(type(None))
    if not types:
        return values
    kinds = {_kind(t) for t in types}
    if bool in kinds and column.name != "bool":
        return None
    if kinds & {datetime.datetime, datetime.time} and len(
            {v.tzinfo is None for v in values if v is not None}) > 1:
        return None
    if len(kinds) == 1:  # a str and a StrEnum, say: psycopg sends both as text
        return values
    if kinds == {int, float} and column.name in _FLOATS and all(
            -_EXACT < v < _EXACT for v in values if v is not None and type(v) is not float):
        return [v if v is None else float(v) for v in values]
    return None


def _kind(kind: type) -> type:
    # bool before int (a bool is an int), datetime before date (a datetime is a date)
    for base in (bool, int, float, str, datetime.datetime, datetime.time):
        if issubclass(kind, base):
            return base
    return kind
