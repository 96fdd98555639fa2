"""Running a failed forward task again, within its retry policy, before its command fails.

The failed attempt ends `retry` (finished -> ending) and is cleared on its agent like any
ended task; the next attempt is a new task, with a new id, the same verb, parameters and
entities, started once its back-off has passed. The decision and the new row commit with
the failure itself, so a crash either loses both (the failure is reported again) or keeps
both: crashes never count as attempts.
"""

from __future__ import annotations

from ..machines.command_machine import CommandStatus
from ..machines.reasons import ExecutionReason
from ..machines.task_machine import TASK_MACHINE, TaskTrigger
from ..records.records import CommandRecord, HistoryEvent, TaskRecord
from ..records.revert_state import ResourceRef
from .spawning import create_task
from .tick_state import TickState
from .verdicts import group_failed

#: The states of a command whose tasks may still be retried: it has not begun to end.
_RUNNING = (CommandStatus.WAITING, CommandStatus.STEPPING)


def may_retry(state: TickState, command: CommandRecord, task: TaskRecord) -> bool:
    """Whether a failed task gets another attempt.

    It does if it is a forward task with attempts left, while its end group can still succeed.
    The caller knows the rest: a task rejected for good, or aborted at its deadline or for a
    cancel, is never retried.
    """
    policy = task.retry
    return (policy is not None and task.attempt < policy.max_attempts
            and command.execution_reason == ExecutionReason.REGULAR_FLOW
            and command.status in _RUNNING and not group_failed(state, command))


def retry(state: TickState, command: CommandRecord, task: TaskRecord, cause: str) -> TaskRecord:
    """Replace the failed attempt `task` by the next one."""
    policy = task.retry
    assert policy is not None
    attempt = task.attempt + 1
    delay = policy.delay_before(attempt)
    # What each attempt may take: its deadline counted from its start, after its back-off.
    timeout = task.deadline - task.created_at - policy.delay_before(task.attempt)
    task.retried = True
    state.recorder.fire(task, TASK_MACHINE, TaskTrigger.RETRY,
                        f"attempt {task.attempt} of {policy.max_attempts} failed; attempt "
                        f"{attempt} in {delay:g} s")
    task.attempts, task.retry_at = 0, 0.0  # its clear has a budget of its own
    following = create_task(
        state, command, task.agent, task.verb, task.parameters,
        [ResourceRef(kind, ident) for kind, ident in task.entities],
        timeout if timeout > 0 else None, retry=policy, attempt=attempt, step=task.step,
        start_at=state.now + delay)
    state.recorder.history(command, HistoryEvent.RETRY, command.status, command.status,
                           f"{task.verb} attempt {attempt} of {policy.max_attempts} as task "
                           f"{following.id} in {delay:g} s, after: {cause}")
    state.report.tasks_retried += 1
    return following
