"""An operator's cancel request, acted on inside a tick by the engine that runs the root.

A cancelled root fails its own work, through the same machines and guards as everything
else: what has not started is refused, what runs is aborted on its agent, and what already
succeeded is reverted like after any other failure.
"""

from __future__ import annotations

from ..machines.command_machine import COMMAND_MACHINE, CommandStatus, Outcome
from ..machines.task_machine import TaskStatus
from ..records.records import CommandRecord, HistoryEvent
from .execution import refuse
from .task_answers import abort_task
from .tick_state import TickState, for_root


def act_on_cancels(state: TickState) -> None:
    """Act on every pending cancel request for a root this engine has in its view.

    A request for a root that has already ended is dropped; one for a root held, or run by
    another engine, is left for whoever runs it. Each request is acted on once: it is dropped
    in the same transaction.
    """
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
    """Fail the root's own work: refuse what has not started, abort what runs.

    What already succeeded is then reverted like after any other failure.
    """
    view = state.view
    state.recorder.history(root, HistoryEvent.CANCEL, root.status, root.status, reason)
    if root.status not in (CommandStatus.NOT_STARTED, CommandStatus.WAITING,
                           CommandStatus.STEPPING, CommandStatus.EXECUTION_FAILED):
        return  # already ending or rolling back: nothing left to stop
    message = f"cancelled: {reason}"
    if root.error is None:
        root.error = message  # the first cause of its group's failure, unless one came first
    for member in list(view.group_members.get(root.end_group_id, {}).values()):
        if member.status == CommandStatus.NOT_STARTED:
            refuse(state, member, [message])
        for task in view.tasks_by_command.get(member.id, ()):
            if task.status in (TaskStatus.PENDING, TaskStatus.POLLING):
                abort_task(state, task, message)
    root.work_succeeded = False
    root.outcome = Outcome.CANCELLED
    state.recorder.touch(root)
    view.touched_groups.add(root.end_group_id)
