"""A TableLedger reads and writes the same values in bulk as row by row.

Its columns are ones SQLAlchemy converts (JSON, booleans, dates), on SQLite and PostgreSQL; a row
that vanished under the tick's cached copy is a conflict, not a silent no-op.
"""

from __future__ import annotations

import datetime
import decimal
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    text,
)

from persistence import SqlStore, open_store
from persistence.ledger import TableLedger
from statemachines import ConcurrentModification, ResourceRef
from tests.conftest import POSTGRES_ENV, drop_endaction_tables

_metadata = MetaData()
_leases = Table(
    "test_ip_leases", _metadata,
    Column("id", String(100), primary_key=True),
    Column("tags", JSON, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("since", DateTime, nullable=False),
    Column("port", Integer),
    Column("price", Numeric(10, 2)),  # PostgreSQL's drivers decode these by type code
    Column("load", Float),
)


@dataclass(frozen=True)
class Lease:
    id: str
    tags: Any
    active: bool
    since: datetime.datetime
    port: int | None
    price: decimal.Decimal | None
    load: float | None


class Leases(TableLedger[Lease]):
    resource_type = "ip"
    table = _leases
    row_type = Lease


# Names the SQL must quote: reserved words, and capitals PostgreSQL would fold.
_orders = Table(
    "order", _metadata,
    Column("select", String(100), primary_key=True),
    Column("group", Integer, nullable=False),
    Column("Note", String(50)),
)


@dataclass(frozen=True)
class Order:
    select: str
    group: int
    Note: str | None


class Orders(TableLedger[Order]):
    resource_type = "order"
    table = _orders
    row_type = Order


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    if request.param == "sqlite":
        url = str(tmp_path / "ledger.db")
    else:
        url = os.environ.get(POSTGRES_ENV, "")
        if not url:
            pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV}")
    opened = open_store(url, ledgers=[Leases, Orders])
    if request.param == "postgres":
        drop_endaction_tables(opened.engine)
        _drop_ledger_tables(opened)
        opened.dispose()
        opened = open_store(url, ledgers=[Leases, Orders])
    yield opened
    if request.param == "postgres":
        _drop_ledger_tables(opened)
    opened.dispose()


def _drop_ledger_tables(store: SqlStore) -> None:
    with store.engine.begin() as conn:
        conn.execute(text('DROP TABLE IF EXISTS test_ip_leases, "order"'))


_SINCE = datetime.datetime(2026, 11, 26, 17, 30, 5)


def _lease(i: int) -> Lease:
    return Lease(f"10.0.{i // 250}.{i % 250}", {"owner": f"vm{i}", "nul": "a\x00b" if i else "",
                                                "n": [i, 1.5]},
                 i % 2 == 0, _SINCE + datetime.timedelta(seconds=i), i if i % 3 else None,
                 decimal.Decimal(i) / 4 if i % 5 else None, i / 3 if i % 7 else None)


def _round_trip(store: SqlStore, kind: type[TableLedger[Any]], made: list[Any],
                changed: Callable[[Any], Any], updated: int, removed: int) -> None:
    """Insert, prefetch, update and remove rows in bulk, then check what the table holds.

    Insert `made`, prefetch it back whole, update the first `updated` with `changed` and remove the
    next `removed`, each in bulk; the table must then hold exactly that.
    """
    key = kind._key
    with store.transaction() as tx:
        for row in made:
            tx.ledger(kind).put(row)
    with store.transaction() as tx:
        tx.prefetch([ResourceRef(kind.resource_type, getattr(r, key)) for r in made])
        ledger = tx.ledger(kind)
        assert [ledger.get(getattr(r, key)) for r in made] == made
        for row in made[:updated]:
            ledger.put(changed(row))
        for row in made[updated:updated + removed]:
            assert ledger.remove(getattr(row, key))
    expected = [changed(r) for r in made[:updated]] + made[updated + removed:]
    assert sorted(kind.read_all(store.engine), key=lambda r: getattr(r, key)) == \
        sorted(expected, key=lambda r: getattr(r, key))


def test_bulk_prefetch_and_flush_keep_every_converted_value(store: SqlStore) -> None:
    _round_trip(store, Leases, [_lease(i) for i in range(600)],  # several chunks on SQLite
                lambda x: replace(x, tags={"moved": True}, active=not x.active), 200, 100)


def test_a_row_gone_under_the_cached_copy_is_a_conflict(store: SqlStore) -> None:
    with store.transaction() as tx:
        tx.ledger(Leases).put(_lease(1))
    with pytest.raises(ConcurrentModification, match="test_ip_leases"), \
            store.transaction() as tx:
        leases = tx.ledger(Leases)
        assert leases.get(_lease(1).id) == _lease(1)
        tx._conn.execute(text("DELETE FROM test_ip_leases"))  # as another writer would
        leases.put(replace(_lease(1), port=99))
    assert Leases.read_all(store.engine) == [_lease(1)]  # rolled back whole


def test_tables_and_columns_named_by_reserved_words_are_quoted(store: SqlStore) -> None:
    _round_trip(store, Orders, [Order(f"o{i}", i, "x" if i % 2 else None) for i in range(120)],
                lambda o: replace(o, group=-o.group, Note="moved"), 60, 10)  # bulk on both
