"""Ledgers over your own SQL tables, inside the engine's transaction.

`SqlLedger` is what the SQL store builds for every ledger class you register
(`open_store(url, ledgers=[...])`): it hands you the tick's connection. `TableLedger` adds the
usual case, a table keyed by the resource id, read through a cache and written behind: a tick
of a 10,000-disk VM asks about each image several times (validate, execute, its end, the
guards, the opposite command), and one SELECT per question would dominate the tick, so the
engine prefetches the resources its commands name and the changes go out with executemany
when the tick flushes. The cache lives only as long as the transaction, so another engine's
changes are never hidden across ticks.

For example (the VM example's images, `statemachines/example/vm/inventory.py`)::

    images = Table("images", example_metadata, Column("id", String(200), primary_key=True),
                   Column("vm", String(200)), Column("status", String(32)))

    @dataclass(frozen=True)
    class ImageRow:
        id: str
        vm: str
        status: str

    class ImageInventory(TableLedger[ImageRow]):
        resource_type = "image"
        table = images
        row_type = ImageRow

    store = open_store("demo.db", ledgers=[ImageInventory])   # creates `images` if missing
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, Generic, TypeVar

from sqlalchemy import Connection, Engine, Table, select

from statemachines.core.errors import ConcurrentModification, InvalidConfiguration
from statemachines.core.ports.ledger import Ledger

from .batching import results_matching
from .bulk import BulkWriter
from .db_errors import guarded

Row = TypeVar("Row")


class SqlLedger(Ledger):
    """A ledger bound to the tick's SQLAlchemy connection.

    With no connection (None) it is kept in memory only, for drawings and tests that run hooks
    without a database.

    Attributes:
        tables: the tables this ledger keeps; the store creates any that are missing when it
            opens the database (their migrations are yours: endaction never alters them).
    """

    tables: ClassVar[tuple[Table, ...]] = ()

    def __init__(self, connection: Connection | None, database: str = "memory") -> None:
        self.connection = connection
        self.database = database


class TableLedger(SqlLedger, Generic[Row]):
    """One table keyed by the resource id.

    Rows are `row_type` dataclasses whose fields are the table's columns, read through a cache
    and written when the engine flushes.

    Attributes:
        table: the table; its single-column primary key is the resource id.
        row_type: a frozen dataclass with one field per column.
    """

    table: ClassVar[Table]
    row_type: ClassVar[type[Any]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Take a subclass's `table` as the one it keeps, with its key and column names.

        A table whose primary key is not one column raises InvalidConfiguration as the class is
        defined, before any store opens.
        """
        super().__init_subclass__(**kwargs)
        table = cls.__dict__.get("table")
        if table is not None:
            cls.tables = (table,)
            keys = list(table.primary_key.columns)
            if len(keys) != 1:
                raise InvalidConfiguration(
                    f"{cls.__name__}.table must have a one-column primary key")
            cls._key = keys[0].name
            cls._columns = tuple(c.name for c in table.columns)

    _key: ClassVar[str]
    _columns: ClassVar[tuple[str, ...]]

    def __init__(self, connection: Connection | None, database: str = "memory") -> None:
        super().__init__(connection, database)
        self._rows: dict[str, Row | None] = {}  # None: known to be absent
        self._in_db: dict[str, bool] = {}
        self._dirty: set[str] = set()

    # -- what hooks use -------------------------------------------------------------------
    def get(self, key: str) -> Row | None:
        """The row, or None when there is none."""
        if key not in self._rows:
            found = None
            if self.connection is not None:
                with guarded(self.database, f"read {self.table.name} {key}"):
                    found = self.connection.execute(
                        select(self.table).where(self.table.c[self._key] == key)).mappings().first()
            self._remember(key, self._row(found) if found is not None else None)
        return self._rows[key]

    def put(self, row: Row) -> None:
        """Insert or replace the row (written when the tick flushes)."""
        key = str(getattr(row, self._key))
        self.get(key)
        self._set(key, row)

    def remove(self, key: str) -> bool:
        """Delete the row; False when there was none."""
        if self.get(key) is None:
            return False
        self._set(key, None)
        return True

    def exists(self, resource_id: str) -> bool:
        """Whether the table has the resource's row, read through the tick's cache."""
        return self.get(resource_id) is not None

    # -- what the engine uses -------------------------------------------------------------
    def prefetch(self, resource_ids: Sequence[str]) -> None:
        """Load the rows of the resources not yet cached, in a few bulk SELECTs.

        A row this tick already holds is never read over, so its own changes are kept; a
        resource with no row is remembered as absent, and so is every one when there is no
        connection.
        """
        missing = [i for i in set(resource_ids) if i not in self._rows]
        if not missing or self.connection is None:
            for key in missing:
                self._remember(key, None)
            return
        with guarded(self.database, f"read {self.table.name}"):
            wanted = set(missing)
            at = self._columns.index(self._key)
            for result in results_matching(self.connection, self.table, self._columns,
                                           self._key, sorted(missing)):
                decode = self._decoders(self.connection, result.cursor.description)
                for found in result:
                    key = str(found[at])
                    if key in wanted:  # never over a row this tick already holds
                        self._remember(key, self.row_type(**{
                            name: value if fix is None else fix(value)
                            for name, fix, value in zip(self._columns, decode, found,
                                                        strict=True)}))
            for key in missing:
                if key not in self._rows:
                    self._remember(key, None)

    def _decoders(self, conn: Connection, description: Sequence[Any]) -> list[Any]:
        """What SQLAlchemy would do to each column's value on the way out.

        That is JSON, dates, booleans on SQLite, numerics by their type code on PostgreSQL...:
        the prefetch reads the driver's own tuples.
        """
        dialect = conn.dialect
        return [c.type.dialect_impl(dialect).result_processor(dialect, d[1])
                for c, d in zip(self.table.columns, description, strict=True)]

    def flush(self) -> None:
        """Write the changed rows: deletes, updates and inserts, each as one bulk statement.

        The statements go below SQLAlchemy's per-row work, with the columns' own conversions
        applied first. An update that finds fewer rows than it changes raises
        ConcurrentModification: another transaction changed or removed them under this tick.
        """
        if self.connection is None or not self._dirty:
            self._dirty.clear()
            return
        inserts, updates, deletes = [], [], []
        encode = self._encoders(self.connection)
        others = [i for i, c in enumerate(self._columns) if c != self._key]
        at = self._columns.index(self._key)
        for key in sorted(self._dirty):
            row, was_there = self._rows[key], self._in_db[key]
            if row is None:
                if was_there:
                    deletes.append((key,))
            else:
                values = [getattr(row, c) for c in self._columns]
                values = [v if fix is None else fix(v)
                          for fix, v in zip(encode, values, strict=True)]
                if was_there:
                    updates.append((*[values[i] for i in others], values[at]))
                else:
                    inserts.append(tuple(values))
            self._in_db[key] = row is not None
        bulk = BulkWriter(self.connection, self.database)
        name = self.table.name
        if deletes:
            bulk.delete(self.table, (self._key,), deletes, f"delete from {name}")
        if updates:
            written = bulk.update(self.table, [self._columns[i] for i in others], (self._key,),
                                  updates, f"update {name}")
            if written != len(updates):
                raise ConcurrentModification(
                    f"{len(updates) - written} row(s) of {name} changed or vanished under "
                    "this tick")
        if inserts:
            bulk.insert(self.table, self._columns, inserts, f"insert into {name}")
        self._dirty.clear()

    def _encoders(self, conn: Connection) -> list[Any]:
        """What SQLAlchemy would do to each column's value on the way in."""
        dialect = conn.dialect
        return [c.type.dialect_impl(dialect).bind_processor(dialect) for c in self.table.columns]

    # -- reading outside the engine (reports, tests) --------------------------------------
    @classmethod
    def read_all(cls, engine: Engine) -> list[Row]:
        """Every row, ordered by key, read in a transaction of its own."""
        with guarded(engine.url.render_as_string(hide_password=True), f"list {cls.table.name}"), \
                engine.connect() as conn:
            rows = conn.execute(select(cls.table).order_by(cls.table.c[cls._key])).mappings()
            return [cls._row(r) for r in rows]

    # -- plumbing -------------------------------------------------------------------------
    @classmethod
    def _row(cls, mapping: Any) -> Row:
        row: Row = cls.row_type(**{c: mapping[c] for c in cls._columns})
        return row

    def _remember(self, key: str, row: Row | None) -> None:
        self._rows[key] = row
        self._in_db[key] = row is not None

    def _set(self, key: str, row: Row | None) -> None:
        self._rows[key] = row
        self._dirty.add(key)


def ledger_tables(kinds: Iterable[type[Ledger]]) -> list[Table]:
    """The tables the registered ledger classes keep (SQL ledgers only)."""
    tables: list[Table] = []
    for kind in kinds:
        if issubclass(kind, SqlLedger):
            tables += [t for t in kind.tables if t not in tables]
    return tables


def check_row_type(kind: type[TableLedger[Any]]) -> None:
    """A row type whose fields are not the table's columns is a mistake to name early."""
    fields = {f.name for f in dataclasses.fields(kind.row_type)}
    if fields != set(kind._columns):
        raise InvalidConfiguration(
            f"{kind.__name__}.row_type fields {sorted(fields)} are not the columns of "
            f"{kind.table.name} {sorted(kind._columns)}")
