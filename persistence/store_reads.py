"""What the store reads outside a tick: roots, trees, histories, revert states, settings.

Operators' commands (status, list, trace), the web view, metrics scrapes and tests read here,
each in a connection of its own and never inside an engine's transaction: a read costs the
engines nothing but the database's own work, and every database error leaves as the store's
StoreError naming what was being read.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from statemachines.core.errors import InvalidConfiguration
from statemachines.core.records.records import CommandRecord, HistoryEntry, TaskRecord
from statemachines.core.records.revert_state import ResourceRevert

from . import history_rows, history_segments, root_listing, submit_keys
from .batching import matching
from .record_rows import command_of, entities_of, revert_of, task_of
from .schema import (
    async_tasks,
    cancel_requests,
    commands,
    held_roots,
    resource_reverts,
    settings,
    transitions,
)
from .schema import history_segments as history_table


class StoreReads:
    """The read side of `SqlStore`, over its engine."""

    engine: Engine

    def _guard(self, doing: str) -> AbstractContextManager[None]:
        raise NotImplementedError

    def last_root_id(self) -> str | None:
        """The root with the latest `created_at`, or None while there is no root."""
        with self._guard("find the last root command"), self.engine.connect() as conn:
            return conn.execute(
                select(commands.c.id).where(commands.c.parent_id.is_(None))
                .order_by(commands.c.created_at.desc()).limit(1)
            ).scalar()

    def list_roots(self, *, status: str | None = None, type_name: str | None = None,
                   since: float | None = None, before: tuple[float, str] | None = None,
                   limit: int = 50) -> list[CommandRecord]:
        """Root commands newest first (created_at, then id, descending), `limit` at most.

        They are of that status, of that type, created at `since` or later, and after `before`,
        the (created_at, id) of the previous page's last root. Every page is an index range
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

    def cancel_requests(self) -> dict[str, str]:
        """Every cancel request still in its table, by root id, with its reason."""
        with self._guard("list cancel requests"), self.engine.connect() as conn:
            rows = conn.execute(select(cancel_requests.c.root_id, cancel_requests.c.reason))
            return {root_id: reason for root_id, reason in rows}

    def setting(self, key: str) -> str | None:
        """The value stored under `key`, or None where no row has it."""
        with self._guard(f"read setting {key}"), self.engine.connect() as conn:
            value: str | None = conn.execute(
                select(settings.c.value).where(settings.c.key == key)).scalar()
            return value

    def task_versions(self, task_ids: Sequence[str]) -> dict[str, int]:
        """The persisted ones only: an id with no row is missing from the answer."""
        with self._guard("check task versions"), self.engine.connect() as conn:
            found: dict[str, int] = {}
            for condition in matching(conn, async_tasks.c.id, task_ids):
                rows = conn.execute(select(async_tasks.c.id, async_tasks.c.version)
                                    .where(condition))
                found.update((task_id, version) for task_id, version in rows)
            return found

    def command(self, command_id: str) -> CommandRecord | None:
        """The command's row as a record, or None where no row has that id."""
        with self._guard(f"read command {command_id}"), self.engine.connect() as conn:
            row = conn.execute(select(commands).where(commands.c.id == command_id)).mappings()
            found = row.first()
            return command_of(found) if found is not None else None

    def tree(self, root_id: str) -> tuple[list[CommandRecord], list[TaskRecord]]:
        """A root's commands and tasks, each in creation order, the tasks with their entities."""
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
        """Rows of schema 0005 and before, then the root's segments, streamed."""
        with self._guard(f"read the history of {root_id}"), self.engine.connect() as conn:
            found = list(history_rows.expand(conn.execute(
                select(transitions).where(transitions.c.root_id == root_id)
                .order_by(transitions.c.id)).mappings()))
            found += history_segments.expand_all(_segments(conn, root_id))
            return found

    def reverts(self) -> Iterator[ResourceRevert]:
        """Every revert state, all read before the first is yielded (no connection held)."""
        with self._guard("list revert states"), self.engine.connect() as conn:
            rows = list(conn.execute(select(resource_reverts)).mappings())
        for r in rows:
            yield revert_of(r)

    def count_reverts(self, state: str) -> int:
        """How many resources are in `state` (a RevertState), for a metrics scrape.

        It is one count inside the database (a scan of the table, never a load of its rows).
        """
        query = select(func.count()).select_from(resource_reverts).where(
            resource_reverts.c.state == state)
        with self._guard(f"count resources {state}"), self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())


def _segments(conn: Connection, root_id: str, object_id: str | None = None) -> Iterator[Any]:
    """A root's history segments in the order they were written, fetched one at a time.

    The cursor is a server-side one on PostgreSQL: a 100,000-disk tree's history is 220 MB of
    JSON. With `object_id`, only the segments whose text holds it: the database scans the text
    (a LIKE may match more, never less; `history_segments.expand` keeps the exact id).
    """
    query = (select(history_table.c.root_id, history_table.c.at, history_table.c.steps,
                    history_table.c.actor)
             .where(history_table.c.root_id == root_id).order_by(history_table.c.id))
    if object_id is not None and len(object_id) <= _LIKE_WITHIN:
        query = query.where(history_table.c.steps.contains(history_segments.quoted(object_id),
                                                           autoescape=True))
    return iter(conn.execution_options(stream_results=True, yield_per=1).execute(query))


#: Ids up to this long are looked for with LIKE, longer ones in Python: SQLite refuses LIKE
#: patterns over 50,000 bytes, and the store's own ids are 64 characters at most.
_LIKE_WITHIN = 1_000
