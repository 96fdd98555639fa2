"""The shortest path a root can take, which is what a user waiting on one root feels.

On an agent that answers at once, a root of two disks ends in its second committed tick. The first
executes it (a worker claims it in that same tick's transaction) and writes its children and their
tasks; the second starts the tasks, polls them in the same exchange, applies the ended answers and
ends the children, the group and the root in one transaction. A third only clears the tasks on the
agent. A root whose copy fails takes one tick more: the second also executes the opposite commands,
whose tasks start, end and end the root in the third. Against a SQLite file and the real PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from persistence import SqlStore
from statemachines import Engine, HostResult, WorkerLease, submit_root
from statemachines.core.machines.command_machine import CommandStatus
from statemachines.example.vm import (
    STORAGE_AGENT,
    Plan,
    SimulatedAgent,
    add_vm_parameters,
    vm_registry,
)


def _at_once(verb: str, parameters: Mapping[str, Any]) -> Plan:
    return Plan(result=HostResult.FAILURE if parameters.get("inject_failure")
                else HostResult.SUCCESS, polls=0)


@pytest.mark.parametrize("as_worker", [False, True], ids=["single engine", "worker"])
@pytest.mark.parametrize("fail", [(), (1,)], ids=["made", "rolled back"])
def test_a_root_of_two_disks_ends_in_its_second_tick(store: SqlStore, as_worker: bool,
                                                     fail: tuple[int, ...]) -> None:
    agent = SimulatedAgent(decide=_at_once)
    engine = Engine(store, {STORAGE_AGENT: agent}, vm_registry(),
                    lease=WorkerLease(owner="w") if as_worker else None)
    root = submit_root(store, vm_registry(), "AddVmFromTemplate",
                       add_vm_parameters("vm", ["template-disk0", "template-disk1"],
                                         list(fail))).id
    first = engine.tick()
    assert first.committed
    assert store.command(root).status == CommandStatus.WAITING  # type: ignore[union-attr]
    second = engine.tick()
    assert second.committed
    if fail:
        assert store.command(root).status == CommandStatus.ROLLING_BACK  # type: ignore[union-attr]
        third = engine.tick()
        assert third.committed and third.ended_roots == [root]
        assert store.command(root).status == CommandStatus.ENDED_FAILURE  # type: ignore[union-attr]
        assert not agent.images
        return
    assert second.ended_roots == [root]
    assert store.command(root).status == CommandStatus.ENDED_SUCCESS  # type: ignore[union-attr]
    third = engine.tick()  # the clears; then nothing is left, not even the lease row
    assert third.committed and store.leases() == []
