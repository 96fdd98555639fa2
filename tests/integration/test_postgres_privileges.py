"""The engine needs no more of PostgreSQL than its own tables: a role without the TEMPORARY
privilege (a common hardening: `REVOKE TEMPORARY ON DATABASE ... FROM PUBLIC`) still runs
ticks whose bulk updates are far above the row-by-row threshold."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from persistence import SqlStore, connect
from persistence.bulk import PG_BULK_UPDATE_MIN
from statemachines import CommandStatus, TaskStatus
from statemachines.example.vm import ImageInventory
from tests.worlds import World, images_in

pytestmark = pytest.mark.postgres

ROLE = "endaction_no_temporary"


def _grant_only_tables(admin: Engine) -> None:
    database = admin.url.database
    with admin.begin() as conn:
        if conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": ROLE}).first():
            conn.execute(text(f"DROP OWNED BY {ROLE}"))
            conn.execute(text(f"DROP ROLE {ROLE}"))
        conn.execute(text(f"CREATE ROLE {ROLE} LOGIN NOSUPERUSER"))
        conn.execute(text(f'REVOKE TEMPORARY ON DATABASE "{database}" FROM PUBLIC'))
        conn.execute(text(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public "
                          f"TO {ROLE}"))
        conn.execute(text(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {ROLE}"))


@pytest.fixture
def restricted_store() -> Iterator[SqlStore]:
    from tests.conftest import _postgres_store

    admin_store = _postgres_store()  # the schema, made by the owner
    admin = admin_store.engine
    _grant_only_tables(admin)
    url = make_url(str(admin.url.render_as_string(hide_password=False))).set(username=ROLE)
    store = SqlStore(connect(url.render_as_string(hide_password=False)),
                     ledgers=[ImageInventory])
    try:
        with store.engine.connect() as conn, pytest.raises(Exception, match="permission denied"):
            conn.execute(text("CREATE TEMPORARY TABLE t (x int)"))
        store.check_schema()
        yield store
    finally:
        store.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'GRANT TEMPORARY ON DATABASE "{admin.url.database}" TO PUBLIC'))
            conn.execute(text(f"DROP OWNED BY {ROLE}"))
            conn.execute(text(f"DROP ROLE {ROLE}"))
        admin_store.dispose()


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
