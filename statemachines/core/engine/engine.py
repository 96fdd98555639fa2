"""The engine: drives commands and tasks through their machines, one transaction per tick.

A tick talks to the agents first, outside any transaction (`agent_calls`: start pending
tasks, one batched poll per agent, clear ended tasks), then applies what they said, executes
due commands, claims and runs the ends of every end group whose fan-in is complete, and
settles rollbacks, all in one transaction (`tick`). New task rows are committed in that
transaction and started at the next tick, so a row always exists before the agent hears of
the task. If anything fails mid-tick the transaction is rolled back and the engine rebuilds
its view (`engine_view`) from the store before the next tick: nothing persisted is lost, and
the in-memory view never runs ahead of the database.

The engine keeps only unfinished work in memory and never reads history on the hot path, so a
tick costs the same on a database with a million ended commands as on an empty one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..commands.command import CommandRegistry
from ..commands.compensation_policy import RevertPolicy
from ..errors import (
    ConcurrentModification,
    EngineDidNotSettle,
    InvalidConfiguration,
    RootFault,
)
from ..machines.command_machine import CommandStatus
from ..machines.reasons import ExecutionReason
from ..operations.submission import submit_keyed
from ..ports.agent_protocol import Agent
from ..ports.store_protocol import Store
from ..records.ids import checked as checked_ids
from ..records.ids import new_id
from ..records.limits import Limits
from ..records.records import (
    MAX_NAME_LENGTH,
    name_problems,
)
from ..records.retry_policy import NO_RETRY, RetryPolicy
from ..records.revert_state import ResourceRef
from ..records.tick_report import TickReport
from ..tick.agent_calls import AgentCalls
from ..tick.engine_view import EngineView
from ..tick.phases import Tick
from ..tick.recorder import Changes
from ..tick.tick_state import EngineConfig
from .claim_pacing import ClaimPacing
from .engine_loading import PARK_SECONDS, SINGLE_ENGINE
from .engine_requests import EngineRequests
from .gc_pause import gc_paused
from .leases import WorkerLease, default_worker_name
from .steady_clock import SteadyClock

__all__ = ["SINGLE_ENGINE", "Engine"]

log = logging.getLogger("endaction.engine")



class Engine(EngineRequests):
    """Runs command trees to their end over a store and a set of agents.

    Args:
        store: where commands, tasks and their history persist (`persistence.open_store`).
        agents: the task hosts by name; a command's `ctx.start_task(agent, ...)` names one.
        registry: the command types this engine may run.
        policy: how failed reverts are retried (the revert-state loop guard).
        retry: how failed forward tasks are retried before their command fails, for every
            command type that sets no `Command.retry` of its own (default: never).
        limits: every other bound: start, clear and poll retries, back-off, steps.
        clock: seconds since the epoch; by default the database's clock carried forward by
            this machine's monotonic one (`SteadyClock`), injectable so tests run on a
            manual clock.
        sleep: injectable with the clock.
        on_commit: called with the report of every tick that committed something.
        ids: makes the ids of new commands and tasks; they must be unique across every engine
            sharing the database. Replaying a run exactly (the property suite's shrinking)
            needs ids that sort in creation order, which the default's random tail does not
            give within a millisecond.
        lease: makes this engine one of several workers on one database (`WorkerLease`): it
            works only on the roots it has leased, claims free and lapsed ones as it goes,
            and renews its leases in every tick's transaction. Without it the engine works on
            every root, alone, and refuses to start while workers hold leases.
        pause_gc: pause Python's cyclic garbage collector during each tick and recovery (it
            walked every live record every few thousand allocations: a fifth of a large
            rollback); it runs again after, unless the application had turned it off. See
            `statemachines/core/engine/gc_pause.py`.

    For example::

        store = open_store("net.db", ledgers=NETWORK_LEDGERS)
        engine = Engine(store, {"network": NetworkHost()}, network_registry(),
                        limits=Limits(task_timeout=600))
        root = engine.submit("ProvisionEndpoint",
                             endpoint_parameters("web", "web.example.org", "sw1/ge-0/1"))
        engine.run_until_idle(on_wait=print)   # says what it waits for, when it waits
        commands, tasks = store.tree(root)
    """

    def __init__(
        self,
        store: Store,
        agents: Mapping[str, Agent],
        registry: CommandRegistry,
        *,
        policy: RevertPolicy | None = None,
        retry: RetryPolicy | None = None,
        limits: Limits | None = None,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        on_commit: Callable[[TickReport], None] | None = None,
        ids: Callable[[], str] = new_id,
        lease: WorkerLease | None = None,
        pause_gc: bool = True,
    ) -> None:
        if lease is not None and lease.owner == SINGLE_ENGINE:
            # A worker under the single engine's name would pass the check that keeps a
            # single engine from starting beside workers, and lose its roots to it.
            raise InvalidConfiguration(f"{SINGLE_ENGINE!r} is the single engine's own lease "
                                       "name: give the worker another")
        self.store = store
        self.pause_gc = pause_gc
        self.new_id = checked_ids(ids)
        self.lease = lease
        # A single engine leases its roots too, under one reserved name: workers never claim
        # them, and a single engine restarted after a crash takes them back at once.
        self._single = lease is None
        self._lease = lease or WorkerLease(owner=SINGLE_ENGINE, max_roots=2**31 - 1)
        #: Who this engine is in the history it writes: its lease name, or for a single
        #: engine (whose lease name all single engines share) this process, `host:pid`.
        self.actor = default_worker_name() if lease is None else lease.owner
        self.agents = dict(agents)
        for name in self.agents:
            if problems := name_problems("agent name", name, MAX_NAME_LENGTH):
                raise InvalidConfiguration(problems[0])
        self.registry = registry
        self.policy = policy or RevertPolicy()
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise InvalidConfiguration(f"retry must be a RetryPolicy (got {retry!r:.80})")
        self.retry = retry or NO_RETRY
        self.limits = limits or Limits()
        # The database's time by default, so that workers whose wall clocks disagree or
        # step still agree on every lease and deadline (steady_clock.py says why).
        self.clock = clock if clock is not None else SteadyClock(store.database_time)
        self.sleep = sleep
        self.on_commit = on_commit
        self.ticks_committed = 0
        #: Roots already under way that this worker claimed from another (a dead worker's,
        #: or one given back by a worker that stopped): each got a "taken over" history row.
        self.roots_taken_over = 0
        self.now = self.clock()
        self._config = EngineConfig(registry, self.policy, self.limits,
                                    frozenset(self.agents), ids, self.retry)
        self._agent_calls = AgentCalls(self.agents, self.limits)
        self._view = EngineView()
        # Transitions taken outside a tick (recovery), written by the next tick.
        self._carried = Changes()
        self._loaded = False
        self._ever_loaded = False
        # Roots whose trees this engine has in its view (a worker: the roots it leased).
        self._roots: set[str] = set()
        self._parked: set[str] = set()
        self._renew_at = 0.0  # the leases are renewed by then, work or not
        self._claim_at = 0.0  # and a worker looks for more roots then
        self._pacing = ClaimPacing(self._lease)
        self._cancels_at = 0.0  # and reads the cancel requests then (`_cancels_due`)

    def is_idle(self) -> bool:
        """Whether it has loaded and has no work left but clears the agent refused every time."""
        return self._loaded and self._view.is_idle(self.limits)

    def submit(
        self,
        type_name: str,
        parameters: Mapping[str, Any],
        *,
        entity: ResourceRef | None = None,
        execution_reason: ExecutionReason = ExecutionReason.REGULAR_FLOW,
        key: str | None = None,
    ) -> str:
        """Persist a new root command (not_started); the next tick executes it.

        That is a worker's next tick, which claims it, or another worker's.
        Malformed parameters and unknown types are refused here, before anything is written.
        With `key`, the root submitted under that key before is returned if there is one
        (`SubmitKeyConflict` if it was another request); see `submit_root`.
        """
        if self._single and not self._loaded:
            self.recover()  # refuses before anything is written if workers hold roots
        record, new = submit_keyed(self.store, self.registry, type_name, parameters, key=key,
                                   entity=entity, execution_reason=execution_reason,
                                   ids=self.new_id, clock=self.clock,
                                   owner=self._lease.owner if self._single else None,
                                   lease_until=self.clock() + self._lease.ttl)
        if not new:
            return record.id  # already known to whichever engine runs it
        if self._single:
            self._view.index_command(record)
            self._roots.add(record.id)
        else:
            self._claim_at = 0.0
        return record.id

    def tick(self) -> TickReport:
        """One round of agent calls, then one transaction of engine work."""
        started = time.perf_counter()
        with gc_paused(self.pause_gc):
            report = self._tick()
        report.duration = time.perf_counter() - started
        if not self._single:
            self._pacing.after_tick(report.duration - report.agent_seconds)
        return report

    def _tick(self) -> TickReport:
        if not self._loaded:
            self.recover()
        self.now = self.clock()
        if self._view_is_stale():
            log.warning("another engine changed tasks this one was about to start; reloading")
            self.recover()
        report = TickReport(number=self.ticks_committed + 1)
        view = self._view
        asked = time.perf_counter()
        answers = self._agent_calls.exchange(view, self.now, report)
        report.agent_seconds = time.perf_counter() - asked
        room = self._claim_room()
        # A tick that claims reads the requests too: a root cancelled before it started
        # must be refused, not executed.
        cancels = self._cancels_due() or room > 0
        if not (room or answers.any() or self._carried.any_records()
                or view.due_commands(self.now) or view.touched_groups or view.resettle
                or view.deadline_due(self.now) or (cancels and self._cancel_requested())
                or self._leases_due()):
            return report
        return self._in_transaction(report, lambda tick: tick.run(answers, cancels),
                                    claim=room)

    def _in_transaction(self, report: TickReport, work: Callable[[Tick], object],
                        claim: int = 0) -> TickReport:
        """Run `work` as one tick's transaction, after claiming up to `claim` roots in it.

        A root whose work made the transaction fail, or that this engine cannot run, is held.
        """
        faults: list[RootFault] = []
        try:
            with self.store.transaction() as tx:
                tx.actor = self.actor
                self._renew_leases(tx)
                if claim:
                    faults = self._claim(tx, claim)
                tick = Tick(self._config, self._view, tx, self._carried, self.now, report)
                self._carried = Changes()
                work(tick)
                tick.flush()
                live = self._settle_roots(tx)
        except RootFault as fault:
            self._forget_view()
            self._hold(fault, report)
            return report
        except BaseException:
            self._forget_view()
            raise
        for root in self._view.forget_finished():
            report.roots_ended += 1
            report.ended_roots.append(root.id)
            report.roots_failed += root.status != CommandStatus.ENDED_SUCCESS
        if self._parked:
            self._view.drop_roots(self._parked)
            log.warning("%s parked %d root(s) whose tasks their host would not clear; they are "
                        "tried again in %d s", self._lease.owner, len(self._parked),
                        PARK_SECONDS)
            self._parked = set()
        self._roots = live
        if tick.wrote:
            self.ticks_committed += 1
            report.committed = True
            if self.on_commit is not None:
                self.on_commit(report)
        self._hold_unrunnable(faults, report)
        return report

    def run_until_idle(self, max_ticks: int = 100_000, poll_interval: float = 0.05,
                       on_wait: Callable[[str], None] | None = None,
                       notice_seconds: float = 5.0) -> int:
        """Tick until nothing is left to do; returns the number of ticks taken.

        Between ticks it sleeps unless something is due at once, until the next retry or
        back-off is due, or `poll_interval` while agents are working. A tick that lost a race
        with another engine is retried on a reloaded view. Raises EngineDidNotSettle after
        `max_ticks`, which a rollback loop would hit; every task also has a deadline, so the
        loop is bounded in time as well.

        Nothing waits silently: when no tick has committed for `notice_seconds`, `on_wait`
        (if given) is told what the engine is waiting for (`waiting_on`), and again every
        `notice_seconds` for as long as that lasts.
        """
        quiet_since = self.clock()
        for ticks in range(1, max_ticks + 1):
            try:
                report = self.tick()
            except ConcurrentModification as err:
                log.warning("reloading after a conflict with another engine: %s", err)
                continue
            if self.is_idle():
                return ticks
            now = self.clock()
            if report.committed:
                quiet_since = now
            elif on_wait is not None and now - quiet_since >= notice_seconds:
                on_wait(self.waiting_on())
                quiet_since = now
            if not self._view.due_now(now, self.limits):
                self.sleep(self._view.wait_hint(now, poll_interval, self.limits))
        raise EngineDidNotSettle(
            f"still {len(self._view.commands)} commands and {len(self._view.tasks)} tasks "
            f"unfinished after {max_ticks} ticks"
        )

    def next_wait(self, longest: float) -> float:
        """How long a loop may sleep before the next tick.

        It is 0 when something is due now, else until the next retry or back-off, never longer
        than `longest` (a worker also wakes for new roots and to renew its leases).
        """
        if not self._loaded:
            return 0.0
        now = self.clock()
        if self._view.due_now(now, self.limits):
            return 0.0
        wait = min(longest, self._view.wait_hint(now, longest, self.limits))
        return min(wait, max(0.0, self._renew_at - now))

    def waiting_on(self) -> str:
        """One sentence on what keeps the engine from being idle, for people watching it."""
        return self._view.waiting_on(self.clock()) if self._loaded else "loading"
