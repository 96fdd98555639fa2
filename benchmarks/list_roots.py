"""Listing roots in a database of a busy deployment, timed on a SQLite file and on PostgreSQL.

The database holds 100,000 roots (and their children); the cases are the first page of each
filter and the hundredth page by keyset cursor.

The database is filled through the store's own write path (`tx.write`, in batches), with what
a year of work leaves: mostly ended roots, some failed, a few in flight, several types in
uneven shares, two children per root, time-ordered ids, every third root submitted with a
key. Each case is timed as a client calls it (`SqlStore.list_roots`: a pooled connection,
the query, the rows made records), once untimed to warm up, then `repeat` times; the median
is reported, with the indexes the database's own plan reads.
"""

from __future__ import annotations

import random
import re
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Select, select

from persistence import SqlStore, open_store
from persistence.batching import matching
from persistence.root_listing import roots_query
from persistence.schema import commands
from statemachines import CommandRecord, CommandStatus, ExecutionReason
from statemachines.core.records.frozen_json import freeze

from .databases import fresh_url

#: Statuses of roots, in the shares a long-running deployment holds them.
STATUSES = ((CommandStatus.ENDED_SUCCESS, 70), (CommandStatus.ENDED_FAILURE, 12),
            (CommandStatus.ROLLBACK_FAILED, 1), (CommandStatus.WAITING, 8),
            (CommandStatus.NOT_STARTED, 4), (CommandStatus.ROLLING_BACK, 3),
            (CommandStatus.ENDING, 2))
TYPES = (("AddVmFromTemplate", 50), ("ProvisionEndpoint", 25), ("RemoveVm", 15),
         ("ResizeDisk", 7), ("MigrateVm", 3))
#: A year of roots, the newest now.
SPAN = 365 * 86_400.0
BATCH = 10_000
PAGES = 100


def _commands(roots: int, now: float, seed: int = 21) -> Iterator[list[CommandRecord]]:
    """Batches of roots with their children, oldest first."""
    rng = random.Random(seed)
    statuses = rng.choices([s for s, _ in STATUSES], [w for _, w in STATUSES], k=roots)
    types = rng.choices([t for t, _ in TYPES], [w for _, w in TYPES], k=roots)
    start = now - SPAN
    batch: list[CommandRecord] = []
    for i in range(roots):
        at = start + SPAN * i / roots + rng.random()
        root_id = f"{int(at * 1000):012x}{rng.getrandbits(80):020x}"
        status = statuses[i]
        ended = status in (CommandStatus.ENDED_SUCCESS, CommandStatus.ENDED_FAILURE)
        batch.append(CommandRecord(
            id=root_id, root_id=root_id, parent_id=None, end_group_id=root_id, type=types[i],
            execution_reason=ExecutionReason.REGULAR_FLOW,
            parameters=freeze({"vm": f"vm-{i}", "disks": [{"source": f"template-{i % 40}"}]}),
            status=status, created_at=at, updated_at=at + (30.0 if ended else 0.0),
            version=4 if ended else 1, step=0 if status == CommandStatus.NOT_STARTED else 1,
            error="copy failed: no space left" if status == CommandStatus.ENDED_FAILURE
            else None,
            submit_key=f"order-{i}" if i % 3 == 0 else None))
        for child in range(2):
            child_id = f"{root_id[:12]}{rng.getrandbits(80):020x}"
            batch.append(CommandRecord(
                id=child_id, root_id=root_id, parent_id=root_id, end_group_id=root_id,
                type="CreateCloneOfTemplate", execution_reason=ExecutionReason.REGULAR_FLOW,
                parameters=freeze({"vm": f"vm-{i}", "source": f"template-{child}"}),
                status=status if ended else CommandStatus.WAITING,
                created_at=at + 0.001 * (child + 1), updated_at=at + 1.0))
        if len(batch) >= BATCH * 3:
            yield batch
            batch = []
    if batch:
        yield batch


def fill(store: SqlStore, roots: int, now: float) -> float:
    """Write the roots; returns the seconds it took."""
    started = time.perf_counter()
    for batch in _commands(roots, now):
        with store.transaction() as tx:
            tx.write(batch, [], [], [], [])
    if store.engine.dialect.name == "postgresql":
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE commands")  # what autovacuum would do
    return time.perf_counter() - started


def _indexes(store: SqlStore, query: Select[Any]) -> str:
    """The indexes the database's plan for the statement reads ("-" if it reads none)."""
    with store.engine.connect() as conn:
        compiled = query.compile(dialect=conn.dialect,
                                 compile_kwargs={"render_postcompile": True})
        if conn.dialect.name == "sqlite":
            params: Any = tuple(compiled.params[n] for n in compiled.positiontup or ())
            rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", params)
        else:
            rows = conn.exec_driver_sql(f"EXPLAIN {compiled}", compiled.params)
        plan = "\n".join(str(row[-1]) for row in rows)
    found = sorted(set(re.findall(r"\bix_commands_\w+", plan)))
    scans = "Seq Scan" in plan or re.search(r"^SCAN commands$", plan, re.MULTILINE)
    return ("+".join(found) or "-") + (" (SCANS THE TABLE)" if scans else "")


def _key_query(store: SqlStore, key: str) -> Select[Any]:
    """The statement `root_by_key` runs (persistence/submit_keys.py)."""
    with store.engine.connect() as conn:
        [condition] = list(matching(conn, commands.c.submit_key, [key]))
    return select(commands).where(condition)


def _median_ms(call: Callable[[], object], repeat: int) -> float:
    call()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e3


def _cases(store: SqlStore, now: float) -> list[tuple[str, dict[str, Any]]]:
    waiting = {"status": CommandStatus.WAITING.value}
    deep, deep_cursor = _cursor(store, PAGES)
    waiting_page, waiting_cursor = _cursor(store, PAGES // 10, **waiting)
    return [("no filter", {}),
            ("status=ended_failure", {"status": CommandStatus.ENDED_FAILURE.value}),
            ("status=not_started", {"status": CommandStatus.NOT_STARTED.value}),
            ("type=ResizeDisk", {"type_name": "ResizeDisk"}),
            ("since=1 day ago", {"since": now - 86_400.0}),
            (f"page {deep} (keyset)", {"before": deep_cursor}),
            (f"status=waiting page {waiting_page}", {**waiting, "before": waiting_cursor})]


def _cursor(store: SqlStore, page: int, **filters: Any) -> tuple[int, tuple[float, str] | None]:
    """The number of the page a client reaches on its way to page `page`, and its cursor.

    The client gets there by reading the pages before it; if there are fewer pages than `page`,
    it stops at the last one, and the number and cursor are that page's.
    """
    before: tuple[float, str] | None = None
    reached = 1
    while reached < page:
        found = store.list_roots(before=before, limit=51, **filters)  # one more: a next?
        if len(found) <= 50:
            break
        before = (found[49].created_at, found[49].id)
        reached += 1
    return reached, before


def run_one(url: str | None, roots: int, repeat: int) -> list[dict[str, Any]]:
    """Every case on one database (SQLite in a temporary folder without `url`)."""
    with tempfile.TemporaryDirectory() as folder:
        store = open_store(fresh_url(url, Path(folder)))
        try:
            now = time.time()
            filled = fill(store, roots, now)
            database = store.engine.dialect.name
            results = []
            for case, filters in _cases(store, now):
                page = store.list_roots(limit=50, **filters)
                results.append({
                    "case": f"list-roots {case}", "database": database, "roots": roots,
                    "median_ms": _median_ms(lambda f=filters: store.list_roots(limit=50, **f),
                                            repeat),
                    "page_rows": len(page), "indexes": _indexes(store, roots_query(limit=50,
                                                                              **filters)),
                    "fill_seconds": filled, "repeat": repeat})
            key = f"order-{(roots // 2) // 3 * 3}"
            results.append({"case": "root_by_key", "database": database, "roots": roots,
                            "median_ms": _median_ms(lambda: store.root_by_key(key), repeat),
                            "page_rows": int(store.root_by_key(key) is not None),
                            "indexes": _indexes(store, _key_query(store, key)),
                            "fill_seconds": filled, "repeat": repeat})
            return results
        finally:
            store.dispose()


def run(roots: int, url: str | None, repeat: int) -> list[dict[str, Any]]:
    """SQLite always; PostgreSQL too when its URL is given."""
    results = run_one(None, roots, repeat)
    if url is not None:
        results += run_one(url, roots, repeat)
    return results
