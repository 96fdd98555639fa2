"""The engine's implementation of CommandContext for one hook call on one command."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .inventory import ImageInventory
from .records import CommandRecord, TaskRecord
from .revert_state import ResourceRef

if TYPE_CHECKING:
    from .engine import Engine


class HookContext:
    def __init__(self, engine: Engine, record: CommandRecord, images: ImageInventory) -> None:
        self._engine = engine
        self._record = record
        self._images = images

    @property
    def now(self) -> float:
        return self._engine.now

    @property
    def images(self) -> ImageInventory:
        return self._images

    @property
    def work_succeeded(self) -> bool:
        return self._record.work_succeeded is True

    def add_child(
        self,
        type_name: str,
        parameters: Mapping[str, Any],
        entity: ResourceRef | None = None,
    ) -> CommandRecord:
        return self._engine.create_child(self._record, type_name, parameters, entity)

    def start_task(
        self,
        agent: str,
        verb: str,
        parameters: Mapping[str, Any],
        entities: Iterable[ResourceRef] = (),
    ) -> TaskRecord:
        return self._engine.create_task(self._record, agent, verb, parameters, entities)
