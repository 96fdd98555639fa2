"""Prometheus metrics of an engine, counted from what its ticks report.

Nothing here reads the database on the engine's path: the counters are fed from each
committed tick's `TickReport` (`on_commit`: what the tick's transaction made true, never
work that was rolled back), the tick histogram from every tick's report (`on_tick`), and the
agent calls by proxies (`metered_agent`). What only the worker or the database know (roots
held, takeovers, outages, resources left revert_failed) is read when Prometheus scrapes
(`metric_collectors`), so an idle worker costs nothing between scrapes.

Every metric lives on the `EngineMetrics`'s own registry, never prometheus_client's global
one: two engines in one process (or two tests) never collide, and a process serves only what
it was given. Wire it as::

    metrics = EngineMetrics()
    engine = Engine(store, metrics.meter(agents), commands, lease=WorkerLease("w1"),
                    on_commit=metrics.on_commit)
    worker = Worker(engine, on_tick=metrics.on_tick)
    metrics.watch(engine, worker,
                  revert_failed=lambda: store.count_reverts(RevertState.REVERT_FAILED))

and serve `metrics.registry` (`metrics_app`, or prometheus_client's own servers).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram

from ..core.engine.engine import Engine
from ..core.engine.worker import Worker
from ..core.machines.command_machine import TERMINAL_COMMAND_STATES
from ..core.machines.task_machine import DONE_TASK_STATES
from ..core.ports.agent_protocol import Agent
from ..core.records.tick_report import TickReport
from .metered_agent import SECONDS_BUCKETS, AgentCallMetrics, MeteredAgent, metered
from .metric_collectors import RevertFailedCollector, WorkerCollector

_COMMAND_ENDS = frozenset(str(s) for s in TERMINAL_COMMAND_STATES)
_TASK_ENDS = frozenset(str(s) for s in DONE_TASK_STATES)
_FLOWS = {"command": "regular", "compensation": "rollback"}


class EngineMetrics:
    """The metrics of one engine (a worker, or a single engine), on a registry of their own.

    Args:
        registry: where they are registered; by default a new `CollectorRegistry`.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        on = self.registry
        self.command_transitions = Counter(
            "endaction_command_transitions",
            "Commands entering a status, by command type, status and flow (regular, or "
            "rollback for opposite commands); ended_success, ended_failure and "
            "rollback_failed are their ends.",
            ["type", "status", "flow"], registry=on)
        self.task_transitions = Counter(
            "endaction_task_transitions",
            "Tasks entering a status, by verb and status.", ["verb", "status"], registry=on)
        self.tasks_ended = Counter(
            "endaction_tasks_ended",
            "Tasks the agent had its last word on (finished or start_failed), by verb and "
            "result (success, failure, unknown).", ["verb", "result"], registry=on)
        self.roots_ended = Counter(
            "endaction_roots_ended",
            "Root commands that ended, by result: succeeded (ended_success) or failed "
            "(anything else, rolled back or not).", ["result"], registry=on)
        for result in ("succeeded", "failed"):
            self.roots_ended.labels(result)  # both series from the start: rate() needs a 0
        self.compensations_started = Counter(
            "endaction_compensations_started",
            "Opposite commands started to revert what a failed command made (rollbacks and "
            "cleanups, retries included).", registry=on)
        self.compensations_ended = Counter(
            "endaction_compensations_ended",
            "Opposite commands that ended, by type and outcome: reverted (the resource is "
            "reverted); attempt_failed or lost (retried within the revert policy); "
            "revert_failed (given up: the resource waits for `endaction cleanup`).",
            ["type", "outcome"], registry=on)
        self.tick_duration = Histogram(
            "endaction_tick_duration_seconds",
            "Seconds an engine tick took, agent calls included, by whether it committed "
            "anything (an idle tick does not).",
            ["committed"], buckets=SECONDS_BUCKETS, registry=on)
        self.agent_calls = AgentCallMetrics(on)

    def on_commit(self, report: TickReport) -> None:
        """An `Engine(on_commit=...)` callback: count what the committed tick did."""
        for (kind, name, status, outcome), count in report.transitions.items():
            status, outcome = str(status), str(outcome)
            if kind == "task":
                self.task_transitions.labels(name, status).inc(count)
                if status in _TASK_ENDS:
                    self.tasks_ended.labels(name, outcome or "unknown").inc(count)
                continue
            self.command_transitions.labels(name, status, _FLOWS.get(kind, kind)).inc(count)
            if kind == "compensation" and status in _COMMAND_ENDS:
                self.compensations_ended.labels(name, outcome or "none").inc(count)
        if report.compensations_started:
            self.compensations_started.inc(report.compensations_started)
        if report.roots_ended:
            failed = report.roots_failed
            self.roots_ended.labels("succeeded").inc(report.roots_ended - failed)
            self.roots_ended.labels("failed").inc(failed)

    def on_tick(self, report: TickReport) -> None:
        """A `Worker(on_tick=...)` callback: time every tick, committed or not.

        A tick that lost a race or met an outage raised instead of reporting: the worker's
        totals count those.
        """
        if report.duration is not None:
            self.tick_duration.labels("true" if report.committed else "false").observe(
                report.duration)

    def meter(self, agents: Mapping[str, Agent]) -> dict[str, Agent]:
        """The agents to give the engine: each call timed by agent and call."""
        return {name: metered(name, agent, self.agent_calls) for name, agent in agents.items()}

    def watch(self, engine: Engine, worker: Worker | None = None, *,
              revert_failed: Callable[[], int] | None = None) -> None:
        """From now on, read the engine, the worker and the revert_failed count at each scrape.

        A scrape reads the roots `engine` holds and took over, the `worker`'s outages and lost
        races, and `revert_failed()`, the resources left revert_failed (a count from the
        database, e.g. `SqlStore.count_reverts`).
        """
        name = worker.name if worker is not None else engine.actor
        self.registry.register(WorkerCollector(name, engine, worker))
        if revert_failed is not None:
            self.registry.register(RevertFailedCollector(revert_failed))


__all__ = ["SECONDS_BUCKETS", "EngineMetrics", "MeteredAgent"]
