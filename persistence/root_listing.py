"""Listing roots newest first, a page at a time, on the partial indexes of schema 0008.

Keyset paging (`before` = the (created_at, id) of the last row shown) costs the same on the
thousandth page as on the first, where OFFSET would read every row it skips. Each filter has
an index whose leading columns it fixes (status, or type) followed by the order's columns,
so a page is an index range read backwards that stops after `limit` rows: `since` and
`before` bound the range, and a filter without an index of its own (the type, when the
status is given too) is checked on the rows the range reads.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Select, select, text, tuple_

from statemachines.core.records.records import CommandRecord

from .record_rows import command_of
from .schema import ROOTS, commands


def roots_query(*, status: str | None = None, type_name: str | None = None,
                since: float | None = None, before: tuple[float, str] | None = None,
                limit: int = 50) -> Select[Any]:
    """The statement of one page (the tests ask the databases to plan it)."""
    query = select(commands).where(text(ROOTS))  # the indexes' own condition, verbatim
    if status is not None:
        query = query.where(commands.c.status == status)
    if type_name is not None:
        query = query.where(commands.c.type == type_name)
    if since is not None:
        query = query.where(commands.c.created_at >= since)
    if before is not None:
        # A row value: both databases seek the index to it, where the equivalent
        # `created_at < t OR (created_at = t AND id < i)` made PostgreSQL read two ranges
        # and sort them.
        query = query.where(tuple_(commands.c.created_at, commands.c.id) < tuple_(*before))
    return query.order_by(commands.c.created_at.desc(), commands.c.id.desc()).limit(limit)


def list_roots(conn: Connection, *, status: str | None = None, type_name: str | None = None,
               since: float | None = None, before: tuple[float, str] | None = None,
               limit: int = 50) -> list[CommandRecord]:
    """One page of roots, newest first (see `SqlStore.list_roots`)."""
    query = roots_query(status=status, type_name=type_name, since=since, before=before,
                        limit=limit)
    return [command_of(row) for row in conn.execute(query).mappings()]
