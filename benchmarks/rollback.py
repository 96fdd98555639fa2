"""The seed's scenario: AddVmFromTemplate with N disks, one copy failing.

Every sibling is reverted by a RemoveImage, its opposite command, the simulated host answering
at once.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import text

from persistence import SqlStore, open_store
from statemachines import Engine
from statemachines.example.vm import (
    STORAGE_AGENT,
    ImageInventory,
    SimulatedAgent,
    add_vm_parameters,
    vm_registry,
)

from .counting import Writes, peak_rss_mb
from .databases import fresh_url


def run(count: int, url: str | None = None) -> dict[str, Any]:
    """One run; `seconds` is the engine's run only (no imports, no set-up)."""
    with tempfile.TemporaryDirectory() as folder:
        store = open_store(fresh_url(url, Path(folder)), ledgers=[ImageInventory])
        try:
            agent = SimulatedAgent()
            engine = Engine(store, {STORAGE_AGENT: agent}, vm_registry())
            sources = [f"template-disk{i}" for i in range(count)]
            root = engine.submit("AddVmFromTemplate",
                                 add_vm_parameters("vm", sources, [count // 2]))
            inserted_before = _rows_in(store)
            history_before = _history_bytes(store)
            writes = Writes(store.engine)
            started = time.perf_counter()
            ticks = engine.run_until_idle(poll_interval=0)
            seconds = time.perf_counter() - started
            # Read before the checks below: they are the harness's work, not the engine's.
            peak = peak_rss_mb()
            if store.engine.dialect.name == "postgresql":
                # Inserts go by COPY there, which no cursor event sees: count the rows.
                for table, count in _rows_in(store).items():
                    writes.rows[("INSERT", table)] += count - inserted_before[table]
            status, opposites = _ended(store, root)
            if agent.images or ImageInventory.read_all(store.engine):
                raise SystemExit("the rollback left images behind: the figures mean nothing")
            return {
                "case": "endaction", "database": store.engine.dialect.name, "count": count,
                "seconds": seconds, "ticks": ticks, "statements": writes.statements,
                "rows_written": writes.rows_written, "rows": writes.by_table(),
                "history_bytes": _history_bytes(store) - history_before,
                "peak_rss_mb": peak, "root_status": status, "opposite_commands": opposites,
            }
        finally:
            store.dispose()


# The tables the engine inserts into by COPY on PostgreSQL (and never deletes from).
_COPIED = ("commands", "async_tasks", "async_task_entities", "history_segments",
           "resource_reverts")


def _ended(store: SqlStore, root: str) -> tuple[str, int]:
    """The root's status and how many opposite commands it ran, counted in SQL.

    Loading the tree as records would hold 20,000 of them again (the peak is read first, but the
    harness must stay light for what runs after it in the same process).
    """
    with store.engine.connect() as conn:
        status = conn.execute(text("SELECT status FROM commands WHERE id = :root"),
                              {"root": root}).scalar_one()
        opposites = conn.execute(text("SELECT count(*) FROM commands WHERE root_id = :root "
                                      "AND type = 'RemoveImage'"), {"root": root}).scalar_one()
    return str(status), int(opposites)


def _rows_in(store: SqlStore) -> dict[str, int]:
    with store.engine.connect() as conn:
        return {table: int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() or 0)
                for table in _COPIED}


def _history_bytes(store: SqlStore) -> int:
    """The length of the history's JSON text: the raw-SQL floor writes as much."""
    with store.engine.connect() as conn:
        return int(conn.execute(text("SELECT coalesce(sum(length(steps)), 0) "
                                     "FROM history_segments")).scalar() or 0)
