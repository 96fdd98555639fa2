"""Every dialect keeps the same contract on a real database.

That is SQLite's and PostgreSQL's own dialects, and the portable defaults another SQLAlchemy
dialect would get. The portable `Dialect` runs here on both databases, so its fallback paths
(a key read before each insert, IN lists in chunks, executemany) are proven against the same
expectations as the bulk paths that replace them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, func, select, text

from persistence import connect
from persistence.dialects import Dialect, PostgreSQLDialect, SQLiteDialect, dialect_of
from persistence.dialects.base import ROWS_PER_EXECUTEMANY
from persistence.dialects.postgresql import PG_BULK_UPDATE_MIN
from persistence.dialects.sql_text import CHUNK, placeholder, table_name

POSTGRES_ENV = "ENDACTION_TEST_POSTGRES_URL"
metadata = MetaData()
probe = Table("dialect_probe", metadata, Column("key", String(64), primary_key=True),
              Column("version", Integer, nullable=False))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        made = connect(str(tmp_path / "probe.db"))
    else:
        url = os.environ.get(POSTGRES_ENV)
        if not url:
            pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV}")
        made = connect(url)
    metadata.drop_all(made)
    metadata.create_all(made)
    yield made
    metadata.drop_all(made)
    made.dispose()


@pytest.fixture(params=["own", "portable"])
def dialect(request: pytest.FixtureRequest, engine: Engine) -> Dialect:
    return dialect_of(engine) if request.param == "own" else Dialect()


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(probe)).scalar_one())


def test_each_database_gets_its_own_dialect(engine: Engine) -> None:
    expected = SQLiteDialect if engine.dialect.name == "sqlite" else PostgreSQLDialect
    assert type(dialect_of(engine)) is expected
    with engine.connect() as conn:
        assert dialect_of(conn) is dialect_of(engine)


def test_insert_if_absent_keeps_the_first_row_of_a_key(engine: Engine, dialect: Dialect) -> None:
    with engine.begin() as conn:
        dialect.insert_if_absent(conn, probe, [{"key": "a", "version": 1},
                                               {"key": "b", "version": 1}])
        dialect.insert_if_absent(conn, probe, [{"key": "a", "version": 2}])
        dialect.insert_if_absent(conn, probe, [])
    with engine.connect() as conn:
        assert dict(conn.execute(select(probe.c.key, probe.c.version)).all()) == {
            "a": 1, "b": 1}


def test_bulk_inserts_and_keyed_updates_count_what_matched(engine: Engine,
                                                           dialect: Dialect) -> None:
    rows = [(f"k{i:05}", 1) for i in range(ROWS_PER_EXECUTEMANY + 7)]
    with engine.begin() as conn:
        dialect.insert_rows(conn, probe, ("key", "version"), iter(rows))
    assert _count(engine) == len(rows)
    # Update version 1 -> 2 where the row is still at version 1; a third of the rows name a
    # version they are not at, as a row another writer changed would.
    updates = [(2, key, 1 if i % 3 else 9) for i, (key, _) in enumerate(rows)]
    assert len(updates) >= PG_BULK_UPDATE_MIN  # PostgreSQL's own dialect takes its bulk path
    with engine.begin() as conn:
        matched = dialect.keyed_rows(conn, probe, ("version",), ("key", "version"), updates)
    assert matched == sum(1 for i in range(len(rows)) if i % 3)
    deletes = [(key, 2) for key, _ in rows[:10]]
    with engine.begin() as conn:
        gone = dialect.keyed_rows(conn, probe, (), ("key", "version"), deletes)
    assert gone == sum(1 for i in range(10) if i % 3)


def test_matching_and_in_lists_find_every_value_past_a_chunk(engine: Engine,
                                                             dialect: Dialect) -> None:
    keys = [f"k{i:05}" for i in range(2 * CHUNK + 3)]
    with engine.begin() as conn:
        dialect.insert_rows(conn, probe, ("key", "version"), [(k, 1) for k in keys])
    wanted = [*keys[::2], "not-there"]
    with engine.connect() as conn:
        found = {key for condition in dialect.matching(probe.c.key, wanted)
                 for key in conn.execute(select(probe.c.key).where(condition)).scalars()}
        head = f"SELECT {conn.dialect.identifier_preparer.quote('key')} FROM " \
               f"{table_name(conn, probe)} WHERE "
        listed = {row[0] for statement, bound in dialect.in_list(
                      head, conn.dialect.identifier_preparer.quote("key"), placeholder(conn),
                      wanted, ()) for row in conn.exec_driver_sql(statement, bound)}
    assert found == listed == set(keys[::2])


def test_claims_snapshots_locks_and_the_clock_run_on_the_database(engine: Engine,
                                                                  dialect: Dialect) -> None:
    with engine.begin() as conn:
        dialect.insert_if_absent(conn, probe, [{"key": "a", "version": 1}])
        dialect.lock_schema(conn)
        dialect.notify(conn, "endaction_probe")
        claimed = conn.execute(dialect.claimable(select(probe.c.key))).scalars().all()
        assert claimed == ["a"]
    with engine.connect() as conn:
        assert dialect.snapshot(conn).execute(text("SELECT 1")).scalar_one() == 1
        if dialect.has_server_clock:
            assert dialect.read_clock(conn) > 1_600_000_000
        else:
            with pytest.raises(NotImplementedError):
                dialect.read_clock(conn)
