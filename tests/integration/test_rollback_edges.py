"""Rollbacks at their edges, as found in review.

They cover outcomes that must stay readable, opposite commands with children, and cleanups that must
not repeat themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from persistence import SqlStore
from statemachines import (
    Command,
    CommandRegistry,
    CommandStatus,
    Compensation,
    Engine,
    HostResult,
    NotCancellable,
    Outcome,
    ResourceRef,
    RevertState,
)
from statemachines.core.commands.command import CommandContext
from statemachines.testing import ControlledAgent, ManualClock
from tests.factories import make_engine
from tests.worlds import vm_store

AGENT = "worker"


class Parent(Command):
    """Owns resource p; its child owns c; its task fails unless told otherwise."""

    type_name = "Parent"

    def execute(self, ctx: CommandContext) -> None:
        if self.parameters.get("child"):
            ctx.add_child("Child", {}, entity=ResourceRef("thing", "c"))
        ctx.start_task(AGENT, "work", {})

    def revert(self, ctx: CommandContext, resource: ResourceRef) -> Compensation:
        return Compensation("Undo", {})


class Child(Command):
    type_name = "Child"

    def execute(self, ctx: CommandContext) -> None:
        ctx.start_task(AGENT, "work", {})

    def revert(self, ctx: CommandContext, resource: ResourceRef) -> Compensation:
        return Compensation("Undo", {})


class Undo(Command):
    """Undoes a thing on the agent; with `parts`, through a child of its own."""

    type_name = "Undo"

    def execute(self, ctx: CommandContext) -> None:
        if self.parameters.get("parts"):
            ctx.add_child("UndoPart", {}, entity=ResourceRef("part", "p1"))
        else:
            ctx.start_task(AGENT, "undo", {"what": self.record.entity_id})

    def revert(self, ctx: CommandContext, resource: ResourceRef) -> Compensation:
        return Compensation("Undo", {})  # an opposite of an opposite: must never be asked for


class UndoPart(Command):
    type_name = "UndoPart"

    def end_with_failure(self, ctx: CommandContext) -> None:
        raise RuntimeError("bug in UndoPart")


class PartedParent(Parent):
    type_name = "PartedParent"

    def revert(self, ctx: CommandContext, resource: ResourceRef) -> Compensation:
        return Compensation("Undo", {"parts": True})


REGISTRY = [Parent, Child, Undo, UndoPart, PartedParent]


def _undo_of_c_fails(verb: str, parameters: Mapping[str, Any]) -> HostResult:
    if verb == "work":
        return HostResult.FAILURE
    return HostResult.FAILURE if parameters.get("what") == "c" else HostResult.SUCCESS


@pytest.fixture
def store(tmp_path: Path) -> SqlStore:
    return vm_store(str(tmp_path / "endaction.db"))


def _engine(store: SqlStore, agent: ControlledAgent, clock: ManualClock) -> Engine:
    return make_engine(store, {AGENT: agent}, registry=CommandRegistry(REGISTRY), clock=clock)


def _by_type(store: SqlStore, root: str) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for command in store.tree(root)[0]:
        found.setdefault(command.type, []).append(command)
    return found


def test_a_parent_whose_child_gave_up_says_so_though_its_own_revert_succeeded(
    store: SqlStore,
) -> None:
    clock = ManualClock()
    engine = _engine(store, ControlledAgent(autopilot=_undo_of_c_fails), clock)
    root = engine.submit("Parent", {"child": True}, entity=ResourceRef("thing", "p"))
    engine.run_until_idle(poll_interval=0)
    commands = _by_type(store, root)
    assert [(c.status, c.outcome) for c in commands["Child"]] == [
        ("rollback_failed", "revert_failed")]
    parent = commands["Parent"][0]
    assert (parent.status, parent.outcome) == (CommandStatus.ROLLBACK_FAILED, "revert_failed")


def test_a_cancelled_root_that_owned_a_resource_still_reads_cancelled(store: SqlStore) -> None:
    clock = ManualClock()
    agent = ControlledAgent()
    engine = _engine(store, agent, clock)
    root = engine.submit("Parent", {}, entity=ResourceRef("thing", "p"))
    engine.tick()
    engine.tick()
    engine.cancel(root, "operator")
    agent.autopilot = lambda verb, parameters: HostResult.SUCCESS
    engine.run_until_idle(poll_interval=0)
    record = store.command(root)
    assert record is not None
    assert (record.status, record.outcome, record.error) == (
        "ended_failure", "cancelled", "cancelled: operator")
    assert {r.state for r in store.reverts()} == {RevertState.REVERTED}


def test_a_child_of_an_opposite_command_is_never_taken_for_one(store: SqlStore) -> None:
    """A child of an opposite command is never taken for one.

    Its hook raising gives up on the owner's resource at once; no revert row names an opposite
    command as owner; cleanup retries the owner's revert, never one of an opposite command.
    """
    clock = ManualClock()
    engine = _engine(store, ControlledAgent(autopilot=lambda verb, p: HostResult.FAILURE), clock)
    root = engine.submit("PartedParent", {}, entity=ResourceRef("thing", "m"))
    engine.run_until_idle(poll_interval=0)
    commands = _by_type(store, root)
    assert len(commands["Undo"]) == 1, "a hook that raised must not be retried"
    owners = {r.owner for r in store.reverts()}
    assert owners == {root}
    assert [r.state for r in store.reverts()] == [RevertState.REVERT_FAILED]
    assert [str(r.resource) for r in engine.cleanup()] == ["thing:m"]
    engine.run_until_idle(poll_interval=0)
    parents = {c.parent_id for c in _by_type(store, root)["Undo"]}
    assert parents == {root}, "an opposite command was compensated in turn"


def test_cleanup_skips_held_roots_and_never_repeats_an_opposite_command_in_flight(
    store: SqlStore,
) -> None:
    clock = ManualClock()
    agent = ControlledAgent(autopilot=_undo_of_c_fails)
    engine = _engine(store, agent, clock)
    root = engine.submit("Parent", {"child": True}, entity=ResourceRef("thing", "p"))
    engine.run_until_idle(poll_interval=0)
    with store.transaction() as tx:
        tx.hold_root(root, clock.now, "an engine fault")
    assert _engine(store, agent, clock).cleanup() == []
    store.release_root(root)
    first = _engine(store, agent, clock)
    assert [str(r.resource) for r in first.cleanup()] == ["thing:c"]
    second = _engine(store, agent, clock)  # another process, before the first one ran it
    assert second.cleanup() == []
    undos = [c for c in _by_type(store, root)["Undo"] if c.status == CommandStatus.NOT_STARTED]
    assert len(undos) == 1


def test_a_held_root_cannot_be_cancelled(store: SqlStore) -> None:
    clock = ManualClock()
    engine = _engine(store, ControlledAgent(), clock)
    root = engine.submit("Parent", {}, entity=ResourceRef("thing", "p"))
    with store.transaction() as tx:
        tx.hold_root(root, clock.now, "an engine fault")
    with pytest.raises(NotCancellable, match="is held, so no engine would act on a cancel"):
        engine.cancel(root)


class Picky(Command):
    """Owns a thing; its revert raises the first time (a bug, fixed before the cleanup)."""

    type_name = "Picky"
    broken = True

    def execute(self, ctx: CommandContext) -> None:
        ctx.start_task(AGENT, "work", {"fail": self.parameters.get("fail", False)})

    def revert(self, ctx: CommandContext, resource: ResourceRef) -> Compensation:
        if Picky.broken:
            raise RuntimeError("revert is broken")
        return Compensation("Undo", {})


class Holder(Command):
    """Owns p and has two Picky children; one of their copies fails."""

    type_name = "Holder"

    def execute(self, ctx: CommandContext) -> None:
        ctx.add_child("Picky", {}, entity=ResourceRef("thing", "child"))
        ctx.add_child("Picky", {"fail": True}, entity=ResourceRef("thing", "sib"))

    def revert(self, ctx: CommandContext, resource: ResourceRef) -> Compensation:
        return Compensation("Undo", {})


def test_a_command_whose_revert_raised_leaves_its_own_resource_for_cleanup(
    store: SqlStore,
) -> None:
    """A command whose revert raised leaves its own resource for cleanup, not its parent's.

    The give-up used to be recorded under its parent's name: cleanup then reverted the parent a
    second time and marked the child's resource reverted while it still existed.
    """
    clock = ManualClock()
    agent = ControlledAgent(autopilot=lambda verb, p: HostResult.FAILURE if p.get("fail")
                            else HostResult.SUCCESS)
    engine = make_engine(store, {AGENT: agent},
                         registry=CommandRegistry([*REGISTRY, Picky, Holder]), clock=clock)
    Picky.broken = True
    root = engine.submit("Holder", {}, entity=ResourceRef("thing", "p"))
    engine.run_until_idle(poll_interval=0)
    pickies = {c.entity_id: c for c in _by_type(store, root)["Picky"]}
    failed = [(str(r.resource), r.owner) for r in store.reverts()
              if r.state == RevertState.REVERT_FAILED]
    assert ("thing:child", pickies["child"].id) in failed
    assert all(owner != root for _, owner in failed)
    Picky.broken = False
    retried = {str(r.resource) for r in engine.cleanup()}
    assert "thing:child" in retried and "thing:p" not in retried
    engine.run_until_idle(poll_interval=0)
    undos = [c for c in _by_type(store, root)["Undo"] if c.outcome == Outcome.REVERTED]
    assert sorted(c.entity_id for c in undos).count("p") == 1, "p was undone twice"
    assert {r.state for r in store.reverts()} == {RevertState.REVERTED}
