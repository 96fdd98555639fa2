"""Per-resource revert states inside one tick's transaction, cached and written behind.

Same reasoning as `TableLedger`: the guards read a resource's revert state several
times per tick, and a failing 10,000-disk VM writes 20,000 of them; they are prefetched in bulk
and written with executemany when the tick flushes.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from sqlalchemy import Connection, RowMapping, bindparam, select

from statemachines.core.records.revert_state import ResourceRef, ResourceRevert, RevertState

from .batching import rows_matching
from .bulk import BulkWriter
from .db_errors import guarded
from .dialects.sql_text import placeholder
from .schema import resource_reverts
from .text_columns import storable

_T = resource_reverts.c
_GET = select(resource_reverts).where(
    _T.resource_type == bindparam("rtype"), _T.resource_id == bindparam("rid"),
    _T.owner_id == bindparam("owner"))
_KEY = ("resource_type", "resource_id", "owner_id")
_VALUES = ("state", "attempts", "lost", "last_error", "updated_at")

Key = tuple[ResourceRef, str]


class SqlRevertTable:
    """The revert states one SQL transaction reads and writes, cached for its length.

    A state read once is not read again, and a put is written only when the transaction's
    `flush` runs; the cache dies with the transaction, so another engine's writes are never
    hidden across ticks.
    """

    def __init__(self, conn: Connection, database: str) -> None:
        self._conn = conn
        self._database = database
        self._states: dict[Key, ResourceRevert] = {}
        self._in_db: dict[Key, bool] = {}
        self._dirty: set[Key] = set()
        self._prefetched: set[ResourceRef] = set()  # every owner's row of these is cached
        self._bulk = BulkWriter(conn, database)

    def prefetch(self, resources: Iterable[ResourceRef]) -> None:
        """Cache every owner's revert state of these resources, read in bulk by type.

        After it, a `get` of one of them reads nothing: a state with no row is none.
        """
        with guarded(self._database, "read revert states"):
            self._prefetch(resources)

    def _prefetch(self, resources: Iterable[ResourceRef]) -> None:
        missing = [r for r in set(resources) if r not in self._prefetched]
        by_type: dict[str, list[str]] = {}
        for ref in missing:
            by_type.setdefault(ref.type, []).append(ref.id)
        columns = ("resource_id", "owner_id", *_VALUES)
        mark = placeholder(self._conn)
        for resource_type, ids in sorted(by_type.items()):
            for resource_id, owner, state, attempts, lost, last_error, _ in rows_matching(
                    self._conn, resource_reverts, columns, "resource_id", sorted(ids),
                    f"resource_type = {mark}", (resource_type,)):
                ref = ResourceRef(resource_type, resource_id)
                key = (ref, owner)
                if key not in self._states:
                    self._states[key] = ResourceRevert(ref, owner, RevertState(state),
                                                       attempts, last_error, lost)
                    self._in_db[key] = True
        self._prefetched.update(missing)

    def get(self, resource: ResourceRef, owner: str) -> ResourceRevert:
        """The revert state of `owner`'s resource, this transaction's puts included.

        A resource with no row is in state none; one not prefetched is read by itself.
        """
        key = (resource, owner)
        if key not in self._states:
            row = None
            if resource not in self._prefetched:
                with guarded(self._database, f"read the revert state of {resource}"):
                    row = self._conn.execute(_GET, {"rtype": resource.type, "rid": resource.id,
                                                    "owner": owner}).mappings().first()
            self._in_db[key] = row is not None
            self._states[key] = (_revert(resource, row) if row is not None
                                 else ResourceRevert(resource, owner))
        return self._states[key]

    def put(self, revert: ResourceRevert) -> None:
        """Replace a revert state, written when the transaction flushes."""
        self.get(revert.resource, revert.owner)
        key = (revert.resource, revert.owner)
        self._states[key] = revert
        self._dirty.add(key)

    def flush(self) -> None:
        """Write the changed revert states: an update for a row there is, an insert otherwise.

        They go in bulk (`BulkWriter`), stamped with this moment as their `updated_at`.
        """
        now = time.time()
        inserts, updates = [], []
        for key in sorted(self._dirty, key=lambda k: (str(k[0]), k[1])):
            revert = self._states[key]
            values = (revert.state, revert.attempts, revert.lost, storable(revert.last_error),
                      now)
            where = (revert.resource.type, revert.resource.id, revert.owner)
            if self._in_db[key]:
                updates.append((*values, *where))
            else:
                inserts.append((*where, *values))
                self._in_db[key] = True
        if updates:
            self._bulk.update(resource_reverts, _VALUES, _KEY, updates, "update revert states")
        if inserts:
            self._bulk.insert(resource_reverts, (*_KEY, *_VALUES), inserts,
                              "insert revert states")
        self._dirty.clear()


def _revert(ref: ResourceRef, row: RowMapping) -> ResourceRevert:
    return ResourceRevert(ref, row["owner_id"], RevertState(row["state"]), row["attempts"],
                          row["last_error"], row["lost"])
