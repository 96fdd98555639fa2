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

from sqlalchemy import Engine, MetaData, select

from statemachines.core.errors import InvalidConfiguration
from statemachines.core.ports.ledger import Ledger
from statemachines.core.records.records import ActiveState

from . import active_load
from .database import WRITE_OPTION, connect
from .db_errors import guarded
from .dialects import dialect_of
from .ledger import SqlLedger, TableLedger, check_row_type, ledger_tables
from .schema import (
    root_leases,
)
from .schema_version import ensure_schema
from .sql_transaction import SqlTransaction
from .store_reads import StoreReads
from .wakeups import CHANNEL, WakeupHub, Wakeups


class SqlStore(StoreReads):
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
        """Refuse a database without endaction's current schema, writing nothing to it.

        The one thing written is the registered ledgers' tables, where missing.
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
        """Close every connection the pool holds (SQLAlchemy's `Engine.dispose`)."""
        self.engine.dispose()

    def database_time(self) -> float:
        """The database server's clock, for every worker's leases and deadlines to agree on.

        A SQLite file has no server: its clock is this machine's.
        """
        if not self.dialect.has_server_clock:
            return time.time()
        with self._guard("read the database's clock"), self.engine.connect() as conn:
            return self.dialect.read_clock(conn)

    def _guard(self, doing: str) -> AbstractContextManager[None]:
        return guarded(self.url, doing)

    @contextmanager
    def transaction(self) -> Iterator[SqlTransaction]:
        """One tick's transaction, holding the write lock from its start.

        The ledgers' and revert states' buffered changes are written before it commits. One
        that made work sends a wake-up: NOTIFY on PostgreSQL, and this process's listeners once
        it has committed. A database error leaves as the endaction error made of it.
        """
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
        """An ear for work made by other transactions (persistence/wakeups.py).

        It hears this process's work always, other processes' on PostgreSQL. Close it when done.
        """
        return self._wakeups.listen()

    def _listening_connection(self) -> Any:
        """A connection of the pool's making, taken out of it for good, in autocommit.

        It has the pool's arguments and TLS; LISTEN holds it for as long as the worker runs.
        """
        pooled = self.engine.raw_connection()
        connection = pooled.driver_connection
        pooled.detach()
        if connection is None:
            raise InvalidConfiguration(f"{self.url} gave no driver connection to listen on")
        connection.rollback()
        connection.autocommit = True
        return connection

    def load_active(self, roots: Collection[str] | None = None) -> ActiveState:
        """Every unfinished command and task outside held roots, read as of one moment.

        With `roots`, only theirs. On PostgreSQL the read is a repeatable-read snapshot; on
        SQLite the read transaction is one.
        """
        with self._guard("load unfinished work"), self.engine.connect() as connection:
            return active_load.load_active(self.dialect.snapshot(connection), roots)

    def claim_roots(self, owner: str, now: float, until: float, limit: int,
                    parked_too: bool = False) -> list[str]:
        """Lease up to `limit` free or lapsed roots to `owner` until `until`, by root id.

        With the default ids (time-ordered) that is oldest first.

        Held roots are skipped, and so are rows another worker is claiming right now (SKIP
        LOCKED on PostgreSQL; SQLite serialises writers anyway); parked ones are claimed too if
        asked.
        """
        with self.transaction() as tx:
            return tx.claim_roots(owner, now, until, limit, parked_too)

    def reclaim_roots(self, owner: str, until: float) -> list[str]:
        """Extend every lease `owner` still holds, and return its roots.

        A worker restarted under the same name gets its roots back at once, without waiting for
        them to lapse.
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

    def request_cancel(self, root_id: str, reason: str, at: float) -> None:
        """Record the request in a transaction of its own; a second one keeps the first's reason."""
        with self.transaction() as tx:
            tx.request_cancel(root_id, reason, at)

    def release_root(self, root_id: str) -> bool:
        """Let engines work on a held root again, once the fault is fixed.

        False if it was not held; a released root's lease is freed, for any worker to claim.
        """
        with self.transaction() as tx:
            return tx.release_root(root_id)

    def put_setting(self, key: str, value: str) -> None:
        """Set a deployment setting in a transaction of its own, replacing any earlier value."""
        with self.transaction() as tx:
            tx.put_setting(key, value)


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
