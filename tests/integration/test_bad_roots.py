"""One bad root never starves the others: deep trees, runaway executes, engine faults.

A chain deeper than Python's recursion limit used to raise RecursionError inside every tick,
and an `execute` that always adds a child spun inside one tick forever; both stalled every
other root in the database.
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
    Limits,
    Outcome,
    ResourceRef,
)
from statemachines.core.commands.command import CommandContext
from statemachines.testing import ControlledAgent, ManualClock
from tests.factories import make_engine
from tests.worlds import vm_store

AGENT = "worker"


class Chain(Command):
    """A chain of `left` levels; the bottom one runs a task, which the agent may fail."""

    type_name = "Chain"

    def execute(self, ctx: CommandContext) -> None:
        left = int(self.parameters["left"])
        if left > 0:
            child = {**self.parameters, "left": left - 1}
            entity = ResourceRef("link", f"link{left - 1}") if self.parameters["linked"] else None
            ctx.add_child(self.type_name, child, entity=entity)
        else:
            ctx.start_task(AGENT, "bottom", {"fail": self.parameters["fail"]})

    def revert(self, ctx: CommandContext, resource: ResourceRef) -> Compensation:
        return Compensation(Unlink.type_name, {})


class Unlink(Command):
    """The opposite of a chain link: nothing to do on any agent, so it succeeds at once."""

    type_name = "Unlink"


class Forever(Command):
    """An execute that always adds another child: it must hit the depth limit, not spin."""

    type_name = "Forever"

    def execute(self, ctx: CommandContext) -> None:
        ctx.add_child(self.type_name, {})


class Plain(Command):
    """An unrelated root with one task: it must end whatever the other roots do."""

    type_name = "Plain"

    def execute(self, ctx: CommandContext) -> None:
        ctx.start_task(AGENT, "plain", {})


REGISTRY = [Chain, Unlink, Forever, Plain]


def _outcome(verb: str, parameters: Mapping[str, Any]) -> HostResult:
    return HostResult.FAILURE if parameters.get("fail") else HostResult.SUCCESS


@pytest.fixture
def store(tmp_path: Path) -> SqlStore:
    return vm_store(str(tmp_path / "endaction.db"))


def _engine(store: SqlStore, limits: Limits | None = None) -> Engine:
    agent = ControlledAgent(autopilot=_outcome)
    clock = ManualClock()
    return make_engine(store, {AGENT: agent}, registry=CommandRegistry(REGISTRY),
                       limits=limits, clock=clock)


def _status(store: SqlStore, command_id: str) -> str:
    record = store.command(command_id)
    assert record is not None
    return record.status


@pytest.mark.parametrize(("fail", "linked", "expected"), [
    (False, False, "ended_success"),
    (True, False, "ended_failure"),
    (True, True, "ended_failure"),
])
def test_a_chain_far_deeper_than_the_recursion_limit_ends(store: SqlStore, fail: bool,
                                                          linked: bool, expected: str) -> None:
    engine = _engine(store)
    chain = engine.submit("Chain", {"left": 2500, "fail": fail, "linked": linked})
    plain = engine.submit("Plain", {})
    engine.run_until_idle(poll_interval=0)
    assert _status(store, chain) == expected
    assert _status(store, plain) == CommandStatus.ENDED_SUCCESS
    commands, _ = store.tree(chain)
    assert {c.status for c in commands if c.type == "Chain"} == {expected}
    if linked:  # every link but the bottom one's was undone by its own opposite command
        assert sum(c.type == "Unlink" and c.outcome == Outcome.REVERTED for c in commands) == 2500


def test_an_execute_that_always_adds_a_child_fails_its_root_and_spares_the_others(
    store: SqlStore,
) -> None:
    engine = _engine(store, Limits(max_tree_depth=300))
    runaway = engine.submit("Forever", {})
    plain = engine.submit("Plain", {})
    engine.run_until_idle(poll_interval=0)
    assert _status(store, plain) == CommandStatus.ENDED_SUCCESS
    assert _status(store, runaway) == CommandStatus.ENDED_FAILURE
    commands, _ = store.tree(runaway)
    assert len(commands) == 301
    deepest = [c for c in commands if c.status == CommandStatus.ENDED_FAILURE and c.error]
    assert any("deeper than Limits.max_tree_depth (300)" in (c.error or "") for c in deepest)


def test_one_tick_does_a_bounded_amount_of_a_deep_trees_work(store: SqlStore) -> None:
    engine = _engine(store, Limits(max_rounds_per_tick=10))
    engine.submit("Chain", {"left": 100, "fail": False, "linked": False})
    report = engine.tick()
    assert report.commands_executed == 10


def test_an_engine_fault_on_one_root_holds_that_root_and_spares_the_others(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Stands for a bug in the engine that one tree's shape triggers.

    That tree is held with the error recorded, visible, and every other tree goes on.
    """
    from statemachines.core.tick import execution

    engine = _engine(store)
    victim = engine.submit("Chain", {"left": 2, "fail": False, "linked": False})
    plain = engine.submit("Plain", {})
    real = execution.validate_and_execute

    def faulty(state: Any, record: Any) -> None:
        if record.root_id == victim and record.parent_id is not None:
            raise KeyError("an engine bug")
        real(state, record)

    monkeypatch.setattr(execution, "validate_and_execute", faulty)
    engine.run_until_idle(poll_interval=0)
    assert _status(store, plain) == CommandStatus.ENDED_SUCCESS
    held = store.held_roots()
    assert list(held) == [victim]
    assert "KeyError: 'an engine bug'" in held[victim]
    assert any(h.trigger == "hold" for h in store.history(victim))
    assert _status(store, victim) == CommandStatus.NOT_STARTED  # the faulty tick was rolled back


def test_a_command_at_the_depth_limit_can_still_be_compensated(store: SqlStore) -> None:
    """Its opposite command sits one level deeper: refusing it would leave the resource."""
    engine = _engine(store, Limits(max_tree_depth=3))
    chain = engine.submit("Chain", {"left": 3, "fail": True, "linked": True})
    engine.run_until_idle(poll_interval=0)
    commands, _ = store.tree(chain)
    assert _status(store, chain) == CommandStatus.ENDED_FAILURE
    assert sum(c.type == "Unlink" and c.outcome == Outcome.REVERTED for c in commands) == 3


class Cancelled(Command):
    """An execute that raises asyncio's CancelledError, a BaseException since Python 3.8."""

    type_name = "Cancelled"

    def execute(self, ctx: CommandContext) -> None:
        import asyncio

        raise asyncio.CancelledError


def test_a_hook_raising_cancelled_error_fails_its_command_only(store: SqlStore) -> None:
    agent = ControlledAgent(autopilot=_outcome)
    clock = ManualClock()
    engine = make_engine(store, {AGENT: agent}, registry=CommandRegistry([Cancelled, Plain]),
                         clock=clock)
    bad = engine.submit("Cancelled", {})
    good = engine.submit("Plain", {})
    engine.run_until_idle(poll_interval=0)
    assert _status(store, good) == CommandStatus.ENDED_SUCCESS
    assert _status(store, bad) == CommandStatus.ENDED_FAILURE
    record = store.command(bad)
    assert record is not None and "CancelledError" in (record.error or "")
