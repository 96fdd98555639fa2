"""Agents whose calls are timed, without the engine knowing: `metered(name, agent, calls)`.

The engine calls its agents in one place (`core/tick/agent_calls.py`) that must stay about calling
them, not about measuring them; and an application's agents are its own classes. So the
engine is handed proxies instead: each times start, poll, clear and abort into
`AgentCallMetrics`, counts what they raise, and hands everything else (`close`, a domain's
own methods) to the agent itself. An agent that cannot abort gets a proxy that cannot either:
the engine asks `isinstance(agent, Abortable)` before aborting, and a proxy that always had
`abort` would turn a task past its deadline into failed abort calls instead of an `unknown`
end after its grace.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram

from ..core.machines.host_status import TaskReport
from ..core.ports.agent_protocol import Abortable, Agent, AgentUnreachable, TaskRejected

#: Seconds, from an in-process agent's microseconds to a remote host's timeouts.
SECONDS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                   5.0, 10.0, 30.0, 60.0)
_T = TypeVar("_T")


class AgentCallMetrics:
    """The histogram and error counter every metered agent of one registry shares."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.duration = Histogram(
            "endaction_agent_call_duration_seconds",
            "Seconds an agent call took, by agent and call (start, poll, clear, abort); a "
            "poll asks for every task of that agent at once.",
            ["agent", "call"], buckets=SECONDS_BUCKETS, registry=registry)
        self.errors = Counter(
            "endaction_agent_call_errors",
            "Agent calls that raised, by agent, call and error: rejected (a refusal for "
            "good), unreachable (no answer at all), failed (any other error).",
            ["agent", "call", "error"], registry=registry)


class MeteredAgent:
    """An agent's start, poll and clear, timed; every other attribute is the agent's own."""

    _CALLS: tuple[str, ...] = ("start", "poll", "clear")

    def __init__(self, name: str, agent: Agent, calls: AgentCallMetrics) -> None:
        self._name = name
        self._agent = agent
        self._calls = calls
        # Resolved once: a poll per agent per tick should not look labels up each time.
        self._timers = {call: calls.duration.labels(name, call) for call in self._CALLS}

    @property
    def metered(self) -> Agent:
        """The agent behind the proxy."""
        return self._agent

    def start(self, task_id: str, verb: str, parameters: Mapping[str, Any]) -> None:
        """The agent's start, timed; an error it raises is counted by its kind, and raised."""
        self._timed("start", lambda: self._agent.start(task_id, verb, parameters))

    def poll(self, task_ids: Sequence[str]) -> Mapping[str, TaskReport]:
        """The agent's poll, timed: one call for every task of the agent's in a tick."""
        return self._timed("poll", lambda: self._agent.poll(task_ids))

    def clear(self, task_id: str) -> None:
        """The agent's clear, timed, its errors counted like a start's."""
        self._timed("clear", lambda: self._agent.clear(task_id))

    def __getattr__(self, attribute: str) -> Any:
        """Any other public attribute is the agent's own, so that the proxy stands in for it."""
        if attribute.startswith("_"):  # not set yet (a copy, an unpickling): no recursion
            raise AttributeError(attribute)
        return getattr(self._agent, attribute)

    def __repr__(self) -> str:
        """Names the agent and what it wraps, so that a log line shows the agent is metered."""
        return f"MeteredAgent({self._name!r}, {self._agent!r})"

    def _timed(self, call: str, work: Callable[[], _T]) -> _T:
        with self._timing(call):
            return work()

    @contextmanager
    def _timing(self, call: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        except TaskRejected:
            self._calls.errors.labels(self._name, call, "rejected").inc()
            raise
        except AgentUnreachable:
            self._calls.errors.labels(self._name, call, "unreachable").inc()
            raise
        except Exception:
            self._calls.errors.labels(self._name, call, "failed").inc()
            raise
        finally:
            self._timers[call].observe(time.perf_counter() - started)


class MeteredAbortableAgent(MeteredAgent):
    """The proxy of an agent that can abort: its aborts are timed too."""

    _CALLS = (*MeteredAgent._CALLS, "abort")

    def abort(self, task_id: str) -> None:
        """The agent's abort, timed, its errors counted like a start's."""
        agent = self._agent
        assert isinstance(agent, Abortable)  # chosen so by `metered`
        self._timed("abort", lambda: agent.abort(task_id))


def metered(name: str, agent: Agent, calls: AgentCallMetrics) -> MeteredAgent:
    """`agent`, timed under `name`; Abortable exactly when the agent is."""
    kind = MeteredAbortableAgent if isinstance(agent, Abortable) else MeteredAgent
    return kind(name, agent, calls)
