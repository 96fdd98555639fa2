"""Tests of the tests: the property suite must find the loop that either loop guard excludes.

With that guard switched off, the suite finds the loop and prints it as a script that replays it.

Without the revert-state guard a revert that keeps failing is started again forever: the termination
measure stops decreasing (or the run never settles). Without the existence guard a parent and its
child that name the same resource both revert it: a double revert.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from statemachines import RevertPolicy
from statemachines.example.vm.scenario import image_scenario
from statemachines.testing import engine_machine
from tests.properties.test_properties import sqlite_file

# Derandomized, so the counterexample is found the same way on every run.
SEARCH = settings(max_examples=400, stateful_step_count=40, derandomize=True, deadline=None,
                  phases=[Phase.explicit, Phase.generate],
                  print_blob=True, suppress_health_check=[HealthCheck.too_slow])


def _counterexample(policy: RevertPolicy) -> AssertionError:
    machine = engine_machine(image_scenario(sqlite_file, policy=policy))
    with pytest.raises(AssertionError) as caught:
        run_state_machine_as_test(machine, settings=SEARCH)
    return caught.value


def _script(error: BaseException) -> str:
    return "\n".join(getattr(error, "__notes__", []))


def test_the_suite_has_no_counterexample_with_both_guards_on() -> None:
    """The control: the same search, guards on, finds nothing.

    So the failures below are the guards' doing, not the search's.
    """
    machine = engine_machine(image_scenario(sqlite_file, policy=RevertPolicy(backoff_seconds=1)))
    run_state_machine_as_test(machine, settings=settings(SEARCH, max_examples=100))


def test_without_the_revert_state_guard_the_suite_finds_an_endless_rollback() -> None:
    error = _counterexample(RevertPolicy(backoff_seconds=1, revert_state_guard=False))
    message = str(error)
    assert ("did not lower the termination measure" in message
            or "no quiescence within" in message), message
    script = _script(error)
    assert "state = EngineMachine()" in script and "state.teardown()" in script, script
    assert "compensation_will_fail_for_good" in script or "compensation_fails_once" in script


def test_without_the_existence_guard_the_suite_finds_a_double_compensation() -> None:
    error = _counterexample(RevertPolicy(backoff_seconds=1, existence_guard=False))
    assert "was reverted successfully 2 times" in str(error), str(error)
    script = _script(error)
    assert "'shared': True" in script, script  # a child naming its parent's resource


def test_an_engine_that_forgets_outputs_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The output check is a real one: an engine that keeps no output fails it."""
    from statemachines.core.machines.host_status import TaskReport
    from statemachines.core.tick import task_answers

    real = task_answers.report_end

    def forgetful(state: object, task: object, answer: TaskReport) -> None:
        real(state, task, TaskReport(answer.status, answer.result, answer.message))  # type: ignore[arg-type]

    monkeypatch.setattr(task_answers, "report_end", forgetful)
    machine = engine_machine(image_scenario(sqlite_file))
    with pytest.raises(AssertionError, match="keeps the output None, its agent gave"):
        run_state_machine_as_test(machine, settings=settings(SEARCH, max_examples=50))


def test_a_step_given_the_wrong_inputs_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The example's own check is a real one.

    A BuildTree whose later steps are not given the first of what the step before returned fails it.
    """
    from statemachines.example.vm.tree import BuildTree

    def confused(self: BuildTree, ctx: object) -> None:
        steps = self.parameters.get("steps", ())
        step = ctx.step  # type: ignore[attr-defined]
        if step - 2 < len(steps):
            given = [t.output for t in ctx.tasks if t.step == step - 1][1:]  # type: ignore[attr-defined]
            self._spawn(ctx, steps[step - 2], given)  # type: ignore[arg-type]

    monkeypatch.setattr(BuildTree, "next_step", confused)
    machine = engine_machine(image_scenario(sqlite_file))
    with pytest.raises(AssertionError, match="but the step before returned"):
        run_state_machine_as_test(machine, settings=settings(SEARCH, max_examples=200))
