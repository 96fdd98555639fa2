"""The property suite's engine room: a Hypothesis rule-based state machine over the real engine.

The engine runs on a real store, with agents that do whatever the test asks. Hypothesis
chooses, step after step, among everything the world can do to the engine: submit a root, end a
task any way an agent can, fail a revert for a while or for good, make an agent call raise, let
time pass, kill the engine between ticks or inside an agent call and recover with a new one
over the same database, or just tick. After every step the persisted
state is read back and checked (`invariants`), every committing tick must lower the
termination measure (`termination`), and at the end the agents go on autopilot and the engine
must reach quiescence within a bound computed from the trees' size, with nothing left behind
but resources marked revert_failed.

When a property fails, Hypothesis shrinks the run and prints it as a Python script of
`state.rule(...)` calls that replays it.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from hypothesis import HealthCheck, Phase, event, note, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from ..core.engine.engine import Engine
from ..core.errors import EngineDidNotSettle, NotCancellable
from ..core.machines.command_machine import CommandStatus
from ..core.machines.host_status import HostResult
from ..core.machines.reasons import ExecutionReason
from ..core.records.revert_state import RevertState
from ..core.records.tick_report import TickReport
from .controlled_agent import AgentCrash
from .invariants import (
    check_outputs,
    check_quiescent,
    check_safety,
    fail_on,
    revert_failed_resources,
)
from .scenario import Scenario, Submission
from .snapshot import Snapshot
from .step_checker import StepChecker
from .store_template import fresh_store
from .termination import TreeSize, compensation_commits, tick_bound


@dataclass
class ManualClock:
    """Time moves only when the test (or the engine's sleep) moves it."""

    now: float = 1_000_000.0

    def __call__(self) -> float:
        """The time the test has moved the clock to; reading it never moves it."""
        return self.now

    def sleep(self, seconds: float) -> None:
        """The engine's sleep: move the clock on instead, by at least a millisecond.

        Time therefore always moves while the engine waits, even when it asks to sleep for
        nothing.
        """
        self.now += max(seconds, 0.001)


RESULTS = st.sampled_from([HostResult.SUCCESS, HostResult.FAILURE, HostResult.UNKNOWN])
PICK = st.integers(min_value=0, max_value=63)


def _autopilot_success(verb: str, parameters: Mapping[str, Any]) -> HostResult:
    return HostResult.SUCCESS


class _EngineMachine(RuleBasedStateMachine):
    """The rules and properties of every scenario's machine.

    `engine_machine` adds the ones whose strategies come from the scenario (what to submit).
    The class reads in Hypothesis's order: the engine's plumbing (private), the rules, then
    the invariant and the teardown's final checks.
    """

    scenario: ClassVar[Scenario]

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="endaction-property-"))
        self.store = fresh_store(self.scenario.open_store, self.folder)
        self.clock = ManualClock()
        self.ids = itertools.count(1)
        self.agents = {name: self.scenario.agent() for name in self.scenario.agent_names}
        self.engine = self._new_engine()
        self.roots: list[str] = []
        self.size = TreeSize(0, 0, 0)
        # Opposite commands an operator's cleanup started: each adds to the tick bound.
        self.cleanups = 0
        self.checker = StepChecker(self.store, self.roots, self.scenario.bounds)

    def _new_engine(self) -> Engine:
        scenario = self.scenario
        return Engine(self.store, self.agents, scenario.registry(), policy=scenario.policy,
                      retry=scenario.retry, clock=self.clock, sleep=self.clock.sleep,
                      limits=scenario.limits, ids=lambda: f"{next(self.ids):032x}")

    def _tick(self) -> None:
        try:
            report = self.engine.tick()
        except AgentCrash:
            self._restart()
            return
        if report.committed:
            self.checker.committed()
        else:
            self.checker.unchanged()

    def _restart(self) -> None:
        """The engine's process is gone: only the database and the agents remain.

        A new engine recovers over the same store. The store object stays (it holds nothing
        of the engine's between transactions, and its connections are dropped), so a restart
        costs a recovery, not a new schema check and new compiled statements: shrinking
        replays many of them.
        """
        self.store.dispose()
        self.engine = self._new_engine()
        self.engine.recover()
        self.checker.restarted(self.store)

    def _running(self, compensations: bool = False) -> list[tuple[str, str]]:
        return [(name, task_id) for name, agent in sorted(self.agents.items())
                for task_id in (agent.compensations_running() if compensations
                                else agent.running())]

    @rule()
    def tick(self) -> None:
        self._tick()

    @precondition(lambda self: bool(self._running()))
    @rule(pick=PICK, result=RESULTS, acted=st.booleans())
    def agent_ends_task(self, pick: int, result: HostResult, acted: bool) -> None:
        running = self._running()
        name, task_id = running[pick % len(running)]
        self.agents[name].finish(task_id, result, effect=acted)

    @precondition(lambda self: bool(self._running()))
    @rule(pick=PICK, acted=st.booleans())
    def agent_forgets_task(self, pick: int, acted: bool) -> None:
        running = self._running()
        name, task_id = running[pick % len(running)]
        self.agents[name].forget(task_id, effect=acted)

    @precondition(lambda self: bool(self._running(compensations=True)))
    @rule(pick=PICK)
    def compensation_fails_once(self, pick: int) -> None:
        running = self._running(compensations=True)
        name, task_id = running[pick % len(running)]
        self.agents[name].finish(task_id, HostResult.FAILURE, effect=False)

    @precondition(lambda self: bool(self._running()))
    @rule(pick=PICK)
    def compensation_will_fail_for_good(self, pick: int) -> None:
        """Every opposite command's task for this task's resource fails, now and later."""
        running = self._running()
        name, task_id = running[pick % len(running)]
        self.agents[name].doom(task_id)

    @rule(calls=st.integers(min_value=1, max_value=3))
    def agent_calls_fail(self, calls: int) -> None:
        for agent in self.agents.values():
            agent.hiccups = calls

    @rule(seconds=st.sampled_from([0.5, 2.0, 30.0]))
    def time_passes(self, seconds: float) -> None:
        self.clock.now += seconds

    @precondition(lambda self: bool(self.roots))
    @rule(pick=PICK)
    def operator_cancels_a_root(self, pick: int) -> None:
        root = self.roots[pick % len(self.roots)]
        try:
            self.engine.cancel(root, "the property suite cancels it")
        except NotCancellable:
            return  # it has ended already
        self.checker.observe()

    @rule()
    def operator_runs_cleanup(self) -> None:
        self.cleanups += len(self.engine.cleanup())
        self.checker.observe()

    @rule()
    def engine_crashes(self) -> None:
        self._restart()

    @rule(call=st.integers(min_value=1, max_value=4), pick=PICK)
    def engine_dies_inside_agent_call(self, call: int, pick: int) -> None:
        names = sorted(self.agents)
        agent = self.agents[names[pick % len(names)]]
        agent.die_in_call = call
        for _ in range(3):
            self._tick()
            if agent.die_in_call is None:
                break
        agent.die_in_call = None

    def _safe(self, snap: Snapshot) -> None:
        fail_on(check_safety(snap) + check_outputs(snap, self.agents)
                + self.scenario.check(snap), "safety")

    @invariant()
    def safety(self) -> None:
        self._safe(self.checker.snap)

    def teardown(self) -> None:
        try:
            self._finish()
        finally:
            self.store.dispose()
            shutil.rmtree(self.folder, ignore_errors=True)

    def _finish(self) -> None:
        """Let every agent answer at once and require quiescence within the bound."""
        for agent in self.agents.values():
            agent.hiccups, agent.die_in_call = 0, None
            agent.autopilot = _autopilot_success

        def check_commit(report: TickReport) -> None:
            self._safe(self.checker.committed("at teardown"))

        self.engine.on_commit = check_commit
        bounds, per_compensation = self.scenario.bounds, self.scenario.tasks_per_compensation
        bound = tick_bound(self.size, bounds, per_compensation) + (
            2 * self.cleanups * compensation_commits(bounds, per_compensation))
        try:
            ticks = self.engine.run_until_idle(max_ticks=bound, poll_interval=0.05)
        except EngineDidNotSettle as err:
            raise AssertionError(
                f"no quiescence within {bound} ticks, the bound for trees of {self.size}: "
                f"a rollback loop? ({err})") from err
        snap = self.checker.observe()
        fail_on(check_quiescent(snap, self.scenario.max_clear_attempts), "quiescence")
        self._safe(snap)
        allowed = revert_failed_resources(snap)
        left = self.scenario.leftovers(snap, self.agents, self.store)
        fail_on([f"{r} was left behind and not marked revert_failed"
               for r in sorted(left - allowed)], "leftovers")
        for revert in snap.reverts.values():
            owner = snap.commands.get(revert.owner)
            if revert.state == RevertState.REVERT_FAILED and owner is not None and \
                    owner.status != CommandStatus.ROLLBACK_FAILED:
                raise AssertionError(f"{revert.resource} is revert_failed but its command "
                                     f"{owner.id} says {owner.status}")
        if not currently_in_test_context():
            return  # replayed by hand, outside Hypothesis: nothing to report to
        note(f"quiescent after {ticks} ticks (bound {bound}); revert_failed: "
             f"{sorted(allowed) or 'none'}")
        event(f"left revert_failed resources: {'yes' if allowed else 'no'}")
        opposite = sum(c.execution_reason == ExecutionReason.ROLLBACK_FLOW
                       for c in snap.commands.values())
        event(f"opposite commands run: {'none' if not opposite else 'some'}")
        commands, tasks = snap.commands.values(), snap.tasks.values()
        for what, seen in (("commands that took a later step", any(c.step > 1
                                                                     for c in commands)),
                           ("tasks retried", any(t.retried for t in tasks)),
                           ("outputs kept", any(t.output is not None for t in tasks))):
            event(f"{what}: {'some' if seen else 'none'}")
        for root in self.roots:
            event(f"root ended {snap.commands[root].status}")



def engine_machine(scenario: Scenario) -> type[RuleBasedStateMachine]:
    """The state machine for a scenario; run it with `engine_machine(s).TestCase` in pytest."""

    class EngineMachine(_EngineMachine):
        @initialize(submission=scenario.submissions)
        def first_submit(self, submission: Submission) -> None:
            self.submit(submission)

        @precondition(lambda self: len(self.roots) < scenario.max_roots)
        @rule(submission=scenario.submissions)
        def submit(self, submission: Submission) -> None:
            submission = scenario.unique(submission, len(self.roots))
            root = self.engine.submit(submission.type_name, submission.parameters,
                                      entity=submission.entity)
            self.roots.append(root)
            self.size = self.size + submission.size
            self.checker.observe()

    EngineMachine.scenario = scenario
    EngineMachine.__name__ = EngineMachine.__qualname__ = "EngineMachine"
    EngineMachine.TestCase.settings = kit_settings()
    return EngineMachine


def kit_settings(parent: settings | None = None) -> settings:
    """The settings a machine's `TestCase` runs with: the loaded profile's, or `parent`'s.

    They have no deadline, no health checks (an example opens a database and runs an engine: it
    is slow by Hypothesis's measure, and meant to be), and no Hypothesis explain phase.

    Explaining traces every line of a failing run, replayed many times over; on the engine it
    took minutes after the shrinking had finished, and Hypothesis's five-minute limit stopped
    it with its "please report this" warning. A run that wants it back sets
    `Machine.TestCase.settings = settings(Machine.TestCase.settings, phases=list(Phase))`.
    """
    base = parent if parent is not None else settings.default
    assert base is not None
    return settings(base, deadline=None, suppress_health_check=list(HealthCheck),
                    phases=[phase for phase in base.phases if phase != Phase.explain])
