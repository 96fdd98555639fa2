"""Commands in steps: when everything a step started has ended, the next step runs.

A command in `stepping` waits for the tasks it started in its current step and for the
children it added, each with everything below it (their own steps included), to have had
their last word. Then, if nothing in its end group has failed, `next_step` runs with what
they returned and may start the next step's work; if something failed, no step follows
(`skip_steps`) and the group rolls back once its running work has ended.
"""

from __future__ import annotations

import logging

from ..machines.command_machine import (
    COMMAND_MACHINE,
    READY_TO_END_STATES,
    CommandStatus,
    CommandTrigger,
    HookPhase,
)
from ..machines.task_machine import DONE_TASK_STATES
from ..records.records import CommandRecord
from .containment import contain
from .engine_view import EngineView
from .tick_access import hook
from .tick_state import TickState, for_root
from .verdicts import fail_group, group_failed

log = logging.getLogger("endaction.engine")


def run_due_steps(state: TickState) -> set[str]:
    """Take the next step of every stepping command whose step's work has ended.

    Only the end groups something happened in are looked at. Returns the groups in which a
    command moved (their other stepping commands, a parent waiting for this child's steps,
    look again next round).
    """
    view = state.view
    moved: set[str] = set()
    for head_id in sorted(view.touched_groups):
        for record in view.stepping_members(head_id):
            if record.status == CommandStatus.STEPPING and step_work_ended(view, record):
                with for_root(record.root_id):
                    take_next_step(state, record)
                moved.add(head_id)
    return moved


def step_work_ended(view: EngineView, record: CommandRecord) -> bool:
    """Whether the work of the command's step has ended, all the way down.

    It has when every task of the command (last attempts) and of its children, all the way
    down, has ended, and every child has finished its own steps. A walk with a stack: a
    step's children may be deeper than Python's recursion limit.
    """
    stack = [record]
    while stack:
        current = stack.pop()
        for task in view.tasks_by_command.get(current.id, ()):
            if task.status not in DONE_TASK_STATES and not task.retried:
                return False
        for child in view.children.get(current.id, {}).values():
            if child.status not in READY_TO_END_STATES:
                return False
            stack.append(child)
    return True


def take_next_step(state: TickState, record: CommandRecord) -> None:
    """Run the command's `next_step`, contained, now that its step's work has ended.

    A command whose end group has failed takes no further step. A step that starts nothing
    is the last: the command has executed. One that raises fails the command and its group.
    """
    view, fire = state.view, state.recorder.fire
    view.touched_groups.add(record.end_group_id)
    if group_failed(state, record):
        fire(record, COMMAND_MACHINE, CommandTrigger.SKIP_STEPS,
             "its end group failed: no further step")
        return
    fire(record, COMMAND_MACHINE, CommandTrigger.NEXT_STEP)
    record.step += 1
    state.report.steps_taken += 1
    with contain() as contained:
        command, ctx = hook(state, record, HookPhase.NEXT_STEP)
        command.next_step(ctx)
    if contained.failed:
        cause = f"next_step (step {record.step}) raised {contained.describe()}"
        log.warning("%s %s: %s", record.type, record.id, cause)
        fire(record, COMMAND_MACHINE, CommandTrigger.FAIL_EXECUTION, cause)
        fail_group(state, record, cause)
    elif ctx.spawned:
        fire(record, COMMAND_MACHINE, CommandTrigger.STEPPED, f"step {record.step}")
        view.mark_stepping(record)
    else:
        fire(record, COMMAND_MACHINE, CommandTrigger.EXECUTED,
             f"step {record.step} started nothing: the last")
