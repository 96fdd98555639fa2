"""What a hook's context may reach of its tick: a narrow interface, not the whole tick.

`HookContext` (hook_context.py) is what users' hooks call. It reads the tick's records and
makes children, tasks and resources, and nothing else: it cannot settle a rollback, claim
an end, write the report or flush the transaction. `HookAccess` names exactly what it may
ask; `TickAccess` (tick_access.py) answers it from one tick's state, so a change to the
tick's other parts cannot leak into hooks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol, TypeVar

from ..ports.ledger import Ledger
from ..records.limits import Limits
from ..records.records import CommandRecord, TaskRecord
from ..records.retry_policy import RetryPolicy
from ..records.revert_state import ResourceRef

L = TypeVar("L", bound=Ledger)


class HookAccess(Protocol):
    """What `HookContext` may ask of the tick it runs in; `TickAccess` is the engine's."""

    @property
    def now(self) -> float:
        """The tick's moment."""

    @property
    def limits(self) -> Limits:
        """The engine's limits."""

    def ledger(self, kind: type[L]) -> L:
        """The ledger of `kind`, inside the tick's transaction."""

    def resource_exists(self, resource: ResourceRef) -> bool | None:
        """What the resource's ledger says, or None without one."""

    def tasks_in_view(self, command_id: str) -> Iterable[TaskRecord]:
        """The command's tasks held in memory."""

    def children_in_view(self, command_id: str) -> Mapping[str, CommandRecord]:
        """The command's children held in memory."""

    def stored_tasks(self, command_id: str) -> dict[str, TaskRecord]:
        """The command's task rows, with this tick's changes over them."""

    def stored_children(self, command_id: str) -> dict[str, CommandRecord]:
        """The command's child rows, with this tick's changes over them."""

    def retry_of(self, command_type: str) -> RetryPolicy:
        """The retry policy of a command type's tasks."""

    def touch(self, record: CommandRecord) -> None:
        """Mark a command changed."""

    def add_child(self, parent: CommandRecord, type_name: str, parameters: Mapping[str, Any],
                  entity: ResourceRef | None) -> CommandRecord:
        """A new child of `parent`."""

    def start_task(self, command: CommandRecord, agent: str, verb: str,
                   parameters: Mapping[str, Any], entities: Iterable[ResourceRef],
                   timeout: float | None, retry: RetryPolicy | None) -> TaskRecord:
        """A new task of `command`."""
