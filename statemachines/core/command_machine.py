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
    NOT_STARTED = "not_started"
    EXECUTING = "executing"
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
    #: A command that took the failure path with nothing of its own to revert.
    FAILED = "failed"
    #: Refused by `validate` before it executed.
    REFUSED = "refused"
    #: Its resource was undone by an opposite command (or was already gone).
    ROLLED_BACK = "rolled_back"
    #: Its resource could not be undone within the retry bounds; it is left for `cleanup`.
    REVERT_FAILED = "revert_failed"
    #: An opposite command whose work undid the resource.
    REVERTED = "reverted"
    #: An opposite command whose work failed; the owner may try again.
    ATTEMPT_FAILED = "attempt_failed"
    #: An opposite command whose outcome was lost with a dead engine or host; it is redone
    #: without spending the failure budget.
    LOST = "lost"
    #: A root an operator cancelled; what already succeeded was undone like any failure.
    CANCELLED = "cancelled"
    #: Carried while rolling back by a command one of whose children gave up on its rollback.
    CHILD_REVERT_FAILED = "child_revert_failed"


class CommandTrigger(StrEnum):
    """The command machine's events, as the history records them."""

    EXECUTE = "execute"
    REFUSE = "refuse"
    EXECUTED = "executed"
    FAIL_EXECUTION = "fail_execution"
    CLAIM_END = "claim_end"
    END = "end"
    ROLLED_BACK = "rolled_back"
    GIVE_UP = "give_up"


class HookPhase(StrEnum):
    """Which hook of a command is running: what its context allows (children and tasks only
    while executing)."""

    VALIDATE = "validate"
    EXECUTE = "execute"
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


class EndGuardModel(Protocol):
    execution_reason: ExecutionReason
    work_succeeded: bool | None


def ends_successfully(command: EndGuardModel) -> bool:
    """REGULAR_FLOW and all the work of its end group succeeded; ROLLBACK_FLOW never."""
    return (command.execution_reason == ExecutionReason.REGULAR_FLOW
            and command.work_succeeded is True)


S = CommandStatus
E = CommandTrigger
COMMAND_TRANSITIONS = (
    TransitionSpec(E.EXECUTE, S.NOT_STARTED, S.EXECUTING),
    TransitionSpec(E.REFUSE, S.NOT_STARTED, S.ENDED_FAILURE),
    TransitionSpec(E.EXECUTED, S.EXECUTING, S.WAITING),
    TransitionSpec(E.FAIL_EXECUTION, S.EXECUTING, S.EXECUTION_FAILED),
    TransitionSpec(E.CLAIM_END, [S.WAITING, S.EXECUTION_FAILED], S.ENDING),
    TransitionSpec(E.END, S.ENDING, S.ENDED_SUCCESS, conditions=(ends_successfully,)),
    TransitionSpec(E.END, S.ENDING, S.ROLLING_BACK),
    TransitionSpec(E.ROLLED_BACK, S.ROLLING_BACK, S.ENDED_FAILURE),
    TransitionSpec(E.GIVE_UP, S.ROLLING_BACK, S.ROLLBACK_FAILED),
)

COMMAND_MACHINE = SharedMachine(
    kind="command",
    states=CommandStatus,
    initial=CommandStatus.NOT_STARTED,
    transitions=COMMAND_TRANSITIONS,
    terminal=TERMINAL_COMMAND_STATES,
)
