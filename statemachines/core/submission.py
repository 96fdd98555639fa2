"""Writing a new root: what `Engine.submit` does, and what a client that runs nothing does.

A client (`endaction submit`, a web front end) needs no agents and no engine: it checks the
parameters against the registry, writes the root with its history row and a free lease row in
one transaction, and returns the id; whichever engine or worker claims the root runs it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .command import CommandRegistry, reference_problems
from .errors import InvalidParameters
from .ids import new_id
from .reasons import ExecutionReason
from .records import CommandRecord, HistoryEvent, HistoryPath, ObjectKind, freeze
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
    lease_until: float = 0.0,
) -> CommandRecord:
    """Persist a new root command (not_started) and return it; nothing runs it here.

    Malformed parameters and unknown types are refused (`InvalidParameters`,
    `UnknownCommandType`) before anything is written. `owner` leases the new root to that
    engine until `lease_until` (an engine submitting for itself); None leaves it free for any
    worker."""
    return submit_roots(store, registry, [(type_name, parameters)], entity=entity,
                        execution_reason=execution_reason, ids=ids, clock=clock,
                        owner=owner, lease_until=lease_until)[0]


def submit_roots(
    store: Store,
    registry: CommandRegistry,
    requests: Sequence[tuple[str, Mapping[str, Any]]],
    *,
    entity: ResourceRef | None = None,
    execution_reason: ExecutionReason = ExecutionReason.REGULAR_FLOW,
    ids: Callable[[], str] = new_id,
    clock: Callable[[], float] = time.time,
    owner: str | None = None,
    lease_until: float = 0.0,
) -> list[CommandRecord]:
    """Persist several roots (type name, parameters) in one transaction: all or none. Every
    request is checked before anything is written, so one bad request refuses the batch."""
    for type_name, parameters in requests:
        registry.check(type_name, parameters)
        if entity is not None and (problems := reference_problems("entity", entity)):
            raise InvalidParameters(type_name, problems)
    now = clock()
    records: list[CommandRecord] = []
    history: list[HistoryPath] = []
    for type_name, parameters in requests:
        command_id = ids()
        records.append(CommandRecord(
            id=command_id, root_id=command_id, parent_id=None, end_group_id=command_id,
            type=type_name, execution_reason=ExecutionReason(execution_reason),
            parameters=freeze(parameters), entity_type=entity.type if entity else None,
            entity_id=entity.id if entity else None, created_at=now, updated_at=now,
        ))
        history.append(HistoryPath(ObjectKind.COMMAND, command_id, command_id, "", now,
                                   [(HistoryEvent.CREATE, records[-1].status, None)]))
    with store.transaction() as tx:
        tx.write(records, [], [], [], history)
        tx.open_roots([r.id for r in records], owner, lease_until if owner else now)
    return records
