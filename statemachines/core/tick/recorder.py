"""Moving records along their machines and remembering what to write: history and changed rows.

Every transition the engine takes goes through `Recorder.fire`, so every one of them lands in
the history with its time and detail, and every record it moved is written by the tick's
flush. Nothing else changes a record's status.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from ..machines.command_machine import COMMAND_MACHINE
from ..machines.reasons import ExecutionReason
from ..machines.shared_machine import SharedMachine
from ..records.records import CommandRecord, HistoryPath, ObjectKind, TaskRecord
from .engine_view import EngineView


@dataclass
class Changes:
    """Rows a tick created or changed, and its history, waiting to be flushed."""

    new_commands: dict[str, CommandRecord] = field(default_factory=dict)
    changed_commands: dict[str, CommandRecord] = field(default_factory=dict)
    new_tasks: dict[str, TaskRecord] = field(default_factory=dict)
    changed_tasks: dict[str, TaskRecord] = field(default_factory=dict)
    history: list[HistoryPath] = field(default_factory=list)

    def any(self) -> bool:
        """Whether there is anything to flush at all: rows, or history alone."""
        return self.any_records() or bool(self.history)

    def any_records(self) -> bool:
        """Whether there are rows to write, beyond history.

        Rows are what makes a tick worth a transaction of its own (a `recover` row alone is
        bookkeeping; it goes with the next tick that moves).
        """
        return bool(self.new_commands or self.changed_commands or self.new_tasks
                    or self.changed_tasks)


#: History steps a tick holds before it writes them (inside its transaction): a tick's
#: memory must not grow with the size of a tree beyond its records. About 0.7 MB of paths
#: and 0.8 MB of their JSON text; a write costs one row per root, so the 23 writes of a
#: 10,000-disk rollback cost no more than its 5 at 50,000 steps did, and its peak memory
#: is 6 MB lower.
HISTORY_CHUNK = 10_000


class Recorder:
    """Fires transitions on records of one view at one moment, collecting the changes.

    `spill` takes the history collected so far once it reaches HISTORY_CHUNK steps (the
    tick writes it; an object whose steps straddle a spill has a path in each segment).
    `counts` (the tick report's `transitions`) counts every transition fired.
    """

    def __init__(self, view: EngineView, changes: Changes, now: float,
                 spill: Callable[[list[HistoryPath]], None] | None = None,
                 counts: Counter[tuple[str, str, str, str]] | None = None) -> None:
        self.view = view
        self.changes = changes
        self.now = now
        self.spill = spill
        self.counts = counts
        # Each object's path in `changes.history`, while steps can still be added to it.
        self._open: dict[str, HistoryPath] = {}
        self._steps = 0

    def fire(self, record: CommandRecord | TaskRecord, machine: SharedMachine, trigger: str,
             detail: str | None = None) -> None:
        """Take `trigger` on `record`'s machine, the one way a record's status changes.

        The transition lands in the history with `detail`, the record is marked to be
        written, and a command that became terminal leaves the view's indexes at once. A
        trigger the machine does not allow from the record's status raises
        `IllegalTransition`.
        """
        source = machine.fire(record, trigger)
        self.history(record, trigger, source, record.status, detail)
        self.touch(record)
        if self.counts is not None:
            self.counts[_counted_as(record)] += 1
        if isinstance(record, CommandRecord) and COMMAND_MACHINE.is_terminal(record.status):
            self.view.detach(record)

    def touch(self, record: CommandRecord | TaskRecord) -> None:
        """Mark a record changed, to be written by the tick's flush; its status stays as it is."""
        record.updated_at = self.now
        if isinstance(record, CommandRecord):
            self.changes.changed_commands[record.id] = record
        else:
            self.changes.changed_tasks[record.id] = record

    def history(self, record: CommandRecord | TaskRecord, trigger: str, source: str, dest: str,
                detail: str | None) -> None:
        """Add one history step for `record`, from `source` to `dest`, at this moment.

        Steps that follow on from the record's last one extend its path; the history is
        handed to `spill` once HISTORY_CHUNK steps are collected.
        """
        path = self._open.get(record.id)
        if path is None or path.steps[-1][1] != source:
            if isinstance(record, CommandRecord):
                kind, root = ObjectKind.COMMAND, record.root_id
            else:
                kind, root = ObjectKind.TASK, record.root_command_id
            path = HistoryPath(kind, record.id, root, source, self.now, [])
            self._open[record.id] = path
            self.changes.history.append(path)
        path.steps.append((trigger, dest, detail))
        self._steps += 1
        if self._steps >= HISTORY_CHUNK and self.spill is not None:
            history = self.changes.history
            self.changes.history, self._open, self._steps = [], {}, 0
            self.spill(history)

    def forget_paths(self) -> None:
        """The collected history was written: later steps start new paths."""
        self._open, self._steps = {}, 0


def _counted_as(record: CommandRecord | TaskRecord) -> tuple[str, str, str, str]:
    """A transition's key in `TickReport.transitions`."""
    if isinstance(record, CommandRecord):
        kind = ("compensation" if record.execution_reason == ExecutionReason.ROLLBACK_FLOW
                else "command")
        return kind, record.type, record.status, record.outcome or ""
    return "task", record.verb, record.status, record.host_result or ""
