"""The SQLAlchemy store: the engine's Store protocol over SQLite or PostgreSQL.

Every database error leaves here as StoreUnavailable naming the database and the operation,
after the transaction has been rolled back, so a dropped connection mid-tick costs the tick
and nothing that was committed before it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from enum import StrEnum
from operator import attrgetter
from sys import intern
from typing import Any, TypeVar

from sqlalchemy import (
    Connection,
    Engine,
    MetaData,
    RowMapping,
    Table,
    delete,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from statemachines.core.command_machine import (
    READY_TO_END_STATES,
    TERMINAL_COMMAND_STATES,
    CommandStatus,
    Outcome,
)
from statemachines.core.errors import (
    ConcurrentModification,
    InvalidConfiguration,
    StoreError,
    UnknownLedger,
)
from statemachines.core.host_status import HostResult, HostStatus
from statemachines.core.ledger import Ledger
from statemachines.core.reasons import ExecutionReason
from statemachines.core.records import (
    ActiveState,
    CommandRecord,
    HistoryEntry,
    HistoryPath,
    TaskRecord,
    freeze,
    to_json,
)
from statemachines.core.revert_state import ResourceRef, ResourceRevert, RevertState
from statemachines.core.task_machine import TaskStatus

from . import history_rows, history_segments
from .batching import chunked, matching
from .bulk import BulkWriter
from .database import WRITE_OPTION, connect
from .db_errors import guarded
from .ledger import SqlLedger, TableLedger, check_row_type, ledger_tables
from .revert_table import SqlRevertTable
from .schema import (
    ACTIVE_COMMANDS,
    ACTIVE_TASKS,
    async_task_entities,
    async_tasks,
    cancel_requests,
    commands,
    held_roots,
    resource_reverts,
    root_leases,
    settings,
    transitions,
)
from .schema import history_segments as history_table
from .schema_version import SCHEMA_LOCK_KEY, ensure_schema
from .text_columns import needs_care, storable

L = TypeVar("L", bound=Ledger)

_COMMAND_MUTABLE = ("status", "work_succeeded", "outcome", "error", "not_before",
                    "end_attempts", "updated_at")
# Columns of text that comes from outside (agents, exceptions): made storable (text_columns).
_FREE_TEXT = frozenset({"error", "message"})
_TASK_MUTABLE = ("status", "host_status", "host_result", "message", "attempts", "retry_at",
                 "deadline", "updated_at")


class SqlStore:
    """The engine's Store over one SQLAlchemy engine, with the user's ledgers.

    Args:
        engine: from `persistence.connect(url)`.
        ledgers: your `SqlLedger` classes, at most one per resource type; each tick's
            transaction builds the ones its hooks ask for, and the existence guard asks the
            one of a resource's type.
    """

    def __init__(self, engine: Engine, ledgers: Sequence[type[Ledger]] = ()) -> None:
        self.engine = engine
        self.url = engine.url.render_as_string(hide_password=True)
        self.ledgers: dict[str, type[SqlLedger]] = {}
        for kind in ledgers:
            if not (isinstance(kind, type) and issubclass(kind, SqlLedger)):
                raise InvalidConfiguration(f"{kind!r} is not a SqlLedger class: the SQL store "
                                           "builds ledgers over its own connection")
            if not kind.resource_type:
                raise InvalidConfiguration(f"{kind.__name__} has no resource_type")
            if kind.resource_type in self.ledgers:
                raise InvalidConfiguration(f"two ledgers keep {kind.resource_type!r}: "
                                f"{self.ledgers[kind.resource_type].__name__} and {kind.__name__}")
            if issubclass(kind, TableLedger):
                check_row_type(kind)
            self.ledgers[kind.resource_type] = kind

    def create_schema(self) -> None:
        """Create the schema if the database is empty; refuse a foreign, older or newer one.
        The ledgers' tables are created too, where missing."""
        ensure_schema(self.engine, self.url, create=True)
        self._create_ledger_tables()

    def check_schema(self) -> None:
        """Refuse a database without endaction's current schema, writing nothing to it (but
        the registered ledgers' missing tables)."""
        ensure_schema(self.engine, self.url, create=False)
        self._create_ledger_tables()

    def _create_ledger_tables(self) -> None:
        tables = ledger_tables(self.ledgers.values())
        if not tables:
            return
        with self._guard("create the ledgers' tables"), \
                self.engine.connect().execution_options(**{WRITE_OPTION: True}) as conn, \
                conn.begin():
            if conn.dialect.name == "postgresql":
                # Workers starting together would race CREATE TABLE (PostgreSQL's catalog
                # refuses the loser); the schema lock serialises them, as for migrations.
                conn.execute(select(text(f"pg_advisory_xact_lock({SCHEMA_LOCK_KEY})")))
            MetaData().create_all(conn, tables=tables, checkfirst=True)

    def dispose(self) -> None:
        self.engine.dispose()

    def _guard(self, doing: str) -> AbstractContextManager[None]:
        return guarded(self.url, doing)

    @contextmanager
    def transaction(self) -> Iterator[SqlTransaction]:
        with self._guard("run a transaction"), \
                self.engine.connect().execution_options(**{WRITE_OPTION: True}) as conn, \
                conn.begin():
            tx = SqlTransaction(conn, self.url, self.ledgers)
            yield tx
            tx.flush_resources()

    # ------------------------------------------------------------------ start-up
    def load_active(self, roots: Collection[str] | None = None) -> ActiveState:
        """Every unfinished command and task outside held roots (or of `roots` only), read as
        of one moment (on PostgreSQL a repeatable-read snapshot; on SQLite the read
        transaction is one)."""
        with self._guard("load unfinished work"), self.engine.connect() as connection:
            conn = (connection.execution_options(isolation_level="REPEATABLE READ")
                    if connection.dialect.name == "postgresql" else connection)
            held = select(held_roots.c.root_id)
            # The partial indexes' own conditions, as literal SQL (schema.py says why).
            command_query = select(commands).where(text(ACTIVE_COMMANDS),
                                                   commands.c.root_id.not_in(held))
            task_query = select(async_tasks).where(text(ACTIVE_TASKS),
                                                   async_tasks.c.root_command_id.not_in(held))
            if roots is None:
                chunks: list[list[str] | None] = [None]
            else:
                chunks = list(chunked(sorted(roots)))
            active = ActiveState()
            task_rows: list[RowMapping] = []
            for chunk in chunks:
                cq, tq = command_query, task_query
                if chunk is not None:
                    cq = cq.where(commands.c.root_id.in_(chunk))
                    tq = tq.where(async_tasks.c.root_command_id.in_(chunk))
                active.commands += [_command(r) for r in conn.execute(cq).mappings()]
                task_rows += list(conn.execute(tq).mappings())
            active.commands.sort(key=attrgetter("created_at"))
            task_rows.sort(key=lambda r: r["created_at"])
            entities = _entities(conn, [r["id"] for r in task_rows])
            active.tasks = [_task(r, entities.get(r["id"], ())) for r in task_rows]
            return active

    # ------------------------------------------------------------------ leases
    def claim_roots(self, owner: str, now: float, until: float, limit: int,
                    parked_too: bool = False) -> list[str]:
        """Lease up to `limit` free or lapsed roots to `owner` until `until`, oldest first,
        skipping held roots and rows another worker is claiming right now (SKIP LOCKED on
        PostgreSQL; SQLite serialises writers anyway); parked ones too if asked."""
        with self.transaction() as tx:
            return tx.claim_roots(owner, now, until, limit, parked_too)

    def reclaim_roots(self, owner: str, until: float) -> list[str]:
        """Extend every lease `owner` still holds (a worker restarted under the same name
        gets its roots back at once, without waiting for them to lapse)."""
        with self.transaction() as tx:
            return tx.reclaim_roots(owner, until)

    def release_leases(self, owner: str) -> int:
        """Give back every lease `owner` holds (a worker stopping cleanly); returns how many."""
        with self.transaction() as tx:
            return tx.release_leases(owner)

    def leases(self) -> list[tuple[str, str | None, float]]:
        """Every root with work: (root id, lease owner or None, lease expiry), by root id."""
        with self._guard("list root leases"), self.engine.connect() as conn:
            rows = conn.execute(select(root_leases.c.root_id, root_leases.c.owner,
                                       root_leases.c.expires).order_by(root_leases.c.root_id))
            return [(root_id, owner, expires) for root_id, owner, expires in rows]

    # ------------------------------------------------------------------ read side
    def last_root_id(self) -> str | None:
        with self._guard("find the last root command"), self.engine.connect() as conn:
            return conn.execute(
                select(commands.c.id).where(commands.c.parent_id.is_(None))
                .order_by(commands.c.created_at.desc()).limit(1)
            ).scalar()

    def root_ids(self) -> list[str]:
        """Every root command, oldest first."""
        with self._guard("list root commands"), self.engine.connect() as conn:
            return list(conn.execute(select(commands.c.id).where(commands.c.parent_id.is_(None))
                                     .order_by(commands.c.created_at)).scalars())

    def held_roots(self) -> dict[str, str]:
        """Roots the engine could not process, with the error that held each."""
        with self._guard("list held roots"), self.engine.connect() as conn:
            rows = conn.execute(select(held_roots.c.root_id, held_roots.c.error)
                                .order_by(held_roots.c.held_at))
            return {root_id: error for root_id, error in rows}

    def request_cancel(self, root_id: str, reason: str, at: float) -> None:
        with self.transaction() as tx:
            tx.request_cancel(root_id, reason, at)

    def cancel_requests(self) -> dict[str, str]:
        with self._guard("list cancel requests"), self.engine.connect() as conn:
            rows = conn.execute(select(cancel_requests.c.root_id, cancel_requests.c.reason))
            return {root_id: reason for root_id, reason in rows}

    def release_root(self, root_id: str) -> bool:
        """Let engines work on a held root again (after the fault was fixed); False if it was
        not held."""
        with self.transaction() as tx:
            return tx.release_root(root_id)

    def setting(self, key: str) -> str | None:
        with self._guard(f"read setting {key}"), self.engine.connect() as conn:
            value: str | None = conn.execute(
                select(settings.c.value).where(settings.c.key == key)).scalar()
            return value

    def put_setting(self, key: str, value: str) -> None:
        with self.transaction() as tx:
            tx.put_setting(key, value)

    def task_versions(self, task_ids: Sequence[str]) -> dict[str, int]:
        with self._guard("check task versions"), self.engine.connect() as conn:
            found: dict[str, int] = {}
            for condition in matching(conn, async_tasks.c.id, task_ids):
                rows = conn.execute(select(async_tasks.c.id, async_tasks.c.version)
                                    .where(condition))
                found.update((task_id, version) for task_id, version in rows)
            return found

    def command(self, command_id: str) -> CommandRecord | None:
        with self._guard(f"read command {command_id}"), self.engine.connect() as conn:
            row = conn.execute(select(commands).where(commands.c.id == command_id)).mappings()
            found = row.first()
            return _command(found) if found is not None else None

    def tree(self, root_id: str) -> tuple[list[CommandRecord], list[TaskRecord]]:
        with self._guard(f"read the tree of {root_id}"), self.engine.connect() as conn:
            cmds = [_command(r) for r in conn.execute(
                select(commands).where(commands.c.root_id == root_id)
                .order_by(commands.c.created_at)).mappings()]
            task_rows = list(conn.execute(
                select(async_tasks).where(async_tasks.c.root_command_id == root_id)
                .order_by(async_tasks.c.created_at)).mappings())
            entities = _entities(conn, [r["id"] for r in task_rows])
            return cmds, [_task(r, entities.get(r["id"], ())) for r in task_rows]

    def history(self, object_id: str) -> list[HistoryEntry]:
        """Rows of schema 0005 and before, then the object's steps in its root's segments."""
        with self._guard(f"read the history of {object_id}"), self.engine.connect() as conn:
            found = list(history_rows.expand(conn.execute(
                select(transitions).where(transitions.c.object_id == object_id)
                .order_by(transitions.c.id)).mappings()))
            root_id = conn.execute(
                select(commands.c.root_id).where(commands.c.id == object_id)
                .union_all(select(async_tasks.c.root_command_id)
                           .where(async_tasks.c.id == object_id))).scalar()
            if root_id is not None:
                found += history_segments.expand_all(_segments(conn, root_id, object_id),
                                                     object_id)
            return found

    def history_of_root(self, root_id: str) -> list[HistoryEntry]:
        with self._guard(f"read the history of {root_id}"), self.engine.connect() as conn:
            found = list(history_rows.expand(conn.execute(
                select(transitions).where(transitions.c.root_id == root_id)
                .order_by(transitions.c.id)).mappings()))
            found += history_segments.expand_all(_segments(conn, root_id))
            return found

    def reverts(self) -> Iterator[ResourceRevert]:
        with self._guard("list revert states"), self.engine.connect() as conn:
            rows = list(conn.execute(select(resource_reverts)).mappings())
        for r in rows:
            yield _revert_of(r)


class SqlTransaction:
    def __init__(self, conn: Connection, database: str,
                 ledgers: Mapping[str, type[SqlLedger]]) -> None:
        self._conn = conn
        self._database = database
        self._ledger_kinds = ledgers
        self._ledgers: dict[type[SqlLedger], SqlLedger] = {}
        self._reverts = SqlRevertTable(conn, database)
        self._bulk = BulkWriter(conn, database)

    def ledger(self, kind: type[L]) -> L:
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
        kind = self._ledger_kinds.get(resource.type)
        return None if kind is None else self.ledger(kind).exists(resource.id)

    # ------------------------------------------------------------------ leases
    def claim_roots(self, owner: str, now: float, until: float, limit: int,
                    parked_too: bool = False) -> list[str]:
        if limit <= 0:
            return []
        held = select(held_roots.c.root_id)
        # A free row (owner NULL) is due from its `expires` on: at once for a new or given-back
        # root, later for a parked one; a leased row once its lease lapsed.
        free = root_leases.c.expires <= now
        if parked_too:
            free = free | root_leases.c.owner.is_(None)
        query = (select(root_leases.c.root_id)
                 .where(free, root_leases.c.root_id.not_in(held))
                 .order_by(root_leases.c.root_id)
                 .limit(limit))
        if self._conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        claimed = list(self._conn.execute(query).scalars())
        if claimed:
            self._conn.execute(update(root_leases).where(root_leases.c.root_id.in_(claimed))
                               .values(owner=owner, expires=until))
        return claimed

    def reclaim_roots(self, owner: str, until: float) -> list[str]:
        held = select(held_roots.c.root_id)
        return sorted(self._conn.execute(
            update(root_leases)
            .where(root_leases.c.owner == owner, root_leases.c.root_id.not_in(held))
            .values(expires=until).returning(root_leases.c.root_id)).scalars())

    def renew_leases(self, owner: str, roots: Collection[str], until: float) -> set[str]:
        held: set[str] = set()
        for chunk in chunked(sorted(roots)):
            # Locked in root order for the rest of the tick: no worker takes them over while
            # this tick writes their trees, and two renewals never deadlock.
            rows = self._conn.execute(
                select(root_leases.c.root_id, root_leases.c.owner)
                .where(root_leases.c.root_id.in_(chunk)).order_by(root_leases.c.root_id)
                .with_for_update())
            mine = [root_id for root_id, holder in rows if holder == owner]
            if mine:
                self._conn.execute(update(root_leases).where(root_leases.c.root_id.in_(mine))
                                   .values(expires=until))
            held.update(mine)
        return held

    def open_roots(self, roots: Collection[str], owner: str | None, until: float) -> None:
        for root_id in sorted(roots):
            self._insert_if_absent(root_leases, {"root_id": root_id, "owner": owner,
                                                 "expires": until})

    def park_roots(self, roots: Collection[str], owner: str, until: float) -> None:
        for chunk in chunked(sorted(roots)):
            self._conn.execute(update(root_leases).where(root_leases.c.root_id.in_(chunk),
                                                         root_leases.c.owner == owner)
                               .values(owner=None, expires=until))

    def finish_roots(self, roots: Collection[str]) -> None:
        for chunk in chunked(sorted(roots)):
            self._conn.execute(delete(root_leases).where(root_leases.c.root_id.in_(chunk)))

    def release_leases(self, owner: str) -> int:
        return int(self._conn.execute(update(root_leases).where(root_leases.c.owner == owner)
                                      .values(owner=None, expires=0.0)).rowcount)

    def claim_ends(self, command_ids: Sequence[str]) -> set[str]:
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
        self._insert_if_absent(cancel_requests, {"root_id": root_id, "requested_at": at,
                                                 "reason": storable(reason)})

    def _insert_if_absent(self, table: Table, values: dict[str, Any]) -> None:
        """One statement, so two writers racing (PostgreSQL reads committed data only, and
        both may see no row) never collide on the key: the second one does nothing."""
        dialect = self._conn.dialect.name
        statement = (sqlite_insert(table) if dialect == "sqlite" else postgresql_insert(table)
                     if dialect == "postgresql" else None)
        if statement is None:
            key = table.primary_key.columns.values()[0]
            if self._conn.execute(select(key).where(key == values[key.name])).first() is None:
                self._conn.execute(insert(table).values(**values))
            return
        self._conn.execute(statement.values(**values).on_conflict_do_nothing())

    def pending_cancels(self) -> list[tuple[str, str, str]]:
        rows = self._conn.execute(
            select(cancel_requests.c.root_id, cancel_requests.c.reason, commands.c.status)
            .join(commands, commands.c.id == cancel_requests.c.root_id)
            .order_by(cancel_requests.c.requested_at))
        return [(root_id, reason, status) for root_id, reason, status in rows]

    def drop_cancel(self, root_id: str) -> None:
        self._conn.execute(delete(cancel_requests).where(cancel_requests.c.root_id == root_id))

    def failed_reverts(self) -> list[tuple[ResourceRevert, CommandRecord]]:
        """Resources given up on whose owner has ended, outside held roots, and with no
        opposite command still unfinished for them (one may be in flight from an earlier
        cleanup, in any engine's hands)."""
        reverts = [_revert_of(r) for r in self._conn.execute(
            select(resource_reverts).where(resource_reverts.c.state == RevertState.REVERT_FAILED)
            .order_by(resource_reverts.c.updated_at)).mappings()]
        owners: dict[str, CommandRecord] = {}
        for chunk in chunked(sorted({r.owner for r in reverts})):
            owners.update((r["id"], _command(r)) for r in self._conn.execute(
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
        self._insert_if_absent(held_roots, {"root_id": root_id, "held_at": at,
                                            "error": storable(error)})

    def release_root(self, root_id: str) -> bool:
        return bool(self._conn.execute(delete(held_roots).where(held_roots.c.root_id == root_id))
                    .rowcount)

    def put_setting(self, key: str, value: str) -> None:
        self._conn.execute(update(settings).where(settings.c.key == key).values(value=value))
        self._insert_if_absent(settings, {"key": key, "value": value})

    def flush_resources(self) -> None:
        """Write the ledgers' and the revert states' buffered changes (also before commit)."""
        for ledger in self._ledgers.values():
            ledger.flush()
        self._reverts.flush()

    def get_revert(self, resource: ResourceRef, owner: str) -> ResourceRevert:
        return self._reverts.get(resource, owner)

    def put_revert(self, revert: ResourceRevert) -> None:
        self._reverts.put(revert)

    def write(
        self,
        new_commands: Sequence[CommandRecord],
        changed_commands: Sequence[CommandRecord],
        new_tasks: Sequence[TaskRecord],
        changed_tasks: Sequence[TaskRecord],
        history: Sequence[HistoryPath],
    ) -> None:
        if new_commands:
            self._bulk.insert(commands, _COMMAND_COLUMNS, map(_command_row, new_commands),
                         "insert commands")
        if changed_commands:
            self._update(commands, _COMMAND_MUTABLE, changed_commands)
        if new_tasks:
            self._bulk.insert(async_tasks, _TASK_COLUMNS, map(_task_row, new_tasks),
                         "insert tasks")
            entity_rows = [(t.id, kind, ident) for t in new_tasks for kind, ident in t.entities]
            if entity_rows:
                self._bulk.insert(async_task_entities, ("task_id", "entity_type", "entity_id"),
                             entity_rows, "insert task entities")
        if changed_tasks:
            self._update(async_tasks, _TASK_MUTABLE, changed_tasks)
        if history:
            self.append_history(history)
        # After the version-checked record writes: two engines racing on the same commands
        # must see a ConcurrentModification, not a duplicate key in the inventory.
        self.flush_resources()

    def append_history(self, history: Sequence[HistoryPath]) -> None:
        """One row per root for the steps of its objects (persistence/history_segments.py)."""
        self._bulk.insert(history_table, history_segments.COLUMNS,
                          history_segments.rows(history), "append the history")

    def _update(self, table: Table, columns: Sequence[str],
                records: Sequence[CommandRecord] | Sequence[TaskRecord]) -> None:
        """Optimistic concurrency: a row is written only if nobody changed it since it was read.

        In id order: two engines updating overlapping rows then lock them in one order, which
        is what keeps PostgreSQL from deadlocking them (row by row; the bulk update's join
        has no order, but there the lease rows, locked first in root order, already keep
        two workers off one tree)."""
        values = attrgetter(*columns)
        ordered: list[CommandRecord | TaskRecord] = sorted(records, key=_by_id)
        text = [i for i, column in enumerate(columns) if column in _FREE_TEXT]
        rows = []
        for record in ordered:
            row = values(record)
            for i in text:
                if needs_care(row[i]):
                    row = (*row[:i], storable(row[i]), *row[i + 1:])
            rows.append((*row, record.version + 1, record.id, record.version))
        written = self._bulk.update(table, (*columns, "version"), ("id", "version"), rows,
                                    f"update {table.name}")
        if written != len(rows):
            raise ConcurrentModification(
                f"{len(rows) - written} of {len(rows)} {table.name} rows were changed "
                "by another engine since this one read them")
        for record in records:
            record.version += 1


def _by_id(record: CommandRecord | TaskRecord) -> str:
    return record.id


def open_store(url: str, create: bool = True, busy_timeout_ms: int = 10_000,
               ledgers: Sequence[type[Ledger]] = ()) -> SqlStore:
    """A store over `url` (a SQLAlchemy URL or a SQLite file path), its schema checked.

    With `create`, an empty database gets the schema (in one transaction); without it, an
    empty one is refused (`NoSchema`). Either way a foreign database is refused
    (`NotAnEndactionDatabase`) and an older or newer schema too (`SchemaMismatch`), before
    anything is written."""
    store = SqlStore(connect(url, busy_timeout_ms, make_folder=create), ledgers)
    try:
        if create:
            store.create_schema()
        else:
            store.check_schema()
    except BaseException:
        store.dispose()
        raise
    return store


_COMMAND_COLUMNS = ("id", "root_id", "parent_id", "end_group_id", "type", "status",
                    "execution_reason", "parameters", "entity_type", "entity_id",
                    "work_succeeded", "outcome", "error", "not_before", "end_attempts",
                    "created_at", "updated_at", "version")


def _command_row(c: CommandRecord) -> tuple[Any, ...]:
    return (c.id, c.root_id, c.parent_id, c.end_group_id, c.type, c.status, c.execution_reason,
            to_json(c.parameters), c.entity_type, c.entity_id, c.work_succeeded, c.outcome,
            storable(c.error), c.not_before, c.end_attempts, c.created_at, c.updated_at,
            c.version)


_TASK_COLUMNS = ("id", "command_id", "root_command_id", "agent", "verb", "agent_task_id",
                 "status", "host_status", "host_result", "message", "parameters", "attempts",
                 "retry_at", "deadline", "created_at", "updated_at", "version")


def _task_row(t: TaskRecord) -> tuple[Any, ...]:
    return (t.id, t.command_id, t.root_command_id, t.agent, t.verb, t.id, t.status,
            t.host_status, t.host_result, storable(t.message), to_json(t.parameters),
            t.attempts, t.retry_at, t.deadline, t.created_at, t.updated_at, t.version)


E = TypeVar("E", bound=StrEnum)


def _enum(kind: type[E], value: str, row: RowMapping, column: str) -> E:
    """A column of a closed vocabulary, as its enum; a value outside it is named, not a crash.
    (The enum's own value map: calling the class costs several times more, 40,000 times when
    10,000 disks are recovered.)"""
    member: E | None = kind._value2member_map_.get(value)  # type: ignore[assignment]
    if member is None:
        raise StoreError(f"row {row['id']} has {column} {value!r}, which this endaction does "
                         f"not know (one of {', '.join(kind)} was expected)")
    return member


def _parameters(r: RowMapping) -> Mapping[str, Any]:
    """A row's parameters, frozen as they are stored (a NaN written by hand into a SQLite row
    loads as NaN: one such row must not stop every root from loading)."""
    try:
        return freeze(r["parameters"], finite=False)
    except (TypeError, ValueError) as err:
        raise StoreError(f"row {r['id']} has parameters endaction cannot use: {err}") from None


def _command(r: RowMapping) -> CommandRecord:
    """Ids and names interned (here and in `_task`): every row read brings its own copy of
    its parent's, root's and group's ids, where records made by a running engine share one
    string per id. Shared, 10,000 loaded disks hold 12% less, and the engine's lookups by id
    meet the same object instead of comparing equal text."""
    outcome = r["outcome"]
    parent = r["parent_id"]
    return CommandRecord(
        id=intern(r["id"]), root_id=intern(r["root_id"]),
        parent_id=None if parent is None else intern(parent),
        end_group_id=intern(r["end_group_id"]), type=intern(r["type"]),
        execution_reason=_enum(ExecutionReason, r["execution_reason"], r, "execution_reason"),
        parameters=_parameters(r), status=_enum(CommandStatus, r["status"], r, "status"),
        entity_type=r["entity_type"], entity_id=r["entity_id"],
        work_succeeded=r["work_succeeded"], error=r["error"],
        outcome=None if outcome is None else _enum(Outcome, outcome, r, "outcome"),
        not_before=r["not_before"], end_attempts=r["end_attempts"],
        created_at=r["created_at"], updated_at=r["updated_at"], version=r["version"],
    )


def _task(r: RowMapping, entities: Sequence[tuple[str, str]]) -> TaskRecord:
    host_status, host_result = r["host_status"], r["host_result"]
    return TaskRecord(
        id=intern(r["id"]), command_id=intern(r["command_id"]),
        root_command_id=intern(r["root_command_id"]),
        agent=intern(r["agent"]), verb=intern(r["verb"]), parameters=_parameters(r),
        entities=tuple(entities), status=_enum(TaskStatus, r["status"], r, "status"),
        host_status=None if host_status is None else _enum(HostStatus, host_status, r,
                                                           "host_status"),
        host_result=None if host_result is None else _enum(HostResult, host_result, r,
                                                           "host_result"),
        message=r["message"], attempts=r["attempts"],
        retry_at=r["retry_at"], deadline=r["deadline"], created_at=r["created_at"],
        updated_at=r["updated_at"],
        version=r["version"],
    )


def _revert_of(r: RowMapping) -> ResourceRevert:
    return ResourceRevert(ResourceRef(r["resource_type"], r["resource_id"]), r["owner_id"],
                          RevertState(r["state"]), r["attempts"], r["last_error"], r["lost"])


#: Ids longer than this are looked for in Python only: SQLite refuses LIKE patterns over
#: 50,000 bytes, and the store's own ids are 64 characters at most.
_LIKE_WITHIN = 1_000


def _segments(conn: Connection, root_id: str, object_id: str | None = None) -> Iterator[Any]:
    """A root's history segments in the order they were written, fetched one at a time (a
    server-side cursor on PostgreSQL): a 100,000-disk tree's history is 220 MB of JSON.
    With `object_id`, only the segments whose text holds it: the database scans the text
    (a LIKE may match more, never less; `history_segments.expand` keeps the exact id)."""
    query = (select(history_table.c.root_id, history_table.c.at, history_table.c.steps)
             .where(history_table.c.root_id == root_id).order_by(history_table.c.id))
    if object_id is not None and len(object_id) <= _LIKE_WITHIN:
        query = query.where(history_table.c.steps.contains(history_segments.quoted(object_id),
                                                           autoescape=True))
    return iter(conn.execution_options(stream_results=True, yield_per=1).execute(query))


def _entities(conn: Connection, task_ids: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
    found: dict[str, list[tuple[str, str]]] = {}
    for condition in matching(conn, async_task_entities.c.task_id, task_ids):
        rows = conn.execute(select(async_task_entities).where(condition))
        for task_id, kind, ident in rows:
            found.setdefault(task_id, []).append((kind, ident))
    return found
