"""The SQLAlchemy store: the engine's Store protocol over SQLite or PostgreSQL.

Every database error leaves here as StoreUnavailable naming the database and the operation,
after the transaction has been rolled back, so a dropped connection mid-tick costs the tick
and nothing that was committed before it.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, MetaData, func, select

from statemachines.core.errors import InvalidConfiguration
from statemachines.core.ports.ledger import Ledger
from statemachines.core.records.records import ActiveState, CommandRecord, HistoryEntry, TaskRecord
from statemachines.core.records.revert_state import ResourceRevert

from . import active_load, history_rows, history_segments, root_listing, submit_keys
from .batching import matching
from .database import WRITE_OPTION, connect
from .db_errors import guarded
from .dialects import dialect_of
from .ledger import SqlLedger, TableLedger, check_row_type, ledger_tables
from .record_rows import command_of, entities_of, revert_of, task_of
from .schema import (
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
from .schema_version import ensure_schema
from .sql_transaction import SqlTransaction
from .wakeups import CHANNEL, WakeupHub, Wakeups


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
        self.dialect = dialect_of(engine)
        self._wakeups = WakeupHub(self._listening_connection
                                  if self.dialect.listens(engine) else None)

    def create_schema(self) -> None:
        """Create the schema if the database is empty; refuse a foreign, older or newer one.
        The ledgers' tables are created too, where missing.
        """
        ensure_schema(self.engine, self.url, create=True)
        self._create_ledger_tables()

    def check_schema(self) -> None:
        """Refuse a database without endaction's current schema, writing nothing to it (but
        the registered ledgers' missing tables).
        """
        ensure_schema(self.engine, self.url, create=False)
        self._create_ledger_tables()

    def _create_ledger_tables(self) -> None:
        tables = ledger_tables(self.ledgers.values())
        if not tables:
            return
        with self._guard("create the ledgers' tables"), \
                self.engine.connect().execution_options(**{WRITE_OPTION: True}) as conn, \
                conn.begin():
            # Workers starting together would race CREATE TABLE; the schema lock serialises
            # them, as for migrations.
            self.dialect.lock_schema(conn)
            MetaData().create_all(conn, tables=tables, checkfirst=True)

    def dispose(self) -> None:
        self.engine.dispose()

    def database_time(self) -> float:
        """The database server's clock, for every worker's leases and deadlines to agree on
        (a SQLite file has no server: its clock is this machine's).
        """
        if not self.dialect.has_server_clock:
            return time.time()
        with self._guard("read the database's clock"), self.engine.connect() as conn:
            return self.dialect.read_clock(conn)

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
            if tx.made_work:
                self.dialect.notify(conn, CHANNEL)
        if tx.made_work:
            self._wakeups.notice()

    def wakeups(self) -> Wakeups:
        """An ear for work made by other transactions (persistence/wakeups.py): this
        process's always, other processes' on PostgreSQL. Close it when done.
        """
        return self._wakeups.listen()

    def _listening_connection(self) -> Any:
        """A connection of the pool's making (same arguments, same TLS) taken out of it for
        good, in autocommit: LISTEN holds it for as long as the worker runs.
        """
        pooled = self.engine.raw_connection()
        connection = pooled.driver_connection
        pooled.detach()
        if connection is None:
            raise InvalidConfiguration(f"{self.url} gave no driver connection to listen on")
        connection.rollback()
        connection.autocommit = True
        return connection

    # ------------------------------------------------------------------ start-up
    def load_active(self, roots: Collection[str] | None = None) -> ActiveState:
        """Every unfinished command and task outside held roots (or of `roots` only), read as
        of one moment (on PostgreSQL a repeatable-read snapshot; on SQLite the read
        transaction is one).
        """
        with self._guard("load unfinished work"), self.engine.connect() as connection:
            return active_load.load_active(self.dialect.snapshot(connection), roots)

    # ------------------------------------------------------------------ leases
    def claim_roots(self, owner: str, now: float, until: float, limit: int,
                    parked_too: bool = False) -> list[str]:
        """Lease up to `limit` free or lapsed roots to `owner` until `until`, oldest first,
        skipping held roots and rows another worker is claiming right now (SKIP LOCKED on
        PostgreSQL; SQLite serialises writers anyway); parked ones too if asked.
        """
        with self.transaction() as tx:
            return tx.claim_roots(owner, now, until, limit, parked_too)

    def reclaim_roots(self, owner: str, until: float) -> list[str]:
        """Extend every lease `owner` still holds (a worker restarted under the same name
        gets its roots back at once, without waiting for them to lapse).
        """
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

    def list_roots(self, *, status: str | None = None, type_name: str | None = None,
                   since: float | None = None, before: tuple[float, str] | None = None,
                   limit: int = 50) -> list[CommandRecord]:
        """Root commands newest first (created_at, then id, descending), `limit` at most:
        of that status, of that type, created at `since` or later, and after `before`, the
        (created_at, id) of the previous page's last root. Every page is an index range
        (persistence/root_listing.py), the hundredth as cheap as the first.
        """
        if limit < 1:
            raise InvalidConfiguration(f"list_roots: limit must be at least 1, not {limit}")
        with self._guard("list root commands"), self.engine.connect() as conn:
            return root_listing.list_roots(conn, status=status, type_name=type_name,
                                           since=since, before=before, limit=limit)

    def root_by_key(self, key: str) -> CommandRecord | None:
        """The root submitted under `key`, if one was."""
        with self._guard(f"read the root of submit key {key!r:.80}"), \
                self.engine.connect() as conn:
            return submit_keys.roots_by_keys(conn, [key]).get(key)

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
        not held.
        """
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
            return command_of(found) if found is not None else None

    def tree(self, root_id: str) -> tuple[list[CommandRecord], list[TaskRecord]]:
        with self._guard(f"read the tree of {root_id}"), self.engine.connect() as conn:
            cmds = [command_of(r) for r in conn.execute(
                select(commands).where(commands.c.root_id == root_id)
                .order_by(commands.c.created_at)).mappings()]
            task_rows = list(conn.execute(
                select(async_tasks).where(async_tasks.c.root_command_id == root_id)
                .order_by(async_tasks.c.created_at)).mappings())
            entities = entities_of(conn, [r["id"] for r in task_rows])
            return cmds, [task_of(r, entities.get(r["id"], ())) for r in task_rows]

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
            yield revert_of(r)

    def count_reverts(self, state: str) -> int:
        """How many resources are in `state` (a RevertState), for a metrics scrape: one
        count inside the database (a scan of the table, never a load of its rows).
        """
        query = select(func.count()).select_from(resource_reverts).where(
            resource_reverts.c.state == state)
        with self._guard(f"count resources {state}"), self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())



def open_store(url: str, create: bool = True, busy_timeout_ms: int = 10_000,
               ledgers: Sequence[type[Ledger]] = ()) -> SqlStore:
    """A store over `url` (a SQLAlchemy URL or a SQLite file path), its schema checked.

    With `create`, an empty database gets the schema (in one transaction); without it, an
    empty one is refused (`NoSchema`). Either way a foreign database is refused
    (`NotAnEndactionDatabase`) and an older or newer schema too (`SchemaMismatch`), before
    anything is written.
    """
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



#: 50,000 bytes, and the store's own ids are 64 characters at most.
_LIKE_WITHIN = 1_000


def _segments(conn: Connection, root_id: str, object_id: str | None = None) -> Iterator[Any]:
    """A root's history segments in the order they were written, fetched one at a time (a
    server-side cursor on PostgreSQL): a 100,000-disk tree's history is 220 MB of JSON.
    With `object_id`, only the segments whose text holds it: the database scans the text
    (a LIKE may match more, never less; `history_segments.expand` keeps the exact id).
    """
    query = (select(history_table.c.root_id, history_table.c.at, history_table.c.steps,
                    history_table.c.actor)
             .where(history_table.c.root_id == root_id).order_by(history_table.c.id))
    if object_id is not None and len(object_id) <= _LIKE_WITHIN:
        query = query.where(history_table.c.steps.contains(history_segments.quoted(object_id),
                                                           autoescape=True))
    return iter(conn.execution_options(stream_results=True, yield_per=1).execute(query))


