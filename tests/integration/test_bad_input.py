"""Bad input gets a clear error naming what was wrong, and loses nothing already persisted."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from persistence import SqlStore
from statemachines import (
    Command,
    CommandContext,
    CommandStatus,
    HostResult,
    HostStatus,
    InvalidParameters,
    ResourceRef,
    StoreUnavailable,
    TaskReport,
    UnknownCommandType,
)
from statemachines.example.vm import SimulatedAgent, add_vm_parameters
from tests.conftest import POSTGRES_ENV
from tests.factories import make_engine
from tests.worlds import World, vm_store


def test_unknown_command_type_is_refused_before_anything_is_persisted(
    sqlite_store: SqlStore,
) -> None:
    engine = World(sqlite_store).engine()
    with pytest.raises(UnknownCommandType, match=r"'AddVm'.*AddVmFromTemplate"):
        engine.submit("AddVm", {})
    assert sqlite_store.last_root_id() is None


@pytest.mark.parametrize(
    ("parameters", "problem"),
    [
        ({"vm": "v", "disks": []}, "'disks' must be a non-empty list"),
        ({"vm": "bad name!", "disks": [{"source": "t"}]}, "'vm' must be a name"),
        ({"vm": "v", "disks": [{"source": 3}]}, "disks[0]: 'source' must be a name"),
        ({"vm": "v", "disks": ["t"]}, "disks[0] must be an object"),
        ({"vm": "v", "disks": [{"source": "t"}], "at": object()}, "parameters must be JSON"),
    ],
)
def test_malformed_parameters_are_named(sqlite_store: SqlStore, parameters: dict[str, Any],
                                        problem: str) -> None:
    engine = World(sqlite_store).engine()
    with pytest.raises(InvalidParameters) as raised:
        engine.submit("AddVmFromTemplate", parameters)
    assert problem in str(raised.value)
    assert sqlite_store.last_root_id() is None


def test_unknown_type_in_the_database_stops_recovery_and_changes_nothing(
    sqlite_store: SqlStore,
) -> None:
    class Legacy(Command):
        type_name = "LegacyCommand"

    engine = make_engine(sqlite_store, {}, commands=[Legacy])
    command_id = engine.submit("LegacyCommand", {})
    fresh = World(sqlite_store).engine()
    with pytest.raises(UnknownCommandType, match="LegacyCommand"):
        fresh.recover()
    record = sqlite_store.command(command_id)
    assert record is not None and record.status == CommandStatus.NOT_STARTED


class FlakyAgent(SimulatedAgent):
    """Raises on poll for a while, then answers properly."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def poll(self, task_ids: Sequence[str]) -> Mapping[str, TaskReport]:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("host unreachable")
        return super().poll(task_ids)


def test_an_agent_that_raises_is_reported_and_retried(sqlite_store: SqlStore) -> None:
    agent = FlakyAgent(failures=3)
    world = World(sqlite_store, agent=agent)
    engine = world.engine()
    root = world.submit_vm(engine, disks=2)
    errors: list[str] = []
    for _ in range(50):
        errors += engine.tick().errors
        if engine.is_idle():
            break
        world.clock.now += 5  # failed polls back off
    assert errors[:3] == ["agent 'storage' failed to poll: ConnectionError: host unreachable"] * 3
    commands, _ = sqlite_store.tree(root)
    assert next(c.status for c in commands if c.id == root) == CommandStatus.ENDED_SUCCESS


class GarbageAgent(SimulatedAgent):
    def poll(self, task_ids: Sequence[str]) -> Mapping[str, Any]:
        return {task_id: "done, probably" for task_id in task_ids}


def test_garbage_from_an_agent_ends_the_task_as_unknown_and_rolls_back(
    sqlite_store: SqlStore,
) -> None:
    world = World(sqlite_store, agent=GarbageAgent())
    engine = world.engine()
    root = world.submit_vm(engine, disks=1)
    engine.run_until_idle(max_ticks=50)
    copy = world.copy_task(root)
    assert copy.host_status == "unknown"
    assert copy.message is not None and "answered garbage" in copy.message
    assert "'done, probably'" in copy.message
    commands, _ = sqlite_store.tree(root)
    # Its opposite command got garbage too, so the rollback could not be confirmed either.
    assert next(c.status for c in commands if c.id == root) == CommandStatus.ROLLBACK_FAILED
    clone = next(c for c in commands if c.type == "CreateCloneOfTemplate")
    assert clone.status == CommandStatus.ROLLBACK_FAILED and clone.error is not None
    assert "could not be reverted: its outcome was lost 5 time(s)" in clone.error


class RefusingAgent(SimulatedAgent):
    def start(self, task_id: str, verb: str, parameters: Mapping[str, Any]) -> None:
        raise TimeoutError("no answer from host")


def test_an_agent_that_never_starts_a_task_ends_it_as_start_failed(
    sqlite_store: SqlStore,
) -> None:
    world = World(sqlite_store, agent=RefusingAgent())
    engine = world.engine()
    root = world.submit_vm(engine, disks=1)
    engine.run_until_idle(max_ticks=50)
    commands, tasks = sqlite_store.tree(root)
    copy = next(t for t in tasks if t.verb == "copy_image")
    assert copy.host_result == "failure"
    assert copy.message is not None and "TimeoutError: no answer from host" in copy.message
    assert "gave up after 5" in copy.message
    starts = [h.at for h in sqlite_store.history(copy.id) if h.trigger == "create"]
    ended = [h.at for h in sqlite_store.history(copy.id) if h.trigger == "start_failed"]
    assert ended[0] - starts[0] >= 0.5 + 1 + 2 + 4  # retried with back-off, not in a burst
    # The image was never copied, but the inventory row exists and the agent that would
    # remove it is down too: the rollback is left visibly incomplete, never silently dropped.
    assert next(c.status for c in commands if c.id == root) == CommandStatus.ROLLBACK_FAILED


def test_a_database_that_locks_up_mid_tick_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "endaction.db"
    store = vm_store(str(path), busy_timeout_ms=50)
    world = World(store)
    engine = world.engine()
    root = world.submit_vm(engine, disks=2, fail=(0,))
    engine.tick()
    before = _rows(store, root)

    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    with pytest.raises(StoreUnavailable, match="database is locked"):
        engine.tick()
    blocker.execute("ROLLBACK")
    blocker.close()

    assert _rows(store, root) == before
    engine.run_until_idle()
    assert world.end_state(root)["agent_images"] == []
    assert set(world.ends_per_command(root).values()) == {1}


def _rows(store: SqlStore, root: str) -> list[tuple[str, str, int]]:
    commands, tasks = store.tree(root)
    return [(r.id, r.status, r.version) for r in [*commands, *tasks]]


class DatabaseKiller(Command):
    """Cuts every other connection to PostgreSQL while the engine's tick is open."""

    type_name = "DatabaseKiller"
    kills_left = 0

    def execute(self, ctx: CommandContext) -> None:
        if DatabaseKiller.kills_left <= 0:
            return
        DatabaseKiller.kills_left -= 1
        url = os.environ[POSTGRES_ENV].replace("postgresql://", "postgresql+psycopg://", 1)
        killer = create_engine(url)
        with killer.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
        killer.dispose()


@pytest.mark.postgres
def test_postgres_connection_dropped_mid_tick_loses_nothing(tmp_path: Path) -> None:
    from tests.conftest import _postgres_store

    store = _postgres_store()
    world = World(store)
    engine = world.engine(commands=[DatabaseKiller])
    root = engine.submit("AddVmFromTemplate",
                         add_vm_parameters("vm1", ["t0", "t1"], fail=[1]))
    engine.submit("DatabaseKiller", {})
    DatabaseKiller.kills_left = 1
    with pytest.raises(StoreUnavailable, match="failed to run a transaction"):
        engine.tick()
    assert store.tree(root)[0][0].status == CommandStatus.NOT_STARTED
    engine.run_until_idle()  # reconnects, reloads, and finishes as if nothing had happened
    assert world.end_state(root)["agent_images"] == []
    assert set(world.ends_per_command(root).values()) == {1}
    store.dispose()


class MakesBadChildren(Command):
    """Its execute hands the engine what the database could not store."""

    type_name = "MakesBadChildren"

    def execute(self, ctx: CommandContext) -> None:
        what = self.parameters["what"]
        if what == "long entity":
            ctx.add_child("MakesBadChildren", {"what": "none"},
                          entity=ResourceRef("image", "x" * 300))
        elif what == "nan":
            ctx.add_child("MakesBadChildren", {"what": "none", "ratio": float("nan")})
        elif what == "long verb":
            ctx.start_task("storage", "v" * 150, {})
        elif what == "nul in entity":
            ctx.add_child("MakesBadChildren", {"what": "none"},
                          entity=ResourceRef("image", "a\x00b"))
        elif what == "surrogate in entity":
            ctx.add_child("MakesBadChildren", {"what": "none"},
                          entity=ResourceRef("image", "a\ud800b"))


@pytest.mark.parametrize(("what", "says"), [
    ("long entity", "entity id is 300 characters long, at most 200 fit"),
    ("nan", "parameters must be JSON"),
    ("long verb", "verb is 150 characters long, at most 100 fit"),
    ("nul in entity", "entity id must not contain NUL characters"),
    ("surrogate in entity", "entity id must be Unicode text (it has a lone surrogate)"),
])
def test_what_the_database_cannot_store_fails_that_command_not_every_tick(
    store: SqlStore, what: str, says: str,
) -> None:
    world = World(store)
    engine = world.engine(commands=[MakesBadChildren])
    bad = engine.submit("MakesBadChildren", {"what": what})
    healthy = world.submit_vm(engine, disks=1)
    engine.run_until_idle(max_ticks=200)
    record = store.command(bad)
    assert record is not None and record.status == CommandStatus.ENDED_FAILURE
    assert record.error is not None and says in record.error
    assert store.command(healthy) is not None
    assert store.command(healthy).status == CommandStatus.ENDED_SUCCESS  # type: ignore[union-attr]


class FailingWith(SimulatedAgent):
    """Ends every task failed, with `message`."""

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message

    def poll(self, task_ids: Sequence[str]) -> Mapping[str, TaskReport]:
        return {t: TaskReport(HostStatus.FINISHED, HostResult.FAILURE, self.message)
                for t in task_ids}


def test_an_agent_message_with_a_nul_character_is_stored_readably(store: SqlStore) -> None:
    world = World(store, agent=FailingWith("disk\x00error"))
    engine = world.engine()
    root = world.submit_vm(engine, disks=1)
    engine.run_until_idle(max_ticks=500)
    copy = world.copy_task(root)
    assert copy.message == "disk\\0error"


def test_an_agent_message_with_a_lone_surrogate_is_stored_readably(store: SqlStore) -> None:
    """Text decoded with surrogateescape holds lone surrogates, which no database encoding takes.

    Such text comes from a file name or a subprocess's bytes; one used to fail every write of the
    tick that carried it, for good.
    """
    world = World(store, agent=FailingWith("disk \udcff error"))
    engine = world.engine()
    root = world.submit_vm(engine, disks=1)
    engine.run_until_idle(max_ticks=500)
    # Every task fails, the removal of the partial copy too: the tree ends, rollback_failed.
    assert store.command(root).status == CommandStatus.ROLLBACK_FAILED  # type: ignore[union-attr]
    copy = world.copy_task(root)
    assert copy.message == "disk \\udcff error"
    assert any("disk \\udcff error" in (h.detail or "") for h in store.history(copy.id))


def test_parameters_nested_too_deeply_are_refused_by_name(sqlite_store: SqlStore) -> None:
    nested: dict[str, Any] = {}
    for _ in range(5000):
        nested = {"n": nested}
    engine = World(sqlite_store).engine()
    with pytest.raises(InvalidParameters, match="nested too deeply"):
        engine.submit("AddVmFromTemplate", {"vm": "v", "disks": [{"source": "s"}], "x": nested})


class ChattyAgent(SimulatedAgent):
    """Reports progress in the status field, which is no host status at all."""

    def poll(self, task_ids: Sequence[str]) -> Mapping[str, TaskReport]:
        return {t: TaskReport("copying: 37% of 2 GiB, about 40 s left")  # type: ignore[arg-type]
                for t in task_ids}


def test_a_status_no_host_has_ends_the_task_unknown_instead_of_failing_the_write(
    store: SqlStore,
) -> None:
    world = World(store, agent=ChattyAgent())
    engine = world.engine()
    root = world.submit_vm(engine, disks=1)
    engine.run_until_idle(max_ticks=500)
    copy = world.copy_task(root)
    assert copy.host_status == "unknown"
    assert copy.message is not None and "answered garbage" in copy.message
