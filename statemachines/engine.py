"""The engine: drives commands and tasks through their machines, one transaction per tick.

A tick talks to the agents first, outside any transaction (start pending tasks, one batched
poll per agent, clear ended tasks), then applies what they said, executes due commands, claims
and runs the ends of every end group whose fan-in is complete, and settles rollbacks, all in one
transaction. New task rows are committed in that transaction and started at the next tick, so a
row always exists before the agent hears of the task. If anything fails mid-tick the
transaction is rolled back and the engine reloads its view from the store before the next tick:
nothing persisted is lost, and the in-memory view never runs ahead of the database.

The engine keeps only unfinished work in memory and never reads history on the hot path, so a
tick costs the same on a database with a million ended commands as on an empty one.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .agents.protocol import Agent, TaskRejected
from .command import Command, CommandRegistry
from .command_machine import (
    COMMAND_MACHINE,
    READY_TO_END_STATES,
    CommandStatus,
)
from .compensation_policy import Decision, RevertPolicy, decide
from .errors import (
    ConcurrentModification,
    EngineDidNotSettle,
    StoreError,
    UnknownAgent,
    UnknownCommandType,
)
from .hook_context import HookContext
from .host_status import HostResult, TaskReport
from .reasons import ExecutionReason
from .records import CommandRecord, HistoryEntry, TaskRecord, freeze
from .revert_state import ResourceRef, ResourceRevert, RevertState
from .shared_machine import SharedMachine
from .store_protocol import Store, StoreTransaction
from .task_machine import DONE_TASK_STATES, TASK_MACHINE, TaskStatus
from .tick_report import TickReport

log = logging.getLogger("endaction.engine")

C = CommandStatus
T = TaskStatus
# Outcome a rolling-back parent carries once one of its children gave up on its rollback.
CHILD_REVERT_FAILED = "child_revert_failed"


def new_id() -> str:
    """Time-ordered (like UUIDv7): 12 hex digits of milliseconds, then 20 random ones.

    Ids made in one tick sort together, so the primary-key and history indexes grow at their
    end instead of taking random inserts all over the B-tree."""
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(10)}"


@dataclass
class _AgentAnswers:
    """What the agents said during the I/O phase of a tick, applied inside its transaction."""

    accepted: list[TaskRecord] = field(default_factory=list)
    rejected: list[tuple[TaskRecord, str]] = field(default_factory=list)
    start_retry: list[tuple[TaskRecord, str]] = field(default_factory=list)
    reports: list[tuple[TaskRecord, TaskReport]] = field(default_factory=list)
    cleared: list[TaskRecord] = field(default_factory=list)
    clear_failed: list[tuple[TaskRecord, str]] = field(default_factory=list)

    def any(self) -> bool:
        return any((self.accepted, self.rejected, self.start_retry, self.reports, self.cleared,
                    self.clear_failed))


@dataclass
class _Changes:
    new_commands: dict[str, CommandRecord] = field(default_factory=dict)
    changed_commands: dict[str, CommandRecord] = field(default_factory=dict)
    new_tasks: dict[str, TaskRecord] = field(default_factory=dict)
    changed_tasks: dict[str, TaskRecord] = field(default_factory=dict)
    history: list[HistoryEntry] = field(default_factory=list)

    def any(self) -> bool:
        return bool(self.new_commands or self.changed_commands or self.new_tasks
                    or self.changed_tasks or self.history)


class Engine:
    def __init__(
        self,
        store: Store,
        agents: Mapping[str, Agent],
        registry: CommandRegistry,
        *,
        policy: RevertPolicy | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        max_start_attempts: int = 5,
        max_clear_attempts: int = 5,
        agent_retry_seconds: float = 0.5,
        on_commit: Callable[[TickReport], None] | None = None,
        ids: Callable[[], str] = new_id,
    ) -> None:
        """`ids` makes the ids of new commands and tasks: unique across every engine sharing
        the database. Replaying a run exactly (the property suite's shrinking) needs ids that
        sort in creation order, which the default's random tail does not give within a
        millisecond."""
        self.store = store
        self.new_id = ids
        self.agents = dict(agents)
        self.registry = registry
        self.policy = policy or RevertPolicy()
        self.clock = clock
        self.sleep = sleep
        self.max_start_attempts = max_start_attempts
        self.max_clear_attempts = max_clear_attempts
        self.agent_retry_seconds = agent_retry_seconds
        self.on_commit = on_commit
        self.ticks_committed = 0
        self.now = clock()
        self._loaded = False
        self._ever_loaded = False
        self._reset()

    # ------------------------------------------------------------------ in-memory view
    def _reset(self) -> None:
        self._commands: dict[str, CommandRecord] = {}
        self._not_started: dict[str, CommandRecord] = {}
        # Only unfinished commands, keyed by id: a parent with 10,000 children must be able to
        # drop one in O(1) and to ask "any child still running?" without a scan.
        self._children: dict[str, dict[str, CommandRecord]] = defaultdict(dict)
        self._group_members: dict[str, dict[str, CommandRecord]] = defaultdict(dict)
        self._tasks: dict[str, TaskRecord] = {}
        self._tasks_by_command: dict[str, list[TaskRecord]] = defaultdict(list)
        self._touched_groups: set[str] = set()
        # One opposite command per resource at a time: siblings that name the same resource
        # (a parent and its children often do) wait for the one in flight, then re-check the
        # guards, instead of both deleting it.
        self._reverting: dict[ResourceRef, set[str]] = defaultdict(set)
        self._awaiting_revert: dict[ResourceRef, set[str]] = defaultdict(set)
        # Rolling-back commands to settle again in the next tick: after a restart, the ones
        # that were waiting for another command's opposite command.
        self._resettle: set[str] = set()
        self._changes = _Changes()
        self._tx: StoreTransaction | None = None
        self._wrote = False
        self._report = TickReport()

    def _index_command(self, record: CommandRecord) -> None:
        self._commands[record.id] = record
        if record.status == C.NOT_STARTED:
            self._not_started[record.id] = record
        if record.parent_id is not None:
            self._children[record.parent_id][record.id] = record
        self._group_members[record.end_group_id][record.id] = record
        opposite = _opposite_resource(record)
        if opposite is not None and not COMMAND_MACHINE.is_terminal(record.status):
            self._reverting[opposite].add(record.id)

    def _detach(self, record: CommandRecord) -> None:
        """A command just became terminal: it no longer holds up its parent or its group."""
        if record.parent_id is not None:
            siblings = self._children.get(record.parent_id)
            if siblings is not None:
                siblings.pop(record.id, None)
                if not siblings:
                    del self._children[record.parent_id]
        members = self._group_members.get(record.end_group_id)
        if members is not None:
            members.pop(record.id, None)
            if not members:
                del self._group_members[record.end_group_id]
        self._not_started.pop(record.id, None)
        opposite = _opposite_resource(record)
        if opposite is not None:
            in_flight = self._reverting.get(opposite)
            if in_flight is not None:
                in_flight.discard(record.id)
                if not in_flight:
                    del self._reverting[opposite]

    def _index_task(self, task: TaskRecord) -> None:
        self._tasks[task.id] = task
        self._tasks_by_command[task.command_id].append(task)

    def recover(self) -> None:
        """Reload every unfinished command and task and resume them, as after a crash.

        A command caught in `executing` cannot know how far its execute got, so it takes the
        failure path; its end group's compensations undo whatever it did create. Pending tasks
        are started again (idempotent on the task id); polling tasks resume polling.
        """
        self._loaded = False  # until this load completes, whatever it raises
        first_load = not self._ever_loaded
        state = self.store.load_active()
        unknown = sorted({c.type for c in state.commands} - set(self.registry.names()))
        if unknown:
            raise UnknownCommandType(unknown[0], self.registry.names())
        self._reset()
        self.now = self.clock()
        for record in state.commands:
            self._index_command(record)
        for task in state.tasks:
            self._index_task(task)
        missing = sorted({t.agent for t in state.tasks} - set(self.agents))
        if missing:
            task = next(t for t in state.tasks if t.agent == missing[0])
            raise UnknownAgent(missing[0], list(self.agents), f"task {task.id} ({task.verb})")
        for record in state.commands:
            if record.status == C.EXECUTING:
                record.error = "the engine stopped while this command was executing"
                self._fire(record, COMMAND_MACHINE, "fail_execution", "recovered after a crash")
        for task in state.tasks if first_load else ():
            if task.status == T.CLEAR_FAILED and task.attempts >= self.max_clear_attempts:
                task.attempts, task.retry_at = 0, 0.0  # a new round of clears after a restart
                self._touch(task)
        self._touched_groups = set(self._group_members)
        self._resettle = {c.id for c in state.commands
                          if c.status == C.ROLLING_BACK and not self._children.get(c.id)}
        self._loaded = self._ever_loaded = True

    def is_idle(self) -> bool:
        if not self._loaded:
            return False
        return not self._commands and all(
            t.status == T.CLEAR_FAILED and t.attempts >= self.max_clear_attempts
            for t in self._tasks.values()
        )

    # ------------------------------------------------------------------ submitting
    def submit(
        self,
        type_name: str,
        parameters: Mapping[str, Any],
        *,
        entity: ResourceRef | None = None,
        execution_reason: ExecutionReason = ExecutionReason.REGULAR_FLOW,
    ) -> str:
        """Persist a new root command (not_started); the next tick executes it.

        Malformed parameters and unknown types are refused here, before anything is written.
        """
        self.registry.check(type_name, parameters)
        now = self.clock()
        command_id = self.new_id()
        record = CommandRecord(
            id=command_id, root_id=command_id, parent_id=None, end_group_id=command_id,
            type=type_name, execution_reason=ExecutionReason(execution_reason),
            parameters=freeze(parameters), entity_type=entity.type if entity else None,
            entity_id=entity.id if entity else None, created_at=now, updated_at=now,
        )
        created = HistoryEntry("command", command_id, command_id, "create", "", record.status, now)
        with self.store.transaction() as tx:
            tx.write([record], [], [], [], [created])
        if self._loaded:
            self._index_command(record)
        return command_id

    # ------------------------------------------------------------------ ticking
    def tick(self) -> TickReport:
        if not self._loaded:
            self.recover()
        self.now = self.clock()
        if self._view_is_stale():
            log.warning("another engine changed tasks this one was about to start; reloading")
            self.recover()
        self._report = TickReport(number=self.ticks_committed + 1)
        answers = self._talk_to_agents()
        if not (answers.any() or self._changes.any() or self._due_commands()
                or self._touched_groups or self._resettle):
            return self._report
        try:
            with self.store.transaction() as tx:
                self._tx = tx
                self._wrote = False
                self._apply(answers)
                self._advance()
                self._flush()
        except BaseException:
            # The database no longer matches the in-memory view: rebuild it from the store.
            self._loaded = False
            self._reset()
            raise
        finally:
            self._tx = None
        committed = self._wrote
        self._forget_finished()
        if committed:
            self.ticks_committed += 1
            self._report.committed = True
            if self.on_commit is not None:
                self.on_commit(self._report)
        return self._report

    def run_until_idle(self, max_ticks: int = 100_000, poll_interval: float = 0.05) -> int:
        """Tick until nothing is left to do; returns the number of ticks taken.

        Between ticks it sleeps unless something is due at once, until the next retry or
        back-off is due, or `poll_interval` while agents are working. A tick that lost a race
        with another engine is retried on a reloaded view. Raises EngineDidNotSettle after
        `max_ticks`, which a rollback loop would hit.
        """
        for ticks in range(1, max_ticks + 1):
            try:
                self.tick()
            except ConcurrentModification as err:
                log.warning("reloading after a conflict with another engine: %s", err)
                continue
            if self.is_idle():
                return ticks
            if not self._due_now():
                self.sleep(self._wait_hint(poll_interval))
        raise EngineDidNotSettle(
            f"still {len(self._commands)} commands and {len(self._tasks)} tasks unfinished "
            f"after {max_ticks} ticks"
        )

    def _due_now(self) -> bool:
        now = self.clock()
        return bool(self._touched_groups or self._resettle) or any(
            c.not_before <= now for c in self._not_started.values()
        ) or any(self._agent_work_due(t, now) for t in self._tasks.values())

    def _agent_work_due(self, task: TaskRecord, now: float) -> bool:
        """A start or a clear the agent should be asked for now (polls are paced separately)."""
        if task.retry_at > now:
            return False
        if task.status == T.CLEAR_FAILED:
            return task.attempts < self.max_clear_attempts
        return task.status in (T.PENDING, T.ENDING)

    def _wait_hint(self, poll_interval: float) -> float:
        if any(t.status == T.POLLING for t in self._tasks.values()):
            return poll_interval
        due = [c.not_before for c in self._not_started.values()]
        due += [t.retry_at for t in self._tasks.values()
                if t.retry_at and self._agent_work_due(t, t.retry_at)]
        if due:
            return max(0.0, min(due) - self.clock())
        return poll_interval

    def _retry_delay(self, attempts: int) -> float:
        """Back-off between tries of a start or clear the agent failed: 0.5 s, 1 s, 2 s, ..."""
        return float(min(30.0, self.agent_retry_seconds * 2 ** max(0, attempts - 1)))

    # ------------------------------------------------------------------ agent I/O (no tx)
    def _talk_to_agents(self) -> _AgentAnswers:
        answers = _AgentAnswers()
        polling: dict[str, list[TaskRecord]] = defaultdict(list)
        fresh: set[str] = set()
        for task in list(self._tasks.values()):
            if task.status == T.POLLING:
                polling[task.agent].append(task)
            elif not self._agent_work_due(task, self.now):
                continue
            elif task.status == T.PENDING:
                # A task the agent accepts is polled in the same batch: compensations (and
                # every other task) are watched from the tick that starts them.
                if self._start_on_agent(task, answers):
                    polling[task.agent].append(task)
                    fresh.add(task.id)
            else:
                self._clear_on_agent(task, answers)
        for agent_name, tasks in polling.items():
            self._poll_agent(agent_name, tasks, answers, fresh)
        return answers

    def _view_is_stale(self) -> bool:
        """Did another engine move a task this one is about to start? Then reload first:
        starting a task is the one agent call that must not be made on a stale view."""
        pending = [t for t in self._tasks.values()
                   if t.status == T.PENDING and self._agent_work_due(t, self.now)]
        if not pending:
            return False
        versions = self.store.task_versions([t.id for t in pending])
        return any(versions.get(t.id) != t.version for t in pending)

    def _start_on_agent(self, task: TaskRecord, answers: _AgentAnswers) -> bool:
        agent = self.agents.get(task.agent)
        if agent is None:
            answers.rejected.append((task, str(UnknownAgent(task.agent, list(self.agents)))))
            return False
        try:
            agent.start(task.id, task.verb, task.parameters)
        except TaskRejected as err:
            answers.rejected.append((task, f"agent {task.agent!r} rejected the task: {err}"))
        except Exception as err:
            message = f"agent {task.agent!r} failed to start task {task.id}: {_describe(err)}"
            self._report.errors.append(message)
            if task.attempts + 1 < self.max_start_attempts:
                answers.start_retry.append((task, message))
            elif self._agent_knows(agent, task):
                answers.accepted.append(task)  # a start that errored went through after all
                return True
            else:
                answers.rejected.append((task, f"{message} (gave up after {task.attempts + 1})"))
        else:
            answers.accepted.append(task)
            return True
        return False

    @staticmethod
    def _agent_knows(agent: Agent, task: TaskRecord) -> bool:
        """Before giving up on a start, ask whether it happened anyway: declaring it failed
        while the copy runs would let the copy land after its compensation removed the image."""
        try:
            reply = agent.poll([task.id])
        except Exception:
            return False
        return isinstance(reply, Mapping) and isinstance(reply.get(task.id), TaskReport)

    def _poll_agent(self, name: str, tasks: list[TaskRecord], answers: _AgentAnswers,
                    fresh: set[str]) -> None:
        agent = self.agents.get(name)
        if agent is None:
            for task in tasks:
                answers.reports.append((task, TaskReport.unknown(f"no agent named {name!r}")))
            return
        try:
            reply = agent.poll([t.id for t in tasks])
        except Exception as err:
            self._report.errors.append(f"agent {name!r} failed to poll: {_describe(err)}")
            return
        if not isinstance(reply, Mapping):
            self._report.errors.append(
                f"agent {name!r} answered a poll with {type(reply).__name__}, not a mapping")
            return
        self._report.tasks_polled += len(tasks)
        for task in tasks:
            report = reply.get(task.id)
            if report is None and task.id in fresh:
                continue  # just started: the agent may not list it yet; poll it next tick
            if report is None:
                report = TaskReport.unknown(f"agent {name!r} no longer knows task {task.id}")
            elif not isinstance(report, TaskReport):
                report = TaskReport.unknown(
                    f"agent {name!r} answered garbage for task {task.id}: {report!r:.200}")
                self._report.errors.append(report.message)
            answers.reports.append((task, report))

    def _clear_on_agent(self, task: TaskRecord, answers: _AgentAnswers) -> None:
        agent = self.agents.get(task.agent)
        if agent is None:
            answers.clear_failed.append((task, f"no agent named {task.agent!r}"))
            return
        try:
            agent.clear(task.id)
        except Exception as err:
            answers.clear_failed.append(
                (task, f"agent {task.agent!r} failed to clear task {task.id}: {_describe(err)}"))
        else:
            answers.cleared.append(task)

    # ------------------------------------------------------------------ inside the tick's tx
    def _apply(self, answers: _AgentAnswers) -> None:
        for task in answers.accepted:
            task.attempts = 0
            self._fire(task, TASK_MACHINE, "accepted")
            self._report.tasks_started += 1
        for task, message in answers.rejected:
            task.message = message
            task.host_result = HostResult.FAILURE
            self._fire(task, TASK_MACHINE, "start_failed", message)
            self._task_done(task)
        for task, message in answers.start_retry:
            task.attempts += 1
            task.retry_at = self.now + self._retry_delay(task.attempts)
            task.message = message
            self._touch(task)
        for task, report in answers.reports:
            if not report.ended:
                self._report.tasks_running += 1
                if task.host_status != report.status:
                    task.host_status = report.status
                    self._touch(task)
                continue
            task.host_status = report.status
            task.host_result = report.result
            task.message = report.message or None
            self._fire(task, TASK_MACHINE, "report_end",
                       f"{report.status}/{report.result} {report.message}".strip())
            self._task_done(task)
        for task in answers.cleared:
            self._fire(task, TASK_MACHINE, "cleared")
            self._report.tasks_cleared += 1
        for task, message in answers.clear_failed:
            task.attempts += 1
            task.retry_at = self.now + self._retry_delay(task.attempts)
            task.message = message
            self._report.errors.append(message)
            self._fire(task, TASK_MACHINE, "clear_failed", message)

    def _flush(self) -> None:
        """Write what the tick changed so far, inside its transaction.

        Claims are conditional updates on the rows' persisted status, so everything the tick
        changed before a claim must be in the database first (a command executed in this very
        tick may be claimed in it, when it started no task).
        """
        changes = self._changes
        if not changes.any():
            return
        assert self._tx is not None
        self._tx.write(
            list(changes.new_commands.values()),
            [c for i, c in changes.changed_commands.items() if i not in changes.new_commands],
            list(changes.new_tasks.values()),
            [t for i, t in changes.changed_tasks.items() if i not in changes.new_tasks],
            changes.history,
        )
        self._changes = _Changes()
        self._wrote = True

    def _task_done(self, task: TaskRecord) -> None:
        if task.succeeded:
            self._report.tasks_succeeded += 1
        else:
            self._report.tasks_failed += 1
        command = self._commands.get(task.command_id)
        if command is not None:
            self._touched_groups.add(command.end_group_id)

    def _advance(self) -> None:
        """Execute due commands and end ready groups until neither has anything left this tick."""
        for command_id in sorted(self._resettle):
            record = self._commands.get(command_id)
            if record is not None and record.status == C.ROLLING_BACK:
                self._settle(record)
        self._resettle.clear()
        while True:
            due = self._due_commands()
            self._prefetch(due)
            for record in due:
                self._start_command(record)
            groups = self._ready_groups()
            if groups:
                self._end_groups(groups)
            if not due and not groups:
                return

    def _prefetch(self, records: Iterable[CommandRecord]) -> None:
        """Let the store load, in one go, the resources the hooks of these commands will read."""
        assert self._tx is not None
        refs = [ResourceRef(r.entity_type, r.entity_id) for r in records
                if r.entity_type is not None and r.entity_id is not None]
        if refs:
            self._tx.prefetch(refs)

    def _due_commands(self) -> list[CommandRecord]:
        return [c for c in self._not_started.values() if c.not_before <= self.now]

    # ------------------------------------------------------------------ commands
    def _hook(self, record: CommandRecord, phase: str) -> tuple[Command, HookContext]:
        assert self._tx is not None
        command = self.registry.get(record.type)(record)
        return command, HookContext(self, record, self._tx.images, phase)

    def _start_command(self, record: CommandRecord) -> None:
        del self._not_started[record.id]
        try:
            command, ctx = self._hook(record, "validate")
            problems = command.validate(ctx)
        except StoreError:
            raise  # the database failed: the whole tick rolls back, the command is not refused
        except UnknownCommandType as err:
            problems = [str(err)]
        except Exception as err:
            problems = [f"validate raised {_describe(err)}"]
        if problems:
            record.outcome = "refused"
            record.error = "; ".join(problems)
            self._fire(record, COMMAND_MACHINE, "refuse", record.error)
            head = self._commands.get(record.end_group_id)
            if head is not None and head is not record:
                head.work_succeeded = False
                self._touch(head)
            self._touched_groups.add(record.end_group_id)
            self._on_terminal(record)
            return
        self._fire(record, COMMAND_MACHINE, "execute")
        self._report.commands_executed += 1
        command, ctx = self._hook(record, "execute")
        try:
            command.execute(ctx)
        except StoreError:
            raise
        except Exception as err:
            record.error = f"execute raised {_describe(err)}"
            log.warning("%s %s: %s", record.type, record.id, record.error)
            self._fire(record, COMMAND_MACHINE, "fail_execution", record.error)
        else:
            self._fire(record, COMMAND_MACHINE, "executed")
        self._touched_groups.add(record.end_group_id)

    def create_child(
        self,
        parent: CommandRecord,
        type_name: str,
        parameters: Mapping[str, Any],
        entity: ResourceRef | None,
        *,
        compensation: bool = False,
        not_before: float = 0.0,
    ) -> CommandRecord:
        """A child in the parent's end group, or an opposite command heading its own group.

        Children of an opposite command are opposite work too (ROLLBACK_FLOW), so nothing an
        opposite command does is ever compensated in turn: compensation depth is one.
        """
        self.registry.check(type_name, parameters)
        command_id = self.new_id()
        rollback = compensation or parent.execution_reason == ExecutionReason.ROLLBACK_FLOW
        record = CommandRecord(
            id=command_id, root_id=parent.root_id, parent_id=parent.id,
            end_group_id=command_id if compensation else parent.end_group_id,
            type=type_name,
            execution_reason=ExecutionReason.ROLLBACK_FLOW if rollback
            else ExecutionReason.REGULAR_FLOW,
            parameters=freeze(parameters),
            entity_type=entity.type if entity else None, entity_id=entity.id if entity else None,
            not_before=not_before, created_at=self.now, updated_at=self.now,
        )
        self._index_command(record)
        self._changes.new_commands[record.id] = record
        self._history(record, "create", "", record.status,
                      f"{record.execution_reason} child of {parent.type} {parent.id}")
        return record

    def create_task(
        self,
        command: CommandRecord,
        agent: str,
        verb: str,
        parameters: Mapping[str, Any],
        entities: Iterable[ResourceRef],
    ) -> TaskRecord:
        if agent not in self.agents:
            raise UnknownAgent(agent, list(self.agents))
        task = TaskRecord(
            id=self.new_id(), command_id=command.id, root_command_id=command.root_id, agent=agent,
            verb=verb, parameters=freeze(parameters),
            entities=tuple((e.type, e.id) for e in entities),
            created_at=self.now, updated_at=self.now,
        )
        self._index_task(task)
        self._changes.new_tasks[task.id] = task
        self._history(task, "create", "", task.status, f"{verb} on {agent}")
        return task

    # ------------------------------------------------------------------ fan-in and ends
    def _ready_groups(self) -> list[str]:
        ready = []
        for head_id in sorted(self._touched_groups):
            members = self._group_members.get(head_id)
            if members and all(
                m.status in READY_TO_END_STATES or m.status == C.ENDING for m in members.values()
            ) and all(
                t.status in DONE_TASK_STATES
                for m in members for t in self._tasks_by_command.get(m, ())
            ):
                ready.append(head_id)
        self._touched_groups.clear()
        return ready

    def _end_groups(self, heads: list[str]) -> None:
        """Claim the ends of every ready group in one atomic statement, then end each group."""
        assert self._tx is not None
        self._flush()
        groups = {head_id: list(self._group_members[head_id].values()) for head_id in heads}
        self._prefetch(m for members in groups.values() for m in members)
        verdicts = {head_id: self._verdict(head_id, members) for head_id, members in groups.items()}
        to_claim = [m for members in groups.values() for m in members if m.status != C.ENDING]
        claimed = self._tx.claim_ends([m.id for m in to_claim])
        if len(claimed) != len(to_claim):
            lost = sorted({m.id for m in to_claim} - claimed)
            raise ConcurrentModification(
                f"the end of command(s) {', '.join(lost[:5])} was claimed by another engine")
        for member in to_claim:
            member.version += 1  # claim_ends bumped the row's version in the store
            member.end_attempts += 1
            self._fire(member, COMMAND_MACHINE, "claim_end")
        for head_id, members in groups.items():
            self._end_group(head_id, members, verdicts[head_id])

    def _verdict(self, head_id: str, members: list[CommandRecord]) -> bool:
        """Did all the group's work succeed? Read before the claim moves members to `ending`."""
        head = self._commands.get(head_id)
        if head is not None and head.work_succeeded is not None:
            # False: a member was refused. True/False on an `ending` head: decided before a crash.
            return head.work_succeeded
        return all(m.status != C.EXECUTION_FAILED for m in members) and all(
            t.succeeded for m in members for t in self._tasks_by_command.get(m.id, ()))

    def _end_group(self, head_id: str, members: list[CommandRecord], succeeded: bool) -> None:
        """Run every member's end along the group's single verdict, children first."""
        for member in members:
            member.work_succeeded = succeeded
            for task in self._tasks_by_command.get(member.id, ()):
                if task.status in DONE_TASK_STATES:
                    # Clears get their own budget: a task that needed start retries must not
                    # arrive with its clear attempts already spent.
                    task.attempts, task.retry_at = 0, 0.0
                    self._fire(task, TASK_MACHINE, "claim_end")
        ordered = _children_first(head_id, members)
        for member in ordered:
            self._fire(member, COMMAND_MACHINE, "end",
                       "work succeeded" if succeeded else "work failed")
            self._report.commands_ended += 1
            if member.execution_reason == ExecutionReason.ROLLBACK_FLOW:
                self._report.compensations_ended += 1
            if member.status == C.ENDED_SUCCESS:
                member.outcome = "succeeded"
                command, ctx = self._hook(member, "end_successfully")
                try:
                    command.end_successfully(ctx)
                except StoreError:
                    raise
                except Exception as err:
                    member.error = f"end_successfully raised {_describe(err)}"
                    log.error("%s %s: %s", member.type, member.id, member.error)
        for member in ordered:
            if member.status == C.ROLLING_BACK:
                self._settle(member)

    def _settle(self, record: CommandRecord) -> None:
        """Move a rolling-back command on, once none of its children is still running.

        Called when its end takes the failure path and again each time a child (typically
        its opposite command) ends: end_with_failure runs again and the guards decide whether
        anything is left to revert. This re-entry is the loop the guards must stop. A hook
        that raises, or names an opposite command that cannot be built, gives up on this one
        command (rollback_failed, visible) and never stalls the engine.
        """
        if self._children.get(record.id):
            return  # a child (typically the opposite command) is still running
        command, ctx = self._hook(record, "end_with_failure")
        try:
            command.end_with_failure(ctx)
            if record.execution_reason == ExecutionReason.ROLLBACK_FLOW:
                return self._finish_opposite(record)
            if record.outcome is None:
                record.outcome = "failed"
            resource = command.reverted_resource()
            if resource is None:
                return self._rolled_back(record, "nothing to revert")
            self._revert(record, command, ctx, resource)
        except StoreError:
            raise
        except Exception as err:
            self._give_up(record, f"rolling back {record.type} failed: {_describe(err)}")
        return None

    def _revert(self, record: CommandRecord, command: Command, ctx: HookContext,
                resource: ResourceRef) -> None:
        """Apply both loop guards, then start the opposite command if there is work left."""
        assert self._tx is not None
        exists = command.resource_exists(ctx, resource)
        revert = self._tx.get_revert(resource, record.id)
        decision = decide(self.policy, exists, revert)
        if decision == Decision.NOTHING_TO_REVERT:
            if revert.state == RevertState.REVERTED:
                record.outcome = "rolled_back"
            reason = "no longer in the inventory" if not exists else f"already {revert.state}"
            return self._rolled_back(record, f"{resource} {reason}")
        if decision == Decision.GIVE_UP:
            self._put_revert(replace(revert, state=RevertState.REVERT_FAILED))
            return self._give_up(
                record, f"{resource} could not be reverted after {revert.attempts} attempt(s)"
                + (f": {revert.last_error}" if revert.last_error else ""))
        in_flight = self._reverting.get(resource)
        if in_flight:
            # Settled again when that opposite command ends (`_on_terminal`): by then the
            # guards will most likely find nothing left to revert.
            self._awaiting_revert[resource].add(record.id)
            return None
        opposite = command.revert(ctx)
        if opposite is None:
            return self._rolled_back(record, f"{resource} is reverted natively by the agent")
        attempt = revert.attempts + 1
        child = self.create_child(
            record, opposite.type_name, opposite.parameters, resource, compensation=True,
            not_before=self.now + self.policy.delay_before(attempt))
        self._put_revert(replace(revert, state=RevertState.REVERTING, attempts=attempt))
        self._report.compensations_started += 1
        self._history(record, "compensate", record.status, record.status,
                      f"{opposite.type_name} {child.id} for {resource}, attempt {attempt}")
        return None

    def _finish_opposite(self, record: CommandRecord) -> None:
        """An opposite command's own outcome: the resource is reverted, or still to retry."""
        assert self._tx is not None
        if record.outcome == CHILD_REVERT_FAILED:
            return self._give_up(record, "a child of this opposite command gave up")
        resource = (ResourceRef(record.entity_type, record.entity_id)
                    if record.entity_type and record.entity_id else None)
        if record.work_succeeded:
            record.outcome = "reverted"
            if resource is not None and record.parent_id is not None:
                revert = self._tx.get_revert(resource, record.parent_id)
                self._put_revert(replace(revert, state=RevertState.REVERTED, last_error=None))
        else:
            record.outcome = "revert_failed"
            messages = [t.message for t in self._tasks_by_command.get(record.id, ()) if t.message]
            if resource is not None and record.parent_id is not None:
                revert = self._tx.get_revert(resource, record.parent_id)
                self._put_revert(replace(revert, last_error="; ".join(messages)
                                         or record.error or "compensation failed"))
        return self._rolled_back(record, record.outcome)

    def _put_revert(self, revert: ResourceRevert) -> None:
        assert self._tx is not None
        self._tx.put_revert(revert)

    def _rolled_back(self, record: CommandRecord, detail: str) -> None:
        if record.outcome == CHILD_REVERT_FAILED:
            return self._give_up(record, "a child could not be rolled back (see its error); "
                                 "its resource is marked revert_failed")
        self._fire(record, COMMAND_MACHINE, "rolled_back", detail)
        self._on_terminal(record)
        return None

    def _give_up(self, record: CommandRecord, message: str) -> None:
        record.error = message
        record.outcome = "revert_failed"
        log.error("%s %s: %s", record.type, record.id, message)
        self._fire(record, COMMAND_MACHINE, "give_up", message)
        parent = self._commands.get(record.parent_id) if record.parent_id else None
        if parent is not None and parent.status == C.ROLLING_BACK:
            # The parent's own rollback may succeed, but the tree's did not: it must say so.
            parent.outcome = CHILD_REVERT_FAILED
            self._touch(parent)
        self._on_terminal(record)

    def _on_terminal(self, record: CommandRecord) -> None:
        """Reach back into the parent: a rolling-back parent re-evaluates what is left; so
        does every command that was waiting for this opposite command's resource."""
        parent = self._commands.get(record.parent_id) if record.parent_id else None
        if parent is not None and parent.status == C.ROLLING_BACK:
            self._settle(parent)
        opposite = _opposite_resource(record)
        if opposite is None or self._reverting.get(opposite):
            return  # the resource still has an opposite command in flight (a retry)
        for waiter_id in sorted(self._awaiting_revert.pop(opposite, ())):
            waiter = self._commands.get(waiter_id)
            if waiter is not None and waiter.status == C.ROLLING_BACK:
                self._settle(waiter)

    # ------------------------------------------------------------------ bookkeeping
    def _fire(self, record: CommandRecord | TaskRecord, machine: SharedMachine, trigger: str,
              detail: str | None = None) -> None:
        source = machine.fire(record, trigger)
        self._history(record, trigger, source, record.status, detail)
        self._touch(record)
        if isinstance(record, CommandRecord) and COMMAND_MACHINE.is_terminal(record.status):
            self._detach(record)

    def _touch(self, record: CommandRecord | TaskRecord) -> None:
        record.updated_at = self.now
        if isinstance(record, CommandRecord):
            self._changes.changed_commands[record.id] = record
        else:
            self._changes.changed_tasks[record.id] = record

    def _history(self, record: CommandRecord | TaskRecord, trigger: str, source: str, dest: str,
                 detail: str | None) -> None:
        if isinstance(record, CommandRecord):
            kind, root = "command", record.root_id
        else:
            kind, root = "task", record.root_command_id
        self._changes.history.append(
            HistoryEntry(kind, record.id, root, trigger, source, dest, self.now, detail))

    def _forget_finished(self) -> None:
        """Drop what is over from memory so a long-running engine does not grow with history."""
        for task_id in [i for i, t in self._tasks.items() if t.status == T.CLEARED]:
            task = self._tasks.pop(task_id)
            siblings = self._tasks_by_command.get(task.command_id)
            if siblings is not None:
                siblings.remove(task)
                if not siblings:
                    del self._tasks_by_command[task.command_id]
        finished = [i for i, c in self._commands.items() if COMMAND_MACHINE.is_terminal(c.status)]
        for command_id in finished:
            del self._commands[command_id]


def _opposite_resource(record: CommandRecord) -> ResourceRef | None:
    """The resource an opposite command (the head of its own ROLLBACK_FLOW group) undoes."""
    if (record.execution_reason != ExecutionReason.ROLLBACK_FLOW
            or record.end_group_id != record.id or record.parent_id is None
            or record.entity_type is None or record.entity_id is None):
        return None
    return ResourceRef(record.entity_type, record.entity_id)


def _children_first(head_id: str, members: Sequence[CommandRecord]) -> list[CommandRecord]:
    """Post-order over the group, so a parent's end sees its children already ended."""
    by_parent: dict[str | None, list[CommandRecord]] = defaultdict(list)
    ids = {m.id for m in members}
    for member in members:
        by_parent[member.parent_id if member.parent_id in ids else None].append(member)
    ordered: list[CommandRecord] = []

    def visit(record: CommandRecord) -> None:
        for child in by_parent.get(record.id, ()):
            visit(child)
        ordered.append(record)

    for top in by_parent[None]:
        visit(top)
    return ordered


def _describe(err: BaseException) -> str:
    text = str(err)
    return f"{type(err).__name__}: {text}" if text else type(err).__name__

