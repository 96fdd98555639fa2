"""Writing a new root: what `Engine.submit` does, and what a client that runs nothing does.

A client (`endaction submit`, a web front end) needs no agents and no engine: it checks the
parameters against the registry, writes the root with its history row and a free lease row in
one transaction, and returns the id; whichever engine or worker claims the root runs it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from .command import CommandRegistry, reference_problems
from .errors import InvalidParameters
from .ids import new_id
from .reasons import ExecutionReason
from .records import CommandRecord, HistoryEntry, HistoryEvent, ObjectKind, freeze
from .revert_state import ResourceRef
from .store_protocol import Store


def submit_root(
    store: Store,
    registry: CommandRegistry,
    type_name: str,
    parameters: Mapping[str, Any],
    *,
    entity: ResourceRef | None = None,
    execution_reason: ExecutionReason = ExecutionReason.REGULAR_FLOW,
    ids: Callable[[], str] = new_id,
    clock: Callable[[], float] = time.time,
    owner: str | None = None,
) -> CommandRecord:
    """Persist a new root command (not_started) and return it; nothing runs it here.

    Malformed parameters and unknown types are refused (`InvalidParameters`,
    `UnknownCommandType`) before anything is written. `owner` leases the new root to that
    worker at once (an engine submitting for itself); None leaves it free for any worker."""
    registry.check(type_name, parameters)
    if entity is not None and (problems := reference_problems("entity", entity)):
        raise InvalidParameters(type_name, problems)
    now = clock()
    command_id = ids()
    record = CommandRecord(
        id=command_id, root_id=command_id, parent_id=None, end_group_id=command_id,
        type=type_name, execution_reason=ExecutionReason(execution_reason),
        parameters=freeze(parameters), entity_type=entity.type if entity else None,
        entity_id=entity.id if entity else None, created_at=now, updated_at=now,
    )
    created = HistoryEntry(ObjectKind.COMMAND, command_id, command_id, HistoryEvent.CREATE,
                           "", record.status, now)
    with store.transaction() as tx:
        tx.write([record], [], [], [], [created])
        tx.open_roots([command_id], owner, now)
    return record
