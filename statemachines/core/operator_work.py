"""What operators ask of a running engine: cancel a root, clean up what was given up on.

Both are requests the engine acts on inside a tick, through the same machines and guards as
everything else: a cancelled root fails its own work and is compensated like any failure; a
cleanup starts one more opposite command per resource left `revert_failed`.
"""

from __future__ import annotations

from dataclasses import replace

from .command_machine import COMMAND_MACHINE, CommandStatus, HookPhase, Outcome
from .containment import contain
from .execution import refuse
from .hook_context import hook
from .records import CommandRecord, HistoryEvent
from .revert_state import ResourceRevert, RevertState
from .spawning import create_child
from .task_answers import abort_task
from .task_machine import TaskStatus
from .tick_state import TickState, for_root


def act_on_cancels(state: TickState) -> None:
    tx = state.tx
    for root_id, reason, status in tx.pending_cancels():
        if COMMAND_MACHINE.is_terminal(status):
            tx.drop_cancel(root_id)
            continue
        root = state.view.commands.get(root_id)
        if root is None:
            continue  # held, or run by another engine: it acts on the request
        with for_root(root_id):
            _cancel(state, root, reason)
        tx.drop_cancel(root_id)


def _cancel(state: TickState, root: CommandRecord, reason: str) -> None:
    """Fail the root's own work: refuse what has not started, abort what runs. What
    already succeeded is then compensated like after any other failure."""
    view = state.view
    state.recorder.history(root, HistoryEvent.CANCEL, root.status, root.status, reason)
    if root.status not in (CommandStatus.NOT_STARTED, CommandStatus.WAITING,
                           CommandStatus.EXECUTION_FAILED):
        return  # already ending or rolling back: nothing left to stop
    message = f"cancelled: {reason}"
    for member in list(view.group_members.get(root.end_group_id, {}).values()):
        if member.status == CommandStatus.NOT_STARTED:
            refuse(state, member, [message])
        for task in view.tasks_by_command.get(member.id, ()):
            if task.status in (TaskStatus.PENDING, TaskStatus.POLLING):
                abort_task(state, task, message)
    root.work_succeeded = False
    root.outcome = Outcome.CANCELLED
    root.error = message
    state.recorder.touch(root)
    view.touched_groups.add(root.end_group_id)


def start_cleanup(state: TickState) -> list[ResourceRevert]:
    """One more opposite command for every resource given up on (revert_failed) whose
    owner has ended; the resource reads reverted once one succeeds. Returns the resources
    retried (or found gone)."""
    retried = []
    tx, recorder, report = state.tx, state.recorder, state.report
    for revert, owner in tx.failed_reverts():
        if state.view.reverting.get(revert.resource):
            continue  # an opposite command for it is in flight already
        if not COMMAND_MACHINE.is_terminal(owner.status):
            continue  # its own rollback still decides
        with contain() as contained:
            command, ctx = hook(state, owner, HookPhase.CLEANUP)
            exists = command.resource_exists(ctx, revert.resource)
            opposite = command.revert(ctx) if exists else None
            if not exists:
                tx.put_revert(replace(revert, state=RevertState.REVERTED))
                recorder.history(owner, HistoryEvent.CLEANUP, owner.status, owner.status,
                                 f"{revert.resource} is gone already")
            elif opposite is not None:
                child = create_child(state, owner, opposite.type_name, opposite.parameters,
                                     revert.resource, compensation=True)
                tx.put_revert(replace(revert, attempts=revert.attempts + 1))
                report.compensations_started += 1
                recorder.history(owner, HistoryEvent.CLEANUP, owner.status, owner.status,
                                 f"{opposite.type_name} {child.id} for {revert.resource}")
        if contained.failed:
            report.errors.append(
                f"cleanup of {revert.resource} ({owner.type} {owner.id}) failed: "
                f"{contained.describe()}")
        elif exists and opposite is None:
            report.errors.append(
                f"{owner.type} {owner.id} names no opposite command for {revert.resource}")
        else:
            retried.append(revert)
    return retried
