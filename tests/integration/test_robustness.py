"""Outages, stale engines and broken hooks: each stays contained and visible."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import pytest

from persistence import SqlStore
from statemachines import (
    Command,
    CommandStatus,
    Compensation,
    Engine,
    HostResult,
    ResourceRef,
    RevertPolicy,
    TaskStatus,
)
from statemachines.core.commands.command import CommandContext, CommandRegistry
from statemachines.core.errors import UnknownAgent
from statemachines.example.vm import VM_COMMANDS, CreateCloneOfTemplate, Plan, SimulatedAgent
from tests.factories import make_engine
from tests.worlds import FakeClock, World, images_in, vm_store


class OutageAgent(SimulatedAgent):
    """Unavailable until the fake clock reaches `back_at`."""

    def __init__(self, clock: FakeClock, back_at: float) -> None:
        super().__init__()
        self.clock = clock
        self.back_at = back_at

    def start(self, task_id: str, verb: str, parameters: Mapping[str, Any]) -> None:
        self.unavailable = self.clock.now < self.back_at
        super().start(task_id, verb, parameters)


def test_a_brief_agent_outage_is_ridden_out_with_backoff(sqlite_store: SqlStore) -> None:
    clock = FakeClock()
    world = World(sqlite_store, agent=OutageAgent(clock, back_at=clock.now + 3.0), clock=clock)
    world.run_to_success(world.engine(), disks=2)


def test_a_stale_engine_never_restarts_tasks_another_engine_finished(
    sqlite_store: SqlStore,
) -> None:
    world = World(sqlite_store)
    first = world.engine()
    root = world.submit_vm(first, disks=2, fail=(1,))
    first.tick()  # executes: two pending copy tasks are committed
    second = world.engine()
    second.recover()  # sees those two tasks as pending
    first.run_until_idle()  # copies, fails, compensates and clears everything
    started = list(world.agent.started)

    second.run_until_idle()
    assert world.agent.started == started, "a stale engine started tasks again"
    assert world.agent.images == set() and world.agent.tasks == {}
    assert set(world.ends_per_command(root).values()) == {1}


class BrokenOpposite(CreateCloneOfTemplate):
    type_name = "BrokenOppositeClone"

    def revert(self, ctx: CommandContext, resource: ResourceRef) -> Compensation:
        return Compensation("RemoveImage", {"image": "not a valid name!"})


def test_an_unbuildable_opposite_command_fails_that_command_only(sqlite_store: SqlStore) -> None:
    world = World(sqlite_store)
    engine = world.engine(commands=[BrokenOpposite])
    broken = engine.submit("BrokenOppositeClone", {"vm": "v", "source": "t", "image": "v-d0",
                                                   "inject_failure": True},
                           entity=ResourceRef("image", "v-d0"))
    healthy = world.submit_vm(engine, disks=2, fail=(0,), vm="w")
    engine.run_until_idle()

    record = sqlite_store.command(broken)
    assert record is not None and record.status == CommandStatus.ROLLBACK_FAILED
    assert record.error is not None and "invalid parameters for RemoveImage" in record.error
    commands, _ = sqlite_store.tree(healthy)
    assert next(c.status for c in commands if c.id == healthy) == CommandStatus.ENDED_FAILURE
    assert sum(c.type == "RemoveImage" for c in commands) == 2


class ClearNeverWorks(SimulatedAgent):
    """Never clears, and never deletes: the rollback waits on long back-offs meanwhile."""

    def __init__(self) -> None:
        super().__init__(decide=lambda verb, params: Plan(
            result=HostResult.FAILURE if verb == "delete_image" or params.get("inject_failure")
            else HostResult.SUCCESS))

    def clear(self, task_id: str) -> None:
        raise ConnectionError("clear refused")


def test_exhausted_clears_do_not_spin_the_loop(sqlite_store: SqlStore) -> None:
    clock = FakeClock()
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.sleep(seconds)

    world = World(sqlite_store, agent=ClearNeverWorks(), clock=clock,
                  policy=RevertPolicy(backoff_seconds=100))
    engine = world.engine(sleep=sleep)
    root = world.submit_vm(engine, disks=2, fail=(1,))
    engine.run_until_idle()
    assert engine.is_idle()
    assert sum(1 for s in sleeps if s <= 0) < 10, "the loop slept 0 s again and again"
    assert max(sleeps) >= 100  # it slept through the compensation back-off instead
    _, tasks = sqlite_store.tree(root)
    assert {t.status for t in tasks} == {TaskStatus.CLEAR_FAILED}
    assert all("clear refused" in (t.message or "") for t in tasks)


class UsesOtherAgent(Command):
    type_name = "UsesOtherAgent"

    def execute(self, ctx: CommandContext) -> None:
        ctx.start_task("other", "delete_image", {"image": "x"})


def test_a_reload_that_fails_keeps_failing(sqlite_store: SqlStore) -> None:
    """A half-loaded view must never be ticked on: it would act on another engine's work."""
    world = World(sqlite_store)
    registry = CommandRegistry([*VM_COMMANDS, UsesOtherAgent])
    full = Engine(sqlite_store, {"storage": world.agent, "other": SimulatedAgent()}, registry,
                  clock=world.clock)
    world.submit_vm(full, disks=1)
    full.tick()  # a pending copy task
    partial = Engine(sqlite_store, {"storage": world.agent}, registry, clock=world.clock)
    partial.recover()
    full.submit("UsesOtherAgent", {})
    full.tick()  # starts the copy (partial's view is now stale) and adds a task on "other"
    for _ in range(2):
        with pytest.raises(UnknownAgent, match="no agent named 'other' \\(needed by task"):
            partial.tick()


class StartsTaskWhenEnding(CreateCloneOfTemplate):
    type_name = "StartsTaskWhenEnding"

    def end_with_failure(self, ctx: CommandContext) -> None:
        ctx.start_task("storage", "delete_image", {"image": self.image})


def test_end_hooks_cannot_start_tasks(sqlite_store: SqlStore) -> None:
    world = World(sqlite_store)
    engine = world.engine(commands=[StartsTaskWhenEnding])
    command_id = engine.submit("StartsTaskWhenEnding",
                               {"vm": "v", "source": "t", "image": "v-d0", "inject_failure": True})
    engine.run_until_idle(max_ticks=100)
    record = sqlite_store.command(command_id)
    assert record is not None and record.status == CommandStatus.ROLLBACK_FAILED
    assert record.error is not None and "start_task is only allowed in execute" in record.error
    _, tasks = sqlite_store.tree(command_id)
    assert [t.verb for t in tasks] == ["copy_image"]


def test_two_engines_racing_on_one_database_end_everything_once(store: SqlStore) -> None:
    second_store = vm_store(store.engine.url.render_as_string(hide_password=False))
    world = World(store)
    first = world.engine()
    second = make_engine(second_store, world.agent, clock=world.clock)
    roots = [world.submit_vm(first, disks=3, fail=(1,), vm=f"vm{i}") for i in range(3)]
    errors: list[BaseException] = []

    def run(engine: Engine) -> None:
        try:
            engine.run_until_idle(max_ticks=2_000)
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=run, args=(e,)) for e in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for root in roots:
        assert set(world.ends_per_command(root).values()) == {1}
        commands, _ = store.tree(root)
        assert next(c.status for c in commands if c.id == root) == CommandStatus.ENDED_FAILURE
    assert images_in(store) == []
    second_store.dispose()


class StartsButTimesOut(SimulatedAgent):
    """Starts every task, then loses the answer: the engine sees only errors."""

    def start(self, task_id: str, verb: str, parameters: Mapping[str, Any]) -> None:
        super().start(task_id, verb, parameters)
        raise TimeoutError("answer lost")


def test_a_start_that_went_through_despite_errors_is_not_declared_failed(
    sqlite_store: SqlStore,
) -> None:
    world = World(sqlite_store, agent=StartsButTimesOut())
    world.run_to_success(world.engine(), disks=2)
    assert world.agent.images == {"vm1-disk0", "vm1-disk1"}
