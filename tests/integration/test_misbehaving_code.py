"""Hooks that raise and agents that misbehave: each gets a bounded, recorded, visible result."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from persistence import SqlStore
from statemachines import (
    CommandRegistry,
    CommandStatus,
    Engine,
    ExecutionReason,
    HostResult,
    HostStatus,
    Limits,
    Outcome,
    ResourceRef,
    RevertState,
    TaskReport,
)
from statemachines.core.commands.command import CommandContext
from statemachines.example.vm import (
    VM_COMMANDS,
    CreateCloneOfTemplate,
    Plan,
    RemoveImage,
    SimulatedAgent,
)
from tests.worlds import World, images_in


def _engine(world: World, *commands: type, limits: Limits | None = None) -> Engine:
    return world.engine(commands=commands, limits=limits)


def _clone(image: str) -> dict[str, Any]:
    return {"vm": "v", "source": "t", "image": image, "inject_failure": False}


class FailsToFinish(CreateCloneOfTemplate):
    """Its copy succeeds, but its success bookkeeping raises."""

    type_name = "FailsToFinish"

    def end_successfully(self, ctx: CommandContext) -> None:
        super().end_successfully(ctx)
        raise RuntimeError("could not register the disk")


def test_an_end_successfully_that_raises_takes_the_failure_path(store: SqlStore) -> None:
    world = World(store)
    engine = _engine(world, FailsToFinish)
    command_id = engine.submit("FailsToFinish", _clone("v-d0"),
                               entity=ResourceRef("image", "v-d0"))
    engine.run_until_idle()
    record = store.command(command_id)
    assert record is not None
    assert record.status == CommandStatus.ENDED_FAILURE, (
        "a failed end_successfully must not end in success")
    assert record.error is not None
    assert "end_successfully raised RuntimeError: could not register the disk" in record.error
    # Its own end failed: the failure started here, and what it made was undone.
    assert record.outcome == Outcome.FAILED
    assert [r.state for r in store.reverts()] == [RevertState.REVERTED]
    assert world.agent.images == set() and images_in(store) == []


class BrokenRemoval(RemoveImage):
    """Removes the image on the agent, then its bookkeeping raises."""

    type_name = "RemoveImage"

    def end_with_failure(self, ctx: CommandContext) -> None:
        raise RuntimeError("inventory is read-only")


def _vm_with_removal(store: SqlStore, removal: type[RemoveImage]) -> str:
    """A 2-disk VM whose disk 1 fails, rolled back with this RemoveImage instead."""
    world = World(store)
    registry = CommandRegistry([c for c in VM_COMMANDS if c is not RemoveImage])
    registry.register(removal)
    engine = world.engine(registry=registry)
    root = world.submit_vm(engine, disks=2, fail=(1,))
    engine.run_until_idle()
    return root


def test_an_opposite_command_whose_end_raises_is_not_run_again(store: SqlStore) -> None:
    """It used to run the delete that had already succeeded twice more."""
    root = _vm_with_removal(store, BrokenRemoval)
    commands, tasks = store.tree(root)
    deletes = Counter(str(t.parameters["image"]) for t in tasks if t.verb == "delete_image")
    assert deletes == {"vm1-disk0": 1, "vm1-disk1": 1}
    assert next(c.status for c in commands if c.id == root) == CommandStatus.ROLLBACK_FAILED
    removals = [c for c in commands if c.type == "RemoveImage"]
    assert all(c.status == CommandStatus.ROLLBACK_FAILED
               and "inventory is read-only" in (c.error or "") for c in removals)
    assert {r.state for r in store.reverts()} == {RevertState.REVERT_FAILED}


class PollRaises(SimulatedAgent):
    def poll(self, task_ids: Sequence[str]) -> Mapping[str, TaskReport]:
        raise ConnectionError("host unreachable")


class PollAnswersAList(SimulatedAgent):
    def poll(self, task_ids: Sequence[str]) -> Any:
        return list(task_ids)


def test_an_agent_whose_polls_always_raise_is_given_up_on(store: SqlStore) -> None:
    world = World(store, agent=PollRaises())
    engine = _engine(world, limits=Limits(max_poll_failures=4))
    root = world.submit_vm(engine, disks=1)
    engine.run_until_idle(max_ticks=500)
    commands, tasks = store.tree(root)
    copy = next(t for t in tasks if t.verb == "copy_image")
    assert copy.host_status == "unknown"
    assert copy.message is not None
    assert "failed 4 polls" in copy.message and "ConnectionError: host unreachable" in copy.message
    assert next(c.status for c in commands if c.id == root) in (
        CommandStatus.ENDED_FAILURE, CommandStatus.ROLLBACK_FAILED)
    assert engine.is_idle()


def test_an_agent_that_answers_polls_with_garbage_is_given_up_on(store: SqlStore) -> None:
    world = World(store, agent=PollAnswersAList())
    engine = _engine(world, limits=Limits(max_poll_failures=3))
    root = world.submit_vm(engine, disks=1)
    engine.run_until_idle(max_ticks=500)
    copy = world.copy_task(root)
    assert copy.host_status == "unknown"
    assert copy.message is not None and "list, not a mapping" in copy.message


def test_a_compensation_retried_after_a_failure_reads_as_one_failed_attempt_then_reverted(
    store: SqlStore,
) -> None:
    failures = {"left": 1}

    def plan(verb: str, parameters: Mapping[str, Any]) -> Plan:
        if verb == "delete_image" and failures["left"] > 0:
            failures["left"] -= 1
            return Plan(result=HostResult.FAILURE)
        return Plan(result=HostResult.FAILURE if parameters.get("inject_failure")
                    else HostResult.SUCCESS)

    world = World(store, agent=SimulatedAgent(decide=plan))
    engine = world.engine()
    root = world.submit_vm(engine, disks=1, fail=(0,))
    engine.run_until_idle()
    commands, _ = store.tree(root)
    removals = sorted((c.created_at, c.outcome) for c in commands if c.type == "RemoveImage")
    assert [outcome for _, outcome in removals] == [Outcome.ATTEMPT_FAILED, Outcome.REVERTED]
    clone = next(c for c in commands if c.type == "CreateCloneOfTemplate")
    # Its own copy failed (so it reads failed, naming why); its partial image was undone.
    assert (clone.status, clone.outcome) == (CommandStatus.ENDED_FAILURE, Outcome.FAILED)
    assert clone.error is not None and clone.error.startswith("copy_image failed on agent")
    assert [r.state for r in store.reverts()] == [RevertState.REVERTED]


class RudeAgent(SimulatedAgent):
    """Answers with an exception for a message, or a mapping that cannot be read."""

    def __init__(self, unreadable: bool) -> None:
        super().__init__()
        self.unreadable = unreadable

    def poll(self, task_ids: Sequence[str]) -> Any:
        if self.unreadable:
            class Broken(dict[str, TaskReport]):
                def get(self, key: Any, default: Any = None) -> Any:
                    raise TypeError("no lookups here")
            return Broken()
        return {t: TaskReport(HostStatus.FINISHED, HostResult.FAILURE,
                              OSError("disk gone"))  # type: ignore[arg-type]
                for t in task_ids}


@pytest.mark.parametrize(("unreadable", "says"), [
    (False, "disk gone"), (True, "could not be read from: TypeError: no lookups here")])
def test_odd_answers_from_an_agent_end_the_task_never_the_engine(
    store: SqlStore, unreadable: bool, says: str,
) -> None:
    world = World(store, agent=RudeAgent(unreadable))
    engine = _engine(world, limits=Limits(max_poll_failures=2))
    root = world.submit_vm(engine, disks=1)
    engine.run_until_idle(max_ticks=500)
    assert engine.is_idle()
    copy = world.copy_task(root)
    assert copy.message is not None and says in copy.message


class FlipsItsReason(RemoveImage):
    """Writes to its own record: the engine must not care."""

    type_name = "RemoveImage"

    def execute(self, ctx: CommandContext) -> None:
        self.record.execution_reason = ExecutionReason.REGULAR_FLOW
        self.record.status = "ended_success"
        super().execute(ctx)


def test_a_hook_that_writes_to_its_record_changes_nothing(store: SqlStore) -> None:
    root = _vm_with_removal(store, FlipsItsReason)
    commands, _ = store.tree(root)
    removals = [c for c in commands if c.type == "RemoveImage"]
    assert {(c.execution_reason, c.status, c.outcome) for c in removals} == {
        ("ROLLBACK_FLOW", "ended_failure", "reverted")}
