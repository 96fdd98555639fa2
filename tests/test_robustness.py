"""Outages, stale engines and broken hooks: each stays contained and visible."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from persistence import SqlStore
from statemachines import Compensation, Engine, ResourceRef, SimulatedAgent
from statemachines.command import CommandContext, CommandRegistry
from statemachines.example import EXAMPLE_COMMANDS, CreateCloneOfTemplate
from tests.worlds import FakeClock, World


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
    engine = world.engine()
    root = world.submit_vm(engine, disks=2)
    engine.run_until_idle()
    commands, tasks = sqlite_store.tree(root)
    assert next(c.status for c in commands if c.id == root) == "ended_success"
    assert all(t.host_result == "success" for t in tasks)


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

    def revert(self, ctx: CommandContext) -> Compensation:
        return Compensation("RemoveImage", {"image": "not a valid name!"})


def test_an_unbuildable_opposite_command_fails_that_command_only(sqlite_store: SqlStore) -> None:
    world = World(sqlite_store)
    engine = Engine(sqlite_store, {"storage": world.agent},
                    CommandRegistry([*EXAMPLE_COMMANDS, BrokenOpposite]),
                    clock=world.clock, sleep=world.clock.sleep)
    broken = engine.submit("BrokenOppositeClone", {"vm": "v", "source": "t", "image": "v-d0",
                                                   "inject_failure": True},
                           entity=ResourceRef("image", "v-d0"))
    healthy = world.submit_vm(engine, disks=2, fail=(0,), vm="w")
    engine.run_until_idle()

    record = sqlite_store.command(broken)
    assert record is not None and record.status == "rollback_failed"
    assert record.error is not None and "invalid parameters for RemoveImage" in record.error
    commands, _ = sqlite_store.tree(healthy)
    assert next(c.status for c in commands if c.id == healthy) == "ended_failure"
    assert sum(c.type == "RemoveImage" for c in commands) == 2
