"""A deterministic in-memory storage agent, driven by tests.

It outlives engines: a test "crashes" an engine by dropping it and recovers with a new one
over the same database and the same agent, exactly as a restarted engine would find a host
that kept running. Its `images` set is the storage's ground truth for leftover checks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from statemachines import AgentError, FrozenMap, HostResult, HostStatus, TaskRejected, TaskReport

from .verbs import COPY_VERB, DELETE_VERB


@dataclass(frozen=True)
class Plan:
    """How one task will go: its result after `polls` polls, or forgotten by the agent."""

    result: HostResult = HostResult.SUCCESS
    polls: int = 1
    partial: bool = True  # a failed copy leaves a partial image behind
    forget: bool = False  # the agent loses the task (reported missing from polls)


@dataclass
class _SimTask:
    verb: str
    parameters: Mapping[str, Any]
    plan: Plan
    polls_left: int
    ended: bool = False


#: The size of every image the simulated agent copies (its templates are all alike).
IMAGE_BYTES = 2 << 20


def _report(task: _SimTask) -> TaskReport:
    """How an ended task is reported: a copy says how many bytes it copied."""
    result = task.plan.result
    if result == HostResult.UNKNOWN:
        return TaskReport.unknown("simulated: outcome unknown")
    if result == HostResult.FAILURE:
        return TaskReport(HostStatus.FINISHED, result, f"simulated: {task.verb} failed")
    return TaskReport(HostStatus.FINISHED, result,
                      output=_COPIED if task.verb == COPY_VERB else None)


_COPIED = MappingProxyType({"bytes": IMAGE_BYTES})


def default_plan(verb: str, parameters: Mapping[str, Any]) -> Plan:
    """The plan of a task no test decided: one asked to `inject_failure` fails, others succeed."""
    if parameters.get("inject_failure"):
        return Plan(result=HostResult.FAILURE)
    return Plan()


@dataclass
class SimulatedAgent:
    """The in-memory storage agent: each task goes as `decide` planned it.

    Its `images` are the storage's ground truth; `started` and `aborted` list task ids in
    order, for a test to read. While `unavailable` is True every call fails with AgentError,
    as a host that is down would.
    """

    decide: Callable[[str, Mapping[str, Any]], Plan] = default_plan
    images: set[str] = field(default_factory=set)
    tasks: dict[str, _SimTask] = field(default_factory=dict)
    started: list[str] = field(default_factory=list)
    aborted: list[str] = field(default_factory=list)
    unavailable: bool = False
    # Ids it has cleared: a start that arrives late (a retried request, an engine with a stale
    # view) must not run the task again, as the protocol says.
    cleared: set[str] = field(default_factory=set)
    # Served over HTTP its methods run on several threads at once.
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)

    def start(self, task_id: str, verb: str, parameters: Mapping[str, Any]) -> None:
        """Take the task, with the plan `decide` gives it; a known or cleared id starts nothing."""
        with self._lock:
            self._start(task_id, verb, parameters)

    def _start(self, task_id: str, verb: str, parameters: Mapping[str, Any]) -> None:
        if self.unavailable:
            raise AgentError("simulated agent is unavailable")
        if task_id in self.tasks or task_id in self.cleared:
            return
        if verb not in (COPY_VERB, DELETE_VERB):
            raise TaskRejected(f"simulated agent has no verb {verb!r}")
        plan = self.decide(verb, parameters)
        # The engine's parameters are frozen (read-only all the way down): kept as they are,
        # not copied (two copies of every task's parameters at 100,000 disks is 46 MB).
        kept = (parameters if isinstance(parameters, FrozenMap | MappingProxyType)
                else dict(parameters))
        self.tasks[task_id] = _SimTask(verb, kept, plan, plan.polls)
        self.started.append(task_id)

    def poll(self, task_ids: Sequence[str]) -> Mapping[str, TaskReport]:
        """Reports as the tasks' plans say: running for `polls` polls, then their end.

        A task changes `images` once, when it ends; a task it does not know, or its plan has it
        forget, is left out of the answer.
        """
        with self._lock:
            return self._poll(task_ids)

    def _poll(self, task_ids: Sequence[str]) -> Mapping[str, TaskReport]:
        if self.unavailable:
            raise AgentError("simulated agent is unavailable")
        answer: dict[str, TaskReport] = {}
        for task_id in task_ids:
            task = self.tasks.get(task_id)
            if task is None or task.plan.forget:
                continue
            if task.polls_left > 0:
                task.polls_left -= 1
                answer[task_id] = TaskReport(HostStatus.RUNNING)
                continue
            if not task.ended:
                task.ended = True
                self._apply(task)
            answer[task_id] = _report(task)
        return answer

    def clear(self, task_id: str) -> None:
        """Forget the task, keeping its id, so that a late start of it runs nothing."""
        with self._lock:
            if self.unavailable:
                raise AgentError("simulated agent is unavailable")
            self.tasks.pop(task_id, None)
            self.cleared.add(task_id)

    def abort(self, task_id: str) -> None:
        """A running task ends at its next poll, failed (a copy leaves its partial image)."""
        with self._lock:
            self._abort(task_id)

    def _abort(self, task_id: str) -> None:
        if self.unavailable:
            raise AgentError("simulated agent is unavailable")
        task = self.tasks.get(task_id)
        if task is not None and not task.ended:
            task.plan = replace(task.plan, result=HostResult.FAILURE)
            task.polls_left = 0
            self.aborted.append(task_id)

    def _apply(self, task: _SimTask) -> None:
        image = str(task.parameters.get("image", ""))
        succeeded = task.plan.result == HostResult.SUCCESS
        if task.verb == COPY_VERB and (succeeded or task.plan.partial):
            self.images.add(image)
        elif task.verb == DELETE_VERB and succeeded:
            self.images.discard(image)
