"""The engine-side task machine: every async task is a persisted row before the agent hears of it.

`pending` is written and committed before `start` is called, so a crash between the two leaves
a row that recovery resolves by task id (starting is idempotent) instead of an orphan on the
agent. A task is cleared on the agent only after the end of its command is durable.

A forward task that fails may be retried (`RetryPolicy`): it ends `retry` (finished -> ending,
cleared like any ended task) and a new task, with a new id, runs the next attempt.

A task that passes its deadline, or whose root is cancelled, moves to `aborting`: the engine
asks the agent to abort it and keeps polling until the agent reports its end, or until a grace
period passes (then it ends `unknown`). It never ends before the agent has said so or the
grace is over, so work still running cannot land after its opposite command reverted it.
"""

from __future__ import annotations

from enum import StrEnum

from .shared_machine import SharedMachine, TransitionSpec


class TaskStatus(StrEnum):
    """The states of the task machine, as records and the history persist them.

    `cleared` is the only terminal one: a task is over once it is cleared on the agent.
    """

    PENDING = "pending"
    POLLING = "polling"
    ABORTING = "aborting"
    START_FAILED = "start_failed"
    FINISHED = "finished"
    ENDING = "ending"
    CLEARED = "cleared"
    CLEAR_FAILED = "clear_failed"


# Fan-in counts a task as done once the agent has said its last word on it.
DONE_TASK_STATES = (TaskStatus.FINISHED, TaskStatus.START_FAILED)
# The agent is (or may be) working on it: it is polled.
POLLED_TASK_STATES = (TaskStatus.POLLING, TaskStatus.ABORTING)
# Not yet ended by the agent: its command cannot end, and its deadline still counts.
LIVE_TASK_STATES = (TaskStatus.PENDING, TaskStatus.POLLING, TaskStatus.ABORTING)

class TaskTrigger(StrEnum):
    """The task machine's events, as the history records them."""

    ACCEPTED = "accepted"
    START_FAILED = "start_failed"
    ABORT = "abort"
    REPORT_END = "report_end"
    CLAIM_END = "claim_end"
    RETRY = "retry"
    CLEARED = "cleared"
    CLEAR_FAILED = "clear_failed"


TASK_TRANSITIONS = (
    TransitionSpec(TaskTrigger.ACCEPTED, TaskStatus.PENDING, TaskStatus.POLLING),
    TransitionSpec(TaskTrigger.START_FAILED, TaskStatus.PENDING, TaskStatus.START_FAILED),
    TransitionSpec(TaskTrigger.ABORT, [TaskStatus.PENDING, TaskStatus.POLLING],
                   TaskStatus.ABORTING),
    TransitionSpec(TaskTrigger.REPORT_END, [TaskStatus.POLLING, TaskStatus.ABORTING],
                   TaskStatus.FINISHED),
    TransitionSpec(TaskTrigger.CLAIM_END, [TaskStatus.FINISHED, TaskStatus.START_FAILED],
                   TaskStatus.ENDING),
    # A failed attempt another attempt replaces: its end is recorded, so it is cleared at once.
    TransitionSpec(TaskTrigger.RETRY, TaskStatus.FINISHED, TaskStatus.ENDING),
    TransitionSpec(TaskTrigger.CLEARED, [TaskStatus.ENDING, TaskStatus.CLEAR_FAILED],
                   TaskStatus.CLEARED),
    TransitionSpec(TaskTrigger.CLEAR_FAILED, [TaskStatus.ENDING, TaskStatus.CLEAR_FAILED],
                   TaskStatus.CLEAR_FAILED),
)

TASK_MACHINE = SharedMachine(
    kind="task",
    states=TaskStatus,
    initial=TaskStatus.PENDING,
    transitions=TASK_TRANSITIONS,
    terminal=(TaskStatus.CLEARED,),
)
