"""Commands that name the same resource: it is compensated once, whatever their number.

Found by the property suite: two siblings sharing their parent's image both saw it in the
inventory and both started a RemoveImage. Now one opposite command per resource is in flight at
a time; the others wait for it, then the existence guard finds nothing left.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from persistence import SqlStore
from statemachines import CommandStatus, Engine, HostResult, Outcome, ResourceRef
from statemachines.example.vm import tree_registry
from statemachines.example.vm.scenario import image_effect, image_of
from statemachines.testing import ControlledAgent, ManualClock
from tests.factories import make_engine
from tests.worlds import images_in, vm_store

SHARED_BY_TWO_CHILDREN: dict[str, Any] = {
    "name": "n0", "resource": "img0", "tasks": 1, "raise_in_execute": True,
    "children": [
        {"name": f"n0.{i}", "resource": "img0", "shared": True, "tasks": 1, "children": []}
        for i in range(2)
    ],
}


def _engine(store: SqlStore, agent: ControlledAgent, clock: ManualClock) -> Engine:
    return make_engine(store, agent, registry=tree_registry(), clock=clock)


def _agent() -> ControlledAgent:
    agent = ControlledAgent(effect=image_effect, resource_of=image_of,
                            compensation_verbs=frozenset({"delete_image"}))
    agent.autopilot = _succeed
    return agent


def _succeed(verb: str, parameters: Any) -> HostResult:
    return HostResult.SUCCESS


def _removals(store: SqlStore, root: str) -> Counter[str]:
    commands, _ = store.tree(root)
    return Counter(c.outcome or "" for c in commands if c.type == "RemoveImage")


def test_siblings_sharing_a_resource_compensate_it_once(tmp_path: Path) -> None:
    store = vm_store(str(tmp_path / "endaction.db"))
    agent, clock = _agent(), ManualClock()
    engine = _engine(store, agent, clock)
    root = engine.submit("BuildTree", SHARED_BY_TWO_CHILDREN, entity=ResourceRef("image", "img0"))
    engine.run_until_idle()

    assert _removals(store, root) == {Outcome.REVERTED: 1}
    commands, _ = store.tree(root)
    assert {c.status for c in commands if c.type == "BuildTree"} == {CommandStatus.ENDED_FAILURE}
    assert agent.resources == set() and images_in(store) == []
    store.dispose()


def test_a_command_waiting_for_anothers_compensation_survives_a_restart(tmp_path: Path) -> None:
    store = vm_store(str(tmp_path / "endaction.db"))
    agent, clock = _agent(), ManualClock()
    agent.autopilot = None  # tasks run until the test ends them
    engine = _engine(store, agent, clock)
    root = engine.submit("BuildTree", SHARED_BY_TWO_CHILDREN, entity=ResourceRef("image", "img0"))
    for _ in range(3):
        engine.tick()
    for task_id in agent.running():  # the copies end; the tree fails (the root raised)
        agent.finish(task_id, HostResult.SUCCESS, effect=True)
    for _ in range(3):
        engine.tick()
    commands, _ = store.tree(root)
    assert sum(c.type == "RemoveImage" for c in commands) == 1  # one in flight, one waiting
    store.dispose()

    store = vm_store(str(tmp_path / "endaction.db"))  # the engine died; a new one recovers
    agent.autopilot = _succeed
    engine = _engine(store, agent, clock)
    engine.recover()
    engine.run_until_idle()
    assert _removals(store, root) == {Outcome.REVERTED: 1}
    commands, _ = store.tree(root)
    assert all(c.status == CommandStatus.ENDED_FAILURE for c in commands)
    assert agent.resources == set() and images_in(store) == []
    store.dispose()


def test_children_built_from_a_slice_of_frozen_parameters_are_accepted(tmp_path: Path) -> None:
    """Parameters are frozen (read-only mappings).

    Handing a part of them to add_child, as BuildTree does with its children, used to be refused as
    'not JSON'.
    """
    store = vm_store(str(tmp_path / "endaction.db"))
    agent, clock = _agent(), ManualClock()
    engine = _engine(store, agent, clock)
    tree = {"name": "n0", "children": [{"name": "n0.0", "children": [{"name": "n0.0.0"}]}]}
    root = engine.submit("BuildTree", tree)
    engine.run_until_idle()
    commands, _ = store.tree(root)
    assert sorted(c.status for c in commands) == [CommandStatus.ENDED_SUCCESS] * 3
    store.dispose()
