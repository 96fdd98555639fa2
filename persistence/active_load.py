"""Reading the unfinished work back into records.

The engine reads it at start-up, after a rolled-back tick, and for the roots a worker claims
(inside the tick's own transaction, whose lease rows it has locked, so nobody writes those trees
meanwhile).
"""

from __future__ import annotations

from collections.abc import Collection
from operator import attrgetter

from sqlalchemy import Connection, RowMapping, select, text

from statemachines.core.records.records import ActiveState

from .dialects.sql_text import chunked
from .record_rows import command_of, entities_of, task_of
from .schema import ACTIVE_COMMANDS, ACTIVE_TASKS, async_tasks, commands, held_roots


def load_active(conn: Connection, roots: Collection[str] | None = None) -> ActiveState:
    """Every unfinished command and task outside held roots, or of `roots` only."""
    held = select(held_roots.c.root_id)
    # The partial indexes' own conditions, as literal SQL (schema.py says why).
    command_query = select(commands).where(text(ACTIVE_COMMANDS),
                                           commands.c.root_id.not_in(held))
    task_query = select(async_tasks).where(text(ACTIVE_TASKS),
                                           async_tasks.c.root_command_id.not_in(held))
    chunks: list[list[str] | None] = [None] if roots is None else list(chunked(sorted(roots)))
    active = ActiveState()
    task_rows: list[RowMapping] = []
    for chunk in chunks:
        cq, tq = command_query, task_query
        if chunk is not None:
            cq = cq.where(commands.c.root_id.in_(chunk))
            tq = tq.where(async_tasks.c.root_command_id.in_(chunk))
        active.commands += [command_of(r) for r in conn.execute(cq).mappings()]
        task_rows += list(conn.execute(tq).mappings())
    active.commands.sort(key=attrgetter("created_at"))
    task_rows.sort(key=lambda r: r["created_at"])
    entities = entities_of(conn, [r["id"] for r in task_rows])
    active.tasks = [task_of(r, entities.get(r["id"], ())) for r in task_rows]
    return active
