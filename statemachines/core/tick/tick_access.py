"""The engine's `HookAccess`: what one tick lets its hooks reach, and the hook factory.

Every hook call gets a `HookContext` over a `TickAccess` of its tick: the context sees the
tick through this one adapter, never the tick's state itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from ..commands.command import Command
from ..machines.command_machine import HookPhase
from ..ports.ledger import Ledger
from ..records.limits import Limits
from ..records.records import CommandRecord, TaskRecord
from ..records.retry_policy import RetryPolicy
from ..records.revert_state import ResourceRef
from .hook_context import HookContext
from .record_copies import copy_record
from .spawning import create_child, create_task
from .tick_state import TickState

L = TypeVar("L", bound=Ledger)


class TickAccess:
    """`HookAccess` over one tick's state, for as long as its transaction is open."""

    __slots__ = ("_state",)

    def __init__(self, state: TickState) -> None:
        self._state = state

    @property
    def now(self) -> float:
        """The tick's moment, the same for every hook of the tick."""
        return self._state.now

    @property
    def limits(self) -> Limits:
        """The engine's limits, which bound what one step may make."""
        return self._state.config.limits

    def ledger(self, kind: type[L]) -> L:
        """The ledger of `kind`, inside the tick's transaction."""
        return self._state.tx.ledger(kind)

    def resource_exists(self, resource: ResourceRef) -> bool | None:
        """What the resource's ledger says, or None where no ledger keeps its type."""
        return self._state.tx.resource_exists(resource)

    def tasks_in_view(self, command_id: str) -> Iterable[TaskRecord]:
        """The command's tasks the engine still holds in memory, as they are now."""
        return self._state.view.tasks_by_command.get(command_id, ())

    def children_in_view(self, command_id: str) -> Mapping[str, CommandRecord]:
        """The command's children the engine still holds in memory, as they are now."""
        return self._state.view.children.get(command_id, {})

    def stored_tasks(self, command_id: str) -> dict[str, TaskRecord]:
        """The command's task rows, with this tick's changes over them, by id."""
        state = self._state
        return _over(state.tx.tasks_of(command_id), state.recorder.changes.changed_tasks)

    def stored_children(self, command_id: str) -> dict[str, CommandRecord]:
        """The command's child rows, with this tick's changes over them, by id."""
        state = self._state
        return _over(state.tx.children_of(command_id), state.recorder.changes.changed_commands)

    def retry_of(self, command_type: str) -> RetryPolicy:
        """The retry policy of a command type's tasks: its own, else the engine's."""
        config = self._state.config
        return config.registry.get(command_type).retry or config.retry

    def touch(self, record: CommandRecord) -> None:
        """Mark a command changed, to be written with the tick."""
        self._state.recorder.touch(record)

    def add_child(self, parent: CommandRecord, type_name: str, parameters: Mapping[str, Any],
                  entity: ResourceRef | None) -> CommandRecord:
        """A new child of `parent`, in its end group."""
        return create_child(self._state, parent, type_name, parameters, entity)

    def start_task(self, command: CommandRecord, agent: str, verb: str,
                   parameters: Mapping[str, Any], entities: Iterable[ResourceRef],
                   timeout: float | None, retry: RetryPolicy | None) -> TaskRecord:
        """A new task of `command`, to be started on its agent by the tick."""
        return create_task(self._state, command, agent, verb, parameters, entities, timeout,
                           retry=retry)


R = TypeVar("R", CommandRecord, TaskRecord)


def _over(rows: Iterable[R], changed: Mapping[str, R]) -> dict[str, R]:
    """Stored rows by id, each replaced by this tick's version of it where the tick changed it."""
    found = {row.id: row for row in rows}
    found.update((i, changed[i]) for i in found.keys() & changed.keys())
    return found


def hook(state: TickState, record: CommandRecord, phase: HookPhase) -> tuple[Command, HookContext]:
    """The command a hook runs on, and its context over this tick.

    The command holds a copy of its record: a hook that writes to it (its status, its
    execution reason) changes nothing the engine relies on.
    """
    command = state.config.registry.get(record.type)(copy_record(record))
    return command, HookContext(TickAccess(state), record, phase)
