"""The property suite: no rollback loops forever, nothing is left behind, across crashes.

Hypothesis drives the real engine, a real SQLite file and a controlled storage agent through
arbitrary interleavings of submissions, agent answers (success, failure, unknown, forgotten),
compensations that fail for a while or for good, agent outages, time, crashes between ticks
and inside agent calls, and recoveries (`statemachines.testing.engine_machine`). After every
step the persisted state is checked:

- no command is ended twice, and none reaches a terminal state twice;
- a ROLLBACK_FLOW command never takes the success path;
- a resource is reverted successfully at most once;
- revert states only move forward (none -> reverting -> reverted | revert_failed);
- every task row belongs to a command, and no live task belongs to an ended one.

Termination: a well-founded measure over the persisted state, the Dershowitz-Manna multiset of
per-object ranks (flow, level, compensation credits, steps left) defined in
`statemachines.testing.termination`, strictly decreases at every committing tick. At teardown
the agents answer at once and `run_until_idle` must reach quiescence within a bound computed
from the trees' size; every command is then terminal, and nothing is left on the storage or in
the inventory except resources marked revert_failed, which are reported.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from hypothesis import settings

from statemachines.core.ports.store_protocol import Store
from statemachines.example.vm.scenario import image_scenario
from statemachines.testing import engine_machine
from tests.worlds import vm_store


def sqlite_file(folder: Path) -> Store:
    return vm_store(str(folder / "endaction.db"))


TestEngineProperties = engine_machine(image_scenario(sqlite_file)).TestCase

# The same, with one opposite command per tick: every rollback of two or more resources
# leaves commands for later ticks (Limits.max_opposite_commands_per_tick), and those must
# end the same, across crashes, without looping.
TestEnginePropertiesOneOppositePerTick = engine_machine(
    replace(image_scenario(sqlite_file), max_opposite_commands_per_tick=1)).TestCase
TestEnginePropertiesOneOppositePerTick.settings = settings(
    TestEngineProperties.settings, max_examples=max(
        10, (TestEngineProperties.settings or settings()).max_examples // 2))
