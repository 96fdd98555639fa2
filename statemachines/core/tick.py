"""One tick's transactional work: apply the agents' answers, execute, fan in, end, settle.

A `Tick` lives for one transaction and holds everything that lives that long (the transaction,
the moment, the report, the rows to write), so none of it can leak into the next tick or be
missing in this one. It moves records only through its `Recorder`, calls user code only
through `contain`, and writes through the store transaction it was given; if anything escapes,
the engine rolls the transaction back and rebuilds its view from the store.
"""

from __future__ import annotations

import logging
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from operator import attrgetter
from types import TracebackType
from typing import Any

from .agent_calls import AgentAnswers
from .command import Command, CommandRegistry, reference_problems
from .command_machine import (
    COMMAND_MACHINE,
    READY_TO_END_STATES,
    CommandStatus,
    CommandTrigger,
    HookPhase,
    Outcome,
)
from .compensation_policy import Decision, RevertPolicy, decide
from .containment import USER_FAULTS, contain
from .engine_view import EngineView, opposite_resource
from .errors import (
    ConcurrentModification,
    InvalidParameters,
    LimitExceeded,
    RootFault,
    StoreError,
    UnknownAgent,
    UnknownCommandType,
)
from .hook_context import HookContext
from .host_status import HostResult, HostStatus, TaskReport, host_progress
from .limits import Limits
from .reasons import ExecutionReason
from .recorder import Changes, Recorder
from .records import (
    MAX_NAME_LENGTH,
    CommandRecord,
    HistoryEvent,
    HistoryPath,
    TaskRecord,
    name_problems,
)
from .revert_state import ResourceRef, ResourceRevert, RevertState
from .store_protocol import StoreTransaction
from .task_machine import DONE_TASK_STATES, TASK_MACHINE, TaskStatus, TaskTrigger
from .tick_report import TickReport

log = logging.getLogger("endaction.engine")



@dataclass(frozen=True)
class EngineConfig:
    """What a tick needs to know about the engine that runs it; fixed for the engine's life."""

    registry: CommandRegistry
    policy: RevertPolicy
    limits: Limits
    agent_names: frozenset[str]
    new_id: Callable[[], str]


class Tick:
    """The transactional phase of one engine tick; `tx` is open for as long as it lives."""

    def __init__(self, config: EngineConfig, view: EngineView, tx: StoreTransaction,
                 changes: Changes, now: float, report: TickReport) -> None:
        self.config = config
        self.view = view
        self.tx = tx
        self.now = now
        self.report = report
        self.recorder = Recorder(view, changes, now, spill=self._write_history)
        self.wrote = False
        # Rolling-back commands to settle, drained in order: settling one may make its parent
        # (or a command waiting for its resource) ready to settle, and a queue instead of a
        # call keeps that walk flat however deep the tree is.
        self._to_settle: deque[CommandRecord] = deque()

    # ------------------------------------------------------------------ the phases
    def run(self, answers: AgentAnswers) -> None:
        """Everything a tick does inside its transaction, in order."""
        self._apply(answers)
        self._enforce_deadlines()
        self._act_on_cancels()
        self._advance()

    # ------------------------------------------------------------------ deadlines, cancels
    def _enforce_deadlines(self) -> None:
        """Abort what is past its deadline; end what an agent did not confirm aborting."""
        now = self.now
        for task in [t for t in self.view.tasks.values() if t.deadline and t.deadline <= now]:
            with self._for_root(task.root_command_id):
                if task.status in (TaskStatus.PENDING, TaskStatus.POLLING):
                    self._abort_task(task, f"deadline passed {now - task.created_at:.0f} s "
                                           "after the task was created")
                elif task.status == TaskStatus.ABORTING:
                    self._report_end(task, TaskReport.unknown(
                        f"agent {task.agent!r} did not confirm the abort within "
                        f"{self.config.limits.abort_grace:g} s ({task.message})"))

    def _abort_task(self, task: TaskRecord, why: str) -> None:
        """From the next agent phase on, the agent is asked to abort it at every poll."""
        task.message = why
        task.deadline = self.now + self.config.limits.abort_grace
        task.retry_at = 0.0
        self.recorder.fire(task, TASK_MACHINE, TaskTrigger.ABORT, why)

    def _act_on_cancels(self) -> None:
        for root_id, reason, status in self.tx.pending_cancels():
            if COMMAND_MACHINE.is_terminal(status):
                self.tx.drop_cancel(root_id)
                continue
            root = self.view.commands.get(root_id)
            if root is None:
                continue  # held, or run by another engine: it acts on the request
            with self._for_root(root_id):
                self._cancel(root, reason)
            self.tx.drop_cancel(root_id)

    def _cancel(self, root: CommandRecord, reason: str) -> None:
        """Fail the root's own work: refuse what has not started, abort what runs. What
        already succeeded is then compensated like after any other failure."""
        view = self.view
        self.recorder.history(root, HistoryEvent.CANCEL, root.status, root.status, reason)
        if root.status not in (CommandStatus.NOT_STARTED, CommandStatus.WAITING,
                               CommandStatus.EXECUTION_FAILED):
            return  # already ending or rolling back: nothing left to stop
        message = f"cancelled: {reason}"
        for member in list(view.group_members.get(root.end_group_id, {}).values()):
            if member.status == CommandStatus.NOT_STARTED:
                self._refuse(member, [message])
            for task in view.tasks_by_command.get(member.id, ()):
                if task.status in (TaskStatus.PENDING, TaskStatus.POLLING):
                    self._abort_task(task, message)
        root.work_succeeded = False
        root.outcome = Outcome.CANCELLED
        root.error = message
        self.recorder.touch(root)
        view.touched_groups.add(root.end_group_id)

    # ------------------------------------------------------------------ cleanup
    def start_cleanup(self) -> list[ResourceRevert]:
        """One more opposite command for every resource given up on (revert_failed) whose
        owner has ended; the resource reads reverted once one succeeds. Returns the resources
        retried (or found gone)."""
        retried = []
        for revert, owner in self.tx.failed_reverts():
            if self.view.reverting.get(revert.resource):
                continue  # an opposite command for it is in flight already
            if not COMMAND_MACHINE.is_terminal(owner.status):
                continue  # its own rollback still decides
            with contain() as hook:
                command, ctx = self._hook(owner, HookPhase.CLEANUP)
                exists = command.resource_exists(ctx, revert.resource)
                opposite = command.revert(ctx) if exists else None
                if not exists:
                    self.tx.put_revert(replace(revert, state=RevertState.REVERTED))
                    self.recorder.history(owner, HistoryEvent.CLEANUP, owner.status, owner.status,
                                          f"{revert.resource} is gone already")
                elif opposite is not None:
                    child = self.create_child(owner, opposite.type_name, opposite.parameters,
                                              revert.resource, compensation=True)
                    self.tx.put_revert(replace(revert, attempts=revert.attempts + 1))
                    self.report.compensations_started += 1
                    self.recorder.history(owner, HistoryEvent.CLEANUP, owner.status, owner.status,
                                          f"{opposite.type_name} {child.id} for "
                                          f"{revert.resource}")
            if hook.failed:
                self.report.errors.append(
                    f"cleanup of {revert.resource} ({owner.type} {owner.id}) failed: "
                    f"{hook.describe()}")
            elif exists and opposite is None:
                self.report.errors.append(
                    f"{owner.type} {owner.id} names no opposite command for {revert.resource}")
            else:
                retried.append(revert)
        return retried

    def _for_root(self, root_id: str) -> _ForRoot:
        """Work on one root's records: whatever the engine raises here (not the store, which
        fails every root alike) is that root's fault, and holds that root only."""
        return _ForRoot(root_id)

    def _apply(self, answers: AgentAnswers) -> None:
        fire, touch = self.recorder.fire, self.recorder.touch
        for task in answers.accepted:
            task.attempts = 0
            fire(task, TASK_MACHINE, TaskTrigger.ACCEPTED)
            self.report.tasks_started += 1
        for task, message in answers.rejected:
            task.message = message
            task.host_result = HostResult.FAILURE
            fire(task, TASK_MACHINE, TaskTrigger.START_FAILED, message)
            self._task_done(task)
        for task, message in answers.start_retry:
            task.attempts += 1
            task.retry_at = self.now + self.config.limits.retry_delay(task.attempts)
            task.message = message
            touch(task)
        for task, report in answers.reports:
            if not report.ended:
                self.report.tasks_running += 1
                if host_progress(report.status) < host_progress(task.host_status):
                    # Only forward (init, running, aborting) is written: a host that says
                    # "running" after "aborting" tells nothing new worth a write.
                    task.host_status = report.status
                    touch(task)
                continue
            self._report_end(task, report)
        for task, message in answers.poll_failed:
            self._poll_failed(task, message)
        for task in answers.cleared:
            fire(task, TASK_MACHINE, TaskTrigger.CLEARED)
            self.report.tasks_cleared += 1
        for task, message in answers.clear_failed:
            task.attempts += 1
            task.retry_at = self.now + self.config.limits.retry_delay(task.attempts)
            task.message = message
            self.report.errors.append(message)
            fire(task, TASK_MACHINE, TaskTrigger.CLEAR_FAILED, message)

    def _poll_failed(self, task: TaskRecord, message: str) -> None:
        """Count a failed poll against the task's bound; past it, the task ends `unknown`."""
        limits = self.config.limits
        task.attempts += 1
        if task.attempts < limits.max_poll_failures:
            task.message = message
            task.retry_at = self.now + limits.retry_delay(task.attempts)
            self.recorder.touch(task)
            return
        self._report_end(task, TaskReport.unknown(
            f"agent {task.agent!r} failed {task.attempts} polls of this task (last: {message})"))

    def _report_end(self, task: TaskRecord, report: TaskReport) -> None:
        task.host_status = report.status
        task.host_result = report.result
        task.message = report.message or None
        task.retry_at = 0.0
        self.recorder.fire(task, TASK_MACHINE, TaskTrigger.REPORT_END,
                           f"{report.status}/{report.result} {report.message}".strip())
        self._task_done(task)

    def _task_done(self, task: TaskRecord) -> None:
        if task.succeeded:
            self.report.tasks_succeeded += 1
        else:
            self.report.tasks_failed += 1
        command = self.view.commands.get(task.command_id)
        if command is not None:
            self.view.touched_groups.add(command.end_group_id)

    def _advance(self) -> None:
        """Execute due commands and end ready groups, round after round, until neither has
        anything left or the tick has done `max_rounds_per_tick` rounds (the rest is due at
        once, in the next tick)."""
        view = self.view
        for command_id in sorted(view.resettle):
            record = view.commands.get(command_id)
            if record is not None:
                self._to_settle.append(record)
        view.resettle.clear()
        self._drain_settles()
        for _ in range(self.config.limits.max_rounds_per_tick):
            due = view.due_commands(self.now)
            self._prefetch(due)
            for record in due:
                self._start_command(record)
            self._drain_settles()
            groups = self._ready_groups()
            if groups:
                self._end_groups(groups)
                self._drain_settles()
            if not due and not groups:
                return

    def _drain_settles(self) -> None:
        while self._to_settle:
            record = self._to_settle.popleft()
            if record.status == CommandStatus.ROLLING_BACK:
                with self._for_root(record.root_id):
                    self._settle(record)

    def flush(self) -> None:
        """Write what the tick changed so far, inside its transaction."""
        changes = self.recorder.changes
        if not changes.any():
            return
        self.tx.write(
            list(changes.new_commands.values()),
            [c for i, c in changes.changed_commands.items() if i not in changes.new_commands],
            list(changes.new_tasks.values()),
            [t for i, t in changes.changed_tasks.items() if i not in changes.new_tasks],
            changes.history,
        )
        self.recorder.changes = Changes()
        self.recorder.forget_paths()
        self.wrote = True

    def _write_history(self, history: list[HistoryPath]) -> None:
        """History rows reference nothing and nothing reads them back inside the tick, so
        they can be written at any moment of it: the recorder hands them over in chunks."""
        self.tx.append_history(history)
        self.wrote = True

    def _flush_commands(self) -> None:
        """Write the command rows before a claim.

        Claims are conditional updates on the commands' persisted status, so every command the
        tick changed before a claim must be in the database first (a command executed in this
        very tick may be claimed in it, when it started no task). Task rows and the history
        wait for the tick's end: a task reported ended and then claimed in one tick is one
        update, and an object's steps in one tick are one history row."""
        changes = self.recorder.changes
        if not (changes.new_commands or changes.changed_commands):
            return
        self.tx.write(
            list(changes.new_commands.values()),
            [c for i, c in changes.changed_commands.items() if i not in changes.new_commands],
            [], [], [],
        )
        changes.new_commands, changes.changed_commands = {}, {}
        self.wrote = True

    def _prefetch(self, records: Iterable[CommandRecord]) -> None:
        """Let the store load, in one go, the resources the hooks of these commands will read."""
        refs = [ResourceRef(r.entity_type, r.entity_id) for r in records
                if r.entity_type is not None and r.entity_id is not None]
        if refs:
            self.tx.prefetch(refs)

    # ------------------------------------------------------------------ commands
    def _hook(self, record: CommandRecord, phase: HookPhase) -> tuple[Command, HookContext]:
        """The command a hook runs on holds a copy of its record: a hook that writes to it
        (its status, its execution reason) changes nothing the engine relies on."""
        command = self.config.registry.get(record.type)(_copy(record))
        return command, HookContext(self, record, phase)

    def _start_command(self, record: CommandRecord) -> None:
        with self._for_root(record.root_id):
            self._validate_and_execute(record)

    def _validate_and_execute(self, record: CommandRecord) -> None:
        view, fire = self.view, self.recorder.fire
        del view.not_started[record.id]
        problems: list[str] = []
        with contain() as hook:
            command, ctx = self._hook(record, HookPhase.VALIDATE)
            problems = command.validate(ctx)
        if isinstance(hook.error, UnknownCommandType):
            problems = [str(hook.error)]
        elif hook.failed:
            problems = [f"validate raised {hook.describe()}"]
        if problems:
            self._refuse(record, problems)
            return
        fire(record, COMMAND_MACHINE, CommandTrigger.EXECUTE)
        self.report.commands_executed += 1
        with contain() as hook:
            command, ctx = self._hook(record, HookPhase.EXECUTE)
            command.execute(ctx)
        if hook.failed:
            record.error = f"execute raised {hook.describe()}"
            log.warning("%s %s: %s", record.type, record.id, record.error)
            fire(record, COMMAND_MACHINE, CommandTrigger.FAIL_EXECUTION, record.error)
        else:
            fire(record, COMMAND_MACHINE, CommandTrigger.EXECUTED)
        view.touched_groups.add(record.end_group_id)

    def _refuse(self, record: CommandRecord, problems: list[str]) -> None:
        """A command that will not run: it ends at once, and its whole end group fails."""
        view = self.view
        record.outcome = Outcome.REFUSED
        record.error = "; ".join(problems)
        view.not_started.pop(record.id, None)
        self.recorder.fire(record, COMMAND_MACHINE, CommandTrigger.REFUSE, record.error)
        head = view.commands.get(record.end_group_id)
        if head is not None and head is not record:
            head.work_succeeded = False
            self.recorder.touch(head)
        view.touched_groups.add(record.end_group_id)
        self._on_terminal(record)

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
        frozen = self.config.registry.check(type_name, parameters)
        if entity is not None and (problems := reference_problems("entity", entity)):
            raise InvalidParameters(type_name, problems)
        limits = self.config.limits
        # An opposite command is exempt: it is one level below what it undoes, never more
        # (compensation depth is one), and refusing it would leave that resource for good.
        if not compensation and self.view.depth_of(parent) + 1 > limits.max_tree_depth:
            raise LimitExceeded(
                f"{type_name} would be {self.view.depth_of(parent) + 1} levels below its root, "
                f"deeper than Limits.max_tree_depth ({limits.max_tree_depth})", "max_tree_depth")
        command_id = self.config.new_id()
        rollback = compensation or parent.execution_reason == ExecutionReason.ROLLBACK_FLOW
        record = CommandRecord(
            id=command_id, root_id=parent.root_id, parent_id=parent.id,
            end_group_id=command_id if compensation else parent.end_group_id,
            type=type_name,
            execution_reason=ExecutionReason.ROLLBACK_FLOW if rollback
            else ExecutionReason.REGULAR_FLOW,
            parameters=frozen,
            entity_type=entity.type if entity else None, entity_id=entity.id if entity else None,
            not_before=not_before, created_at=self.now, updated_at=self.now,
        )
        self.view.index_command(record)
        self.view.depths[record.id] = self.view.depth_of(parent) + 1
        self.recorder.changes.new_commands[record.id] = record
        self.recorder.history(record, HistoryEvent.CREATE, "", record.status,
                              f"{record.execution_reason} child of {parent.type} {parent.id}")
        return record

    def create_task(
        self,
        command: CommandRecord,
        agent: str,
        verb: str,
        parameters: Mapping[str, Any],
        entities: Iterable[ResourceRef],
        timeout: float | None = None,
    ) -> TaskRecord:
        if agent not in self.config.agent_names:
            raise UnknownAgent(agent, list(self.config.agent_names))
        entities = tuple(entities)
        problems = name_problems("verb", verb, MAX_NAME_LENGTH)
        for entity in entities:
            problems += reference_problems("entity", entity)
        if timeout is not None and not timeout > 0:
            problems.append(f"timeout must be positive seconds (got {timeout!r})")
        if problems:
            raise InvalidParameters(f"task {verb!r:.40} of {command.type}", problems)
        frozen = self.config.registry.check_json(f"task {verb} of {command.type}", parameters)
        task = TaskRecord(
            id=self.config.new_id(), command_id=command.id, root_command_id=command.root_id,
            agent=agent, verb=verb, parameters=frozen,
            entities=tuple((e.type, e.id) for e in entities),
            deadline=self.now + (timeout or self.config.limits.task_timeout),
            created_at=self.now, updated_at=self.now,
        )
        self.view.index_task(task)
        self.recorder.changes.new_tasks[task.id] = task
        self.recorder.history(task, HistoryEvent.CREATE, "", task.status, f"{verb} on {agent}")
        return task

    # ------------------------------------------------------------------ fan-in and ends
    def _ready_groups(self) -> list[str]:
        view = self.view
        ready = []
        for head_id in sorted(view.touched_groups):
            members = view.group_members.get(head_id)
            if members and all(
                m.status in READY_TO_END_STATES or m.status == CommandStatus.ENDING
                for m in members.values()
            ) and all(
                t.status in DONE_TASK_STATES
                for m in members for t in view.tasks_by_command.get(m, ())
            ):
                ready.append(head_id)
        view.touched_groups.clear()
        return ready

    def _end_groups(self, heads: list[str]) -> None:
        """Claim the ends of every ready group in one atomic statement, then end each group."""
        self._flush_commands()
        groups = {head_id: list(self.view.group_members[head_id].values()) for head_id in heads}
        self._prefetch(m for members in groups.values() for m in members)
        verdicts = {head_id: self._verdict(head_id, members) for head_id, members in groups.items()}
        to_claim = [m for members in groups.values() for m in members
                    if m.status != CommandStatus.ENDING]
        claimed = self.tx.claim_ends([m.id for m in to_claim])
        if len(claimed) != len(to_claim):
            lost = sorted({m.id for m in to_claim} - claimed)
            raise ConcurrentModification(
                f"the end of command(s) {', '.join(lost[:5])} was claimed by another engine")
        for member in to_claim:
            member.version += 1  # claim_ends bumped the row's version in the store
            member.end_attempts += 1
            self.recorder.fire(member, COMMAND_MACHINE, CommandTrigger.CLAIM_END)
        for head_id, members in groups.items():
            with self._for_root(members[0].root_id):
                self._end_group(head_id, members, verdicts[head_id])

    def _verdict(self, head_id: str, members: list[CommandRecord]) -> bool:
        """Did all the group's work succeed? Read before the claim moves members to `ending`."""
        head = self.view.commands.get(head_id)
        if head is not None and head.work_succeeded is not None:
            # False: a member was refused. True/False on an `ending` head: decided before a crash.
            return head.work_succeeded
        return all(m.status != CommandStatus.EXECUTION_FAILED for m in members) and all(
            t.succeeded for m in members for t in self.view.tasks_by_command.get(m.id, ()))

    def _end_group(self, head_id: str, members: list[CommandRecord], succeeded: bool) -> None:
        """Run every member's end along the group's single verdict, children first.

        The success hooks run before the verdict is written: one that raises turns the whole
        group to the failure path, so a command whose success bookkeeping failed never
        reads `ended_success`, and what its group made is compensated."""
        fire = self.recorder.fire
        ordered = _children_first(head_id, members)
        if succeeded:
            succeeded = self._end_successfully(ordered)
        for member in members:
            member.work_succeeded = succeeded
            for task in self.view.tasks_by_command.get(member.id, ()):
                if task.status in DONE_TASK_STATES:
                    # Clears get their own budget: a task that needed start retries must not
                    # arrive with its clear attempts already spent.
                    task.attempts, task.retry_at = 0, 0.0
                    fire(task, TASK_MACHINE, TaskTrigger.CLAIM_END)
        for member in ordered:
            fire(member, COMMAND_MACHINE, CommandTrigger.END,
                 "work succeeded" if succeeded else "work failed")
            self.report.commands_ended += 1
            if member.execution_reason == ExecutionReason.ROLLBACK_FLOW:
                self.report.compensations_ended += 1
            if member.status == CommandStatus.ENDED_SUCCESS:
                member.outcome = Outcome.SUCCEEDED
        self._to_settle.extend(m for m in ordered if m.status == CommandStatus.ROLLING_BACK)

    def _end_successfully(self, ordered: list[CommandRecord]) -> bool:
        """Run the success hooks, children first; False as soon as one raises."""
        for member in ordered:
            if member.execution_reason != ExecutionReason.REGULAR_FLOW:
                continue  # an opposite command never ends successfully
            with contain() as hook:
                command, ctx = self._hook(member, HookPhase.END_SUCCESSFULLY)
                command.end_successfully(ctx)
            if hook.failed:
                member.error = (f"end_successfully raised {hook.describe()}; the group took "
                                "the failure path")
                log.error("%s %s: %s", member.type, member.id, member.error)
                self.recorder.touch(member)
                return False
        return True

    def _settle(self, record: CommandRecord) -> None:
        """Move a rolling-back command on, once none of its children is still running.

        Called when its end takes the failure path and again each time a child (typically
        its opposite command) ends: end_with_failure runs again and the guards decide whether
        anything is left to revert. This re-entry is the loop the guards must stop. A hook
        that raises, or names an opposite command that cannot be built, gives up on this one
        command (rollback_failed, visible) and never stalls the engine.
        """
        if self.view.children.get(record.id):
            return  # a child (typically the opposite command) is still running
        with contain() as hook:
            command, ctx = self._hook(record, HookPhase.END_WITH_FAILURE)
            command.end_with_failure(ctx)
            if record.execution_reason == ExecutionReason.ROLLBACK_FLOW:
                self._finish_opposite(record)
            else:
                if record.outcome is None:
                    record.outcome = Outcome.FAILED
                resource = command.reverted_resource()
                if resource is None:
                    self._rolled_back(record, "nothing to revert")
                else:
                    self._revert(record, command, ctx, resource)
        if hook.failed:
            message = f"rolling back {record.type} failed: {hook.describe()}"
            # A hook that raises is a bug, not a transient failure: running the opposite
            # command again would repeat work that may well have succeeded already. The
            # resource is left revert_failed, under its owner, for a cleanup once it is fixed.
            if record.execution_reason == ExecutionReason.ROLLBACK_FLOW:
                self._mark_revert_failed(record, message)
            else:
                self._mark_own_revert_failed(record, message)
            self._give_up(record, message)

    def _mark_own_revert_failed(self, record: CommandRecord, message: str) -> None:
        """A regular command could not finish its rollback: its own resource (if it has one
        and it is not reverted already) is left for cleanup, under its own name."""
        resource: ResourceRef | None = None
        with contain() as hook:
            resource = self.config.registry.get(record.type)(_copy(record)).reverted_resource()
        if hook.failed or not isinstance(resource, ResourceRef):
            resource = (ResourceRef(record.entity_type, record.entity_id)
                        if record.entity_type and record.entity_id else None)
        if resource is None:
            return
        revert = self.tx.get_revert(resource, record.id)
        if revert.state != RevertState.REVERTED:
            self.tx.put_revert(replace(revert, state=RevertState.REVERT_FAILED,
                                       last_error=message))

    def _mark_revert_failed(self, record: CommandRecord, message: str) -> None:
        """An opposite command gave up: its resource is not compensated again (but cleaned up)."""
        undone = _undone_by(record)
        if undone is not None:
            revert = self.tx.get_revert(*undone)
            if revert.state != RevertState.REVERTED:
                self.tx.put_revert(replace(revert, state=RevertState.REVERT_FAILED,
                                           last_error=message))

    def _revert(self, record: CommandRecord, command: Command, ctx: HookContext,
                resource: ResourceRef) -> None:
        """Apply both loop guards, then start the opposite command if there is work left."""
        exists = command.resource_exists(ctx, resource)
        revert = self.tx.get_revert(resource, record.id)
        decision = decide(self.config.policy, exists, revert)
        if decision == Decision.NOTHING_TO_REVERT:
            if not exists and revert.state == RevertState.REVERTING:
                # An earlier attempt (failed or lost) or someone else removed it after all.
                revert = replace(revert, state=RevertState.REVERTED)
                self.tx.put_revert(revert)
            if revert.state == RevertState.REVERTED and record.outcome in (None, Outcome.FAILED):
                # Never over a child's give-up or a cancellation: those must stay readable.
                record.outcome = Outcome.ROLLED_BACK
            reason = "no longer in the inventory" if not exists else f"already {revert.state}"
            return self._rolled_back(record, f"{resource} {reason}")
        if decision == Decision.GIVE_UP:
            self.tx.put_revert(replace(revert, state=RevertState.REVERT_FAILED))
            return self._give_up(record, _gave_up_on(resource, revert))
        if self.view.reverting.get(resource):
            # Settled again when that opposite command ends (`_on_terminal`): by then the
            # guards will most likely find nothing left to revert.
            self.view.awaiting_revert[resource].add(record.id)
            return None
        opposite = command.revert(ctx)
        if opposite is None:
            return self._rolled_back(record, f"{resource} is reverted natively by the agent")
        attempt = revert.attempts + 1
        child = self.create_child(
            record, opposite.type_name, opposite.parameters, resource, compensation=True,
            not_before=self.now + self.config.policy.delay_before(attempt))
        self.tx.put_revert(replace(revert, state=RevertState.REVERTING, attempts=attempt))
        self.report.compensations_started += 1
        self.recorder.history(record, HistoryEvent.COMPENSATE, record.status, record.status,
                              f"{opposite.type_name} {child.id} for {resource}, attempt {attempt}")
        return None

    def _finish_opposite(self, record: CommandRecord) -> None:
        """An opposite command's own outcome: the resource is reverted, or the attempt failed,
        or its outcome was lost (redone without spending the failure budget)."""
        if record.outcome == Outcome.CHILD_REVERT_FAILED:
            message = "a child of this opposite command gave up (see its error)"
            self._mark_revert_failed(record, message)
            return self._give_up(record, message)
        tasks = self.view.tasks_by_command.get(record.id, ())
        if record.work_succeeded:
            record.outcome = Outcome.REVERTED
        elif tasks and all(t.succeeded or t.host_status == HostStatus.UNKNOWN for t in tasks):
            record.outcome = Outcome.LOST
        else:
            record.outcome = Outcome.ATTEMPT_FAILED
        undone = _undone_by(record)
        if undone is not None:
            revert = self.tx.get_revert(*undone)
            if record.outcome == Outcome.REVERTED:
                revert = replace(revert, state=RevertState.REVERTED, last_error=None)
            else:
                messages = "; ".join(t.message for t in tasks if t.message)
                revert = replace(revert, last_error=messages or record.error
                                 or f"{record.type} {record.id} failed",
                                 lost=revert.lost + (record.outcome == Outcome.LOST))
            self.tx.put_revert(revert)
        return self._rolled_back(record, record.outcome)

    def _rolled_back(self, record: CommandRecord, detail: str) -> None:
        if record.outcome == Outcome.CHILD_REVERT_FAILED:
            return self._give_up(record, "a child could not be rolled back (see its error); "
                                 "its resource is marked revert_failed")
        self.recorder.fire(record, COMMAND_MACHINE, CommandTrigger.ROLLED_BACK, detail)
        self._on_terminal(record)
        return None

    def _give_up(self, record: CommandRecord, message: str) -> None:
        record.error = message
        record.outcome = Outcome.REVERT_FAILED
        log.error("%s %s: %s", record.type, record.id, message)
        self.recorder.fire(record, COMMAND_MACHINE, CommandTrigger.GIVE_UP, message)
        parent = self.view.commands.get(record.parent_id) if record.parent_id else None
        if parent is not None and parent.status == CommandStatus.ROLLING_BACK:
            # The parent's own rollback may succeed, but the tree's did not: it must say so.
            parent.outcome = Outcome.CHILD_REVERT_FAILED
            self.recorder.touch(parent)
        self._on_terminal(record)

    def _on_terminal(self, record: CommandRecord) -> None:
        """Reach back into the parent: a rolling-back parent re-evaluates what is left; so
        does every command that was waiting for this opposite command's resource."""
        view = self.view
        parent = view.commands.get(record.parent_id) if record.parent_id else None
        if parent is not None and parent.status == CommandStatus.ROLLING_BACK:
            self._to_settle.append(parent)
        opposite = opposite_resource(record)
        if opposite is None or view.reverting.get(opposite):
            return  # the resource still has an opposite command in flight (a retry)
        for waiter_id in sorted(view.awaiting_revert.pop(opposite, ())):
            waiter = view.commands.get(waiter_id)
            if waiter is not None:
                self._to_settle.append(waiter)


_COMMAND_FIELDS = attrgetter(*(f.name for f in fields(CommandRecord)))


def _copy(record: CommandRecord) -> CommandRecord:
    """Every hook gets one (70,000 for a 10,000-disk rollback): positional construction is
    several times cheaper than `dataclasses.replace`, which goes through keyword arguments."""
    return CommandRecord(*_COMMAND_FIELDS(record))


class _ForRoot:
    """`Tick._for_root`: a class, not a generator, as it wraps every command started."""

    __slots__ = ("root_id",)

    def __init__(self, root_id: str) -> None:
        self.root_id = root_id

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if error is None or isinstance(error, StoreError | ConcurrentModification | RootFault):
            return
        if isinstance(error, USER_FAULTS):
            raise RootFault(self.root_id, error) from error


def _undone_by(record: CommandRecord) -> tuple[ResourceRef, str] | None:
    """The resource an opposite command (the head of its own ROLLBACK_FLOW group, not one of
    its children) undoes, and the command whose revert row it is."""
    resource = opposite_resource(record)
    if resource is None or record.parent_id is None:
        return None
    return resource, record.parent_id


def _gave_up_on(resource: ResourceRef, revert: ResourceRevert) -> str:
    if revert.state == RevertState.REVERT_FAILED:
        why = "it was given up on"
    elif revert.failures and revert.lost:
        why = (f"{revert.failures} attempt(s) failed and the outcome of {revert.lost} was "
               "lost")
    elif revert.lost:
        why = f"its outcome was lost {revert.lost} time(s)"
    else:
        why = f"{revert.failures} attempt(s) failed"
    return (f"{resource} could not be reverted: {why}"
            + (f" (last: {revert.last_error})" if revert.last_error else ""))


def _children_first(head_id: str, members: Sequence[CommandRecord]) -> list[CommandRecord]:
    """Post-order over the group, so a parent's end sees its children already ended."""
    by_parent: dict[str | None, list[CommandRecord]] = defaultdict(list)
    ids = {m.id for m in members}
    for member in members:
        by_parent[member.parent_id if member.parent_id in ids else None].append(member)
    ordered: list[CommandRecord] = []
    # Without recursion: a group may be deeper than Python's recursion limit.
    stack: list[tuple[CommandRecord, bool]] = [(top, False) for top in reversed(by_parent[None])]
    while stack:
        record, children_done = stack.pop()
        if children_done:
            ordered.append(record)
            continue
        stack.append((record, True))
        stack.extend((child, False) for child in reversed(by_parent.get(record.id, ())))
    return ordered

