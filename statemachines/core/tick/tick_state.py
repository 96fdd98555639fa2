"""What one tick's parts share, in one `TickState`.

They share the engine's configuration, the transaction, the moment, the view, the recorder, and
the queue of rolling-back commands to settle.

A tick is split by what it does (`task_answers`, `execution`, `group_end`, `rollback`,
`operator_work`); each part is a set of functions over one `TickState`, which lives exactly
as long as the tick's transaction, so nothing of one tick can leak into the next.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType

from ..commands.command import CommandRegistry
from ..commands.compensation_policy import RevertPolicy
from ..errors import ConcurrentModification, RootFault, StoreError
from ..machines.command_machine import CommandStatus
from ..ports.store_protocol import StoreTransaction
from ..records.limits import Limits
from ..records.records import CommandRecord, HistoryEvent, HistoryPath
from ..records.retry_policy import RetryPolicy
from ..records.revert_state import ResourceRef
from ..records.tick_report import TickReport
from .containment import USER_FAULTS
from .engine_view import EngineView, opposite_resource
from .recorder import Changes, Recorder


@dataclass(frozen=True)
class EngineConfig:
    """What a tick needs to know about the engine that runs it; fixed for the engine's life."""

    registry: CommandRegistry
    policy: RevertPolicy
    limits: Limits
    agent_names: frozenset[str]
    new_id: Callable[[], str]
    retry: RetryPolicy


class TickState:
    """The transactional phase of one engine tick; `tx` is open for as long as it lives."""

    def __init__(self, config: EngineConfig, view: EngineView, tx: StoreTransaction,
                 changes: Changes, now: float, report: TickReport) -> None:
        self.config = config
        self.view = view
        self.tx = tx
        self.now = now
        self.report = report
        self.recorder = Recorder(view, changes, now, spill=self._write_history,
                                 counts=report.transitions)
        self.wrote = False
        # Rolling-back commands to settle, drained in order: settling one may make its parent
        # (or a command waiting for its resource) ready to settle, and a queue instead of a
        # call keeps that walk flat however deep the tree is.
        self.to_settle: deque[CommandRecord] = deque()

    def flush(self) -> None:
        """Write what the tick changed so far, inside its transaction."""
        changes = self.recorder.changes
        if not changes.any():
            return
        # A tick that wrote only `recover` rows moved nothing: it is no committed tick (the
        # termination measure, the worker's counts), though the rows are written with it.
        moved = changes.any_records() or any(
            trigger != HistoryEvent.RECOVER for path in changes.history
            for trigger, _, _ in path.steps)
        self.tx.write(
            list(changes.new_commands.values()),
            [c for i, c in changes.changed_commands.items() if i not in changes.new_commands],
            list(changes.new_tasks.values()),
            [t for i, t in changes.changed_tasks.items() if i not in changes.new_tasks],
            changes.history,
        )
        self.recorder.changes = Changes()
        self.recorder.forget_paths()
        self.wrote = self.wrote or moved

    def _write_history(self, history: list[HistoryPath]) -> None:
        """Write the history chunks the recorder hands over, as they come.

        History rows reference nothing and nothing reads them back inside the tick, so they can
        be written at any moment of it.
        """
        self.tx.append_history(history)
        self.wrote = True

    def flush_commands(self) -> None:
        """Write the command rows before a claim.

        Claims are conditional updates on the commands' persisted status, so every command the
        tick changed before a claim must be in the database first (a command executed in this
        very tick may be claimed in it, when it started no task). Task rows and the history
        wait for the tick's end: a task reported ended and then claimed in one tick is one
        update, and an object's steps in one tick are one history row.
        """
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

    def prefetch(self, records: Iterable[CommandRecord]) -> None:
        """Let the store load, in one go, the resources the hooks of these commands will read."""
        refs = [ResourceRef(r.entity_type, r.entity_id) for r in records
                if r.entity_type is not None and r.entity_id is not None]
        if refs:
            self.tx.prefetch(refs)

    def on_terminal(self, record: CommandRecord) -> None:
        """Reach back into the parent: a rolling-back parent re-evaluates what is left.

        So does every command that was waiting for this opposite command's resource, once no
        other opposite command for it is in flight (a retry). Each is queued to settle.
        """
        view = self.view
        parent = view.commands.get(record.parent_id) if record.parent_id else None
        if parent is not None and parent.status == CommandStatus.ROLLING_BACK:
            self.to_settle.append(parent)
        opposite = opposite_resource(record)
        if opposite is None or view.reverting.get(opposite):
            return  # the resource still has an opposite command in flight (a retry)
        for waiter_id in sorted(view.awaiting_revert.pop(opposite, ())):
            waiter = view.commands.get(waiter_id)
            if waiter is not None:
                self.to_settle.append(waiter)


def for_root(root_id: str) -> ForRoot:
    """Work on one root's records, where an error the engine raises is that root's fault.

    Such an error (an exception or a cancellation, never KeyboardInterrupt or SystemExit)
    holds that root only, as a `RootFault`. The store's errors and lost races pass
    unchanged: they fail every root alike, and the tick is retried.
    """
    return ForRoot(root_id)


class ForRoot:
    """`for_root`: a class, not a generator, as it wraps every command started."""

    __slots__ = ("root_id",)

    def __init__(self, root_id: str) -> None:
        self.root_id = root_id

    def __enter__(self) -> None:
        """Nothing to set up: the root is named only if something raises."""
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        """Raise a user fault again as this root's `RootFault`; store errors and signals pass."""
        if error is None or isinstance(error, StoreError | ConcurrentModification | RootFault):
            return
        if isinstance(error, USER_FAULTS):
            raise RootFault(self.root_id, error) from error
