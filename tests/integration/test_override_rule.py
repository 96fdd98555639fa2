"""The ExecutionReason override: ROLLBACK_FLOW never takes the success path."""

from __future__ import annotations

import pytest

from persistence import SqlStore
from statemachines import CommandRecord, CommandStatus, ExecutionReason, Outcome
from statemachines.core.machines.command_machine import COMMAND_MACHINE
from statemachines.core.machines.shared_machine import IllegalTransition
from statemachines.core.records.frozen_json import freeze
from tests.worlds import World


def _ending(reason: ExecutionReason, work_succeeded: bool) -> CommandRecord:
    return CommandRecord(id="c", root_id="c", parent_id=None, end_group_id="c", type="X",
                         execution_reason=reason, parameters=freeze({}), status="ending",
                         work_succeeded=work_succeeded)


@pytest.mark.parametrize(
    ("reason", "work_succeeded", "landed"),
    [
        (ExecutionReason.REGULAR_FLOW, True, "ended_success"),
        (ExecutionReason.REGULAR_FLOW, False, "rolling_back"),
        (ExecutionReason.ROLLBACK_FLOW, True, "rolling_back"),
        (ExecutionReason.ROLLBACK_FLOW, False, "rolling_back"),
    ],
)
def test_guard_of_the_machine_decides_the_end_path(
    reason: ExecutionReason, work_succeeded: bool, landed: str
) -> None:
    record = _ending(reason, work_succeeded)
    COMMAND_MACHINE.fire(record, "end")
    assert record.status == landed


def test_the_override_lives_only_in_the_guard_of_one_transition() -> None:
    guarded = [t for t in COMMAND_MACHINE.transitions if t.conditions]
    assert [(t.trigger, t.dest) for t in guarded] == [("end", "ended_success")]
    assert [c.__name__ for c in guarded[0].conditions] == ["ends_successfully"]


def test_illegal_trigger_is_refused_with_a_clear_error() -> None:
    record = _ending(ExecutionReason.REGULAR_FLOW, True)
    with pytest.raises(IllegalTransition, match="'execute' is not allowed from 'ending'"):
        COMMAND_MACHINE.fire(record, "execute")


def test_rollback_command_whose_task_succeeded_ends_through_end_with_failure(
    store: SqlStore,
) -> None:
    world = World(store)
    engine = world.engine()
    root = world.submit_vm(engine, disks=2, fail=(1,))
    engine.run_until_idle()

    commands, tasks = store.tree(root)
    removals = [c for c in commands if c.type == "RemoveImage"]
    assert removals, "a failed VM creation must start opposite commands"
    for removal in removals:
        assert removal.execution_reason == ExecutionReason.ROLLBACK_FLOW
        own_tasks = [t for t in tasks if t.command_id == removal.id]
        assert [t.succeeded for t in own_tasks] == [True]
        assert removal.work_succeeded is True
        assert removal.status == CommandStatus.ENDED_FAILURE
        assert removal.outcome == Outcome.REVERTED
        path = [(h.source, h.dest) for h in store.history(removal.id)
                if h.trigger in ("end", "rolled_back")]
        assert path == [("ending", "rolling_back"), ("rolling_back", "ended_failure")]
