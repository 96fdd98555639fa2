"""How an engine loads its work, and whether its view went stale.

It loads at start-up, after a rolled-back tick, and for the roots a worker claims or takes
over. Everything is read back from the database and resumed as after a crash (nothing is ever
taken from another engine's memory); a root this engine cannot run is held with the error, so
the others go on. Part of `Engine` (statemachines/core/engine/engine.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..commands.command import CommandRegistry
from ..errors import (
    EndactionError,
    RootFault,
    UnknownAgent,
    UnknownCommandType,
    WorkersHoldRoots,
)
from ..machines.command_machine import COMMAND_MACHINE, CommandStatus, CommandTrigger
from ..machines.task_machine import TaskStatus
from ..ports.agent_protocol import Agent
from ..ports.store_protocol import Store
from ..records.limits import Limits
from ..records.records import (
    ActiveState,
    HistoryEvent,
    HistoryPath,
    ObjectKind,
)
from ..records.tick_report import TickReport
from ..tick.engine_view import EngineView
from ..tick.recorder import Changes, Recorder
from .claim_pacing import ClaimPacing
from .gc_pause import gc_paused
from .leases import WorkerLease

log = logging.getLogger("endaction.engine")

# The owner name on every single engine's leases: one name, so a single engine restarted
# after a crash takes its roots back at once (two single engines at once are not supported).
SINGLE_ENGINE = "single-engine"
# How long a worker leaves a root alone whose only work is clears its host keeps refusing.
PARK_SECONDS = 600


class EngineLoading:
    """`Engine`'s loading and holding; see the module's docstring."""

    # The engine's state these methods share (set by Engine.__init__).
    store: Store
    registry: CommandRegistry
    agents: dict[str, Agent]
    limits: Limits
    lease: WorkerLease | None
    actor: str
    clock: Callable[[], float]
    now: float
    pause_gc: bool
    roots_taken_over: int
    _lease: WorkerLease
    _single: bool
    _view: EngineView
    _carried: Changes
    _loaded: bool
    _ever_loaded: bool
    _roots: set[str]
    _parked: set[str]
    _renew_at: float
    _claim_at: float
    _cancels_at: float
    _pacing: ClaimPacing

    def store_name(self) -> str:
        """The database as log lines and errors name it: the store's URL, if it has one."""
        return str(getattr(self.store, "url", "this database"))

    def recover(self) -> None:
        """Reload every unfinished command and task and resume them, as after a crash.

        A command caught in `executing` cannot know how far its execute got, so it takes the
        failure path; its end group's opposite commands revert whatever it did create. Pending tasks
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
        """A single engine's share of everything unfinished.

        That is the roots it leased, and roots with work but no lease row at all (it gives
        them one at its first tick).
        """
        leased = {root for root, _, _ in self.store.leases()}
        keep = claimed | ({c.root_id for c in state.commands}
                          | {t.root_command_id for t in state.tasks}) - leased
        return ActiveState([c for c in state.commands if c.root_id in keep],
                           [t for t in state.tasks if t.root_command_id in keep])

    def _loadable(self, state: ActiveState) -> tuple[ActiveState, list[RootFault]]:
        """Refuse what this engine cannot run: a command type or an agent it does not know.

        A single engine says so and stops; a worker holds just those roots with the error (a
        newer client's command type in a rolling upgrade must not stop every worker that
        claims it) and goes on with the rest. Returns what it can run, and the roots to hold
        (their lease rows must stay, for whoever runs them once they are released).
        """
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
        """Take loaded trees into the view and resume them, as after a crash.

        Whoever had them before (this engine before a restart, or a worker that died) is gone.
        With `recovery`, every root already under way gets a `recover` row saying so (a reload
        after a rolled-back tick is no recovery: nobody else had the trees). Returns how many
        roots got one.
        """
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

    def _view_is_stale(self) -> bool:
        """Whether another engine moved a task this one is about to start.

        If so, the engine reloads first: starting a task is the one agent call that must not
        be made on a stale view.

        A worker whose leases are fresh need not ask: another engine moves a task only after
        taking its root over, which waits for the lease to lapse, and the leases were renewed
        less than `ttl / 3` ago (every worker's clock is the database's, steady_clock.py).
        """
        if not self._single and self.now < self._renew_at:
            return False
        pending = [t for t in self._view.tasks.values()
                   if t.status == TaskStatus.PENDING
                   and self._view.agent_work_due(t, self.now, self.limits)]
        if not pending:
            return False
        versions = self.store.task_versions([t.id for t in pending])
        return any(versions.get(t.id) != t.version for t in pending)

    def _refuse_if_workers_hold_roots(self) -> None:
        holders = {owner for _, owner, expires in self.store.leases()
                   if owner not in (None, SINGLE_ENGINE) and expires > self.now}
        if holders:
            raise WorkersHoldRoots(
                f"worker(s) {', '.join(sorted(holders))} hold leases on {self.store_name()}: "
                "a single engine would race them for the same trees; stop them (their leases "
                "are given back) or run this work with `endaction worker`")

    def _forget_view(self) -> None:
        """The database no longer matches the in-memory view: rebuild it from the store."""
        self._loaded = False
        self._view = EngineView()
        self._carried = Changes()

    def _hold(self, fault: RootFault, report: TickReport) -> None:
        """Hold the root whose work made the engine fail, or that it cannot run.

        A root it cannot run has a type or an agent it does not know. The root is held so
        that every other root goes on.

        A tick that failed was rolled back, and a root that cannot run was never taken into
        the view: its rows stay exactly as they were, the error is recorded with it, and no
        view holds it until it is released.
        """
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

    def _hold_unrunnable(self, faults: list[RootFault], report: TickReport) -> None:
        """Hold the claimed roots this engine cannot run, once the tick that claimed them committed.

        A hold that fails (the database went) leaves the root leased to this worker and out of
        its view: whoever claims it once the lease lapses holds it.
        """
        for fault in faults:
            try:
                self._hold(fault, report)
            except EndactionError as err:
                message = f"could not hold root {fault.root_id} ({err}); it is held by " \
                          "whoever claims it once this worker's lease on it lapses"
                log.warning("%s", message)
                report.errors.append(message)
