"""The command machine, and the ExecutionReason override written once, as its guard.

A command's end path is decided here and nowhere else: `ending --end-->` lands in
`ended_success` only when the guard holds; otherwise the unconditional second transition
takes it to `rolling_back`. A ROLLBACK_FLOW command therefore cannot reach the success path,
whatever its tasks reported.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

from .reasons import ExecutionReason
from .shared_machine import SharedMachine, TransitionSpec


class CommandStatus(StrEnum):
    """The states of the command machine, as records and the history persist them.

    `ended_success`, `ended_failure` and `rollback_failed` are terminal
    (`TERMINAL_COMMAND_STATES`); a command in any other state still has work.
    """

    NOT_STARTED = "not_started"
    EXECUTING = "executing"
    STEPPING = "stepping"
    WAITING = "waiting"
    EXECUTION_FAILED = "execution_failed"
    ENDING = "ending"
    ENDED_SUCCESS = "ended_success"
    ROLLING_BACK = "rolling_back"
    ENDED_FAILURE = "ended_failure"
    ROLLBACK_FAILED = "rollback_failed"


class Outcome(StrEnum):
    """What a command's end meant, beside its status: a reader's word for its result."""

    #: A REGULAR_FLOW command whose end group succeeded.
    SUCCEEDED = "succeeded"
    #: A command whose own work failed: its task failed for good (after its retries), or one
    #: of its hooks raised. Its error names the cause; what it made was reverted.
    FAILED = "failed"
    #: Refused by `validate` before it executed.
    REFUSED = "refused"
    #: Its own work succeeded, its end group failed elsewhere, and nothing it made is left:
    #: reverted by opposite commands, found gone, or with nothing to revert.
    ROLLED_BACK = "rolled_back"
    #: As rolled_back, every resource it made reverted by its agent's own revert of the task
    #: that made it (`Compensation(..., native=True)`).
    ROLLED_BACK_NATIVELY = "rolled_back_natively"
    #: Its resource could not be reverted within the retry bounds; it is left for `cleanup`.
    REVERT_FAILED = "revert_failed"
    #: An opposite command whose work reverted the resource.
    REVERTED = "reverted"
    #: An opposite command whose work failed; the owner may try again.
    ATTEMPT_FAILED = "attempt_failed"
    #: An opposite command whose outcome was lost with a dead engine or host; it is redone
    #: without spending the failure budget.
    LOST = "lost"
    #: A root an operator cancelled; what already succeeded was reverted like any failure.
    CANCELLED = "cancelled"
    #: Carried while rolling back by a command one of whose children gave up on its rollback.
    CHILD_REVERT_FAILED = "child_revert_failed"
    #: Was revert_failed; a later `cleanup` reverted what was left, so nothing of it (or of the
    #: commands under it) is left now. Its status stays rollback_failed: it is not ended twice.
    CLEANED_UP = "cleaned_up"


class CommandTrigger(StrEnum):
    """The command machine's events, as the history records them."""

    EXECUTE = "execute"
    REFUSE = "refuse"
    EXECUTED = "executed"
    STEPPED = "stepped"
    NEXT_STEP = "next_step"
    SKIP_STEPS = "skip_steps"
    FAIL_EXECUTION = "fail_execution"
    CLAIM_END = "claim_end"
    END = "end"
    ROLLED_BACK = "rolled_back"
    GIVE_UP = "give_up"


class HookPhase(StrEnum):
    """Which hook of a command is running: what its context allows.

    Children, tasks and resources are allowed only in a step: `execute` or `next_step`.
    """

    VALIDATE = "validate"
    EXECUTE = "execute"
    NEXT_STEP = "next_step"
    END_SUCCESSFULLY = "end_successfully"
    END_WITH_FAILURE = "end_with_failure"
    #: An operator's cleanup asks a command that has ended for its opposite command again.
    CLEANUP = "cleanup"


TERMINAL_COMMAND_STATES = (
    CommandStatus.ENDED_SUCCESS,
    CommandStatus.ENDED_FAILURE,
    CommandStatus.ROLLBACK_FAILED,
)
# A command in one of these has finished its own execution and waits for its end group's fan-in.
READY_TO_END_STATES = (CommandStatus.WAITING, CommandStatus.EXECUTION_FAILED)
# A step's hooks run in `executing`; the steps hooks may start work in.
STEP_PHASES = (HookPhase.EXECUTE, HookPhase.NEXT_STEP)


class EndGuardModel(Protocol):
    """What the end guard reads of a command record, the model the machine moves."""

    execution_reason: ExecutionReason
    work_succeeded: bool | None


def ends_successfully(command: EndGuardModel) -> bool:
    """REGULAR_FLOW and all the work of its end group succeeded; ROLLBACK_FLOW never."""
    return (command.execution_reason == ExecutionReason.REGULAR_FLOW
            and command.work_succeeded is True)


COMMAND_TRANSITIONS = (
    TransitionSpec(CommandTrigger.EXECUTE, CommandStatus.NOT_STARTED, CommandStatus.EXECUTING),
    TransitionSpec(CommandTrigger.REFUSE, CommandStatus.NOT_STARTED, CommandStatus.ENDED_FAILURE),
    TransitionSpec(CommandTrigger.EXECUTED, CommandStatus.EXECUTING, CommandStatus.WAITING),
    TransitionSpec(CommandTrigger.STEPPED, CommandStatus.EXECUTING, CommandStatus.STEPPING),
    TransitionSpec(CommandTrigger.NEXT_STEP, CommandStatus.STEPPING, CommandStatus.EXECUTING),
    TransitionSpec(CommandTrigger.SKIP_STEPS, CommandStatus.STEPPING, CommandStatus.WAITING),
    TransitionSpec(CommandTrigger.FAIL_EXECUTION, CommandStatus.EXECUTING,
                   CommandStatus.EXECUTION_FAILED),
    TransitionSpec(CommandTrigger.CLAIM_END,
                   [CommandStatus.WAITING, CommandStatus.EXECUTION_FAILED], CommandStatus.ENDING),
    TransitionSpec(CommandTrigger.END, CommandStatus.ENDING, CommandStatus.ENDED_SUCCESS,
                   conditions=(ends_successfully,)),
    TransitionSpec(CommandTrigger.END, CommandStatus.ENDING, CommandStatus.ROLLING_BACK),
    TransitionSpec(CommandTrigger.ROLLED_BACK, CommandStatus.ROLLING_BACK,
                   CommandStatus.ENDED_FAILURE),
    TransitionSpec(CommandTrigger.GIVE_UP, CommandStatus.ROLLING_BACK,
                   CommandStatus.ROLLBACK_FAILED),
)

COMMAND_MACHINE = SharedMachine(
    kind="command",
    states=CommandStatus,
    initial=CommandStatus.NOT_STARTED,
    transitions=COMMAND_TRANSITIONS,
    terminal=TERMINAL_COMMAND_STATES,
)
