"""An agent whose tasks end only when the test says how: the property suite's remote side.

Every answer a real agent can give is a rule the suite can choose at any moment: a task
succeeds, fails, ends unknown, or is forgotten; a call raises; the process dies half-way
through a call, after the agent acted and before the engine committed. The `resources` set is
the ground truth the leftover check compares the engine's records against.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..core.machines.host_status import HostResult, HostStatus, TaskReport
from ..core.ports.agent_protocol import AgentError

# What a task does to the world when its work takes effect (a copy that lands, a delete).
Effect = Callable[[str, Mapping[str, Any], set[str]], None]
# The outcome the agent gives a task when nobody chose one: used to drive a run to its end.
Autopilot = Callable[[str, Mapping[str, Any]], HostResult]
# What a task that succeeds returns (verb, parameters, task id): JSON, or None for nothing.
Output = Callable[[str, Mapping[str, Any], str], Any]


def no_effect(verb: str, parameters: Mapping[str, Any], resources: set[str]) -> None:
    """For agents whose tasks change nothing the test keeps track of."""


def no_output(verb: str, parameters: Mapping[str, Any], task_id: str) -> Any:
    """For agents whose tasks return nothing."""
    return None


def _working(task: ControlledTask) -> bool:
    """Still running (or aborting): the agent has not said its last word on it."""
    return not task.forgotten and (task.report is None or not task.report.ended)


class AgentCrash(BaseException):
    """The engine's process died inside an agent call: nothing catches it, nothing after runs."""


@dataclass
class ControlledTask:
    """What the agent knows of one task: its request, and its last report once it has one."""

    verb: str
    parameters: Mapping[str, Any]
    report: TaskReport | None = None  # None while running
    forgotten: bool = False


@dataclass
class ControlledAgent:
    """An agent that answers as the test decides: tasks run until `finish` or `forget`.

    It keeps the `resources` its tasks made (through `effect`), the ground truth of the
    leftover check, and can be told to fail calls (`hiccups`), to kill the engine inside one
    (`die_in_call`), or to fail every revert of a resource (`doom`). The Agent protocol's
    methods come first (`start`, `poll`, `clear`, `abort`), then what the test decides.
    """

    effect: Effect = no_effect
    resources: set[str] = field(default_factory=set)
    tasks: dict[str, ControlledTask] = field(default_factory=dict)
    # Resources whose opposite commands' tasks fail whatever anyone chooses (a revert that
    # cannot work).
    doomed: set[str] = field(default_factory=set)
    # The next `hiccups` calls raise AgentError (a transient outage).
    hiccups: int = 0
    # Counts calls down; the call that brings it to zero acts and then kills the engine.
    die_in_call: int | None = None
    autopilot: Autopilot | None = None
    # Which verbs revert, and which resource a task touches: how `doomed` is applied.
    compensation_verbs: frozenset[str] = frozenset()
    resource_of: Callable[[str, Mapping[str, Any]], str | None] = lambda verb, params: None
    output_of: Output = no_output
    # What each task that succeeded returned, by task id, kept after it is cleared: the
    # suite checks the engine kept exactly this.
    outputs: dict[str, Any] = field(default_factory=dict)

    def start(self, task_id: str, verb: str, parameters: Mapping[str, Any]) -> None:
        """Take the task on, once per id; it runs until the test ends it."""
        self._enter("start")
        if task_id not in self.tasks:
            self.tasks[task_id] = ControlledTask(verb, dict(parameters))
        self._leave()

    def poll(self, task_ids: Sequence[str]) -> Mapping[str, TaskReport]:
        """Report each known task, running or ended; forgotten ones are left out.

        With an `autopilot`, every task still working is ended first, along its choice.
        """
        self._enter("poll")
        answer: dict[str, TaskReport] = {}
        for task_id in task_ids:
            task = self.tasks.get(task_id)
            if task is None or task.forgotten:
                continue
            if _working(task) and self.autopilot is not None:
                self.finish(task_id, self.autopilot(task.verb, task.parameters), effect=True)
            answer[task_id] = task.report or TaskReport(HostStatus.RUNNING)
        self._leave()
        return answer

    def clear(self, task_id: str) -> None:
        """Forget the task; its output stays in `outputs` for the suite to check."""
        self._enter("clear")
        self.tasks.pop(task_id, None)
        self._leave()

    def abort(self, task_id: str) -> None:
        """Make a running task report `aborting` until the test (or the autopilot) ends it.

        A real host takes its time to stop a copy, and may leave part of it behind.
        """
        self._enter("abort")
        task = self.tasks.get(task_id)
        if task is not None and task.report is None and not task.forgotten:
            task.report = TaskReport(HostStatus.ABORTING, HostResult.UNKNOWN, "aborting")
        self._leave()

    def running(self) -> list[str]:
        """Ids of the tasks still running, in the order they were started.

        A replay of the same steps then picks the same task.
        """
        return [i for i, t in self.tasks.items() if _working(t)]

    def compensations_running(self) -> list[str]:
        """Ids of the running tasks that revert (their verb is in `compensation_verbs`)."""
        return [i for i in self.running() if self.tasks[i].verb in self.compensation_verbs]

    def finish(self, task_id: str, result: HostResult, effect: bool) -> HostResult:
        """End a running task with `result`; returns the result it was given.

        `effect` says whether a failed or unknown one still acted (a partial copy). A task
        that reverts a doomed resource fails whatever was asked.
        """
        task = self.tasks[task_id]
        if self._doomed(task):
            result = HostResult.FAILURE
        if result == HostResult.SUCCESS or effect:
            self.effect(task.verb, task.parameters, self.resources)
        if result == HostResult.UNKNOWN:
            task.report = TaskReport.unknown("the agent lost track of the outcome")
        elif result == HostResult.SUCCESS:
            output = self.output_of(task.verb, task.parameters, task_id)
            if output is not None:
                self.outputs[task_id] = output
            task.report = TaskReport(HostStatus.FINISHED, result, output=output)
        else:
            task.report = TaskReport(HostStatus.FINISHED, result, "the agent failed it")
        return result

    def forget(self, task_id: str, effect: bool) -> None:
        """The agent loses the task (a host reboot); its work may or may not have happened."""
        task = self.tasks[task_id]
        if effect and not self._doomed(task):
            self.effect(task.verb, task.parameters, self.resources)
        task.forgotten = True

    def doom(self, task_id: str) -> None:
        """Make every task that reverts this task's resource fail, now and later."""
        resource = self.resource_of(self.tasks[task_id].verb, self.tasks[task_id].parameters)
        if resource is not None:
            self.doomed.add(resource)

    def _doomed(self, task: ControlledTask) -> bool:
        return (task.verb in self.compensation_verbs
                and self.resource_of(task.verb, task.parameters) in self.doomed)

    def _enter(self, call: str) -> None:
        if self.hiccups > 0:
            self.hiccups -= 1
            raise AgentError(f"controlled agent: transient failure of {call}")

    def _leave(self) -> None:
        if self.die_in_call is not None:
            self.die_in_call -= 1
            if self.die_in_call <= 0:
                self.die_in_call = None
                raise AgentCrash
