"""Which columns' values PostgreSQL can take as one array parameter each, and as what.

A bulk update or delete sends each column's values as one array and joins the table to
`unnest(arrays)` (postgresql.py beside this). It must land exactly what one statement per row
would, so the array's element type is the column's own type *without* its modifiers, read
from the catalog: `VARCHAR(64)[]` would cut a longer value silently where assigning it to the
column refuses it, and SQLAlchemy's spelling of a type is no guide (`CHAR[]` is
`character(1)[]`, which cuts every value to one character; `COLLATE` cannot precede `[]`).
Whatever one array cannot carry as a row would go (a column that is an array itself or of a
domain, a list psycopg refuses or would change) goes row by row.
"""

from __future__ import annotations

import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, Table, text

#: Ints below this are floats exactly: only those may join the floats of their column.
_EXACT = 2**53
_FLOATS = frozenset({"float4", "float8"})
#: Base types, enums, ranges and multiranges: what an array of the type carries as rows
#: would (a domain's cast would apply its length where assigning refuses; a composite goes
#: as a record).
_PLAIN = frozenset({"b", "e", "r", "m"})


class ColumnType(NamedTuple):
    """What the catalog says of one column."""

    cast: str  # the element type, schema-qualified and quoted, with no modifier: an array cast
    name: str  # pg_type.typname
    category: str  # pg_type.typcategory: N numeric, S string, B boolean, A array...
    plain: bool  # a base type, enum or range, not a domain or composite


def column_types(conn: Connection, table: Table) -> dict[str, ColumnType]:
    """The table's columns as the catalog has them now.

    They are read for every bulk statement, not cached: a fraction of a millisecond against
    statements of thousands of rows, and never stale when a table is dropped and made again
    under a pooled connection. The table is found as the statements name it: in its schema if
    it has one, else by the search path.
    """
    rows = conn.execute(text(
        "SELECT a.attname, quote_ident(n.nspname) || '.' || quote_ident(t.typname), "
        "t.typname, t.typcategory, t.typtype "
        "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
        "JOIN pg_namespace n ON n.oid = t.typnamespace "
        "WHERE a.attrelid = to_regclass(CASE WHEN CAST(:schema AS text) IS NULL "
        "THEN quote_ident(:name) ELSE quote_ident(:schema) || '.' || quote_ident(:name) END) "
        "AND a.attnum > 0 AND NOT a.attisdropped"),
        {"schema": table.schema, "name": table.name})
    return {r[0]: ColumnType(f"{r[1]}[]".replace("%", "%%"), r[2], r[3], r[4] in _PLAIN)
            for r in rows}


def array_casts(conn: Connection, table: Table, columns: tuple[str, ...],
                keys: tuple[str, ...]) -> list[ColumnType] | None:
    """Each column's type, or None if one of them cannot go as an array.

    (A key with a collation of its own needs nothing: against the array's default collation,
    the column's wins, as it does against a parameter row by row.)
    """
    types = column_types(conn, table)
    found = [types.get(c) for c in (*columns, *keys)]
    usable = [t for t in found if t is not None and t.plain and t.category != "A"]
    return usable if len(usable) == len(found) else None


def one_array(values: list[Any], column: ColumnType) -> list[Any] | None:
    """One column's values as one array psycopg can send, or None where it cannot.

    The array must be what psycopg can send in one go and what the column would take value by
    value.

    psycopg refuses lists of mixed types, dumps a list by its first element's kind and
    turns a list value into a dimension of the array (which unnest would then spread over
    other rows), and the array's explicit cast accepts what assigning or comparing one value
    refuses. So: no list or tuple values; numbers only for a numeric column and bools only
    for a boolean one; ints among floats only in a float column and only where exact; and
    naive and aware times not together. The kinds are worked out per distinct type, not per
    value: this runs for every column of every bulk-written row.
    """
    types = set(map(type, values))
    types.discard(type(None))
    if not types:
        return values
    kinds = {_kind(t) for t in types}
    if kinds & {list, tuple, dict}:
        return None
    if bool in kinds and column.category != "B":
        return None
    if kinds & {int, float} and column.category != "N":
        return None
    if len(kinds) > 1:
        if kinds == {int, float} and column.name in _FLOATS and all(
                -_EXACT < v < _EXACT for v in values if type(v) is not float and v is not None):
            return [v if v is None else float(v) for v in values]
        return None
    if kinds <= {datetime.datetime, datetime.time} and len(
            {v.tzinfo is None for v in values if v is not None}) > 1:
        return None
    return values


def _kind(kind: type) -> type:
    # bool before int (a bool is an int), datetime before date (a datetime is a date)
    for base in (bool, int, float, str, datetime.datetime, datetime.time, list, tuple, dict):
        if issubclass(kind, base):
            return base
    return kind
