"""Upgrading a database of the previous schema (0003) that has work in flight.

The engine refuses it by name, `endaction db upgrade` migrates it, and a worker (which sees only
roots with a lease row, so the migration must have made them) finishes every root.
"""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from click.testing import CliRunner
from sqlalchemy import Engine, inspect, text

from persistence import SchemaMismatch, SqlStore, connect, history_segments, open_store
from persistence.schema_version import HEAD, MIGRATIONS, VERSION_TABLE
from statemachines import (
    AgentError,
    CommandStatus,
    HostResult,
    LeaseLost,
    TaskStatus,
    WorkerLease,
)
from statemachines.cli.main import cli
from statemachines.core.machines.command_machine import TERMINAL_COMMAND_STATES
from statemachines.example.vm import ImageInventory, Plan, SimulatedAgent, image_name
from tests.conftest import drop_endaction_tables
from tests.worlds import World, images_in, terminal_arrivals

PREVIOUS = "0003"


def _columns(engine: Engine) -> dict[str, set[tuple[str, str, bool]]]:
    """Every endaction table's columns (name, type, nullable), as the database reports them."""
    found = inspect(engine)
    return {table: {(c["name"], str(c["type"]), bool(c["nullable"]))
                    for c in found.get_columns(table)}
            for table in found.get_table_names() if table not in ("images",)}


def _as_previous_version(engine: Engine) -> None:
    """Take a current database back to 0003 by hand, keeping its rows.

    What 0004 to 0008 added goes, what 0004 and 0006 dropped comes back, and the history of the
    segments becomes the one row per step 0003 wrote (so after the upgrade a tree's history is in
    both tables). The test checks the result against Alembic's own 0003.
    """
    with engine.begin() as conn:
        steps = list(history_segments.expand_all(
            conn.execute(text("SELECT root_id, at, steps FROM history_segments ORDER BY id"))))
        # 0008's indexes first: SQLite drops no column an index names.
        for index in ("ix_commands_submit_key", "ix_commands_roots", "ix_commands_roots_status",
                      "ix_commands_roots_type", "ix_commands_children"):
            conn.execute(text(f"DROP INDEX {index}"))
        conn.execute(text("CREATE INDEX ix_commands_parent_id ON commands (parent_id)"))
        for table, columns in (("commands", ("step", "own_work_succeeded", "output",
                                             "resources", "submit_key")),
                               ("async_tasks", ("step", "attempt", "retried", "retry_policy",
                                                "output"))):
            for column in columns:
                conn.execute(text(f"ALTER TABLE {table} DROP COLUMN {column}"))
        conn.execute(text("DROP TABLE history_segments"))
        conn.execute(text("DROP INDEX ix_commands_active"))
        conn.execute(text("DROP INDEX ix_async_tasks_active"))
        conn.execute(text("CREATE INDEX ix_commands_status ON commands (status)"))
        conn.execute(text("CREATE INDEX ix_async_tasks_status ON async_tasks (status)"))
        conn.execute(text("ALTER TABLE transitions DROP COLUMN path"))
        conn.execute(text(
            "INSERT INTO transitions (object_kind, object_id, root_id, trigger, source, dest,"
            " at, detail) VALUES (:object_kind, :object_id, :root_id, :trigger, :source,"
            " :dest, :at, :detail)"), [s._asdict() for s in steps])
        conn.execute(text("DROP TABLE root_leases"))
        conn.execute(text("ALTER TABLE async_tasks ADD COLUMN lease_owner VARCHAR(200)"))
        conn.execute(text("ALTER TABLE async_tasks ADD COLUMN lease_expires FLOAT"))
        conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '{PREVIOUS}'"))


def _alembic_previous(url: str) -> dict[str, set[tuple[str, str, bool]]]:
    engine = connect(url, make_folder=True)
    try:
        with engine.begin() as conn:
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            config.attributes["connection"] = conn
            command.upgrade(config, PREVIOUS)
        return _columns(engine)
    finally:
        engine.dispose()


class StubbornHost(SimulatedAgent):
    """Refuses to clear the tasks of `vm-ended` until told otherwise."""

    refusing = True

    def clear(self, task_id: str) -> None:
        task = self.tasks.get(task_id)
        if self.refusing and task is not None and \
                str(task.parameters.get("image", "")).startswith("vm-ended"):
            raise AgentError("not now")
        super().clear(task_id)


def _in_flight(world: World) -> list[str]:
    """Roots in every stage: not started, copying, rolling back, and ended but not cleared.

    The last is one whose commands all ended while a task of it is still not cleared (work only the
    tasks table shows).
    """
    engine = world.engine()
    ended = world.submit_vm(engine, 1, vm="vm-ended")
    for _ in range(12):
        engine.tick()
        world.clock.sleep(1)
    roots = [world.submit_vm(engine, 2, fail=(1,) if i % 2 else (), vm=f"vm{i}")
             for i in range(4)]
    for _ in range(3):
        engine.tick()
    roots.append(world.submit_vm(engine, 1, vm="vm-late"))  # never executed before the upgrade
    return [ended, *roots]


def test_a_previous_version_database_with_work_in_flight_upgrades_and_finishes(
        store: SqlStore, tmp_path: Path) -> None:
    agent = StubbornHost(decide=lambda verb, params: Plan(
        result=HostResult.FAILURE if params.get("inject_failure") else HostResult.SUCCESS,
        polls=4))  # slow tasks: the upgrade comes while they run
    world = World(store, agent=agent)
    roots = _in_flight(world)
    statuses = Counter(store.command(r).status for r in roots)  # type: ignore[union-attr]
    assert statuses[CommandStatus.NOT_STARTED] == 1 and len(statuses) > 1, statuses
    assert store.command(roots[0]).status == CommandStatus.ENDED_SUCCESS  # type: ignore[union-attr]
    assert any(t.status == TaskStatus.CLEAR_FAILED for t in store.tree(roots[0])[1])
    live_tasks = [t for r in roots for t in store.tree(r)[1] if t.status != TaskStatus.CLEARED]
    assert live_tasks, "no task in flight: the upgrade would prove nothing"
    url = store.engine.url.render_as_string(hide_password=False)
    store.dispose()

    engine = connect(url)
    _as_previous_version(engine)
    previous = _columns(engine)
    engine.dispose()
    if url.startswith("sqlite"):
        reference = _alembic_previous(str(tmp_path / "reference.db"))
        assert previous == reference, "the hand-made 0003 is not Alembic's 0003"

    with pytest.raises(SchemaMismatch, match="endaction db upgrade"):
        open_store(url, ledgers=[ImageInventory])
    upgraded = CliRunner().invoke(cli, ["db", "upgrade", "--db", url])
    assert upgraded.exit_code == 0, upgraded.output
    assert f"from endaction schema {PREVIOUS} to {HEAD}" in upgraded.output

    reopened = open_store(url, ledgers=[ImageInventory])
    agent.refusing = False
    try:
        unfinished = {r for r in roots
                      if reopened.command(r).status not in TERMINAL_COMMAND_STATES  # type: ignore[union-attr]
                      or any(t.status != TaskStatus.CLEARED for t in reopened.tree(r)[1])}
        assert roots[0] in unfinished
        assert sorted(r for r, _, _ in reopened.leases()) == sorted(unfinished)
        # 0007: every command that ran has taken its one step, every task is a first attempt.
        for root in roots:
            commands, tasks = reopened.tree(root)
            assert {(c.status == CommandStatus.NOT_STARTED, c.step) for c in commands} <= {
                (True, 0), (False, 1)}, root
            assert {(t.step, t.attempt, t.retried, t.retry, t.output) for t in tasks} <= {
                (1, 1, False, None, None)}, root
        world = World(reopened, agent=agent, clock=world.clock)
        worker = world.engine(lease=WorkerLease(owner="after-upgrade", ttl=30))
        for _ in range(200):
            try:
                worker.tick()
            except LeaseLost:
                raise AssertionError("nobody else runs here") from None
            world.clock.sleep(0.5)
            if not reopened.leases():
                break
        for root in roots:
            arrivals = terminal_arrivals(reopened, root)
            assert set(arrivals.values()) == {1}, (root, arrivals)
            # Every command's end is in the history, whichever table holds it.
            assert set(arrivals) == {c.id for c in reopened.tree(root)[0]}, root
        # A root in flight across the upgrade: its history begins in the old rows and goes
        # on in the segments, in order, and one object's history too.
        history = reopened.history_of_root(roots[1])
        assert history[0].trigger == "create" and history[0].object_id == roots[1]
        assert [h.dest for h in reopened.history(roots[1])] == [
            h.dest for h in history if h.object_id == roots[1]]
        assert all(a.dest == b.source for a, b in itertools.pairwise(reopened.history(roots[1])))
        ended = {r: reopened.command(r).status for r in roots}  # type: ignore[union-attr]
        created = [r for r, s in ended.items() if s == CommandStatus.ENDED_SUCCESS]
        assert len(created) == 4, ended
        assert all(t.status == TaskStatus.CLEARED for r in roots for t in reopened.tree(r)[1])
        expected = {image_name(reopened.command(r).parameters["vm"], d)  # type: ignore[union-attr]
                    for r in created
                    for d in range(len(reopened.command(r).parameters["disks"]))}  # type: ignore[union-attr]
        assert agent.images == expected
        assert {row.id for row in images_in(reopened)} == expected
    finally:
        reopened.dispose()
        if not url.startswith("sqlite"):
            cleanup = connect(url)
            drop_endaction_tables(cleanup)
            cleanup.dispose()
