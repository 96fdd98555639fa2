"""Steps and outputs at their edges.

They cover the bound on steps, no step after a failure, hooks that ask for what their phase does not
allow, outputs that cannot be kept, and what a hook reads of its own work after a restart.
"""

from __future__ import annotations

import math
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
    HostStatus,
    Limits,
    Outcome,
    ResourceRef,
    thaw,
)
from statemachines.testing import ManualClock
from tests.tenant.hosts import ServiceHost

SEEN: dict[str, Any] = {}


class Forever(Command):
    """Starts one more task at every step: only `Limits.max_steps` stops it."""

    type_name = "Forever"

    def execute(self, ctx: CommandContext) -> None:
        ctx.start_task("svc", "work", {"n": ctx.step})

    def next_step(self, ctx: CommandContext) -> None:
        ctx.start_task("svc", "work", {"n": ctx.step})


class Stepper(Command):
    """Two steps of one task each; records what it saw."""

    type_name = "Stepper"

    def execute(self, ctx: CommandContext) -> None:
        ctx.start_task("svc", str(self.parameters.get("verb", "work")), {"n": 1})

    def next_step(self, ctx: CommandContext) -> None:
        SEEN.setdefault("next_step", []).append((ctx.step, [t.output for t in ctx.tasks]))
        if ctx.step == 2:
            ctx.start_task("svc", "work", {"n": 2})


class Slowly(Stepper):
    """Its first step's task takes its time."""

    type_name = "Slowly"

    def execute(self, ctx: CommandContext) -> None:
        ctx.start_task("svc", "slow", {"n": 1})


class Siblings(Command):
    type_name = "Siblings"

    def execute(self, ctx: CommandContext) -> None:
        ctx.add_child("Slowly", {})
        ctx.add_child("Stepper", {"verb": "refused"})


class Misuses(Command):
    """Asks, in the hook named by its parameters, for what that hook may not do."""

    type_name = "Misuses"

    def execute(self, ctx: CommandContext) -> None:
        if self.parameters["in"] == "execute":
            self._misuse(ctx)

    def end_successfully(self, ctx: CommandContext) -> None:
        if self.parameters["in"] == "end_successfully":
            self._misuse(ctx)

    def _misuse(self, ctx: CommandContext) -> None:
        what = self.parameters["what"]
        if what == "add_resource":
            ctx.add_resource(ResourceRef("thing", "x"))
        elif what == "huge_output":
            ctx.set_output({"blob": "x" * 100})
        elif what == "nan_output":
            ctx.set_output({"ratio": math.nan})


class Watcher(Command):
    """Records what its hooks read of their own verdict and the group's."""

    type_name = "Watcher"
    retry: ClassVar[Any] = None

    def execute(self, ctx: CommandContext) -> None:
        ctx.add_resource(ResourceRef("thing", self.parameters["name"]))
        ctx.start_task("svc", str(self.parameters["verb"]), {})

    def end_with_failure(self, ctx: CommandContext) -> None:
        SEEN.setdefault(self.parameters["name"], []).append(
            (ctx.own_work_succeeded, ctx.work_succeeded,
             tuple((t.verb, t.host_result) for t in ctx.tasks)))

    def revert(self, ctx: CommandContext, resource: ResourceRef) -> Compensation | None:
        if not ctx.own_work_succeeded:
            return None  # its task failed and left nothing: nothing to undo
        return Compensation("UndoWatch", {})


class UndoWatch(Command):
    type_name = "UndoWatch"

    def execute(self, ctx: CommandContext) -> None:
        ctx.start_task("svc", "slow", {})


class Pair(Command):
    type_name = "Pair"

    def execute(self, ctx: CommandContext) -> None:
        ctx.add_child("Watcher", {"name": "good", "verb": "work"})
        ctx.add_child("Watcher", {"name": "bad", "verb": "refused"})


REGISTRY = CommandRegistry([Forever, Stepper, Slowly, Siblings, Misuses, Watcher, Pair,
                            UndoWatch])


class Host(ServiceHost):
    """`work` succeeds with an output, `refused` fails, and `slow` ends after a few polls.

    The answer to `bad_output` carries what the test sets in `bad`.
    """

    def __init__(self) -> None:
        def work(parameters: Mapping[str, Any], task_id: str) -> Any:
            return {"n": parameters.get("n"), "task": task_id}

        super().__init__("svc", {"work": work, "refused": work, "slow": work,
                                 "bad_output": work}, {"refused": ["no"] * 100})
        self.polls: dict[str, int] = {}
        self.bad: Any = None

    def poll(self, task_ids: Any) -> Any:
        from statemachines import TaskReport

        answer = dict(super().poll(task_ids))
        for task_id in task_ids:
            verb = next((v for v, i in self.started if i == task_id), "")
            if verb == "slow":
                self.polls[task_id] = self.polls.get(task_id, 0) + 1
                if self.polls[task_id] < 4:
                    answer[task_id] = TaskReport(HostStatus.RUNNING)
            elif verb == "bad_output" and task_id in answer:
                report = answer[task_id]
                answer[task_id] = TaskReport(report.status, report.result, "", self.bad)
        return answer


def _engine(store: SqlStore, host: Host, **limits: Any) -> Engine:
    clock = ManualClock()
    return Engine(store, {"svc": host}, REGISTRY, clock=clock, sleep=clock.sleep,
                  limits=Limits(**limits))


@pytest.fixture(autouse=True)
def _forget() -> None:
    SEEN.clear()


def test_a_command_cannot_step_forever(store: SqlStore) -> None:
    engine = _engine(store, Host(), max_steps=5)
    root = engine.submit("Forever", {})
    engine.run_until_idle()
    record = store.command(root)
    assert record is not None
    assert (record.status, record.outcome, record.step) == (CommandStatus.ENDED_FAILURE,
                                                            Outcome.FAILED, 6)
    assert "would start work in step 6, beyond Limits.max_steps (5)" in (record.error or "")
    _, tasks = store.tree(root)
    assert sorted(t.parameters["n"] for t in tasks) == [1, 2, 3, 4, 5]


def test_each_step_reads_what_the_one_before_returned(store: SqlStore) -> None:
    engine = _engine(store, Host())
    root = engine.submit("Stepper", {})
    engine.run_until_idle()
    _, tasks = store.tree(root)
    first, second = sorted(tasks, key=lambda t: t.step)
    assert (first.step, second.step) == (1, 2)
    assert SEEN["next_step"] == [
        (2, [{"n": 1, "task": first.id}]),
        (3, [{"n": 1, "task": first.id}, {"n": 2, "task": second.id}])]
    assert store.command(root).status == CommandStatus.ENDED_SUCCESS  # type: ignore[union-attr]


def test_no_step_follows_once_the_end_group_failed(store: SqlStore) -> None:
    """`Slowly`'s first step is still running when its sibling fails.

    When it ends, no next step runs (`skip_steps`), and the group rolls back.
    """
    engine = _engine(store, Host())
    root = engine.submit("Siblings", {})
    engine.run_until_idle()
    commands, _ = store.tree(root)
    slowly = next(c for c in commands if c.type == "Slowly")
    assert slowly.step == 1 and "next_step" not in SEEN
    triggers = [h.trigger for h in store.history(slowly.id)]
    assert "skip_steps" in triggers and "next_step" not in triggers
    assert (slowly.outcome, slowly.own_work_succeeded) == (Outcome.ROLLED_BACK, True)


@pytest.mark.parametrize(("where", "what", "says"), [
    ("end_successfully", "add_resource", "add_resource is only allowed in execute and "
                                         "next_step, not in end_successfully"),
    ("execute", "huge_output", "over the 64 an output may be (Limits.max_output_bytes)"),
    ("execute", "nan_output", "is not strict JSON"),
])
def test_a_hook_asking_for_what_it_may_not_fails_its_command_saying_so(
        store: SqlStore, where: str, what: str, says: str) -> None:
    engine = _engine(store, Host(), max_output_bytes=64)
    root = engine.submit("Misuses", {"in": where, "what": what})
    engine.run_until_idle()
    record = store.command(root)
    assert record is not None and record.status == CommandStatus.ENDED_FAILURE
    assert says in (record.error or ""), record.error


@pytest.mark.parametrize(("bad", "says"), [
    ({"blob": "x" * 200}, "over the 128 an output may be"),
    ({"ratio": math.inf}, "not strict JSON"),
    ({1: "one"}, "not strict JSON"),
    ({"when": object()}, "not strict JSON"),
])
def test_an_output_that_cannot_be_kept_ends_its_task_unknown_saying_why(
        store: SqlStore, bad: Any, says: str) -> None:
    host = Host()
    host.bad = bad
    engine = _engine(store, host, max_output_bytes=128)
    root = engine.submit("Stepper", {"verb": "bad_output"})
    engine.run_until_idle()
    _, tasks = store.tree(root)
    task = tasks[0]
    assert (task.host_status, task.output) == (HostStatus.UNKNOWN, None)
    assert "answered an output for task" in (task.message or "") and says in task.message
    assert store.command(root).status == CommandStatus.ENDED_FAILURE  # type: ignore[union-attr]


def test_a_hook_tells_its_own_work_from_its_groups_even_after_a_restart(
        store: SqlStore) -> None:
    """What `good`'s last end_with_failure reads comes from the store.

    It runs on a fresh engine, once its opposite command ended, long after its own task was cleared
    and forgotten by the view.
    """
    host = Host()
    engine = _engine(store, host)
    root = engine.submit("Pair", {})
    while not any(c.type == "UndoWatch" for c in store.tree(root)[0]):
        engine.tick()
    before_the_restart = len(SEEN["good"])
    _engine(store, host).run_until_idle()
    assert len(SEEN["good"]) > before_the_restart
    assert set(SEEN["good"]) == {(True, False, (("work", "success"),))}
    assert set(SEEN["bad"]) == {(False, False, (("refused", "failure"),))}
    commands, _ = store.tree(root)
    outcomes = {c.parameters.get("name"): (c.outcome, c.own_work_succeeded) for c in commands}
    assert outcomes["good"] == (Outcome.ROLLED_BACK, True)
    assert outcomes["bad"] == (Outcome.FAILED, False)
    reverts = {r.resource.id: r.state for r in store.reverts()}
    assert reverts == {"good": "reverted", "bad": "reverted"}


@pytest.mark.parametrize("value", [0, "", [], {}, False, "x", [1, [2]], {"a": {"b": None}}])
def test_every_json_output_is_kept_as_given_falsy_ones_too(store: SqlStore, value: Any) -> None:
    """An output of 0, "", [] or {} is a value, not none.

    Outputs go from none to a value and are written only where some row has one.
    """

    class Echo(Command):
        type_name = "Echo"

        def execute(self, ctx: CommandContext) -> None:
            ctx.start_task("svc", "echo", {})

        def end_successfully(self, ctx: CommandContext) -> None:
            ctx.set_output(ctx.tasks[0].output)

    host = ServiceHost("svc", {"echo": lambda parameters, task_id: value})
    clock = ManualClock()
    engine = Engine(store, {"svc": host}, CommandRegistry([Echo]), clock=clock,
                    sleep=clock.sleep)
    root = engine.submit("Echo", {})
    engine.run_until_idle()
    commands, tasks = store.tree(root)
    assert thaw(tasks[0].output) == value and thaw(commands[0].output) == value
