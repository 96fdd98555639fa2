"""Revert states read a page at a time, for views that must stay fast on a large database.

`SqlStore.reverts()` reads every row (what `cleanup` and the end-of-run reports need); a
database of 100,000 roots holds hundreds of thousands of them, so a page that shows what is
left `revert_failed`, or the revert states of one tree, asks only for those rows: the first
by keyset paging newest first (the cursor is the last row's (updated_at, resource type,
resource id, owner)), the second by owner, in the batches `batching.matching` makes.

There is no index on the state (the engine never asks by it outside `cleanup`), so a page of
`revert_failed` rows is one scan of the table inside the database, never a load of it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import select, tuple_

from statemachines.core.records.revert_state import ResourceRevert, RevertState

from .batching import matching
from .db_errors import guarded
from .record_rows import revert_of
from .schema import commands, resource_reverts
from .sql_store import SqlStore

#: (updated_at, resource type, resource id, owner id) of the last row of a page.
RevertCursor = tuple[float, str, str, str]


@dataclass(frozen=True)
class FailedRevert:
    """A resource left revert_failed, with what a reader needs to find its tree."""

    revert: ResourceRevert
    updated_at: float
    root_id: str | None  # None if the owner's row is gone
    owner_type: str | None

    @property
    def cursor(self) -> RevertCursor:
        """The cursor that asks for the page after this row: `before` of the next call."""
        return (self.updated_at, self.revert.resource.type, self.revert.resource.id,
                self.revert.owner)


def failed_reverts_page(store: SqlStore, *, before: RevertCursor | None = None,
                        limit: int = 50) -> list[FailedRevert]:
    """Up to `limit` resources left revert_failed, most recently given up on first.

    The page starts after `before` (the previous page's last row), or at the newest.
    """
    table = resource_reverts
    order = (table.c.updated_at, table.c.resource_type, table.c.resource_id, table.c.owner_id)
    query = (select(table, commands.c.root_id, commands.c.type)
             .outerjoin(commands, commands.c.id == table.c.owner_id)
             .where(table.c.state == RevertState.REVERT_FAILED))
    if before is not None:
        query = query.where(tuple_(*order) < tuple_(*before))
    query = query.order_by(*(column.desc() for column in order)).limit(max(1, limit))
    with guarded(store.url, "list resources left revert_failed"), \
            store.engine.connect() as conn:
        return [FailedRevert(revert_of(row), row["updated_at"], row["root_id"], row["type"])
                for row in conn.execute(query).mappings()]


def reverts_of_owners(store: SqlStore, owners: Collection[str]) -> list[ResourceRevert]:
    """The revert states of what these commands made (one tree's, say)."""
    found: list[ResourceRevert] = []
    with guarded(store.url, "read revert states"), store.engine.connect() as conn:
        for condition in matching(conn, resource_reverts.c.owner_id, sorted(owners)):
            found += [revert_of(row) for row in
                      conn.execute(select(resource_reverts).where(condition)).mappings()]
    return found
