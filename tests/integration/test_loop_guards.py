"""No endless rollback: each image is compensated at most once, failures are bounded."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import pytest

from persistence import SqlStore
from statemachines import CommandStatus, EngineDidNotSettle, HostResult, RevertPolicy, RevertState
from statemachines.core.commands.compensation_policy import Decision, decide
from statemachines.core.records.revert_state import ResourceRef, ResourceRevert
from statemachines.example.vm import Plan
from tests.worlds import World, images_in

IMAGE = ResourceRef("image", "vm1-disk0")


@pytest.mark.parametrize(
    ("exists", "state", "attempts", "expected"),
    [
        (True, RevertState.NONE, 0, Decision.COMPENSATE),
        (False, RevertState.NONE, 0, Decision.NOTHING_TO_REVERT),
        (True, RevertState.REVERTED, 1, Decision.NOTHING_TO_REVERT),
        (True, RevertState.REVERTING, 1, Decision.COMPENSATE),
        (True, RevertState.REVERTING, 3, Decision.GIVE_UP),
        (True, RevertState.REVERT_FAILED, 3, Decision.GIVE_UP),
    ],
)
def test_decision_table(exists: bool, state: RevertState, attempts: int,
                        expected: Decision) -> None:
    revert = ResourceRevert(IMAGE, "owner", state, attempts)
    assert decide(RevertPolicy(max_attempts=3), exists, revert) == expected


def test_second_compensation_of_the_same_image_never_runs(store: SqlStore) -> None:
    world = World(store)
    engine = world.engine()
    root = world.submit_vm(engine, disks=4, fail=(0,))
    engine.run_until_idle()

    commands, _ = store.tree(root)
    removals = Counter(c.entity_id for c in commands if c.type == "RemoveImage")
    assert removals == {f"vm1-disk{i}": 1 for i in range(4)}
    clones = [c for c in commands if c.type == "CreateCloneOfTemplate"]
    # end_with_failure ran again after the compensation ended and found nothing left to revert.
    for clone in clones:
        details = [h.detail for h in store.history(clone.id) if h.trigger == "rolled_back"]
        assert details == [f"image:{clone.entity_id} no longer in the inventory"]
    assert {r.resource.id: r.state for r in store.reverts()} == {
        f"vm1-disk{i}": RevertState.REVERTED for i in range(4)}


def _deletes_fail(verb: str, parameters: Mapping[str, Any]) -> Plan:
    if verb == "delete_image":
        return Plan(result=HostResult.FAILURE)
    return Plan(result=HostResult.FAILURE if parameters.get("inject_failure") else
                HostResult.SUCCESS)


def test_failing_compensation_is_retried_with_backoff_then_left_revert_failed(
    store: SqlStore,
) -> None:
    world = World(store, policy=RevertPolicy(max_attempts=3, backoff_seconds=10))
    world.agent.decide = _deletes_fail
    engine = world.engine()
    root = world.submit_vm(engine, disks=2, fail=(1,))
    engine.run_until_idle()

    commands, _ = store.tree(root)
    by_type = Counter((c.type, c.status) for c in commands)
    # 3 attempts for each of 2 images
    assert by_type[("RemoveImage", CommandStatus.ENDED_FAILURE)] == 6
    assert by_type[("CreateCloneOfTemplate", CommandStatus.ROLLBACK_FAILED)] == 2
    root_record = next(c for c in commands if c.id == root)
    # the tree's rollback did not complete
    assert root_record.status == CommandStatus.ROLLBACK_FAILED
    assert "a command under it could not be rolled back" in (root_record.error or "")
    reverts = {r.resource.id: r for r in store.reverts()}
    assert {k: (r.state, r.attempts) for k, r in reverts.items()} == {
        "vm1-disk0": (RevertState.REVERT_FAILED, 3), "vm1-disk1": (RevertState.REVERT_FAILED, 3)}
    starts = sorted(c.not_before for c in commands
                    if c.type == "RemoveImage" and c.entity_id == "vm1-disk0")
    assert starts[1] - starts[0] >= 0  # first attempt at once
    assert starts[2] - starts[1] >= 10  # back-off grows


def test_without_the_revert_state_guard_a_failing_compensation_loops(
    store: SqlStore,
) -> None:
    """The guard is what stops the loop: switched off, the engine never settles."""
    world = World(store, policy=RevertPolicy(revert_state_guard=False))
    world.agent.decide = _deletes_fail
    engine = world.engine()
    world.submit_vm(engine, disks=1, fail=(0,))
    with pytest.raises(EngineDidNotSettle):
        engine.run_until_idle(max_ticks=200)


def test_a_reused_image_name_is_compensated_again(store: SqlStore) -> None:
    """The revert state belongs to the command that made the image, not to the name."""
    world = World(store)
    engine = world.engine()
    for _ in range(2):
        root = world.submit_vm(engine, disks=2, fail=(1,), vm="vm1")
        engine.run_until_idle()
        commands, _ = store.tree(root)
        assert sum(c.type == "RemoveImage" for c in commands) == 2
        assert images_in(store) == [] and world.agent.images == set()
