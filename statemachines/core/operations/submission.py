"""Writing a new root: what `Engine.submit` does, and what a client that runs nothing does.

A client (`endaction submit`, a web front end) needs no agents and no engine: it checks the
parameters against the registry, writes the root with its history row and a free lease row in
one transaction, and returns the id; whichever engine or worker claims the root runs it.

A submit key makes the call idempotent for a client that retries after a timeout (it cannot
know whether its first call committed): the key is written on the root, in the same
transaction, and a second submit under it returns the root it names if it asks for the same
request, or is refused (`SubmitKeyConflict`) if it asks for another (statemachines/core/
submit_keys.py). The key is looked up in the transaction that writes: on SQLite that
transaction holds the write lock, so nobody can slip in between; on PostgreSQL another client
can, and the database's unique index of keys refuses the second write (`SubmitKeyTaken`),
which rolls the transaction back and looks again, finding the winner.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..commands.command import CommandRegistry, reference_problems
from ..errors import InvalidParameters, NotSubmittable, StoreError, SubmitKeyTaken
from ..machines.reasons import ExecutionReason
from ..ports.store_protocol import Store
from ..records.ids import new_id
from ..records.records import CommandRecord, HistoryEvent, HistoryPath, ObjectKind
from ..records.revert_state import ResourceRef
from .submit_keys import check_keys, check_same_request

#: Transactions a keyed submit tries. A lost race is answered by the next look-up, which
#: finds the winner (keys are never deleted); a third means something else refuses the key.
_ATTEMPTS = 3


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
    key: str | None = None,
) -> CommandRecord:
    """Persist a new root command (not_started) and return it; nothing runs it here.

    Malformed parameters and unknown types are refused (`InvalidParameters`,
    `UnknownCommandType`) before anything is written. `owner` leases the new root to that
    engine until `lease_until` (an engine submitting for itself); None leaves it free for any
    worker. With `key`, the root submitted under that key before is returned instead, if
    this is the same request (type, parameters, entity, execution reason), with nothing
    written; `SubmitKeyConflict` if it is another.
    """
    return submit_keyed(store, registry, type_name, parameters, key=key, entity=entity,
                        execution_reason=execution_reason, ids=ids, clock=clock,
                        owner=owner, lease_until=lease_until)[0]


def submit_keyed(
    store: Store,
    registry: CommandRegistry,
    type_name: str,
    parameters: Mapping[str, Any],
    *,
    key: str | None,
    entity: ResourceRef | None = None,
    execution_reason: ExecutionReason = ExecutionReason.REGULAR_FLOW,
    ids: Callable[[], str] = new_id,
    clock: Callable[[], float] = time.time,
    owner: str | None = None,
    lease_until: float = 0.0,
) -> tuple[CommandRecord, bool]:
    """`submit_root`, also saying whether the root is new.

    False means the key's earlier root, which an engine must not index again: whoever runs it
    already has it.
    """
    return _submit(store, registry, [(type_name, parameters)], [key], entity=entity,
                   execution_reason=execution_reason, ids=ids, clock=clock, owner=owner,
                   lease_until=lease_until)[0]


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
    keys: Sequence[str | None] | None = None,
) -> list[CommandRecord]:
    """Persist several roots (type name, parameters) in one transaction: all or none.

    Every request is checked before anything is written, so one bad request refuses the batch.

    `keys`, one per request (None for a request without one), make the batch idempotent as
    `submit_root`'s key does: a request whose key names a root already gets that root back
    in its place, and one conflict refuses the whole batch.
    """
    return [record for record, _ in _submit(
        store, registry, requests, [None] * len(requests) if keys is None else list(keys),
        entity=entity, execution_reason=execution_reason, ids=ids, clock=clock, owner=owner,
        lease_until=lease_until)]


def _submit(
    store: Store,
    registry: CommandRegistry,
    requests: Sequence[tuple[str, Mapping[str, Any]]],
    keys: Sequence[str | None],
    *,
    entity: ResourceRef | None,
    execution_reason: ExecutionReason,
    ids: Callable[[], str],
    clock: Callable[[], float],
    owner: str | None,
    lease_until: float,
) -> list[tuple[CommandRecord, bool]]:
    check_keys([type_name for type_name, _ in requests], keys)
    checked: list[tuple[str, Mapping[str, Any], str | None]] = []
    for (type_name, parameters), key in zip(requests, keys, strict=True):
        frozen = registry.check(type_name, parameters)
        if not registry.get(type_name).submittable:
            raise NotSubmittable(type_name)
        if entity is not None and (problems := reference_problems("entity", entity)):
            raise InvalidParameters(type_name, problems)
        checked.append((type_name, frozen, key))
    reason = ExecutionReason(execution_reason)
    attempt = 1
    while True:
        try:
            return _write(store, checked, entity, reason, ids, clock(), owner, lease_until)
        except SubmitKeyTaken as taken:
            if attempt == _ATTEMPTS:
                raise StoreError(f"{taken}; after {attempt} attempts the key's root still "
                                 "cannot be read back") from taken
            attempt += 1


def _write(
    store: Store,
    requests: Sequence[tuple[str, Mapping[str, Any], str | None]],
    entity: ResourceRef | None,
    reason: ExecutionReason,
    ids: Callable[[], str],
    now: float,
    owner: str | None,
    lease_until: float,
) -> list[tuple[CommandRecord, bool]]:
    """One transaction: the keys' roots looked up, the requests they do not name written."""
    answers: list[tuple[CommandRecord, bool]] = []
    new: list[CommandRecord] = []
    history: list[HistoryPath] = []
    with store.transaction() as tx:
        keys = [key for _, _, key in requests if key is not None]
        known = tx.roots_by_keys(keys) if keys else {}
        for type_name, parameters, key in requests:
            earlier = None if key is None else known.get(key)
            if earlier is not None and key is not None:
                check_same_request(key, earlier, type_name, parameters, entity, reason)
                answers.append((earlier, False))
                continue
            command_id = ids()
            record = CommandRecord(
                id=command_id, root_id=command_id, parent_id=None, end_group_id=command_id,
                type=type_name, execution_reason=reason, parameters=parameters,
                entity_type=entity.type if entity else None,
                entity_id=entity.id if entity else None, created_at=now, updated_at=now,
                submit_key=key,
            )
            new.append(record)
            answers.append((record, True))
            history.append(HistoryPath(ObjectKind.COMMAND, command_id, command_id, "", now,
                                       [(HistoryEvent.CREATE, record.status, None)]))
        if new:
            tx.write(new, [], [], [], history)
            # A free row is due at once (0), not at this client's time: a client whose clock
            # runs ahead of the database's would leave it unclaimable, and the workers' wake-up
            # spent, until the database's clock caught up.
            tx.open_roots([r.id for r in new], owner, lease_until if owner else 0.0)
    return answers
