"""Small worlds, enumerated: a VM of up to 3 disks, every outcome of every task, every crash.

A world is: how each copy ends (success, failure, unknown, forgotten by the agent), how the
compensation of each image goes (succeeds, fails once then succeeds, fails for good), and where
the engine dies (nowhere, after its k-th commit, or inside its j-th agent call, after the agent
acted and before the engine committed). Every world runs to quiescence on a real SQLite file
and is checked with the same invariants and measure as the Hypothesis suite, and against the
same world without the crash.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from persistence import SqlStore
from statemachines import (
    CommandStatus,
    Engine,
    EngineDidNotSettle,
    HostResult,
    RevertPolicy,
    TickReport,
)
from statemachines.example.vm import Plan, add_vm_parameters
from statemachines.testing import (
    Bounds,
    ManualClock,
    StepChecker,
    TreeSize,
    check_quiescent,
    check_safety,
    fail_on,
    revert_failed_resources,
    take_snapshot,
    tick_bound,
)
from tests.factories import make_engine
from tests.worlds import Died, DyingAgent, images_in


class Copy(Enum):
    SUCCESS = "success"
    FAILURE = "failure"
    UNKNOWN = "unknown"
    FORGOTTEN = "forgotten"


class Removal(Enum):
    OK = "ok"
    FAILS_ONCE = "fails_once"
    FAILS_FOR_GOOD = "fails_for_good"


@dataclass(frozen=True)
class Crash:
    after_commit: int | None = None
    in_agent_call: int | None = None


NO_CRASH = Crash()


@dataclass(frozen=True)
class World:
    copies: tuple[Copy, ...]
    removals: tuple[Removal, ...]
    crash: Crash = NO_CRASH

    def __str__(self) -> str:
        where = ("no crash" if self.crash == NO_CRASH else
                 f"crash after commit {self.crash.after_commit}" if self.crash.after_commit
                 else f"crash in agent call {self.crash.in_agent_call}")
        return (f"copies {[c.value for c in self.copies]}, removals "
                f"{[r.value for r in self.removals]}, {where}")


def outcome_worlds(disks: int) -> Iterator[World]:
    """Every combination of outcomes; removal outcomes only matter when something failed."""
    for copies in itertools.product(Copy, repeat=disks):
        if all(c == Copy.SUCCESS for c in copies):
            yield World(copies, (Removal.OK,) * disks)
            continue
        for removals in itertools.product(Removal, repeat=disks):
            yield World(copies, removals)


@dataclass
class WorldAgent(DyingAgent):
    """The simulated agent, told by the world how every task ends (and when to kill the engine)."""

    world: World | None = None
    removals_started: Counter[str] = field(default_factory=Counter)

    def plan(self, verb: str, parameters: Mapping[str, Any]) -> Plan:
        assert self.world is not None
        index = int(str(parameters["image"]).rsplit("disk", 1)[1])
        if verb == "copy_image":
            copy = self.world.copies[index]
            if copy == Copy.FORGOTTEN:
                return Plan(forget=True)
            return Plan(result=HostResult(copy.value))
        self.removals_started[str(parameters["image"])] += 1
        removal = self.world.removals[index]
        fails = (removal == Removal.FAILS_FOR_GOOD or
                 (removal == Removal.FAILS_ONCE
                  and self.removals_started[str(parameters["image"])] == 1))
        return Plan(result=HostResult.FAILURE if fails else HostResult.SUCCESS)


@dataclass
class Outcome:
    """What a world ended as, independent of ids and timing, and what it took to get there."""

    end_state: object
    commits: int
    agent_calls: int
    crashed: bool


def run_world(store: SqlStore, world: World, name: str, policy: RevertPolicy) -> Outcome:
    """Run one world to quiescence, checking every property on the way; raise on a violation."""
    disks = len(world.copies)
    agent = WorldAgent(world=world, die_in_call=world.crash.in_agent_call)
    agent.decide = agent.plan
    clock = ManualClock()
    bounds = Bounds(max_depth=2, max_revert_attempts=policy.max_attempts,
                    max_start_attempts=5, max_clear_attempts=5,
                    max_lost_attempts=policy.max_lost_attempts)
    max_ticks = tick_bound(TreeSize(1 + disks, disks, disks), bounds, 1)
    roots: list[str] = []
    commits = 0
    checker: StepChecker | None = None

    def check_commit(report: TickReport) -> None:
        nonlocal commits
        assert checker is not None
        try:
            fail_on(check_safety(checker.committed()), "safety")
        except AssertionError as err:
            raise AssertionError(f"{name} ({world}): {err}") from err
        commits += 1
        if world.crash.after_commit == commits:
            raise Died

    def engine() -> Engine:
        return make_engine(store, agent, policy=policy, clock=clock, on_commit=check_commit)

    first = engine()
    sources = [f"template-disk{i}" for i in range(disks)]
    roots.append(first.submit("AddVmFromTemplate", add_vm_parameters(name, sources)))
    checker = StepChecker(store, roots, bounds)
    crashed = False
    try:
        first.run_until_idle(max_ticks=max_ticks)
    except Died:
        crashed = True
        recovered = engine()
        recovered.recover()
        checker.restarted(store)
        try:
            recovered.run_until_idle(max_ticks=max_ticks)
        except EngineDidNotSettle as err:
            raise AssertionError(f"{name} ({world}): no quiescence within {max_ticks} "
                                 f"ticks after the crash: {err}") from err
    except EngineDidNotSettle as err:
        raise AssertionError(f"{name} ({world}): no quiescence within {max_ticks} ticks: "
                             f"{err}") from err

    snap = take_snapshot(store, roots)
    problems = check_quiescent(snap, 5) + check_safety(snap)
    images = {i for i in agent.images if i.startswith(f"{name}-")}
    images |= {row.id for row in images_in(store) if row.vm == name}
    root = snap.commands[roots[0]]
    left = set() if root.status == CommandStatus.ENDED_SUCCESS else images
    problems += [f"{image} was left behind and not marked revert_failed"
                 for image in sorted(left - revert_failed_resources(snap))]
    if problems:
        raise AssertionError(f"{name} ({world}): " + "; ".join(problems))
    end_state = sorted((c.type, (c.entity_id or "").replace(name, "vm"), c.status, c.outcome or "")
                       for c in snap.commands.values())
    return Outcome(end_state, commits, agent.calls, crashed)
