"""The engine's implementation of CommandContext for one hook call on one command."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from .command import Command
from .command_machine import HookPhase
from .errors import HookMisuse, LimitExceeded
from .ledger import Ledger
from .records import CommandRecord, TaskRecord
from .revert_state import ResourceRef
from .spawning import create_child, create_task
from .tick_state import TickState, copy_record

L = TypeVar("L", bound=Ledger)


def hook(state: TickState, record: CommandRecord, phase: HookPhase) -> tuple[Command, HookContext]:
    """The command a hook runs on holds a copy of its record: a hook that writes to it
    (its status, its execution reason) changes nothing the engine relies on."""
    command = state.config.registry.get(record.type)(copy_record(record))
    return command, HookContext(state, record, phase)


class HookContext:
    """Children and tasks may be created only while executing: a task started by an end hook
    would belong to a command whose end already ran, and nothing would ever end it."""

    def __init__(self, state: TickState, record: CommandRecord, phase: HookPhase) -> None:
        self._state = state
        self._record = record
        self._phase = phase
        self._spawned = 0

    def _may_spawn(self, what: str) -> None:
        if self._phase != HookPhase.EXECUTE:
            raise HookMisuse(f"{self._record.type} {self._record.id}: {what} is only allowed in "
                             f"execute, not in {self._phase}")
        limit = self._state.config.limits.max_spawn_per_execute
        self._spawned += 1
        if self._spawned > limit:
            raise LimitExceeded(
                f"{self._record.type} {self._record.id} created more than "
                f"Limits.max_spawn_per_execute ({limit}) children and tasks in one execute",
                "max_spawn_per_execute")

    @property
    def now(self) -> float:
        return self._state.now

    def ledger(self, kind: type[L]) -> L:
        return self._state.tx.ledger(kind)

    def resource_exists(self, resource: ResourceRef) -> bool:
        answer = self._state.tx.resource_exists(resource)
        return True if answer is None else answer

    @property
    def work_succeeded(self) -> bool:
        return self._record.work_succeeded is True

    def add_child(
        self,
        type_name: str,
        parameters: Mapping[str, Any],
        entity: ResourceRef | None = None,
    ) -> CommandRecord:
        self._may_spawn("add_child")
        return create_child(self._state, self._record, type_name, parameters, entity)

    def start_task(
        self,
        agent: str,
        verb: str,
        parameters: Mapping[str, Any],
        entities: Iterable[ResourceRef] = (),
        timeout: float | None = None,
    ) -> TaskRecord:
        self._may_spawn("start_task")
        return create_task(self._state, self._record, agent, verb, parameters, entities,
                           timeout)
