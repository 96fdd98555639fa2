"""PostgreSQL's bulk path lands exactly what one statement per row would.

The bulk path is one statement joined to `unnest(arrays)`; it lands the same count, the same rows,
or an error where rows would fail too. Each case runs both ways on two copies of one table. The
cases are what attacking the first version found (CHAR values cut to one character, CHAR keys
matching the wrong rows, BIT and COLLATE columns failing, a domain's length applied silently, a list
value spread over other rows, mixed kinds raising a raw TypeError); the property draws random rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    CHAR,
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    event,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import BIT
from sqlalchemy.exc import DBAPIError
from sqlalchemy.types import UserDefinedType

from persistence.bulk import BulkWriter
from persistence.dialects.base import update_row_by_row
from persistence.dialects.postgresql import PG_BULK_UPDATE_MIN
from statemachines.core.errors import StoreError

pytestmark = pytest.mark.postgres

ROWS = PG_BULK_UPDATE_MIN + 10


class ShortCode(UserDefinedType[str]):
    """A domain over VARCHAR(3): a cast to it cuts, where assigning to it refuses."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "endaction_test_short"


def _tables(name: str) -> tuple[MetaData, Table, Table]:
    metadata = MetaData()

    def columns() -> list[Column[Any]]:
        return [
            Column("code", CHAR(5), primary_key=True),  # a bare CHAR[] is character(1)[]
            Column("name", CHAR(10)),
            Column("flags", BIT(8)),
            Column("label", String(20, collation="C")),
            Column("seen", DateTime(timezone=True)),
            Column("day", Date),
            Column("note", Text),
            Column("short", ShortCode()),
            Column("size", Float),
            Column("amount", Numeric(20, 2)),
            Column("big", BigInteger),
            Column("count", Integer),
            Column("ok", Boolean),
            Column("doc", JSON),
        ]
    return (metadata, Table(f"{name}_arrays", metadata, *columns()),
            Table(f"{name}_rows", metadata, *columns()))


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    from tests.conftest import _postgres_store

    store = _postgres_store()
    with store.engine.begin() as conn:
        conn.execute(text("DROP DOMAIN IF EXISTS endaction_test_short CASCADE"))
        conn.execute(text("CREATE DOMAIN endaction_test_short AS VARCHAR(3)"))
    yield store.engine
    with store.engine.begin() as conn:
        conn.execute(text("DROP DOMAIN IF EXISTS endaction_test_short CASCADE"))
    store.dispose()


def _initial(i: int) -> dict[str, Any]:
    return {"code": f"c{i:03d}", "label": f"l{i:03d}", "seen": datetime(2026, 1, 1, tzinfo=UTC)}


def _both_ways(engine: Engine, columns: Sequence[str], keys: Sequence[str],
               rows: Sequence[Sequence[Any]]) -> tuple[Any, Any, bool]:
    """Write the rows by the bulk path and by one statement per row, on two copies of one table.

    Returns (what the bulk path did, what one statement per row did, whether the bulk path used the
    arrays): each of the first two a (count, rows after) pair or the error's type.
    """
    metadata, arrays, one_by_one = _tables("endaction_test_twin")
    metadata.drop_all(engine)
    metadata.create_all(engine)
    statements: list[str] = []

    def seen(*args: Any) -> None:
        statements.append(args[2])

    outcomes = []
    try:
        for table in (arrays, one_by_one):
            with engine.begin() as conn:
                conn.execute(table.insert(), [_initial(i) for i in range(ROWS)])
            event.listen(engine, "before_cursor_execute", seen)
            try:
                with engine.begin() as conn:
                    writer = BulkWriter(conn, "test")
                    if table is one_by_one:
                        count = update_row_by_row(conn, table, columns, keys, rows)
                    elif columns:
                        count = writer.update(table, columns, keys, rows, "update")
                    else:
                        count = writer.delete(table, keys, rows, "delete")
            except (StoreError, DBAPIError) as err:
                cause = err.__cause__ if isinstance(err, StoreError) else err
                outcomes.append(type(getattr(cause, "orig", cause)).__name__)
                continue
            finally:
                event.remove(engine, "before_cursor_execute", seen)
            with engine.connect() as conn:
                after = conn.execute(select(table).order_by(table.c.code)).all()
            outcomes.append((count, [tuple(r) for r in after]))
    finally:
        metadata.drop_all(engine)
    return outcomes[0], outcomes[1], any("unnest" in s for s in statements)


def _codes(i: int) -> str:
    return f"c{i:03d}"


CASES: dict[str, tuple[tuple[str, ...], tuple[str, ...], Callable[[int], tuple[Any, ...]],
                       bool]] = {
    # name: (columns set, keys, row i, whether the arrays carry it)
    "char value": (("name",), ("code",), lambda i: ("hello", _codes(i)), True),
    "char key": (("note",), ("code",), lambda i: (f"n{i}", _codes(i)), True),
    "bit": (("flags",), ("code",), lambda i: ("10101010", _codes(i)), True),
    "collated key": (("note",), ("label",), lambda i: (f"n{i}", f"l{i:03d}"), True),
    "delete by char key": ((), ("code",), lambda i: (_codes(i),), True),
    "domain too long": (("short",), ("code",), lambda i: ("abcdef", _codes(i)), False),
    "list in text": (("note",), ("code",), lambda i: (["a", f"b{i}"], _codes(i)), False),
    "naive and aware": (("seen",), ("code",), lambda i: (
        datetime(2026, 1, 1, tzinfo=UTC if i % 2 else None), _codes(i)), False),
    "text and times": (("note",), ("code",), lambda i: (
        "x" if i % 2 else datetime(2026, 1, 1), _codes(i)), False),
    "ints for a text key": (("note",), ("label",), lambda i: ("n", i), False),
    "ints among floats": (("size",), ("code",), lambda i: (i if i % 2 else i + 0.5,
                                                          _codes(i)), True),
    "ints among floats in text": (("note",), ("code",), lambda i: (
        10**15 + 1 if i % 2 else 0.5, _codes(i)), False),
    "bools for integers": (("count",), ("code",), lambda i: (True, _codes(i)), False),
    "decimals": (("amount",), ("code",), lambda i: (Decimal("1.005"), _codes(i)), True),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_arrays_land_what_rows_would(engine: Engine, case: str) -> None:
    columns, keys, row, carried = CASES[case]
    by_arrays, by_rows, used_arrays = _both_ways(engine, columns, keys,
                                                 [row(i) for i in range(ROWS)])
    assert by_arrays == by_rows
    assert used_arrays is carried


def test_a_table_in_its_own_schema_is_the_one_written(engine: Engine) -> None:
    """A table in its own schema is the one written, not one of the same name on the search path.

    The types are read from the table the statements write.
    """
    metadata = MetaData()
    elsewhere = Table("endaction_test_same", metadata, Column("k", String(8), primary_key=True),
                      Column("v", Text), schema="endaction_test_schema")
    here = Table("endaction_test_same", metadata, Column("k", String(8), primary_key=True),
                 Column("v", Integer))
    with engine.begin() as conn:
        conn.execute(text("CREATE SCHEMA IF NOT EXISTS endaction_test_schema"))
    metadata.drop_all(engine)
    metadata.create_all(engine)
    try:
        keys = [(f"k{i}",) for i in range(ROWS)]
        with engine.begin() as conn:
            writer = BulkWriter(conn, "test")
            writer.insert(elsewhere, ("k", "v"), [(k, "old") for (k,) in keys], "insert")
            conn.execute(here.insert(), [{"k": k, "v": 1} for (k,) in keys])
            assert writer.update(elsewhere, ("v",), ("k",), [("new", k) for (k,) in keys],
                                 "update") == ROWS
            assert writer.delete(elsewhere, ("k",), keys[1:], "delete") == ROWS - 1
        with engine.connect() as conn:
            assert conn.execute(select(elsewhere.c.v)).scalars().all() == ["new"]
            assert conn.execute(select(here.c.v).distinct()).scalars().all() == [1]
    finally:
        metadata.drop_all(engine)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS endaction_test_schema CASCADE"))


def test_a_table_named_with_a_percent_sign_goes_in_bulk(engine: Engine) -> None:
    metadata = MetaData()
    table = Table("endaction_test_50%_off", metadata, Column("k", String(8), primary_key=True),
                  Column("v", Integer))
    metadata.drop_all(engine)
    metadata.create_all(engine)
    statements: list[str] = []

    def seen(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine, "before_cursor_execute", seen)
    try:
        with engine.begin() as conn:
            writer = BulkWriter(conn, "test")
            writer.insert(table, ("k", "v"), [(f"k{i}", 0) for i in range(ROWS)], "insert")
            assert writer.update(table, ("v",), ("k",), [(1, f"k{i}") for i in range(ROWS)],
                                 "update") == ROWS
        assert any("unnest" in s for s in statements)
        with engine.connect() as conn:
            assert conn.execute(select(table.c.v).distinct()).scalars().all() == [1]
    finally:
        event.remove(engine, "before_cursor_execute", seen)
        metadata.drop_all(engine)


_VALUES = {
    "note": st.one_of(st.none(), st.text(max_size=12), st.integers(-10**16, 10**16)),
    "name": st.one_of(st.none(), st.text(alphabet="ab{},\"\\ ", max_size=12)),
    "size": st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False),
                      st.integers(-2**60, 2**60)),
    "count": st.one_of(st.none(), st.integers(-2**31, 2**31 - 1), st.booleans()),
    "ok": st.one_of(st.none(), st.booleans()),
    "day": st.one_of(st.none(), st.dates(min_value=date(1, 1, 1))),
    "big": st.one_of(st.none(), st.integers(-2**63, 2**63 - 1)),
}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.data_too_large])
@given(column=st.sampled_from(sorted(_VALUES)), data=st.data())
def test_random_rows_land_as_rows_would(engine: Engine, column: str, data: st.DataObject
                                        ) -> None:
    values = data.draw(st.lists(_VALUES[column], min_size=ROWS, max_size=ROWS))
    by_arrays, by_rows, _ = _both_ways(engine, (column,), ("code",),
                                       [(v, _codes(i)) for i, v in enumerate(values)])
    assert by_arrays == by_rows
