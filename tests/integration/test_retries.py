"""Retries before rollback: which failures are retried, by whose policy, and which never are.

Never retried: a rejection, a deadline, an opposite command's task, a group that failed already.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import pytest

from persistence import SqlStore
from statemachines import (
    Command,
    CommandContext,
    CommandRegistry,
    CommandStatus,
    Compensation,
    Engine,
    InvalidParameters,
    Limits,
    ResourceRef,
    RetryPolicy,
    TaskStatus,
)
from statemachines.core.errors import InvalidConfiguration
from statemachines.testing import ManualClock
from tests.tenant.hosts import ServiceHost


def _host(fail: dict[str, list[str]] | None = None, hang: bool = False) -> ServiceHost:
    def work(parameters: Mapping[str, Any], task_id: str) -> Any:
        return {"done": parameters.get("n", 0)}

    host = ServiceHost("svc", {"work": work, "undo": work}, fail or {})
    if hang:
        host.handlers = {}  # unknown verbs are rejected; see Hanging below
    return host


class Work(Command):
    """One `work` task; its own retry policy comes from its parameters' `attempts`."""

    type_name = "Work"

    def execute(self, ctx: CommandContext) -> None:
        attempts = self.parameters.get("task_attempts")
        ctx.start_task("svc", str(self.parameters.get("verb", "work")),
                       {"n": self.parameters.get("n", 0)},
                       retry=RetryPolicy(max_attempts=attempts) if attempts else None,
                       timeout=self.parameters.get("timeout"))


class RetriedWork(Work):
    type_name = "RetriedWork"
    retry: ClassVar[RetryPolicy | None] = RetryPolicy(max_attempts=4, backoff_seconds=0.5)


class Pair(Command):
    """Two children: `first` fails for good; `second` fails once, after `first` failed."""

    type_name = "Pair"

    def execute(self, ctx: CommandContext) -> None:
        ctx.add_child("Work", {"n": 1})
        ctx.add_child("Work", {"n": 2, "verb": "later", "task_attempts": 3})


class Undone(Command):
    """Makes a thing, undone by an opposite command whose task fails once."""

    type_name = "Undone"

    def execute(self, ctx: CommandContext) -> None:
        ctx.add_resource(ResourceRef("thing", "t1"))
        ctx.start_task("svc", "work", {})
        ctx.add_child("Work", {"verb": "refused"})

    def revert(self, ctx: CommandContext, resource: ResourceRef) -> Compensation:
        return Compensation("UndoThing", {})


class UndoThing(Command):
    type_name = "UndoThing"

    def execute(self, ctx: CommandContext) -> None:
        ctx.start_task("svc", "undo", {})


REGISTRY = CommandRegistry([Work, RetriedWork, Pair, Undone, UndoThing])


def _engine(store: SqlStore, host: ServiceHost, **options: Any) -> Engine:
    clock = ManualClock()
    return Engine(store, {"svc": host}, REGISTRY, clock=clock, sleep=clock.sleep, **options)


def _attempts(store: SqlStore, root: str, verb: str = "work") -> list[tuple[int, bool]]:
    _, tasks = store.tree(root)
    return sorted((t.attempt, t.retried) for t in tasks if t.verb == verb)


def test_the_engines_policy_the_types_and_the_tasks_each_override_the_one_before(
        store: SqlStore) -> None:
    host = _host({"work": ["no"] * 10})
    engine = _engine(store, host, retry=RetryPolicy(max_attempts=2))
    by_engine = engine.submit("Work", {})
    by_type = engine.submit("RetriedWork", {})
    by_task = engine.submit("RetriedWork", {"task_attempts": 3})
    engine.run_until_idle()
    assert [len(_attempts(store, r)) for r in (by_engine, by_type, by_task)] == [2, 4, 3]
    assert _attempts(store, by_task) == [(1, True), (2, True), (3, False)]
    for root in (by_engine, by_type, by_task):
        assert store.command(root).status == CommandStatus.ENDED_FAILURE  # type: ignore[union-attr]


def test_a_task_its_agent_rejects_for_good_is_not_retried(store: SqlStore) -> None:
    engine = _engine(store, _host(), retry=RetryPolicy(max_attempts=3))
    root = engine.submit("Work", {"verb": "unknown_verb"})
    engine.run_until_idle()
    _, tasks = store.tree(root)
    assert [(t.status, t.attempt) for t in tasks] == [(TaskStatus.CLEARED, 1)]
    assert "has no verb 'unknown_verb'" in (store.command(root).error or "")  # type: ignore[union-attr]


class SlowHost(ServiceHost):
    """Never ends a task on its own; aborting it ends it, failed."""

    def start(self, task_id: str, verb: str, parameters: Mapping[str, Any]) -> None:
        self.started.append((verb, task_id))

    def poll(self, task_ids: Any) -> Any:
        from statemachines import HostStatus, TaskReport

        return {i: self.reports.get(i, TaskReport(HostStatus.RUNNING)) for i in task_ids}

    def abort(self, task_id: str) -> None:
        from statemachines import HostResult, HostStatus, TaskReport

        self.reports[task_id] = TaskReport(HostStatus.FINISHED, HostResult.FAILURE, "aborted")


def test_a_task_aborted_at_its_deadline_is_not_retried(store: SqlStore) -> None:
    engine = _engine(store, SlowHost("svc", {}), retry=RetryPolicy(max_attempts=3))
    root = engine.submit("Work", {"timeout": 5})
    engine.run_until_idle()
    _, tasks = store.tree(root)
    assert [(t.attempt, t.retried) for t in tasks] == [(1, False)]
    assert store.command(root).status == CommandStatus.ENDED_FAILURE  # type: ignore[union-attr]


@pytest.mark.parametrize("sibling_fails", [True, False])
def test_no_retry_once_something_else_in_the_end_group_failed(store: SqlStore,
                                                              sibling_fails: bool) -> None:
    """Retrying would only make more work to undo: the group rolls back anyway."""
    host = _host({"work": ["no"] if sibling_fails else [], "later": ["busy"]})
    host.handlers["later"] = host.handlers["work"]
    engine = _engine(store, host)
    # `work` fails for good (Work has no retries); `later`, allowed three attempts, fails
    # once in the same tick, after it: retried only if `work` did not fail.
    root = engine.submit("Pair", {})
    engine.run_until_idle()
    _, tasks = store.tree(root)
    later = [("later", 1)] if sibling_fails else [("later", 1), ("later", 2)]
    assert sorted((t.verb, t.attempt) for t in tasks) == [*later, ("work", 1)]


def test_an_opposite_commands_task_is_not_retried_by_the_retry_policy(store: SqlStore) -> None:
    """Its budget is the RevertPolicy's: a second opposite command, not a second task."""
    host = _host({"undo": ["disk busy"], "refused": ["no"] * 5})
    host.handlers["refused"] = host.handlers["work"]
    engine = _engine(store, host, retry=RetryPolicy(max_attempts=5))
    root = engine.submit("Undone", {})
    engine.run_until_idle()
    commands, tasks = store.tree(root)
    undo_tasks = [t for t in tasks if t.verb == "undo"]
    assert [t.attempt for t in undo_tasks] == [1, 1]  # two opposite commands, one task each
    assert len([c for c in commands if c.type == "UndoThing"]) == 2
    assert [t.attempt for t in tasks if t.verb == "refused"] == [1, 2, 3, 4, 5]


def test_a_retry_policy_that_is_no_bound_is_refused_where_it_is_made(store: SqlStore) -> None:
    for bad in ({"max_attempts": 0}, {"max_attempts": 101}, {"backoff_seconds": -1},
                {"backoff_factor": 0.5}, {"max_attempts": True}):
        with pytest.raises(InvalidConfiguration):
            RetryPolicy(**bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidConfiguration, match="retry must be a RetryPolicy"):
        _engine(store, _host(), retry=3)

    class BadRetry(Work):
        type_name = "BadRetry"

        def execute(self, ctx: CommandContext) -> None:
            ctx.start_task("svc", "work", {}, retry=3)  # type: ignore[arg-type]

    clock = ManualClock()
    engine = Engine(store, {"svc": _host()}, CommandRegistry([BadRetry]), clock=clock,
                    sleep=clock.sleep)
    root = engine.submit("BadRetry", {})
    engine.run_until_idle()
    error = store.command(root).error or ""  # type: ignore[union-attr]
    assert InvalidParameters.__name__ in error and "retry must be a RetryPolicy" in error


def test_a_retried_attempt_waits_its_back_off_and_keeps_its_deadline(store: SqlStore) -> None:
    host = _host({"work": ["busy"]})
    engine = _engine(store, host, retry=RetryPolicy(max_attempts=2, backoff_seconds=30),
                     limits=Limits(task_timeout=100))
    root = engine.submit("Work", {})
    engine.tick()
    engine.tick()
    _, tasks = store.tree(root)
    second = next(t for t in tasks if t.attempt == 2)
    assert second.status == TaskStatus.PENDING  # not started before its back-off
    assert second.retry_at - second.created_at == pytest.approx(30)
    assert second.deadline - second.retry_at == pytest.approx(100)
    engine.run_until_idle()
    assert store.command(root).status == CommandStatus.ENDED_SUCCESS  # type: ignore[union-attr]
