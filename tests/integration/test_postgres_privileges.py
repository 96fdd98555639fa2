"""The engine needs no more of PostgreSQL than its own tables.

A role without the TEMPORARY privilege (a common hardening: `REVOKE TEMPORARY ON DATABASE ... FROM
PUBLIC`) still runs ticks whose bulk updates are far above the row-by-row threshold.

The revoke happens in a database of the test's own, made and dropped here, with a role of its own:
the database CI tests in is never changed, whatever stops the test midway, and two runs on one
server do not meet.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from persistence import SqlStore, connect, normalise_url
from persistence.dialects.postgresql import PG_BULK_UPDATE_MIN
from statemachines import CommandStatus, TaskStatus
from statemachines.example.vm import ImageInventory
from tests.conftest import POSTGRES_ENV
from tests.worlds import World, images_in

pytestmark = pytest.mark.postgres


@pytest.fixture
def restricted_store() -> Iterator[SqlStore]:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV}")
    name = f"endaction_no_temporary_{secrets.token_hex(4)}"
    admin = create_engine(normalise_url(url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
        conn.execute(text(f'REVOKE TEMPORARY ON DATABASE "{name}" FROM PUBLIC'))
        conn.execute(text(f'CREATE ROLE "{name}" LOGIN NOSUPERUSER'))
    owner_url = make_url(normalise_url(url)).set(database=name)
    store = None
    try:
        owner = SqlStore(connect(owner_url.render_as_string(hide_password=False)),
                         ledgers=[ImageInventory])
        owner.create_schema()
        with owner.engine.begin() as conn:
            conn.execute(text(f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA '
                              f'public TO "{name}"'))
            conn.execute(text(f'GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO "{name}"'))
        owner.dispose()
        store = SqlStore(connect(owner_url.set(username=name)
                                 .render_as_string(hide_password=False)),
                         ledgers=[ImageInventory])
        with store.engine.connect() as conn, pytest.raises(Exception, match="permission denied"):
            conn.execute(text("CREATE TEMPORARY TABLE t (x int)"))
        store.check_schema()
        yield store
    finally:
        if store is not None:
            store.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'DROP ROLE IF EXISTS "{name}"'))
        admin.dispose()


def test_a_role_without_temporary_tables_runs_bulk_rollbacks(
        restricted_store: SqlStore) -> None:
    disks = 3 * PG_BULK_UPDATE_MIN  # commands, tasks, images and revert states all in bulk
    world = World(restricted_store)
    engine = world.engine()
    root = world.submit_vm(engine, disks=disks, fail=(1,))
    engine.run_until_idle(max_ticks=100)
    commands, tasks = restricted_store.tree(root)
    assert next(c.status for c in commands if c.id == root) == CommandStatus.ENDED_FAILURE
    assert sum(c.type == "RemoveImage" for c in commands) == disks  # the failed copy too
    assert {t.status for t in tasks} == {TaskStatus.CLEARED}
    assert images_in(restricted_store) == [] and not world.agent.images
    assert set(world.ends_per_command(root).values()) == {1}
