"""What the agents said, applied; and the deadlines that end tasks whose agents say nothing.

The answers say which tasks were accepted, refused, running, ended and cleared. The agent
phase collected them outside any transaction (`agent_calls`); here they become transitions of
the task machine, inside the tick's. A task that ends touches its end group, so the fan-in is
checked again.
"""

from __future__ import annotations

from ..machines.host_status import HostResult, TaskReport, host_progress
from ..machines.task_machine import TASK_MACHINE, TaskStatus, TaskTrigger
from ..records.records import TaskRecord
from .agent_calls import AgentAnswers
from .retries import may_retry, retry
from .tick_state import TickState, for_root
from .verdicts import fail_group, task_cause


def apply(state: TickState, answers: AgentAnswers) -> None:
    """Turn the agent phase's answers into transitions of the task machine, in this tick.

    Starts and clears that failed are tried again after a back-off; a task that ended, or
    whose start was refused, has had its last word (`task_done`).
    """
    fire, touch = state.recorder.fire, state.recorder.touch
    report, now, limits = state.report, state.now, state.config.limits
    for task in answers.accepted:
        task.attempts = 0
        fire(task, TASK_MACHINE, TaskTrigger.ACCEPTED)
        report.tasks_started += 1
    for task, message in answers.rejected:
        task.message = message
        task.host_result = HostResult.FAILURE
        fire(task, TASK_MACHINE, TaskTrigger.START_FAILED, message)
        task_done(state, task, retriable=False)
    for task, message in answers.start_retry:
        task.attempts += 1
        task.retry_at = now + limits.retry_delay(task.attempts)
        task.message = message
        touch(task)
    for task, answer in answers.reports:
        if not answer.ended:
            report.tasks_running += 1
            if host_progress(answer.status) < host_progress(task.host_status):
                # Only forward (init, running, aborting) is written: a host that says
                # "running" after "aborting" tells nothing new worth a write.
                task.host_status = answer.status
                touch(task)
            continue
        report_end(state, task, answer)
    for task, message in answers.poll_failed:
        _poll_failed(state, task, message)
    for task in answers.cleared:
        fire(task, TASK_MACHINE, TaskTrigger.CLEARED)
        report.tasks_cleared += 1
    for task, message in answers.clear_failed:
        task.attempts += 1
        task.retry_at = now + limits.retry_delay(task.attempts)
        task.message = message  # said in the report by the agent phase (agent_calls)
        fire(task, TASK_MACHINE, TaskTrigger.CLEAR_FAILED, message)


def _poll_failed(state: TickState, task: TaskRecord, message: str) -> None:
    """Count a failed poll against the task's bound; past it, the task ends `unknown`."""
    limits = state.config.limits
    task.attempts += 1
    if task.attempts < limits.max_poll_failures:
        task.message = message
        task.retry_at = state.now + limits.retry_delay(task.attempts)
        state.recorder.touch(task)
        return
    report_end(state, task, TaskReport.unknown(
        f"agent {task.agent!r} failed {task.attempts} polls of this task (last: {message})"))


def report_end(state: TickState, task: TaskRecord, answer: TaskReport) -> None:
    """End the task with the agent's last report (or one the engine made up, `unknown`).

    Its status, result, message and output are kept on the record for its command's hooks
    and the next step to read.
    """
    # An aborted task (its deadline passed, or its root was cancelled) is never retried.
    aborted = task.status == TaskStatus.ABORTING
    task.host_status = answer.status
    task.host_result = answer.result
    task.message = answer.message or None
    task.output = answer.output
    task.retry_at = 0.0
    state.recorder.fire(task, TASK_MACHINE, TaskTrigger.REPORT_END,
                        f"{answer.status}/{answer.result} {answer.message}".strip())
    task_done(state, task, retriable=not aborted)


def task_done(state: TickState, task: TaskRecord, retriable: bool) -> None:
    """A task had its last word: count it, and retry it or let its command's group go on.

    Its end group's fan-in (or its command's step) may be complete; a failure is retried if
    its policy allows, else its command's work failed.
    """
    command = state.view.commands.get(task.command_id)
    if task.succeeded:
        state.report.tasks_succeeded += 1
    else:
        state.report.tasks_failed += 1
        if command is not None:
            cause = task_cause(task)
            if retriable and may_retry(state, command, task):
                retry(state, command, task, cause)
                return
            fail_group(state, command, cause)
    if command is not None:
        state.view.touched_groups.add(command.end_group_id)


def enforce_deadlines(state: TickState) -> None:
    """Abort what is past its deadline; end what an agent did not confirm aborting."""
    now = state.now
    for task in [t for t in state.view.tasks.values() if t.deadline and t.deadline <= now]:
        with for_root(task.root_command_id):
            if task.status in (TaskStatus.PENDING, TaskStatus.POLLING):
                abort_task(state, task, f"deadline passed {now - task.created_at:.0f} s "
                                        "after the task was created")
            elif task.status == TaskStatus.ABORTING:
                report_end(state, task, TaskReport.unknown(
                    f"agent {task.agent!r} did not confirm the abort within "
                    f"{state.config.limits.abort_grace:g} s ({task.message})"))


def abort_task(state: TickState, task: TaskRecord, why: str) -> None:
    """From the next agent phase on, the agent is asked to abort it at every poll."""
    task.message = why
    task.deadline = state.now + state.config.limits.abort_grace
    task.retry_at = 0.0
    state.recorder.fire(task, TASK_MACHINE, TaskTrigger.ABORT, why)
