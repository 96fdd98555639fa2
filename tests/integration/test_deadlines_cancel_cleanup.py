"""Deadlines abort tasks on their agents, operators cancel roots, cleanup retries give-ups."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from persistence import SqlStore
from statemachines import (
    CommandStatus,
    Engine,
    HostResult,
    Limits,
    NotCancellable,
    Outcome,
    RevertState,
)
from statemachines.example.vm import Plan, SimulatedAgent
from statemachines.testing import check_safety, fail_on, take_snapshot
from tests.factories import make_engine
from tests.worlds import World, images_in, vm_store

HANGS = 10**9  # polls before a task would end by itself: never, in a test


def _plan(hang: set[str] = frozenset(), failing_deletes: set[str] = frozenset()) -> Any:
    def plan(verb: str, parameters: Mapping[str, Any]) -> Plan:
        image = str(parameters.get("image"))
        if verb == "delete_image":
            return Plan(result=HostResult.FAILURE if image in failing_deletes
                        else HostResult.SUCCESS)
        if image in hang:
            return Plan(polls=HANGS)
        return Plan(result=HostResult.FAILURE if parameters.get("inject_failure")
                    else HostResult.SUCCESS)
    return plan


def _engine(world: World, limits: Limits | None = None) -> Engine:
    return world.engine(limits=limits)


def _root(store: SqlStore, root: str) -> Any:
    record = store.command(root)
    assert record is not None
    return record


def test_a_task_past_its_deadline_is_aborted_on_its_agent_and_fails(
    store: SqlStore,
) -> None:
    world = World(store, agent=SimulatedAgent(decide=_plan(hang={"vm1-disk1"})))
    engine = _engine(world, Limits(task_timeout=120))
    root = world.submit_vm(engine, disks=2)
    engine.run_until_idle()
    _, tasks = store.tree(root)
    hung = next(t for t in tasks if t.parameters["image"] == "vm1-disk1"
                and t.verb == "copy_image")
    assert world.agent.aborted == [hung.id]
    assert hung.host_result == "failure"
    assert [h.trigger for h in store.history(hung.id)][:4] == [
        "create", "accepted", "abort", "report_end"]
    abort = next(h for h in store.history(hung.id) if h.trigger == "abort")
    assert "deadline passed" in (abort.detail or "")
    assert abort.at - hung.created_at >= 120
    assert _root(store, root).status == CommandStatus.ENDED_FAILURE
    assert world.agent.images == set() and images_in(store) == []


class CannotAbort(SimulatedAgent):
    """Keeps reporting the task running, whatever it is asked."""

    def abort(self, task_id: str) -> None:
        raise ConnectionError("abort is not supported by this host")


def test_an_abort_the_agent_never_confirms_ends_unknown_after_the_grace(
    store: SqlStore,
) -> None:
    world = World(store, agent=CannotAbort(decide=_plan(hang={"vm1-disk0"})))
    engine = _engine(world, Limits(task_timeout=60, abort_grace=30))
    root = world.submit_vm(engine, disks=1)
    engine.run_until_idle(max_ticks=10_000)
    copy = world.copy_task(root)
    assert copy.host_status == "unknown"
    assert copy.message is not None and "did not confirm the abort within 30 s" in copy.message
    ended = next(h for h in store.history(copy.id) if h.trigger == "report_end")
    assert ended.at - copy.created_at >= 90


def test_cancelling_a_root_aborts_its_tasks_and_compensates_what_succeeded(
    store: SqlStore,
) -> None:
    world = World(store, agent=SimulatedAgent(decide=_plan(hang={"vm1-disk2"})))
    engine = _engine(world)
    root = world.submit_vm(engine, disks=3)
    for _ in range(5):  # disks 0 and 1 are copied; disk 2 hangs
        engine.tick()
        world.clock.now += 1
    assert world.agent.images == {"vm1-disk0", "vm1-disk1"}
    other = vm_store(store.engine.url.render_as_string(hide_password=False))
    make_engine(other, {}).cancel(root, "operator changed their mind")
    other.dispose()
    engine.run_until_idle()
    record = _root(store, root)
    assert (record.status, record.outcome) == (CommandStatus.ENDED_FAILURE, Outcome.CANCELLED)
    assert record.error == "cancelled: operator changed their mind"
    commands, _ = store.tree(root)
    assert len(world.agent.aborted) == 1
    assert sum(c.type == "RemoveImage" and c.outcome == Outcome.REVERTED for c in commands) == 3
    assert world.agent.images == set() and images_in(store) == []
    assert store.cancel_requests() == {}
    assert any(h.trigger == "cancel" for h in store.history(root))


def test_cancelling_a_root_before_it_ran_refuses_it(store: SqlStore) -> None:
    world = World(store)
    engine = _engine(world)
    root = world.submit_vm(engine, disks=2)
    engine.cancel(root)
    engine.run_until_idle()
    record = _root(store, root)
    assert (record.status, record.outcome) == (CommandStatus.ENDED_FAILURE, Outcome.CANCELLED)
    assert world.agent.started == []


def test_only_running_roots_can_be_cancelled(store: SqlStore) -> None:
    world = World(store)
    engine = _engine(world)
    root = world.submit_vm(engine, disks=1)
    engine.tick()
    child = next(c for c in store.tree(root)[0] if c.id != root)
    with pytest.raises(NotCancellable, match="no command with id 'nope'"):
        engine.cancel("nope")
    with pytest.raises(NotCancellable, match=f"not a root: cancel its root {root}"):
        engine.cancel(child.id)
    engine.run_until_idle()
    with pytest.raises(NotCancellable, match="has already ended ended_success"):
        engine.cancel(root)


def test_cleanup_retries_what_was_given_up_once_the_fault_is_gone(store: SqlStore) -> None:
    world = World(store, agent=SimulatedAgent(
        decide=_plan(failing_deletes={"vm1-disk1"})))
    engine = _engine(world)
    root = world.submit_vm(engine, disks=3, fail=(0,))
    engine.run_until_idle()
    assert _root(store, root).status == CommandStatus.ROLLBACK_FAILED
    assert world.agent.images == {"vm1-disk1"}
    failed = [r for r in store.reverts() if r.state == RevertState.REVERT_FAILED]
    assert [r.resource.id for r in failed] == ["vm1-disk1"]

    world.agent.decide = _plan()  # the fault is gone
    retried = engine.cleanup()
    assert [r.resource.id for r in retried] == ["vm1-disk1"]
    engine.run_until_idle()
    assert world.agent.images == set() and images_in(store) == []
    assert {r.state for r in store.reverts()} == {RevertState.REVERTED}
    assert engine.cleanup() == []  # nothing left to retry
    fail_on(check_safety(take_snapshot(store, [root])), "after the cleanup")
    commands, _ = store.tree(root)
    last = max((c for c in commands if c.type == "RemoveImage" and c.entity_id == "vm1-disk1"),
               key=lambda c: c.created_at)
    assert (last.execution_reason, last.outcome) == ("ROLLBACK_FLOW", Outcome.REVERTED)
    # The tree no longer reads as broken: the clone that gave up and the VM read cleaned_up,
    # their status stays what their end was (ended once), their error keeps the cause.
    by_id = {c.id: c for c in commands}
    clone = by_id[last.parent_id]  # type: ignore[index]
    top = by_id[root]
    for command in (clone, top):
        assert (command.status, command.outcome) == (CommandStatus.ROLLBACK_FAILED,
                                                     Outcome.CLEANED_UP), command.type
        assert command.error is not None and "could not be" in command.error
        assert [h.detail for h in store.history(command.id) if h.trigger == "cleanup"][-1] == (
            "a cleanup reverted what was left: nothing it made is left")
    assert top.error is not None and top.error.startswith("CreateCloneOfTemplate ")
    assert all(c.outcome != Outcome.REVERT_FAILED for c in commands)


def test_a_cleanup_that_undoes_part_of_what_was_left_says_only_that(store: SqlStore) -> None:
    """Two images are left, and the cleanup reverts one of them.

    Its clone reads cleaned_up; the other clone and the VM still read as having left something
    behind.
    """
    world = World(store, agent=SimulatedAgent(
        decide=_plan(failing_deletes={"vm1-disk1", "vm1-disk2"})))
    engine = _engine(world)
    root = world.submit_vm(engine, disks=3, fail=(0,))
    engine.run_until_idle()
    world.agent.decide = _plan(failing_deletes={"vm1-disk2"})
    engine.cleanup()
    engine.run_until_idle()
    commands, _ = store.tree(root)
    clones = {c.entity_id: c.outcome for c in commands if c.type == "CreateCloneOfTemplate"}
    assert clones["vm1-disk1"] == Outcome.CLEANED_UP
    assert clones["vm1-disk2"] == Outcome.REVERT_FAILED
    assert _root(store, root).outcome == Outcome.REVERT_FAILED


def test_cleanup_that_fails_again_leaves_the_resource_revert_failed(store: SqlStore) -> None:
    world = World(store, agent=SimulatedAgent(
        decide=_plan(failing_deletes={"vm1-disk0"})))
    engine = _engine(world)
    world.submit_vm(engine, disks=2, fail=(1,))
    engine.run_until_idle()
    assert len(engine.cleanup()) == 1
    engine.run_until_idle()
    revert = next(r for r in store.reverts() if r.resource.id == "vm1-disk0")
    assert revert.state == RevertState.REVERT_FAILED
    assert revert.attempts == 4


def test_nothing_waits_silently(store: SqlStore) -> None:
    world = World(store, agent=SimulatedAgent(decide=_plan(hang={"vm1-disk0"})))
    engine = _engine(world, Limits(task_timeout=20))
    root = world.submit_vm(engine, disks=1)
    notices: list[str] = []
    engine.run_until_idle(on_wait=notices.append, notice_seconds=5)
    assert notices, "the engine waited on a hung copy without saying so"
    assert notices[0].startswith("waiting for 1 task(s) on agent 'storage'; oldest: copy_image")
    assert "deadline in" in notices[0]
    assert _root(store, root).status == CommandStatus.ENDED_FAILURE
