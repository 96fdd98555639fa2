"""The remote side of an async task (VDSM in oVirt), as the engine sees it.

The engine generates task ids and passes them to `start`, so starting is idempotent: after a
crash a `pending` task is simply started again and the agent recognises it. `poll` takes many
ids in one call (like SPMGetAllTasksStatuses), so a tick costs one round trip per agent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from ..errors import EndactionError
from ..machines.host_status import TaskReport


class AgentError(EndactionError):
    """The agent failed to answer (transient: the engine tries again next tick)."""


class TaskRejected(AgentError):
    """The agent refused the task for good (unknown verb, bad parameters)."""


class AgentUnreachable(AgentError):
    """The agent did not answer at all, rather than answering with an error.

    Its host is down, frozen or cut off. Raise it after the call's own timeouts and retries:
    the engine then makes no further call to that agent in the same tick, since each would wait
    out the same silence, and counts those calls as failed tries.
    """


class Agent(Protocol):
    """What runs tasks: the engine starts, polls and clears them through these three calls.

    An agent runs in the engine's process or behind an HTTP task host. A call that raises is
    tried again, within the bounds of `Limits`; `start` raises TaskRejected to refuse a task
    for good, and any call AgentUnreachable when the agent did not answer at all.
    """

    def start(self, task_id: str, verb: str, parameters: Mapping[str, Any]) -> None:
        """Start the task, or do nothing if a task with this id was already started."""

    def poll(self, task_ids: Sequence[str]) -> Mapping[str, TaskReport]:
        """Statuses of the given tasks; an id missing from the answer is a task it forgot."""

    def clear(self, task_id: str) -> None:
        """Forget a task whose end the engine recorded; clearing an unknown id is no error."""


@runtime_checkable
class Abortable(Protocol):
    """An agent that can abort a task.

    The engine asks it for tasks past their deadline and for the tasks of a cancelled root.
    Optional; without it such a task ends `unknown` once its grace is over.
    """

    def abort(self, task_id: str) -> None:
        """Stop the task if it runs; it must then be reported ended (failure) by `poll`.

        Aborting a task that ended, or that the agent does not know, is no error.
        """
