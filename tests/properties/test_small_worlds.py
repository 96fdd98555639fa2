"""Every small world, enumerated rather than sampled (see tests/small_worlds.py).

Every profile enumerates every combination of outcomes for 1, 2 and 3 disks. The ci profile
crashes 1-disk worlds at every point (after each commit, inside each agent call) and 2-disk
worlds after each commit; the thorough profile (ENDACTION_HYPOTHESIS_PROFILE=thorough) crashes
every world at every point. Each run prints how many worlds it explored.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from persistence import SqlStore
from persistence.schema import metadata
from statemachines import RevertPolicy
from tests.conftest import HYPOTHESIS_PROFILE
from tests.small_worlds import (
    NO_CRASH,
    Crash,
    Outcome,
    Removal,
    World,
    outcome_worlds,
    run_world,
)
from tests.worlds import vm_store

pytestmark = pytest.mark.slow

POLICY = RevertPolicy(backoff_seconds=1.0)


def _explore(tmp_path: Path, disks: int, crash_scope: str,
             policy: RevertPolicy = POLICY) -> tuple[int, int]:
    """Run every world of this size; returns (worlds explored, of which crashed).

    crash_scope: "none", "commits" (after each commit) or "all" (and inside each agent call).
    One SQLite file serves every world, emptied between them (a file per world costs more in
    schema creation than the world itself).
    """
    store = vm_store(str(tmp_path / f"worlds-{disks}.db"))
    explored = crashed = 0
    try:
        for number, world in enumerate(outcome_worlds(disks)):
            baseline = _run(store, world, f"w{number}", policy)
            explored += 1
            crashes = []
            if crash_scope in ("commits", "all"):
                crashes += [Crash(after_commit=k) for k in range(1, baseline.commits + 1)]
            if crash_scope == "all":
                crashes += [Crash(in_agent_call=j) for j in range(1, baseline.agent_calls + 1)]
            for index, crash in enumerate(crashes):
                variant = World(world.copies, world.removals, crash)
                outcome = _run(store, variant, f"w{number}c{index}", policy)
                explored += 1
                crashed += outcome.crashed
                assert outcome.end_state == baseline.end_state, (
                    f"{variant} ended differently from the same world without the crash")
    finally:
        store.dispose()
    return explored, crashed


def _run(store: SqlStore, world: World, name: str, policy: RevertPolicy) -> Outcome:
    try:
        return run_world(store, world, name, policy)
    finally:
        with store.engine.begin() as conn:
            for table in reversed(metadata.sorted_tables):
                if table.name != "endaction_schema":
                    conn.execute(table.delete())


# What each profile enumerates: every outcome always; crash points as far as time allows.
CRASH_SCOPE = {
    "ci": {1: "all", 2: "commits", 3: "none"},
    "thorough": {1: "all", 2: "all", 3: "all"},
}


@pytest.mark.parametrize("disks", [1, 2, 3])
def test_every_small_world_terminates_cleanly(tmp_path: Path, disks: int,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    scope = CRASH_SCOPE.get(HYPOTHESIS_PROFILE, CRASH_SCOPE["ci"])[disks]
    started = time.perf_counter()
    explored, crashed = _explore(tmp_path, disks, scope)
    with capsys.disabled():
        print(f"\n{disks} disk(s): explored {explored} worlds, {crashed} of them crashed and "
              f"recovered (crash points: {scope}) in {time.perf_counter() - started:.1f} s")
    outcomes = sum(1 for _ in outcome_worlds(disks))
    assert explored >= outcomes
    assert (crashed > 0) == (scope != "none")


def test_without_the_revert_state_guard_a_small_world_loops(tmp_path: Path) -> None:
    """The enumeration is a real check: switch the guard off, and a world loops.

    The first world whose revert fails for good never settles (or stops lowering the measure).
    """
    failing = next(w for w in outcome_worlds(1)
                   if w.removals == (Removal.FAILS_FOR_GOOD,) and w.crash == NO_CRASH)
    store = vm_store(str(tmp_path / "unguarded.db"))
    with pytest.raises(AssertionError, match=r"termination measure|no quiescence"):
        _run(store, failing, "w0", RevertPolicy(backoff_seconds=1.0, revert_state_guard=False))
    store.dispose()
