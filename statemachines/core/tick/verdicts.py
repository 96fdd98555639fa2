"""Whose work failed, and what that means for its end group: decided the moment it happens.

A failure is known when it happens (a task's last attempt failed, a step raised, a command
was refused), and from then on the end group's verdict is failure: no further step starts,
no task is retried, and the group will roll back once its running work has ended. The
failing command keeps its cause as its error, and the group's head (the root, for ordinary
work) names the first cause, so a reader of the root learns what went wrong without
scanning the tree.
"""

from __future__ import annotations

from ..machines.command_machine import CommandStatus
from ..machines.host_status import HostStatus
from ..machines.task_machine import TaskStatus
from ..records.records import CommandRecord, TaskRecord
from .tick_state import TickState


def fail_group(state: TickState, record: CommandRecord, cause: str) -> None:
    """`record`'s own work failed, for `cause`: its end group fails with it."""
    recorder = state.recorder
    record.own_work_succeeded = False
    if record.error is None:
        record.error = cause
    recorder.touch(record)
    head = state.view.commands.get(record.end_group_id)
    if head is None:
        return
    head.work_succeeded = False
    name_first_cause(head, record, cause)
    recorder.touch(head)


def name_first_cause(head: CommandRecord, record: CommandRecord, cause: str) -> None:
    """The group's head names the first failure of its group, once."""
    if head.error is None:
        head.error = cause if head is record else f"{record.type} {record.id}: {cause}"


def group_failed(state: TickState, record: CommandRecord) -> bool:
    """Whether something in `record`'s end group has failed already."""
    head = state.view.commands.get(record.end_group_id)
    return head is not None and head.work_succeeded is False


def task_cause(task: TaskRecord) -> str:
    """A failed task in a reader's words: its verb, its agent, and what the agent said."""
    said = f": {task.message}" if task.message else ""
    if task.status == TaskStatus.START_FAILED:
        return f"{task.verb} could not be started on agent {task.agent!r}{said}"
    if task.host_status == HostStatus.UNKNOWN:
        return f"{task.verb} on agent {task.agent!r} ended unknown{said}"
    return f"{task.verb} failed on agent {task.agent!r}{said}"


def own_work_succeeded(state: TickState, record: CommandRecord) -> bool:
    """At its end: the last attempt of each of its tasks succeeded, and no step raised."""
    if record.own_work_succeeded is not None:
        return record.own_work_succeeded
    return record.status != CommandStatus.EXECUTION_FAILED and all(
        t.succeeded for t in state.view.tasks_by_command.get(record.id, ()) if not t.retried)
