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

from .agent_calls import AgentCalls
from .agent_protocol import Agent
from .claim_pacing import ClaimPacing
from .command import CommandRegistry
from .command_machine import COMMAND_MACHINE, CommandStatus, CommandTrigger
from .compensation_policy import RevertPolicy
from .engine_view import EngineView
from .errors import (
    ConcurrentModification,
    EndactionError,
    EngineDidNotSettle,
    InvalidConfiguration,
    LeaseLost,
    RootFault,
    UnknownAgent,
    UnknownCommandType,
    WorkersHoldRoots,
)
from .gc_pause import gc_paused
from .ids import checked as checked_ids
from .ids import new_id
from .leases import WorkerLease, default_worker_name
from .limits import Limits
from .operator_requests import CLEANUP_REQUEST, request_cancel, request_cleanup
from .reasons import ExecutionReason
from .recorder import Changes, Recorder
from .records import (
    MAX_NAME_LENGTH,
    ActiveState,
    HistoryEvent,
    HistoryPath,
    ObjectKind,
    name_problems,
)
from .retry_policy import NO_RETRY, RetryPolicy
from .revert_state import ResourceRef, ResourceRevert
from .steady_clock import SteadyClock
from .store_protocol import Store, StoreTransaction
from .submission import submit_keyed
from .task_machine import TaskStatus
from .tick import Tick
from .tick_report import TickReport
from .tick_state import EngineConfig

log = logging.getLogger("endaction.engine")

# The owner name on every single engine's leases: one name, so a single engine restarted
# after a crash takes its roots back at once (two single engines at once are not supported).
SINGLE_ENGINE = "single-engine"
# How long a worker leaves a root alone whose only work is clears its host keeps refusing.
PARK_SECONDS = 600


class Engine:
    """Runs command trees to their end over a store and a set of agents.

    Args:
        store: where commands, tasks and their history persist (`persistence.open_store`).
        agents: the task hosts by name; a command's `ctx.start_task(agent, ...)` names one.
        registry: the command types this engine may run.
        policy: how failed compensations are retried (the revert-state loop guard).
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
            `statemachines/core/gc_pause.py`.

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

    # ------------------------------------------------------------------ loading
    def recover(self) -> None:
        """Reload every unfinished command and task and resume them, as after a crash.

        A command caught in `executing` cannot know how far its execute got, so it takes the
        failure path; its end group's compensations undo whatever it did create. Pending tasks
        are started again (idempotent on the task id); polling tasks resume polling.
        """
        with gc_paused(self.pause_gc):
            self._recover()

    def _recover(self) -> None:
        self._loaded = False  # until this load completes, whatever it raises
        first_load = not self._ever_loaded
        self.now = self.clock()
        owner, until = self._lease.owner, self.now + self._lease.ttl
        if self._single:
            self._refuse_if_workers_hold_roots()
        claimed = set(self.store.reclaim_roots(owner, until))
        if self._single:
            claimed |= set(self.store.claim_roots(owner, self.now, until, 2**31 - 1,
                                                  parked_too=True))
            state = self._mine(self.store.load_active(), claimed)
        else:
            if claimed:
                log.info("worker %s took back %d root(s) it held", owner, len(claimed))
            state = self.store.load_active(claimed)
        self._renew_at = self.now + self._lease.ttl / 3
        self._claim_at = self.now
        state, faults = self._loadable(state)
        for fault in faults:
            self._hold(fault, TickReport())
        held = {fault.root_id for fault in faults}
        self._view = EngineView()
        self._carried = Changes()
        self._roots = set()
        self._adopt(state, claimed - held, reset_clears=first_load,
                    recovery=f"resumed by {self.actor} after a restart" if first_load else None)
        self._loaded = self._ever_loaded = True

    def _mine(self, state: ActiveState, claimed: set[str]) -> ActiveState:
        """A single engine's share of everything unfinished: the roots it leased, and roots
        with work but no lease row at all (it gives them one at its first tick)."""
        leased = {root for root, _, _ in self.store.leases()}
        keep = claimed | ({c.root_id for c in state.commands}
                          | {t.root_command_id for t in state.tasks}) - leased
        return ActiveState([c for c in state.commands if c.root_id in keep],
                           [t for t in state.tasks if t.root_command_id in keep])

    def _loadable(self, state: ActiveState) -> tuple[ActiveState, list[RootFault]]:
        """Refuse what this engine cannot run: a single engine says so and stops; a worker
        holds just those roots with the error (a newer client's command type in a rolling
        upgrade must not stop every worker that claims it) and goes on with the rest.
        Returns what it can run, and the roots to hold (their lease rows must stay, for
        whoever runs them once they are released)."""
        unknown_types = {c.type for c in state.commands} - set(self.registry.names())
        unknown_agents = {t.agent for t in state.tasks} - set(self.agents)
        if not unknown_types and not unknown_agents:
            return state, []
        problems: dict[str, EndactionError] = {}
        for record in state.commands:
            if record.type in unknown_types:
                problems.setdefault(record.root_id,
                                    UnknownCommandType(record.type, self.registry.names()))
        for task in state.tasks:
            if task.agent in unknown_agents:
                problems.setdefault(task.root_command_id, UnknownAgent(
                    task.agent, list(self.agents), f"task {task.id} ({task.verb})"))
        if self._single:
            raise problems[min(problems)]
        return (ActiveState([c for c in state.commands if c.root_id not in problems],
                            [t for t in state.tasks if t.root_command_id not in problems]),
                [RootFault(root_id, problem) for root_id, problem in sorted(problems.items())])

    def _adopt(self, state: ActiveState, claimed: set[str], reset_clears: bool,
               recovery: str | None) -> int:
        """Take loaded trees into the view and resume them, as after a crash: whoever had
        them before (this engine before a restart, or a worker that died) is gone. With
        `recovery`, every root already under way gets a `recover` row saying so (a reload
        after a rolled-back tick is no recovery: nobody else had the trees). Returns how
        many roots got one."""
        recovered = 0
        view = self._view
        for record in state.commands:
            view.index_command(record)
        for task in state.tasks:
            view.index_task(task)
        recorder = Recorder(view, self._carried, self.now)
        if recovery is not None:
            for record in state.commands:
                if record.parent_id is None and record.status != CommandStatus.NOT_STARTED:
                    recorder.history(record, HistoryEvent.RECOVER, record.status,
                                     record.status, recovery)
                    recovered += 1
        for record in state.commands:
            if record.status == CommandStatus.EXECUTING:
                record.error = "the engine stopped while this command was executing"
                recorder.fire(record, COMMAND_MACHINE, CommandTrigger.FAIL_EXECUTION,
                              "recovered after a crash")
        for task in state.tasks if reset_clears else ():
            if (task.status == TaskStatus.CLEAR_FAILED
                    and task.attempts >= self.limits.max_clear_attempts):
                task.attempts, task.retry_at = 0, 0.0  # a new round of clears after a restart
                recorder.touch(task)
        view.touched_groups.update(c.end_group_id for c in state.commands)
        view.resettle.update(c.id for c in state.commands
                             if c.status == CommandStatus.ROLLING_BACK
                             and not view.children.get(c.id))
        # Leased roots with nothing left (finished just before a crash) stay in `_roots` until
        # the next tick's transaction drops their lease rows; a single engine's roots without
        # a lease row get one then.
        self._roots |= claimed
        return recovered

    def _refuse_if_workers_hold_roots(self) -> None:
        holders = {owner for _, owner, expires in self.store.leases()
                   if owner not in (None, SINGLE_ENGINE) and expires > self.now}
        if holders:
            raise WorkersHoldRoots(
                f"worker(s) {', '.join(sorted(holders))} hold leases on {self.store_name()}: "
                "a single engine would race them for the same trees; stop them (their leases "
                "are given back) or run this work with `endaction worker`")

    def store_name(self) -> str:
        return str(getattr(self.store, "url", "this database"))

    def _claim_room(self) -> int:
        """How many roots a worker below its share claims in this tick: every
        claim_interval, or at once after a wake-up or a claim that came back full."""
        lease = self.lease
        if lease is None or self.now < self._claim_at:
            return 0
        self._claim_at = self.now + lease.claim_interval
        return max(0, self._pacing.room(len(self._roots)))

    def _claim(self, tx: StoreTransaction, room: int) -> list[RootFault]:
        """Claim free or lapsed roots inside the tick's own transaction (their lease rows
        stay locked until it commits, so nobody writes those trees meanwhile) and take them
        into the view, so their work is done in this same tick. A rollback gives them back.
        Returns the roots this engine cannot run, to be held once the tick has committed."""
        lease = self._lease
        found = tx.claim_roots(lease.owner, self.now, self.now + lease.ttl, room)
        self._pacing.claimed(room, len(found))
        claimed = set(found) - self._roots
        if len(found) >= room:
            self._claim_at = self.now  # there may be more: look again at the next tick
        if not claimed:
            return []
        log.info("worker %s claimed %d root(s)", lease.owner, len(claimed))
        state, faults = self._loadable(tx.load_active(claimed))
        held = {fault.root_id for fault in faults}
        self.roots_taken_over += self._adopt(state, claimed - held, reset_clears=True,
                                             recovery=f"taken over by {self.actor}")
        return faults

    def wake(self) -> None:
        """Work was made for some worker (`Store.wakeups`): look for roots at the next tick
        instead of at the next claim_interval, and read the cancel requests."""
        self._claim_at = self._cancels_at = 0.0

    def release(self) -> int:
        """Give every lease back (a worker stopping cleanly), so that others take its roots
        over at once instead of after `ttl`; returns how many it held."""
        self._forget_view()
        released = self.store.release_leases(self._lease.owner)
        self._roots = set()
        return released

    def is_idle(self) -> bool:
        return self._loaded and self._view.is_idle(self.limits)

    # ------------------------------------------------------------------ submitting
    def submit(
        self,
        type_name: str,
        parameters: Mapping[str, Any],
        *,
        entity: ResourceRef | None = None,
        execution_reason: ExecutionReason = ExecutionReason.REGULAR_FLOW,
        key: str | None = None,
    ) -> str:
        """Persist a new root command (not_started); the next tick executes it (a worker's
        next tick claims it, or another worker's does).

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

    # ------------------------------------------------------------------ ticking
    def tick(self) -> TickReport:
        """One round of agent calls, then one transaction of engine work."""
        started = time.perf_counter()
        with gc_paused(self.pause_gc):
            report = self._tick()
        report.duration = time.perf_counter() - started
        if not self._single:
            self._pacing.after_tick(report.duration, len(self._roots))
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
        answers = self._agent_calls.exchange(view, self.now, report)
        room = self._claim_room()
        cancels = self._cancels_due()
        if not (room or answers.any() or self._carried.any_records()
                or view.due_commands(self.now) or view.touched_groups or view.resettle
                or view.deadline_due(self.now) or (cancels and self._cancel_requested())
                or self._leases_due()):
            return report
        return self._in_transaction(report, lambda tick: tick.run(answers, cancels),
                                    claim=room)

    def _cancels_due(self) -> bool:
        """Whether this tick reads the cancel requests: a single engine in every tick; a
        worker when woken (a request wakes it, `Store.wakeups`) and every claim_interval
        otherwise, which spares each tick of a busy worker one read."""
        if self._single:
            return True
        if self.now < self._cancels_at:
            return False
        self._cancels_at = self.now + self._lease.claim_interval
        return True

    def _cancel_requested(self) -> bool:
        """A cancel request for a root this engine runs (one read; requests are rare)."""
        return any(root in self._view.commands for root in self.store.cancel_requests())

    def _in_transaction(self, report: TickReport, work: Callable[[Tick], object],
                        claim: int = 0) -> TickReport:
        """Run `work` as one tick's transaction, after claiming up to `claim` roots in it;
        hold a root whose work made it fail, or that this engine cannot run."""
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
        for unrunnable in faults:
            self._hold(unrunnable, report)
        if tick.wrote:
            self.ticks_committed += 1
            report.committed = True
            if self.on_commit is not None:
                self.on_commit(report)
        return report

    @property
    def roots_held(self) -> int:
        """The roots this engine holds a lease on now, for a worker's summary line."""
        return len(self._roots)

    def _leases_due(self) -> bool:
        """A worker's leases need renewing (even with nothing to do), or leased roots turned
        out finished and their rows must go."""
        return self.now >= self._renew_at or bool(self._roots - self._view.live_roots())

    def _renew_leases(self, tx: StoreTransaction) -> None:
        """First thing in a tick: the engine's leases, locked until commit. A root taken over
        since (its lease had lapsed) means the view is stale: roll back."""
        owner = self._lease.owner
        held = tx.renew_leases(owner, self._roots, self.now + self._lease.ttl)
        lost = self._roots - held
        if lost:
            raise LeaseLost(f"{owner} lost {len(lost)} root(s) to another worker (its lease "
                            f"had lapsed), e.g. {min(lost)}; rolled back")
        self._renew_at = self.now + self._lease.ttl / 3

    def _settle_roots(self, tx: StoreTransaction) -> set[str]:
        """Lease rows follow the trees: a root whose tree has no work left loses its row, one
        that has work again (a cleanup's opposite commands) gets one back. A worker parks the
        roots whose only work left is clears its host keeps refusing: they stop taking its
        share, and whoever claims them after `PARK_SECONDS` tries a new round of clears."""
        live = self._view.live_roots()
        until = self.now + self._lease.ttl
        if gone := self._roots - live:
            tx.finish_roots(gone)
        if new := live - self._roots:
            tx.open_roots(new, self._lease.owner, until)
        if not self._single and (parked := self._view.stuck_roots(live, self.limits)):
            tx.park_roots(parked, self._lease.owner, self.now + PARK_SECONDS)
            self._parked = parked
            live -= parked
        return live

    # ------------------------------------------------------------------ operator requests
    def cancel(self, root_id: str, reason: str = "cancelled by request") -> None:
        """Ask for a running root to be cancelled; whichever engine runs it acts on it at its
        next tick: what has not started is refused, running tasks are aborted on their agents,
        and what already succeeded is compensated like after any other failure.

        Raises NotCancellable for an unknown id, a command that is not a root, or a root that
        has already ended."""
        request_cancel(self.store, root_id, reason, self.clock())

    def cleanup(self) -> list[ResourceRevert]:
        """Start one more opposite command for every resource left `revert_failed` whose owner
        has ended (run the engine afterwards to carry them out); each resource reads
        `reverted` once one succeeds. Returns the resources retried or found gone."""
        if not self._loaded:
            self.recover()
        self.now = self.clock()
        retried: list[ResourceRevert] = []
        self._in_transaction(TickReport(number=self.ticks_committed + 1),
                             lambda tick: retried.extend(tick.start_cleanup()))
        return retried

    def request_cleanup(self) -> None:
        """Ask for a cleanup that a worker performs: for a fleet, where `cleanup` (which
        runs in this engine) is refused while workers hold leases."""
        request_cleanup(self.store, self.clock())

    def serve_cleanup_request(self) -> list[ResourceRevert] | None:
        """A worker's part of `request_cleanup`: if a request waits, take it (one worker
        does) and start the opposite commands of the resources left revert_failed, in roots
        no other worker holds; they run as this worker's roots. None if none waited."""
        if self.store.setting(CLEANUP_REQUEST) is None:
            return None
        self.now = self.clock()
        mine = self._lease.owner
        elsewhere = {root for root, owner, _ in self.store.leases() if owner != mine}
        retried: list[ResourceRevert] = []
        taken: list[bool] = []

        def work(tick: Tick) -> None:
            if tick.state.tx.take_setting(CLEANUP_REQUEST):
                retried.extend(tick.start_cleanup(skip=elsewhere.__contains__))
                taken.append(True)  # only if the transaction then commits (see below)

        report = self._in_transaction(TickReport(number=self.ticks_committed + 1), work)
        if not taken or (report.errors and not report.committed):
            return None  # a hold rolled the transaction back, the request with it
        log.info("%s took a cleanup request: %d resource(s) retried", mine, len(retried))
        return retried

    def _forget_view(self) -> None:
        """The database no longer matches the in-memory view: rebuild it from the store."""
        self._loaded = False
        self._view = EngineView()
        self._carried = Changes()

    def _hold(self, fault: RootFault, report: TickReport) -> None:
        """Hold the root whose work made the engine fail, so every other root goes on.

        The failed tick was rolled back; the root's rows stay exactly as they were, the error
        is recorded with it, and the next tick reloads the view without it."""
        message = str(fault)
        log.error("holding root %s: %s", fault.root_id, message, exc_info=fault.cause)
        report.errors.append(message)
        root = self.store.command(fault.root_id)
        status = root.status if root is not None else ""
        with self.store.transaction() as tx:
            tx.actor = self.actor
            until = self.now + self._lease.ttl
            tx.open_roots([fault.root_id], self._lease.owner, until)
            # A root claimed by the tick that failed is free again: claimed back, to hold.
            if fault.root_id not in (set(tx.renew_leases(self._lease.owner, [fault.root_id],
                                                         until))
                                     | set(tx.claim_roots(self._lease.owner, self.now, until,
                                                          1, only=[fault.root_id]))):
                log.warning("not holding root %s: %s no longer leases it", fault.root_id,
                            self._lease.owner)
                return
            tx.hold_root(fault.root_id, self.now, message)
            tx.append_history([HistoryPath(ObjectKind.COMMAND, fault.root_id, fault.root_id,
                                           status, self.now,
                                           [(HistoryEvent.HOLD, status, message)])])

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
        """How long a loop may sleep before the next tick: 0 when something is due now, else
        until the next retry or back-off, never longer than `longest` (a worker also wakes
        for new roots and to renew its leases)."""
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

    def _view_is_stale(self) -> bool:
        """Did another engine move a task this one is about to start? Then reload first:
        starting a task is the one agent call that must not be made on a stale view.

        A worker whose leases are fresh need not ask: another engine moves a task only after
        taking its root over, which waits for the lease to lapse, and the leases were renewed
        less than `ttl / 3` ago (every worker's clock is the database's, steady_clock.py)."""
        if not self._single and self.now < self._renew_at:
            return False
        pending = [t for t in self._view.tasks.values()
                   if t.status == TaskStatus.PENDING
                   and self._view.agent_work_due(t, self.now, self.limits)]
        if not pending:
            return False
        versions = self.store.task_versions([t.id for t in pending])
        return any(versions.get(t.id) != t.version for t in pending)
