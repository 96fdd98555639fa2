"""Bulk updates carry every kind of value a ledger's columns may hold, on both databases.

PostgreSQL's one-statement path (`UPDATE ... FROM unnest(arrays)`) takes mixed ints and floats and
longer-than-declared text as a single statement would, and falls back to row by row where arrays
cannot carry the values.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import (
    JSON,
    Column,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    event,
    select,
)

from persistence import SqlStore
from persistence.bulk import BulkWriter
from persistence.dialects.pg_arrays import ColumnType, one_array
from persistence.dialects.postgresql import PG_BULK_UPDATE_MIN
from statemachines.core.errors import StoreError

ROWS = 2 * PG_BULK_UPDATE_MIN

metadata = MetaData()
sample = Table(
    "endaction_test_bulk", metadata,
    Column("key", String(20), primary_key=True),
    Column("size", Float),
    Column("label", String(8)),
    Column("doc", JSON),
    Column("count", Integer),
)


@pytest.fixture
def table(store: SqlStore) -> Iterator[Engine]:
    yield from _filled(store)


@pytest.fixture
def pg_table() -> Iterator[Engine]:
    """For what only PostgreSQL enforces or refuses (lengths, types, Decimals)."""
    from tests.conftest import _postgres_store

    store = _postgres_store()
    yield from _filled(store)
    store.dispose()


def _filled(store: SqlStore) -> Iterator[Engine]:
    metadata.drop_all(store.engine)
    metadata.create_all(store.engine)
    with store.engine.begin() as conn:
        conn.execute(sample.insert(), [{"key": f"k{i:03d}", "size": 0.0, "label": "",
                                        "doc": None, "count": 0} for i in range(ROWS)])
    yield store.engine
    metadata.drop_all(store.engine)


def test_every_row_gets_its_own_values(table: Engine) -> None:
    rows = [(i if i % 2 else i + 0.5, f"l{i}", json.dumps({"i": i}) if i % 3 else None, i,
             f"k{i:03d}") for i in range(ROWS)]
    statements: list[str] = []
    event.listen(table, "before_cursor_execute", lambda *a: statements.append(a[2]))
    with table.begin() as conn:
        written = BulkWriter(conn, "test").update(sample, ("size", "label", "doc", "count"),
                                                  ("key",), rows, "update the sample")
    assert written == ROWS
    if table.dialect.name == "postgresql":  # one statement, not one per row
        assert [s for s in statements if s.startswith("UPDATE")] == statements[-1:]
        assert "unnest" in statements[-1]
    with table.connect() as conn:
        stored = conn.execute(select(sample).order_by(sample.c.key)).all()
    assert [tuple(r) for r in stored] == [
        (f"k{i:03d}", float(i) if i % 2 else i + 0.5, f"l{i}", {"i": i} if i % 3 else None, i)
        for i in range(ROWS)]


def test_a_missing_row_is_counted_not_matched(table: Engine) -> None:
    rows = [(1.0, "x", None, 1, f"k{i:03d}") for i in range(ROWS)]
    rows[ROWS // 2] = (1.0, "x", None, 1, "gone")
    with table.begin() as conn:
        written = BulkWriter(conn, "test").update(sample, ("size", "label", "doc", "count"),
                                                  ("key",), rows, "update the sample")
    assert written == ROWS - 1


def test_deletes_count_what_went(table: Engine) -> None:
    statements: list[str] = []
    event.listen(table, "before_cursor_execute", lambda *a: statements.append(a[2]))
    keys = [(f"k{i:03d}",) for i in range(1, ROWS)] + [("gone",)]
    with table.begin() as conn:
        assert BulkWriter(conn, "test").delete(sample, ("key",), keys, "delete") == ROWS - 1
    if table.dialect.name == "postgresql":  # one statement, not one per row
        assert [s for s in statements if s.startswith("DELETE")] == statements[-1:]
        assert "unnest" in statements[-1]
    with table.connect() as conn:
        assert conn.execute(select(sample.c.key)).scalars().all() == ["k000"]


@pytest.mark.postgres
def test_mixed_kinds_go_row_by_row_and_still_land(pg_table: Engine) -> None:
    """A column whose values one array cannot hold still updates every row, one statement each.

    Decimals among floats are such values: psycopg refuses mixed lists.
    """
    rows = [(Decimal("2.5") if i == 0 else 2.5, "x", None, 1, f"k{i:03d}")
            for i in range(ROWS)]
    with pg_table.begin() as conn:
        assert BulkWriter(conn, "test").update(sample, ("size", "label", "doc", "count"),
                                               ("key",), rows, "update the sample") == ROWS
    with pg_table.connect() as conn:
        assert set(conn.execute(select(sample.c.size)).scalars()) == {2.5}


@pytest.mark.postgres
def test_text_longer_than_its_column_is_refused_not_cut(pg_table: Engine) -> None:
    rows = [(1.0, "x" * (9 if i == 3 else 1), None, 1, f"k{i:03d}") for i in range(ROWS)]
    with pytest.raises(StoreError, match="too long"), pg_table.begin() as conn:
        BulkWriter(conn, "test").update(sample, ("size", "label", "doc", "count"), ("key",),
                                        rows, "update the sample")


def test_one_array_per_column_only_where_it_lands_what_rows_would() -> None:
    def column(name: str, category: str) -> ColumnType:
        return ColumnType(f"pg_catalog.{name}[]", name, category, True)

    floats, text, integers = column("float8", "N"), column("text", "S"), column("int4", "N")
    assert one_array([1, 2.5, None], floats) == [1.0, 2.5, None]
    assert one_array([1, 2.5], text) is None  # 10**15 would land as '1e+15'
    assert one_array([1, 2], text) is None  # an int key would match a text key's '1'
    assert one_array([True, None, False], column("bool", "B")) == [True, None, False]
    assert one_array([True, None], integers) is None
    assert one_array([None, None], text) == [None, None]
    assert one_array(["a", 1], text) is None
    assert one_array([["a"], ["b"]], text) is None  # a dimension of the array, spread
    assert one_array([True, 1], floats) is None  # a bool is an int to Python only
    assert one_array([2**53 + 1, 0.5], floats) is None  # as a float it would be 2**53
    naive, aware = datetime(2026, 1, 1), datetime(2026, 1, 1, tzinfo=UTC)
    stamps = column("timestamptz", "D")
    assert one_array([naive, naive], stamps) is not None
    assert one_array([aware, None, naive], stamps) is None
    assert one_array(["x", naive], text) is None  # no raw AttributeError


@pytest.mark.postgres
def test_the_error_names_the_table(pg_table: Engine) -> None:
    rows = [("not a number", "x", None, 1, f"k{i:03d}") for i in range(ROWS)]
    with pytest.raises(StoreError, match="failed to update the sample"), \
            pg_table.begin() as conn:
        BulkWriter(conn, "test").update(sample, ("size", "label", "doc", "count"), ("key",),
                                        rows, "update the sample")

