"""A database of schema 0008 upgraded to 0009 keeps its history.

Its old steps have no actor, and every step written after records its worker or engine. It runs on a
real SQLite file and a real PostgreSQL.
"""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from persistence import connect, open_store
from persistence.schema_version import MIGRATIONS, upgrade
from statemachines import Engine, WorkerLease
from statemachines.example.vm import ImageInventory, SimulatedAgent, add_vm_parameters, vm_registry
from tests.integration.test_schema_setup import _schema_differences


def test_a_0008_history_upgrades_and_new_steps_name_their_actor(empty_database_url: str) -> None:
    url = empty_database_url
    engine = connect(url, make_folder=True)
    try:
        with engine.begin() as conn:
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            config.attributes["connection"] = conn
            command.upgrade(config, "0008")
            conn.execute(text(
                "INSERT INTO history_segments (root_id, at, steps) VALUES ('old', 1.0, "
                """'[["command","old","",[["create","ended_success",null]]]]')"""))
        before, after = upgrade(engine, url)
        assert (before.revision, after.revision) == ("0008", "0009")
        assert _schema_differences(engine) == []
    finally:
        engine.dispose()
    store = open_store(url, create=False, ledgers=[ImageInventory])
    try:
        assert [(h.trigger, h.actor) for h in store.history_of_root("old")] == [("create", None)]
        worker = Engine(store, {"storage": SimulatedAgent()}, vm_registry(),
                        lease=WorkerLease(owner="w7"))
        root = worker.submit("AddVmFromTemplate",
                             add_vm_parameters("vm1", ["template-disk0"], []))
        worker.run_until_idle(max_ticks=200)
        actors = {h.actor for h in store.history_of_root(root) if h.trigger != "create"}
        assert actors == {"w7"}
        assert store.history_of_root(root)[0].actor is None  # submitted: a client's row
    finally:
        store.dispose()
