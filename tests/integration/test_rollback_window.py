"""A rollback starts at most `Limits.max_opposite_commands_per_tick` opposite commands per tick.

The commands it holds back are settled by the next ticks, and a restart in between finds them again.
The end is the same as a rollback in one tick: every resource reverted once, the root ended on the
failure path, nothing left on the host or in the inventory. Against a SQLite file and the real
PostgreSQL.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import pytest

from persistence import SqlStore
from statemachines import Engine, HostResult, InvalidConfiguration, Limits, Outcome
from statemachines.core.machines.command_machine import CommandStatus
from statemachines.example.vm import (
    STORAGE_AGENT,
    ImageInventory,
    Plan,
    SimulatedAgent,
    add_vm_parameters,
    vm_registry,
)

DISKS = 12
WINDOW = 3
FAILING = 5


def _at_once(verb: str, parameters: Mapping[str, Any]) -> Plan:
    return Plan(result=HostResult.FAILURE if parameters.get("inject_failure")
                else HostResult.SUCCESS, polls=0)


def _engine(store: SqlStore, agent: SimulatedAgent) -> Engine:
    return Engine(store, {STORAGE_AGENT: agent}, vm_registry(),
                  limits=Limits(max_opposite_commands_per_tick=WINDOW))


def _submit(engine: Engine) -> str:
    return engine.submit("AddVmFromTemplate", add_vm_parameters(
        "vm", [f"template-disk{i}" for i in range(DISKS)], [FAILING]))


def _assert_rolled_back_once(store: SqlStore, agent: SimulatedAgent, root: str) -> None:
    commands, tasks = store.tree(root)
    by_id = {c.id: c for c in commands}
    assert by_id[root].status == CommandStatus.ENDED_FAILURE
    assert all(c.status in (CommandStatus.ENDED_FAILURE, CommandStatus.ENDED_SUCCESS)
               for c in commands)
    copies = [c for c in commands if c.type == "CreateCloneOfTemplate"]
    assert {c.outcome for c in copies if c.parameters["image"] != f"vm-disk{FAILING}"} == {
        Outcome.ROLLED_BACK}
    # Each image, the failed copy's partial one included, removed by exactly one opposite.
    removed = Counter(c.entity_id for c in commands if c.type == "RemoveImage")
    assert removed == Counter({f"vm-disk{i}": 1 for i in range(DISKS)})
    assert all(t.status == "cleared" for t in tasks)
    assert not agent.images and not ImageInventory.read_all(store.engine)


def test_a_rollback_takes_its_opposite_commands_a_window_at_a_time(store: SqlStore) -> None:
    agent = SimulatedAgent(decide=_at_once)
    engine = _engine(store, agent)
    root = _submit(engine)
    started: list[int] = []
    for _ in range(100):
        if engine.is_idle():
            break
        started.append(engine.tick().compensations_started)
    assert engine.is_idle()
    assert sum(started) == DISKS
    # The window holds back new work only: the failed copy's own revert (its work failed,
    # so it is not held) may go beside a full window.
    assert max(started) <= WINDOW + 1
    assert len([n for n in started if n]) >= DISKS // (WINDOW + 1)
    _assert_rolled_back_once(store, agent, root)


def test_a_restart_while_commands_wait_for_the_window_finishes_the_rollback(
        store: SqlStore) -> None:
    agent = SimulatedAgent(decide=_at_once)
    engine = _engine(store, agent)
    root = _submit(engine)
    for _ in range(100):
        engine.tick()
        if engine._view.resettle:  # some copies wait for a later window
            break
    assert engine._view.resettle, "the window never held a command back"
    # A crash: this engine's memory is gone; a new one reads the database.
    after = _engine(store, agent)
    after.run_until_idle(poll_interval=0)
    _assert_rolled_back_once(store, agent, root)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_the_window_is_a_positive_count(bad: object) -> None:
    with pytest.raises(InvalidConfiguration, match="max_opposite_commands_per_tick"):
        Limits(max_opposite_commands_per_tick=bad)  # type: ignore[arg-type]
