"""The engine's in-memory view of unfinished work, indexed the ways a tick asks about it.

The view holds only commands and tasks that are not over, indexed the ways a tick asks about
them (children of a command, members of an end group, tasks of a command, opposite commands in
flight per resource), so a tick costs the same on a database with a million ended commands as
on an empty one. It is rebuilt from the store after a crash or a rolled-back tick and never
runs ahead of the database.
"""

from __future__ import annotations

from collections import defaultdict

from ..machines.command_machine import COMMAND_MACHINE, CommandStatus
from ..machines.reasons import ExecutionReason
from ..machines.task_machine import TaskStatus
from ..records.limits import Limits
from ..records.records import CommandRecord, TaskRecord
from ..records.revert_state import ResourceRef
from .due_work import DueWork


class EngineView(DueWork):
    """Unfinished commands and tasks, indexed; what is due is asked of `DueWork`."""

    def __init__(self) -> None:
        self.commands: dict[str, CommandRecord] = {}
        self.not_started: dict[str, CommandRecord] = {}
        # Only unfinished commands, keyed by id: a parent with 10,000 children must be able to
        # drop one in O(1) and to ask "any child still running?" without a scan.
        self.children: dict[str, dict[str, CommandRecord]] = defaultdict(dict)
        self.group_members: dict[str, dict[str, CommandRecord]] = defaultdict(dict)
        self.tasks: dict[str, TaskRecord] = {}
        self.tasks_by_command: dict[str, list[TaskRecord]] = defaultdict(list)
        # End groups whose fan-in may have completed: checked by the next tick.
        self.touched_groups: set[str] = set()
        # One opposite command per resource at a time: siblings that name the same resource
        # (a parent and its children often do) wait for the one in flight, then re-check the
        # guards, instead of both deleting it.
        # Tuples: there is one opposite command in flight per resource but for a moment, and
        # a tuple of one is a quarter of a set's memory (10,000 of them in a 10,000-disk
        # rollback).
        self.reverting: dict[ResourceRef, tuple[str, ...]] = {}
        self.awaiting_revert: dict[ResourceRef, set[str]] = defaultdict(set)
        # Rolling-back commands to settle again in the next tick: after a restart, the ones
        # that were waiting for another command's opposite command.
        self.resettle: set[str] = set()
        # Depth below the nearest ancestor still in memory (its root, for regular work).
        self.depths: dict[str, int] = {}
        # Commands waiting in `stepping` for their step's work, by end group: checked when
        # something in their group happens (ids of commands that moved on are dropped there).
        self.stepping: dict[str, set[str]] = defaultdict(set)

    def index_command(self, record: CommandRecord) -> None:
        """Take a loaded or new command into every index a tick asks about it through.

        An unfinished opposite command is counted in flight for its resource, so that no
        second one is started for it meanwhile.
        """
        self.commands[record.id] = record
        if record.status == CommandStatus.NOT_STARTED:
            self.not_started[record.id] = record
        if record.parent_id is not None:
            self.children[record.parent_id][record.id] = record
        self.group_members[record.end_group_id][record.id] = record
        opposite = opposite_resource(record)
        if opposite is not None and not COMMAND_MACHINE.is_terminal(record.status):
            in_flight = self.reverting.get(opposite, ())
            if record.id not in in_flight:
                self.reverting[opposite] = (*in_flight, record.id)
        if record.status == CommandStatus.STEPPING:
            self.stepping[record.end_group_id].add(record.id)

    def mark_stepping(self, record: CommandRecord) -> None:
        """It entered `stepping`: its group's events check whether its step's work ended."""
        self.stepping[record.end_group_id].add(record.id)

    def stepping_members(self, head_id: str) -> list[CommandRecord]:
        """The group's commands in `stepping`, in id order; forgets those that moved on."""
        ids = self.stepping.get(head_id)
        if not ids:
            return []
        found = []
        for command_id in sorted(ids):
            record = self.commands.get(command_id)
            if record is None or record.status != CommandStatus.STEPPING:
                ids.discard(command_id)
            else:
                found.append(record)
        if not ids:
            del self.stepping[head_id]
        return found

    def detach(self, record: CommandRecord) -> None:
        """A command just became terminal: it no longer holds up its parent or its group."""
        if record.parent_id is not None:
            _discard(self.children, record.parent_id, record.id)
        _discard(self.group_members, record.end_group_id, record.id)
        self.not_started.pop(record.id, None)
        opposite = opposite_resource(record)
        if opposite is not None:
            in_flight = self.reverting.get(opposite)
            if in_flight is not None:
                left = tuple(i for i in in_flight if i != record.id)
                if left:
                    self.reverting[opposite] = left
                else:
                    del self.reverting[opposite]

    def depth_of(self, record: CommandRecord) -> int:
        """How far below its root a command is (or below its nearest ancestor in memory).

        It walks up without recursion: trees may be deeper than Python's recursion limit, and
        each depth is computed once.
        """
        chain: list[CommandRecord] = []
        current = record
        while current.id not in self.depths:
            parent = self.commands.get(current.parent_id) if current.parent_id else None
            if parent is None:
                self.depths[current.id] = 0
                break
            chain.append(current)
            current = parent
        depth = self.depths[current.id]
        for link in reversed(chain):
            depth += 1
            self.depths[link.id] = depth
        return self.depths[record.id]

    def index_task(self, task: TaskRecord) -> None:
        """Take a loaded or new task into the view, by id and under its command."""
        self.tasks[task.id] = task
        self.tasks_by_command[task.command_id].append(task)

    def forget_finished(self) -> list[CommandRecord]:
        """Drop what is over from memory, and return the roots among it.

        A long-running engine then does not grow with history. Only unfinished commands are
        loaded, and what finished is dropped after every committed tick, so these are the
        roots that ended in that tick.
        """
        self._forget_tasks([i for i, t in self.tasks.items() if t.status == TaskStatus.CLEARED])
        finished = [i for i, c in self.commands.items() if COMMAND_MACHINE.is_terminal(c.status)]
        roots = []
        for command_id in finished:
            command = self.commands.pop(command_id)
            self.depths.pop(command_id, None)
            if command.parent_id is None:
                roots.append(command)
        return roots

    def _forget_tasks(self, task_ids: list[str]) -> None:
        """Drop tasks, rebuilding each command's list once (a command may have thousands)."""
        gone: dict[str, set[str]] = defaultdict(set)
        for task_id in task_ids:
            gone[self.tasks.pop(task_id).command_id].add(task_id)
        for command_id, ids in gone.items():
            left = [t for t in self.tasks_by_command.get(command_id, ()) if t.id not in ids]
            if left:
                self.tasks_by_command[command_id] = left
            else:
                self.tasks_by_command.pop(command_id, None)

    def live_roots(self) -> set[str]:
        """Roots with work left in this view: a command not ended or a task not cleared."""
        roots = {c.root_id for c in self.commands.values()
                 if not COMMAND_MACHINE.is_terminal(c.status)}
        roots.update(t.root_command_id for t in self.tasks.values()
                     if t.status != TaskStatus.CLEARED)
        return roots

    def stuck_roots(self, live: set[str], limits: Limits) -> set[str]:
        """Live roots whose only work left is clears the agent refused `max_clear_attempts` times.

        Nothing this engine does will move them until a new round of clears.
        """
        busy = {c.root_id for c in self.commands.values()
                if not COMMAND_MACHINE.is_terminal(c.status)}
        busy.update(t.root_command_id for t in self.tasks.values()
                    if t.status != TaskStatus.CLEARED and not (
                        t.status == TaskStatus.CLEAR_FAILED
                        and t.attempts >= limits.max_clear_attempts))
        return live - busy

    def drop_roots(self, roots: set[str]) -> None:
        """Forget the tasks of roots handed back (their commands have all ended)."""
        self._forget_tasks([i for i, t in self.tasks.items() if t.root_command_id in roots])


def opposite_resource(record: CommandRecord) -> ResourceRef | None:
    """The resource an opposite command (the head of its own ROLLBACK_FLOW group) reverts."""
    if (record.execution_reason != ExecutionReason.ROLLBACK_FLOW
            or record.end_group_id != record.id or record.parent_id is None
            or record.entity_type is None or record.entity_id is None):
        return None
    return ResourceRef(record.entity_type, record.entity_id)


def _discard(index: dict[str, dict[str, CommandRecord]], key: str, member: str) -> None:
    members = index.get(key)
    if members is not None:
        members.pop(member, None)
        if not members:
            del index[key]
