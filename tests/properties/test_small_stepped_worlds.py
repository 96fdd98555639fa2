"""Every small world in steps, enumerated rather than sampled (see tests/small_stepped_worlds.py).

Every profile runs every world (every story of two attempts of each of the network endpoint's
three steps, every outcome of the undos of what they made) without a crash. The ci profile
also crashes one in three of the worlds whose undos all succeed after each of their commits
(about two minutes in all, on two cores); the thorough profile
(ENDACTION_HYPOTHESIS_PROFILE=thorough) crashes every world after each commit and inside each
agent call. Each run prints how many worlds it explored.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from persistence import SqlStore, open_store
from persistence.schema import metadata
from statemachines import RevertPolicy
from statemachines.example.network import NETWORK_LEDGERS
from statemachines.example.network.ledgers import metadata as network_metadata
from tests.conftest import HYPOTHESIS_PROFILE
from tests.small_stepped_worlds import (
    SteppedOutcome,
    SteppedWorld,
    run_stepped_world,
    stepped_worlds,
)
from tests.small_worlds import Crash, Removal

pytestmark = pytest.mark.slow

POLICY = RevertPolicy(backoff_seconds=1.0)


def _run(store: SqlStore, world: SteppedWorld, name: str,
         policy: RevertPolicy = POLICY) -> SteppedOutcome:
    try:
        return run_stepped_world(store, world, name, policy)
    finally:
        with store.engine.begin() as conn:
            for table in [*reversed(metadata.sorted_tables),
                          *reversed(network_metadata.sorted_tables)]:
                conn.execute(table.delete())


def test_every_small_world_in_steps_terminates_cleanly(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    thorough = HYPOTHESIS_PROFILE == "thorough"
    store = open_store(str(tmp_path / "stepped.db"), ledgers=NETWORK_LEDGERS)
    started = time.perf_counter()
    explored = crashed = retried = 0
    plain = 0  # worlds whose undos all succeed, counted for the ci profile's sample
    try:
        for number, world in enumerate(stepped_worlds()):
            baseline = _run(store, world, f"w{number}")
            explored += 1
            retried += any(len(story) > 1 for story in world.stories)
            if not thorough:
                if any(u != Removal.OK for u in world.undos):
                    continue
                plain += 1
                if plain % 3:
                    continue
            crashes = [Crash(after_commit=k) for k in range(1, baseline.commits + 1)]
            if thorough:
                crashes += [Crash(in_agent_call=j) for j in range(1, baseline.agent_calls + 1)]
            for index, crash in enumerate(crashes):
                variant = SteppedWorld(world.stories, world.undos, crash)
                outcome = _run(store, variant, f"w{number}c{index}")
                explored += 1
                crashed += outcome.crashed
                assert outcome.end_state == baseline.end_state, (
                    f"{variant} ended differently from the same world without the crash")
    finally:
        store.dispose()
    with capsys.disabled():
        print(f"\nendpoint in steps: explored {explored} worlds ({retried} with retries), "
              f"{crashed} of them crashed and recovered, in "
              f"{time.perf_counter() - started:.1f} s")
    assert explored >= sum(1 for _ in stepped_worlds()) and crashed > 0 and retried > 0


def test_without_the_revert_state_guard_a_stepped_world_loops(tmp_path: Path) -> None:
    """The enumeration is a real check: switch the guard off, and a world loops.

    The world is one whose last step fails and whose revert of the first fails for good: it never
    settles.
    """
    from tests.small_stepped_worlds import STORIES, Try

    failing = next(w for w in stepped_worlds()
                   if len(w.stories) == 3 and w.stories[-1] == (Try.FAILURE, Try.FAILURE)
                   and w.undos == (Removal.FAILS_FOR_GOOD, Removal.OK, Removal.OK))
    assert failing.stories[0] in STORIES
    store = open_store(str(tmp_path / "unguarded.db"), ledgers=NETWORK_LEDGERS)
    try:
        with pytest.raises(AssertionError, match=r"termination measure|no quiescence"):
            _run(store, failing, "w0", RevertPolicy(backoff_seconds=1.0,
                                                    revert_state_guard=False))
    finally:
        store.dispose()
