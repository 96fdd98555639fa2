"""A database of schema 0007 upgraded to 0008 keeps its rows.

It gains submit keys and the listing's indexes; on a real SQLite file and a real PostgreSQL.
"""

from __future__ import annotations

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, inspect, text

from persistence import SchemaMismatch, connect, open_store
from persistence.schema_version import HEAD, MIGRATIONS, upgrade
from statemachines import submit_root
from statemachines.core.errors import SubmitKeyConflict
from tests.integration.test_schema_setup import _schema_differences
from tests.integration.test_submit_keys import registry

PREVIOUS = "0007"
NEW_INDEXES = {
    "ix_commands_submit_key": (["submit_key"], True),
    "ix_commands_roots": (["created_at", "id"], False),
    "ix_commands_roots_status": (["status", "created_at", "id"], False),
    "ix_commands_roots_type": (["type", "created_at", "id"], False),
    "ix_commands_children": (["parent_id"], False),
}


def _at_previous(engine: Engine) -> None:
    """Schema 0007 as Alembic's own migrations build it, with rows written as 0007 wrote them.

    Two roots (one of a tree with children) and a child of a child.
    """
    with engine.begin() as conn:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = conn
        command.upgrade(config, PREVIOUS)
        rows = [("a", "a", None, 1.0, "ended_success"), ("a1", "a", "a", 2.0, "ended_success"),
                ("a11", "a", "a1", 3.0, "ended_success"), ("b", "b", None, 4.0, "waiting")]
        for command_id, root_id, parent_id, at, status in rows:
            conn.execute(text(
                "INSERT INTO commands (id, root_id, parent_id, end_group_id, type, status,"
                " execution_reason, parameters, not_before, end_attempts, created_at,"
                " updated_at, version, step) VALUES (:id, :root, :parent, :root, 'Order',"
                " :status, 'REGULAR_FLOW', :parameters, 0, 0, :at, :at, 3, 1)"),
                {"id": command_id, "root": root_id, "parent": parent_id, "at": at,
                 "status": status, "parameters": f'{{"n": "{command_id}"}}'})
        conn.execute(text("INSERT INTO root_leases (root_id, owner, expires) "
                          "VALUES ('b', NULL, 0)"))


def test_a_0007_database_upgrades_with_its_rows_and_gains_keys_and_indexes(
    empty_database_url: str,
) -> None:
    url = empty_database_url
    engine = connect(url, make_folder=True)
    try:
        _at_previous(engine)
        with pytest.raises(SchemaMismatch, match="endaction db upgrade"):
            open_store(url)
        before, after = upgrade(engine, url)
        assert (before.revision, after.revision) == (PREVIOUS, HEAD)  # through 0008
        assert _schema_differences(engine) == []
        found = inspect(engine)
        column = next(c for c in found.get_columns("commands") if c["name"] == "submit_key")
        assert column["nullable"] and getattr(column["type"], "length", None) == 200
        indexes = {i["name"]: (i["column_names"], bool(i["unique"]))
                   for i in found.get_indexes("commands")}
        assert {name: indexes.get(name) for name in NEW_INDEXES} == NEW_INDEXES
        assert "ix_commands_parent_id" not in indexes
    finally:
        engine.dispose()

    store = open_store(url, create=False)
    try:
        assert [(r.id, r.submit_key, r.version) for r in store.list_roots()] == [
            ("b", None, 3), ("a", None, 3)]
        commands, _ = store.tree("a")
        assert sorted((c.id, c.parent_id) for c in commands) == [
            ("a", None), ("a1", "a"), ("a11", "a1")]
        assert store.leases() == [("b", None, 0.0)]
        with store.transaction() as tx:
            assert [c.id for c in tx.children_of("a1")] == ["a11"]
        record = submit_root(store, registry(), "Order", {"n": 1}, key="after-upgrade")
        assert submit_root(store, registry(), "Order", {"n": 1},
                           key="after-upgrade").id == record.id
        with pytest.raises(SubmitKeyConflict):
            submit_root(store, registry(), "Order", {"n": 2}, key="after-upgrade")
        assert [r.id for r in store.list_roots()] == [record.id, "b", "a"]
    finally:
        store.dispose()
