"""Small worlds in steps, enumerated: the network endpoint's three ordered steps.

They cover every story of every attempt of every step, every outcome of every revert, and crashes.

A world is: how each attempt of each making task goes (it succeeds, fails, or ends unknown after it
acted; two attempts each, the engine's retry policy), how each revert goes (succeeds, fails once,
fails for good), and where the engine dies (nowhere, after its k-th commit, or inside its j-th agent
call, after the host acted and before the engine committed). The address the pool answers with must
reach the DNS step whatever happens; every world runs to quiescence on a real SQLite file and is
checked with the suite's invariants and measure, and against the same world without the crash.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from persistence import SqlStore
from statemachines import (
    CommandStatus,
    Engine,
    EngineDidNotSettle,
    HostResult,
    HostStatus,
    RetryPolicy,
    RevertPolicy,
    TaskRecord,
    TaskReport,
    TickReport,
)
from statemachines.example.network import (
    NETWORK_AGENT,
    DnsRecords,
    Leases,
    NetworkHost,
    Ports,
    endpoint_parameters,
    network_registry,
)
from statemachines.example.network.host import (
    ALLOCATE_ADDRESS,
    CREATE_DNS_RECORD,
    DELETE_DNS_RECORD,
    PLUG_PORT,
    RELEASE_ADDRESS,
    REVERT_TASK,
)
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
from tests.small_worlds import NO_CRASH, Crash, Removal
from tests.worlds import Died

MAKING = (ALLOCATE_ADDRESS, CREATE_DNS_RECORD, PLUG_PORT)
UNDOING = (RELEASE_ADDRESS, DELETE_DNS_RECORD, REVERT_TASK)
ATTEMPTS = 2
RETRY = RetryPolicy(max_attempts=ATTEMPTS, backoff_seconds=1.0)


class Try(Enum):
    """How one attempt of a making task goes."""

    SUCCESS = "S"
    FAILURE = "F"  # it changed nothing
    UNKNOWN = "U"  # it acted, and then its outcome was lost


#: The stories of a step's task over its attempts: a success ends them.
STORIES: tuple[tuple[Try, ...], ...] = (
    (Try.SUCCESS,), (Try.FAILURE, Try.SUCCESS), (Try.UNKNOWN, Try.SUCCESS),
    (Try.FAILURE, Try.FAILURE), (Try.UNKNOWN, Try.FAILURE))


def _succeeds(story: tuple[Try, ...]) -> bool:
    return story[-1] == Try.SUCCESS


@dataclass(frozen=True)
class SteppedWorld:
    stories: tuple[tuple[Try, ...], ...]  # one per step that runs
    undos: tuple[Removal, ...]  # for release, delete, revert_task
    crash: Crash = NO_CRASH

    def __str__(self) -> str:
        where = ("no crash" if self.crash == NO_CRASH else
                 f"crash after commit {self.crash.after_commit}" if self.crash.after_commit
                 else f"crash in agent call {self.crash.in_agent_call}")
        tries = ["".join(t.value for t in story) for story in self.stories]
        return f"steps {tries}, undos {[u.value for u in self.undos]}, {where}"


def stepped_worlds() -> Iterator[SteppedWorld]:
    """Every story of every step that runs (a step after one that failed never runs).

    When something failed, each comes with every outcome of the reverts of what the steps that ran
    made (the reverts of resources never made do not run: their outcomes change nothing).
    """
    for count in range(1, len(MAKING) + 1):
        for stories in itertools.product(STORIES, repeat=count):
            earlier_succeed = all(_succeeds(s) for s in stories[:-1])
            if not earlier_succeed:
                continue
            failed = not _succeeds(stories[-1])
            if count < len(MAKING) and not failed:
                continue  # the next step runs: a longer world
            if not failed:
                yield SteppedWorld(stories, (Removal.OK,) * len(UNDOING))
                continue
            for undos in itertools.product(Removal, repeat=count):
                yield SteppedWorld(stories, (*undos, *(Removal.OK,) * (len(UNDOING) - count)))


@dataclass
class StoryHost(NetworkHost):
    """The network host, told by the world how each attempt and each revert goes.

    It is also told when to kill the engine (after it acted, inside its n-th call).
    """

    world: SteppedWorld | None = None
    die_in_call: int | None = None
    calls: int = 0
    runs: Counter[str] = field(default_factory=Counter)
    outputs: dict[str, Any] = field(default_factory=dict)

    def _run(self, task_id: str, task: Any) -> TaskReport:
        assert self.world is not None
        self.runs[task.verb] += 1
        if task.verb in MAKING:
            step = MAKING.index(task.verb)
            story = self.world.stories[step] if step < len(self.world.stories) else (
                Try.SUCCESS,)
            attempt = min(self.runs[task.verb], len(story)) - 1
            how = story[attempt]
            if how == Try.FAILURE:
                return TaskReport(HostStatus.FINISHED, HostResult.FAILURE, "refused")
            report = super()._run(task_id, task)
            if how == Try.UNKNOWN:
                return TaskReport.unknown("lost track of it")
            if report.output is not None:
                self.outputs[task_id] = report.output
            return report
        undo = self.world.undos[UNDOING.index(task.verb)]
        if undo == Removal.FAILS_FOR_GOOD or (undo == Removal.FAILS_ONCE
                                              and self.runs[task.verb] == 1):
            return TaskReport(HostStatus.FINISHED, HostResult.FAILURE, "undo failed")
        return super()._run(task_id, task)

    def _called(self) -> None:
        self.calls += 1
        if self.die_in_call is not None and self.calls == self.die_in_call:
            self.die_in_call = None
            raise Died

    def start(self, task_id: str, verb: str, parameters: Mapping[str, Any]) -> None:
        super().start(task_id, verb, parameters)
        self._called()

    def poll(self, task_ids: Sequence[str]) -> Mapping[str, TaskReport]:
        answer = super().poll(task_ids)
        self._called()
        return answer

    def clear(self, task_id: str) -> None:
        super().clear(task_id)
        self._called()


@dataclass
class SteppedOutcome:
    end_state: object
    commits: int
    agent_calls: int
    crashed: bool


def _address_problems(tasks: list[TaskRecord], host: StoryHost) -> list[str]:
    """What the pool answered reached the next step, across retries and the crash."""
    allocated = [t for t in tasks if t.verb == ALLOCATE_ADDRESS and t.succeeded]
    return [f"the DNS step was given {dns.parameters['address']!r}, not the address the "
            "pool answered with"
            for dns in tasks if dns.verb == CREATE_DNS_RECORD
            and (not allocated
                 or dns.parameters["address"] != host.outputs[allocated[-1].id]["address"])]


def _present(store: SqlStore, host: StoryHost) -> set[str]:
    """Every lease, record and port, on the network or in the ledgers."""
    return ({f"lease:{lease}" for lease in host.leases}
            | {f"dns_record:{n}" for n in host.records} | {f"port:{p}" for p in host.ports}
            | {f"lease:{r.lease}" for r in Leases.read_all(store.engine)}
            | {f"dns_record:{r.name}" for r in DnsRecords.read_all(store.engine)}
            | {f"port:{r.port}" for r in Ports.read_all(store.engine)})


def run_stepped_world(store: SqlStore, world: SteppedWorld, name: str,
                      policy: RevertPolicy) -> SteppedOutcome:
    """Run one world to quiescence, checking every property on the way."""
    host = StoryHost(world=world, die_in_call=world.crash.in_agent_call)
    clock = ManualClock()
    bounds = Bounds(max_depth=2, max_revert_attempts=policy.max_attempts,
                    max_start_attempts=5, max_clear_attempts=5,
                    max_lost_attempts=policy.max_lost_attempts, max_steps=4,
                    max_task_attempts=ATTEMPTS)
    max_ticks = tick_bound(TreeSize(1, 3, 3), bounds, 1)
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
        return Engine(store, {NETWORK_AGENT: host}, network_registry(), policy=policy,
                      retry=RETRY, clock=clock, sleep=clock.sleep, on_commit=check_commit)

    first = engine()
    roots.append(first.submit("ProvisionEndpoint", endpoint_parameters(
        name, f"{name}.example.org", f"sw1/{name}")))
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
            raise AssertionError(f"{name} ({world}): no quiescence within {max_ticks} ticks "
                                 f"after the crash: {err}") from err
    except EngineDidNotSettle as err:
        raise AssertionError(f"{name} ({world}): no quiescence within {max_ticks} ticks: "
                             f"{err}") from err

    snap = take_snapshot(store, roots)
    problems = check_quiescent(snap, 5) + check_safety(snap)
    root = snap.commands[roots[0]]
    tasks = sorted(snap.tasks.values(), key=lambda t: t.created_at)
    problems += _address_problems(tasks, host)
    present = _present(store, host)
    left = set() if root.status == CommandStatus.ENDED_SUCCESS else present
    allowed = {f"{r.resource.type}:{r.resource.id}" for r in snap.reverts.values()
               if r.resource.id in revert_failed_resources(snap)}
    problems += [f"{r} was left behind and not marked revert_failed"
                 for r in sorted(left - allowed)]
    if problems:
        raise AssertionError(f"{name} ({world}): " + "; ".join(problems))
    end_state = (root.status, root.outcome, root.step,
                 sorted((c.type, c.status, c.outcome or "") for c in snap.commands.values()
                        if c.id != root.id),
                 sorted((t.verb, t.attempt, t.host_result or "") for t in tasks),
                 sorted(r.replace(name, "x") for r in present))
    return SteppedOutcome(end_state, commits, host.calls, crashed)
