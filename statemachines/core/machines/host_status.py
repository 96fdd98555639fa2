"""What an agent says about a task, and what the engine makes of it.

oVirt once treated a task the host no longer knew as running forever; here `unknown` is an
end, and an end that is not finished+success is a failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .shared_machine import SharedMachine, TransitionSpec


class HostStatus(StrEnum):
    """A task's status as its agent reports it, in the host's own lifecycle (VDSM's).

    `finished`, `unknown` and `cleaning` are the agent's last word (`END_HOST_STATES`).
    """

    INIT = "init"
    RUNNING = "running"
    FINISHED = "finished"
    ABORTING = "aborting"
    CLEANING = "cleaning"
    UNKNOWN = "unknown"


class HostResult(StrEnum):
    """How a finished task ended, as its agent reports it; only `success` is success."""

    SUCCESS = "success"
    FAILURE = "failure"
    UNKNOWN = "unknown"


# The agent has said its last word: the engine may fan in over the task.
END_HOST_STATES = (HostStatus.FINISHED, HostStatus.UNKNOWN, HostStatus.CLEANING)


@dataclass(frozen=True)
class TaskReport:
    """One task's status as an agent reports it in a poll.

    Attributes:
        status: RUNNING (or INIT) while it works; FINISHED when it ended; UNKNOWN when the
            agent lost it (`TaskReport.unknown(message)`).
        result: with FINISHED, SUCCESS or FAILURE; only FINISHED + SUCCESS is success.
        message: what a person should read about it (the reason of a failure).
        output: what the work produced, as JSON data (a certificate's serial, an allocated
            address, a copy's size), given with its end; hooks read it as the task's
            `output`. At most `Limits.max_output_bytes` of JSON text; one that is larger, or
            is not strict JSON, ends the task `unknown`, saying why.
    """

    status: HostStatus
    result: HostResult = HostResult.UNKNOWN
    message: str = ""
    output: Any = None

    @property
    def ended(self) -> bool:
        """Whether the agent has said its last word on the task: the engine may fan in over it."""
        return self.status in END_HOST_STATES

    @property
    def succeeded(self) -> bool:
        """Whether the task finished with success (`host_ended_successfully`)."""
        return host_ended_successfully(self.status, self.result)

    @classmethod
    def unknown(cls, message: str) -> TaskReport:
        """The report of a task the agent lost, with `message` saying why: an end, and a failure."""
        return cls(HostStatus.UNKNOWN, HostResult.UNKNOWN, message)


# How far a task the host still works on has come; a report is written only when it moves
# forward (lower), so that every write of a running task is progress.
_PROGRESS: dict[str | None, int] = {None: 3, HostStatus.INIT.value: 2,
                                     HostStatus.RUNNING.value: 1, HostStatus.ABORTING.value: 0}


def host_progress(status: str | None) -> int:
    """3 before any report, then init 2, running 1, aborting 0 (ended statuses count 0)."""
    return _PROGRESS.get(status, 0)


def host_ended_successfully(status: str | None, result: str | None) -> bool:
    """Finished with success; `cleaning` is a finished task the host is tidying up."""
    return status in (HostStatus.FINISHED, HostStatus.CLEANING) and result == HostResult.SUCCESS


# The host's own lifecycle, as VDSM reports it. The engine does not drive it; it is drawn so the
# diagrams show what the reported statuses mean, and `unknown` is reachable from everywhere.
HOST_TRANSITIONS = (
    TransitionSpec("run", HostStatus.INIT, HostStatus.RUNNING),
    TransitionSpec("finish", HostStatus.RUNNING, HostStatus.FINISHED),
    TransitionSpec("abort", [HostStatus.INIT, HostStatus.RUNNING], HostStatus.ABORTING),
    TransitionSpec("aborted", HostStatus.ABORTING, HostStatus.FINISHED),
    TransitionSpec("clean", HostStatus.FINISHED, HostStatus.CLEANING),
    TransitionSpec("lose", [HostStatus.INIT, HostStatus.RUNNING, HostStatus.ABORTING,
                            HostStatus.CLEANING], HostStatus.UNKNOWN),
)

HOST_MACHINE = SharedMachine(
    kind="host_task",
    states=HostStatus,
    initial=HostStatus.INIT,
    transitions=HOST_TRANSITIONS,
    terminal=(HostStatus.FINISHED, HostStatus.UNKNOWN),
)
