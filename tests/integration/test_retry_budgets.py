"""Start retries and clear retries are separate budgets.

Found in review of the property suite's measure: a task's `attempts` counted its failed starts
and then, unreset, its failed clears, so a task that needed four starts had one clear left.
"""

from __future__ import annotations

from pathlib import Path

from statemachines import CommandStatus, Limits, TaskStatus
from statemachines.example.vm import tree_registry
from statemachines.testing import ControlledAgent, ManualClock
from tests.factories import make_engine
from tests.worlds import vm_store


def test_a_task_that_needed_start_retries_still_gets_every_clear_attempt(tmp_path: Path) -> None:
    store = vm_store(str(tmp_path / "endaction.db"))
    agent, clock = ControlledAgent(), ManualClock()
    engine = make_engine(store, agent, registry=tree_registry(), clock=clock,
                         limits=Limits(max_start_attempts=5, max_clear_attempts=5))
    root = engine.submit("BuildTree", {"name": "n0", "tasks": 1, "children": []})
    engine.tick()  # executes; the task is pending
    for _ in range(5):  # every start fails: the task ends start_failed, the tree fails
        agent.hiccups = 1
        engine.tick()
        clock.now += 60
    _, tasks = store.tree(root)
    assert [t.status for t in tasks] == [CommandStatus.ENDING]
    for _ in range(4):  # four clears fail; a fifth is still allowed
        agent.hiccups = 1
        engine.tick()
        clock.now += 60
    _, tasks = store.tree(root)
    assert [(t.status, t.attempts) for t in tasks] == [(TaskStatus.CLEAR_FAILED, 4)]
    engine.run_until_idle()
    _, tasks = store.tree(root)
    assert [t.status for t in tasks] == [TaskStatus.CLEARED]
    store.dispose()
