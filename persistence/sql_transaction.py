"""One engine tick's transaction over SQL.

It holds the leases, the claims, the record writes, and the ledgers and revert states that
commit or roll back with them.

Reads and claims go to the database at once; record writes are batched (persistence/bulk.py)
and version-checked, so a row someone else changed since it was read is refused
(`ConcurrentModification`) and the whole tick rolls back.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from operator import attrgetter
from typing import Any, TypeVar

from sqlalchemy import Connection, Table, delete, select, update

from statemachines.core.errors import ConcurrentModification, UnknownLedger
from statemachines.core.machines.command_machine import (
    READY_TO_END_STATES,
    TERMINAL_COMMAND_STATES,
    CommandStatus,
)
from statemachines.core.machines.reasons import ExecutionReason
from statemachines.core.ports.ledger import Ledger
from statemachines.core.records.records import ActiveState, CommandRecord, HistoryPath, TaskRecord
from statemachines.core.records.revert_state import ResourceRef, ResourceRevert, RevertState

from . import active_load, history_segments, submit_keys
from .batching import matching
from .bulk import BulkWriter
from .dialects import dialect_of
from .dialects.sql_text import chunked
from .lease_rows import LeaseRows
from .ledger import SqlLedger
from .record_rows import (
    COMMAND_COLUMNS,
    COMMAND_MUTABLE,
    FREE_TEXT,
    JSON_TEXT,
    TASK_COLUMNS,
    TASK_MUTABLE,
    command_of,
    command_row,
    entities_of,
    json_text,
    resources_text,
    revert_of,
    task_of,
    task_row,
)
from .revert_table import SqlRevertTable
from .schema import (
    async_task_entities,
    async_tasks,
    cancel_requests,
    commands,
    held_roots,
    resource_reverts,
    root_leases,
    settings,
)
from .schema import history_segments as history_table
from .text_columns import needs_care, storable

L = TypeVar("L", bound=Ledger)


class SqlTransaction(LeaseRows):
    """The engine's `StoreTransaction` over one connection, inside `SqlStore.transaction`.

    Ledgers are built on its connection when first asked for, so their writes commit or roll
    back with the tick's.
    """

    def __init__(self, conn: Connection, database: str,
                 ledgers: Mapping[str, type[SqlLedger]]) -> None:
        self._conn = conn
        self._dialect = dialect_of(conn)
        self._database = database
        self._ledger_kinds = ledgers
        self._ledgers: dict[type[SqlLedger], SqlLedger] = {}
        self._reverts = SqlRevertTable(conn, database)
        self._bulk = BulkWriter(conn, database)
        #: Who writes this transaction's history (schema 0009's `actor`); the engine says.
        self.actor: str | None = None
        #: Whether this transaction made work for other engines (a free root, a request):
        #: the store wakes its listeners when it commits (persistence/wakeups.py).
        self.made_work = False

    def ledger(self, kind: type[L]) -> L:
        """Build the registered ledger on first use; an unregistered class is `UnknownLedger`."""
        built = self._ledgers.get(kind)  # type: ignore[arg-type]
        if built is None:
            registered = self._ledger_kinds.get(kind.resource_type)
            if registered is not kind:
                raise UnknownLedger(
                    f"{kind.__name__} is not registered with the store of {self._database}: "
                    f"open it with open_store(url, ledgers=[{kind.__name__}, ...])")
            built = self._ledgers[registered] = registered(self._conn, self._database)
        return built  # type: ignore[return-value]

    def resource_exists(self, resource: ResourceRef) -> bool | None:
        """Ask the ledger of the resource's type; None where no ledger keeps that type."""
        kind = self._ledger_kinds.get(resource.type)
        return None if kind is None else self.ledger(kind).exists(resource.id)

    def load_active(self, roots: Collection[str]) -> ActiveState:
        """The unfinished work of `roots`, read on this transaction's connection."""
        return active_load.load_active(self._conn, roots)

    def roots_by_keys(self, keys: Collection[str]) -> dict[str, CommandRecord]:
        """The roots of these submit keys, read on this transaction's connection."""
        return submit_keys.roots_by_keys(self._conn, keys)

    def claim_ends(self, command_ids: Sequence[str]) -> set[str]:
        """Move the ready ones to ending by primary key, each claim bumping its version."""
        claimed: set[str] = set()
        # `status || ''`: with an index on status usable (schemas up to 0005 had one),
        # SQLite's planner scanned every waiting command for each chunk of ids (quadratic:
        # 6.8 s of claims at 100,000 disks); the primary key is what these must go by.
        for condition in matching(self._conn, commands.c.id, sorted(command_ids)):
            result = self._conn.execute(
                update(commands)
                .where(condition, (commands.c.status + "").in_(READY_TO_END_STATES))
                .values(status=CommandStatus.ENDING, version=commands.c.version + 1)
                .returning(commands.c.id)
            )
            claimed.update(result.scalars())
        return claimed

    def prefetch(self, resources: Iterable[ResourceRef]) -> None:
        """Load, in bulk, the inventory rows and revert states of resources about to be used."""
        refs = list(resources)
        by_type: dict[str, list[str]] = {}
        for ref in refs:
            by_type.setdefault(ref.type, []).append(ref.id)
        for resource_type, ids in by_type.items():
            kind = self._ledger_kinds.get(resource_type)
            if kind is not None:
                self.ledger(kind).prefetch(ids)
        self._reverts.prefetch(refs)

    def request_cancel(self, root_id: str, reason: str, at: float) -> None:
        """Record the request unless the root has one (its reason kept), and wake workers."""
        self.made_work = True
        self._insert_if_absent(cancel_requests, {"root_id": root_id, "requested_at": at,
                                                 "reason": storable(reason)})

    def _insert_if_absent(self, table: Table, *rows: dict[str, Any]) -> None:
        """Insert each row unless its key is there, as the dialect does it without a race.

        Two writers racing (PostgreSQL reads committed data only, and both may see no row)
        never collide on the key: the second one does nothing.
        """
        self._dialect.insert_if_absent(self._conn, table, rows)

    def pending_cancels(self) -> list[tuple[str, str, str]]:
        """The requests joined to their roots' status, the oldest request first."""
        rows = self._conn.execute(
            select(cancel_requests.c.root_id, cancel_requests.c.reason, commands.c.status)
            .join(commands, commands.c.id == cancel_requests.c.root_id)
            .order_by(cancel_requests.c.requested_at))
        return [(root_id, reason, status) for root_id, reason, status in rows]

    def drop_cancel(self, root_id: str) -> None:
        """Delete the root's cancel request, if there is one."""
        self._conn.execute(delete(cancel_requests).where(cancel_requests.c.root_id == root_id))

    def failed_reverts(self) -> list[tuple[ResourceRevert, CommandRecord]]:
        """Resources given up on whose owner has ended, outside held roots.

        A resource is left out while an opposite command for it is still unfinished (one may be
        in flight from an earlier cleanup, in any engine's hands).
        """
        reverts = [revert_of(r) for r in self._conn.execute(
            select(resource_reverts).where(resource_reverts.c.state == RevertState.REVERT_FAILED)
            .order_by(resource_reverts.c.updated_at)).mappings()]
        owners: dict[str, CommandRecord] = {}
        for chunk in chunked(sorted({r.owner for r in reverts})):
            owners.update((r["id"], command_of(r)) for r in self._conn.execute(
                select(commands).where(commands.c.id.in_(chunk),
                                       commands.c.status.in_(TERMINAL_COMMAND_STATES),
                                       commands.c.execution_reason
                                       == ExecutionReason.REGULAR_FLOW,
                                       commands.c.root_id.not_in(select(held_roots.c.root_id))))
                .mappings())
        in_flight = {(kind, ident) for kind, ident in self._conn.execute(
            select(commands.c.entity_type, commands.c.entity_id).where(
                commands.c.execution_reason == ExecutionReason.ROLLBACK_FLOW,
                commands.c.end_group_id == commands.c.id,
                commands.c.status.not_in(TERMINAL_COMMAND_STATES)))}
        return [(r, owners[r.owner]) for r in reverts if r.owner in owners
                and (r.resource.type, r.resource.id) not in in_flight]

    def hold_root(self, root_id: str, at: float, error: str) -> None:
        """Hold the root unless it is held already (then the first error is kept)."""
        self._insert_if_absent(held_roots, {"root_id": root_id, "held_at": at,
                                            "error": storable(error)})

    def release_root(self, root_id: str) -> bool:
        """Release a held root and free its lease at once; False if it was not held."""
        released = bool(self._conn.execute(
            delete(held_roots).where(held_roots.c.root_id == root_id)).rowcount)
        if released:
            # The worker that held it renewed its lease and never takes it back (a held root
            # is in no view): free the row, so that the workers it wakes can claim it now.
            self._conn.execute(update(root_leases).where(root_leases.c.root_id == root_id)
                               .values(owner=None, expires=0.0))
            self.made_work = True
        return released

    def take_setting(self, key: str) -> bool:
        """Delete the setting; True for the one transaction that did.

        It is a claim: of two workers taking a request at once, one deletes the row, the other
        finds none.
        """
        return bool(self._conn.execute(delete(settings).where(settings.c.key == key))
                    .rowcount)

    def put_setting(self, key: str, value: str) -> None:
        """Update the setting's row, or insert one where there is none."""
        self._conn.execute(update(settings).where(settings.c.key == key).values(value=value))
        self._insert_if_absent(settings, {"key": key, "value": value})

    def flush_resources(self) -> None:
        """Write the ledgers' and the revert states' buffered changes (also before commit)."""
        for ledger in self._ledgers.values():
            ledger.flush()
        self._reverts.flush()

    def tasks_of(self, command_id: str) -> list[TaskRecord]:
        """The command's tasks in creation order, each with its entities."""
        rows = list(self._conn.execute(select(async_tasks).where(
            async_tasks.c.command_id == command_id).order_by(async_tasks.c.created_at))
            .mappings())
        entities = entities_of(self._conn, [r["id"] for r in rows])
        return [task_of(r, entities.get(r["id"], ())) for r in rows]

    def children_of(self, command_id: str) -> list[CommandRecord]:
        """The command's children in creation order."""
        return [command_of(r) for r in self._conn.execute(select(commands).where(
            commands.c.parent_id == command_id).order_by(commands.c.created_at)).mappings()]

    def commands_of_root(self, root_id: str) -> list[CommandRecord]:
        """Every command of the root's tree, in creation order."""
        return [command_of(r) for r in self._conn.execute(select(commands).where(
            commands.c.root_id == root_id).order_by(commands.c.created_at)).mappings()]

    def reverts_of(self, owners: Collection[str]) -> list[ResourceRevert]:
        """The owners' revert states, this tick's buffered ones written first to be read back."""
        self._reverts.flush()  # written behind: what this tick put must be read back
        found: list[ResourceRevert] = []
        for chunk in chunked(sorted(owners)):
            found += [revert_of(r) for r in self._conn.execute(select(resource_reverts).where(
                resource_reverts.c.owner_id.in_(chunk))).mappings()]
        return found

    def get_revert(self, resource: ResourceRef, owner: str) -> ResourceRevert:
        """From the revert table, which answers prefetched resources without a read."""
        return self._reverts.get(resource, owner)

    def put_revert(self, revert: ResourceRevert) -> None:
        """Buffered in the revert table, and written when the transaction flushes."""
        self._reverts.put(revert)

    def write(
        self,
        new_commands: Sequence[CommandRecord],
        changed_commands: Sequence[CommandRecord],
        new_tasks: Sequence[TaskRecord],
        changed_tasks: Sequence[TaskRecord],
        history: Sequence[HistoryPath],
    ) -> None:
        """Insert in bulk, version-check every update, then flush the ledgers and reverts."""
        if new_commands:
            self._bulk.insert(commands, COMMAND_COLUMNS, map(command_row, new_commands),
                         "insert commands")
        if changed_commands:
            self._update(commands, COMMAND_MUTABLE, changed_commands)
        if new_tasks:
            self._bulk.insert(async_tasks, TASK_COLUMNS, map(task_row, new_tasks),
                         "insert tasks")
            entity_rows = [(t.id, kind, ident) for t in new_tasks for kind, ident in t.entities]
            if entity_rows:
                self._bulk.insert(async_task_entities, ("task_id", "entity_type", "entity_id"),
                             entity_rows, "insert task entities")
        if changed_tasks:
            self._update(async_tasks, TASK_MUTABLE, changed_tasks)
        if history:
            self.append_history(history)
        # After the version-checked record writes: two engines racing on the same commands
        # must see a ConcurrentModification, not a duplicate key in the inventory.
        self.flush_resources()

    def append_history(self, history: Sequence[HistoryPath]) -> None:
        """One row per root for the steps of its objects (persistence/history_segments.py)."""
        self._bulk.insert(history_table, history_segments.COLUMNS,
                          history_segments.rows(history, self.actor), "append the history")

    def _update(self, table: Table, columns: Sequence[str],
                records: Sequence[CommandRecord] | Sequence[TaskRecord]) -> None:
        """Optimistic concurrency: a row is written only if nobody changed it since it was read.

        In id order: two engines updating overlapping rows then lock them in one order, which
        is what keeps PostgreSQL from deadlocking them (row by row; the bulk update's join
        has no order, but there the lease rows, locked first in root order, already keep
        two workers off one tree).
        """
        ordered: list[CommandRecord | TaskRecord] = sorted(records, key=_by_id)
        # A JSON column (an output, added resources) goes from empty to a value and never
        # back, and a record in memory is never behind its row: where no record of the batch
        # has a value, every row's is empty already, and the column is left out (most
        # batches: a 10,000-disk rollback's commands carry none).
        columns = [c for c in columns if c not in JSON_TEXT or any(
            _has_value(c, getattr(record, c)) for record in ordered)]
        values = attrgetter(*columns)
        text = [i for i, column in enumerate(columns) if column in FREE_TEXT]
        as_json = [(i, resources_text if column == "resources" else json_text)
                   for i, column in enumerate(columns) if column in JSON_TEXT]
        rows = []
        for record in ordered:
            row = values(record)
            for i in text:
                if needs_care(row[i]):
                    row = (*row[:i], storable(row[i]), *row[i + 1:])
            if as_json:
                listed = list(row)
                for i, encode in as_json:
                    listed[i] = encode(listed[i])
                row = tuple(listed)
            rows.append((*row, record.version + 1, record.id, record.version))
        written = self._bulk.update(table, (*columns, "version"), ("id", "version"), rows,
                                    f"update {table.name}")
        if written != len(rows):
            raise ConcurrentModification(
                f"{len(rows) - written} of {len(rows)} {table.name} rows were changed "
                "by another engine since this one read them")
        for record in records:
            record.version += 1


def _has_value(column: str, value: object) -> bool:
    """An output (any JSON: 0, "" and [] included), or resources (a non-empty tuple)."""
    return bool(value) if column == "resources" else value is not None


def _by_id(record: CommandRecord | TaskRecord) -> str:
    return record.id

