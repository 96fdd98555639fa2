"""Fixtures: real SQLite files, and the real PostgreSQL named by ENDACTION_TEST_POSTGRES_URL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from persistence import SqlStore, connect
from persistence.ledger import ledger_tables
from persistence.schema import metadata
from persistence.schema_version import LEGACY_VERSION_TABLE, VERSION_TABLE
from statemachines.example.vm import ImageInventory
from tests.hypothesis_profiles import PROFILE_ENV, load_profile
from tests.worlds import vm_store

HYPOTHESIS_PROFILE = load_profile()


def pytest_report_header() -> str:
    return f"hypothesis profile: {HYPOTHESIS_PROFILE} (set {PROFILE_ENV}=thorough for more)"

POSTGRES_ENV = "ENDACTION_TEST_POSTGRES_URL"


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SqlStore]:
    store = vm_store(str(tmp_path / "endaction.db"))
    yield store
    store.dispose()


def _postgres_store() -> SqlStore:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV} (CI sets it; e.g. "
                    "postgresql://postgres@127.0.0.1:5432/test)")
    store = SqlStore(connect(url), ledgers=[ImageInventory])
    drop_endaction_tables(store.engine)
    store.create_schema()
    return store


def drop_endaction_tables(engine: Engine) -> None:
    """Empty the test database of everything endaction ever created there, any version."""
    with engine.begin() as conn:
        for name in (*reversed(metadata.sorted_tables), VERSION_TABLE, LEGACY_VERSION_TABLE,
                     *ledger_tables([ImageInventory])):
            conn.execute(text(f"DROP TABLE IF EXISTS {getattr(name, 'name', name)} CASCADE"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    """The same test against a SQLite file and against PostgreSQL."""
    if request.param == "sqlite":
        created = vm_store(str(tmp_path / "endaction.db"))
    else:
        created = _postgres_store()
    yield created
    created.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with nothing of endaction in it, for tests that build a schema by hand.

    A new SQLite file, or the test PostgreSQL emptied.
    """
    if request.param == "sqlite":
        yield str(tmp_path / "endaction.db")
        return
    found = os.environ.get(POSTGRES_ENV)
    if not found:
        pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV}")
    engine = connect(found)
    drop_endaction_tables(engine)
    engine.dispose()
    yield found
