"""Listing roots newest first, filtered and a page at a time, and always from an index.

On a real SQLite file and a real PostgreSQL; the proof comes from the databases' own plans: every
page is read from an index, never by scanning the commands table.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Select

from persistence import SqlStore
from persistence.root_listing import roots_query
from statemachines import (
    CommandRecord,
    CommandStatus,
    ExecutionReason,
    InvalidConfiguration,
    submit_root,
)
from statemachines.core.records.frozen_json import freeze
from tests.integration.test_submit_keys import registry

TYPES = ("Order", "Refund", "Audit")
STATUSES = (CommandStatus.NOT_STARTED, CommandStatus.WAITING, CommandStatus.ENDED_SUCCESS,
            CommandStatus.ENDED_FAILURE, CommandStatus.ENDING)


def _command(i: int, parent: str | None = None, child: int = 0) -> CommandRecord:
    """Root `i`, or its `child`-th child.

    Roots come in threes that share a moment (the id breaks the tie); children share their root's
    type and status and come later, so that only the listing's own condition keeps them out.
    """
    root_id = f"r{i:05d}"
    command_id = root_id if parent is None else f"{root_id}c{child}"
    at = 1_000.0 + i // 3 + (0.5 if parent else 0.0)
    return CommandRecord(id=command_id, root_id=root_id, parent_id=parent,
                         end_group_id=root_id, type=TYPES[i % len(TYPES)],
                         execution_reason=ExecutionReason.REGULAR_FLOW,
                         parameters=freeze({"n": i}), status=STATUSES[(i // 2) % len(STATUSES)],
                         created_at=at, updated_at=at)


def _fill(store: SqlStore, roots: int, children: int = 2) -> list[CommandRecord]:
    """Write `roots` roots, each with `children` children, by the store's own write path.

    Returns the roots newest first, as the listing must give them.
    """
    made = [_command(i) for i in range(roots)]
    with store.transaction() as tx:
        tx.write(made, [], [], [], [])
        tx.write([_command(i, made[i].id, c) for i in range(roots) for c in range(children)],
                 [], [], [], [])
    return sorted(made, key=lambda r: (r.created_at, r.id), reverse=True)


def _ids(records: list[CommandRecord]) -> list[str]:
    return [r.id for r in records]


def _pages(store: SqlStore, size: int, **filters: Any) -> Iterator[list[CommandRecord]]:
    before: tuple[float, str] | None = None
    while page := store.list_roots(before=before, limit=size, **filters):
        assert len(page) <= size
        yield page
        before = (page[-1].created_at, page[-1].id)


def test_roots_come_newest_first_and_children_never(store: SqlStore) -> None:
    expected = _fill(store, 40)
    listed = store.list_roots(limit=1_000)
    assert _ids(listed) == _ids(expected)
    assert all(r.parent_id is None for r in listed)
    assert _ids(store.list_roots()) == _ids(expected)[:40]
    assert _ids(store.list_roots(limit=5)) == _ids(expected)[:5]
    # A tie of three roots at one moment, broken by id, descending.
    assert _ids(listed)[-3:] == ["r00002", "r00001", "r00000"]
    assert listed[0].parameters == {"n": 39} and listed[0].type == TYPES[39 % 3]


FILTERS: list[dict[str, Any]] = [
    {},
    {"status": CommandStatus.WAITING.value},
    {"type_name": "Refund"},
    {"since": 1_005.0},
    {"status": CommandStatus.ENDED_FAILURE.value, "type_name": "Order"},
    {"status": CommandStatus.NOT_STARTED.value, "since": 1_004.0},
    {"type_name": "Audit", "since": 1_003.0},
    {"status": "no such status"},
    {"type_name": "NoSuchType"},
    {"since": 1e12},
]


def _matches(record: CommandRecord, filters: dict[str, Any]) -> bool:
    return (record.status == filters.get("status", record.status)
            and record.type == filters.get("type_name", record.type)
            and record.created_at >= filters.get("since", record.created_at))


@pytest.mark.parametrize("filters", FILTERS, ids=repr)
def test_filters_keep_exactly_their_roots(store: SqlStore, filters: dict[str, Any]) -> None:
    expected = [r for r in _fill(store, 40) if _matches(r, filters)]
    assert _ids(store.list_roots(limit=1_000, **filters)) == _ids(expected)


def test_since_includes_its_own_moment(store: SqlStore) -> None:
    expected = _fill(store, 12)
    at = expected[4].created_at  # a moment three roots share
    assert _ids(store.list_roots(since=at)) == [
        r.id for r in expected if r.created_at >= at]
    assert len([r for r in expected if r.created_at == at]) == 3


@pytest.mark.parametrize("filters", FILTERS[:7], ids=repr)
@pytest.mark.parametrize("size", [1, 3, 7])  # 3: pages end inside and at the ties' edges
def test_pages_cover_every_root_exactly_once(store: SqlStore, filters: dict[str, Any],
                                             size: int) -> None:
    expected = [r for r in _fill(store, 40) if _matches(r, filters)]
    pages = list(_pages(store, size, **filters))
    assert [r.id for page in pages for r in page] == _ids(expected)
    assert all(len(page) == size for page in pages[:-1])


def test_a_page_after_the_last_root_is_empty_and_roots_submitted_meanwhile_are_on_top(
        store: SqlStore) -> None:
    expected = _fill(store, 6)
    last = expected[-1]
    assert store.list_roots(before=(last.created_at, last.id)) == []
    first_page = store.list_roots(limit=2)
    fresh = submit_root(store, registry(), "Order", {}, key="late")  # now: newer than all
    cursor = (first_page[-1].created_at, first_page[-1].id)
    assert _ids(store.list_roots(before=cursor)) == _ids(expected)[2:]  # the cursor holds
    listed = store.list_roots(limit=1)
    assert _ids(listed) == [fresh.id] and listed[0].submit_key == "late"


@pytest.mark.parametrize("limit", [0, -1])
def test_a_limit_below_one_is_refused(store: SqlStore, limit: int) -> None:
    with pytest.raises(InvalidConfiguration, match="limit must be at least 1"):
        store.list_roots(limit=limit)


# ------------------------------------------------------------------ the databases' plans
PLANNED: list[tuple[dict[str, Any], set[str]]] = [
    ({}, {"ix_commands_roots"}),
    ({"status": "waiting"}, {"ix_commands_roots_status"}),
    ({"type_name": "Refund"}, {"ix_commands_roots_type"}),
    ({"since": 1_500.0}, {"ix_commands_roots"}),
    ({"before": (1_400.0, "r01200")}, {"ix_commands_roots"}),
    ({"status": "waiting", "before": (1_400.0, "r01200")}, {"ix_commands_roots_status"}),
    ({"type_name": "Audit", "since": 1_300.0}, {"ix_commands_roots_type"}),
    ({"status": "ending", "type_name": "Order"},
     {"ix_commands_roots_status", "ix_commands_roots_type"}),
]


def _plan(store: SqlStore, query: Select[Any]) -> list[str]:
    """The plan the database makes for the very statement `list_roots` runs.

    It is planned with its bound parameters and all: a literal in their place could be planned
    otherwise.
    """
    with store.engine.connect() as conn:
        compiled = query.compile(dialect=conn.dialect)
        if conn.dialect.name == "sqlite":
            params = tuple(compiled.params[name] for name in compiled.positiontup or ())
            rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", params)
            return [str(row[-1]) for row in rows]
        # Statistics, as autovacuum keeps them on a live database: without them PostgreSQL
        # takes the table for a handful of rows, for which any plan will do.
        conn.exec_driver_sql("ANALYZE commands")
        # A table this small is cheaper to read whole than through any index, so PostgreSQL
        # would rightly scan it here even though it would not at 100,000 roots; with
        # sequential scans priced out, the plan shows which index the query can use, and
        # a query that no index serves would still show a Seq Scan (or a Sort).
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        rows = conn.exec_driver_sql(f"EXPLAIN {compiled}", compiled.params)
        return [str(row[0]) for row in rows]


@pytest.mark.parametrize(("filters", "indexes"), PLANNED, ids=lambda v: repr(v))
def test_every_page_is_read_from_an_index_never_by_a_scan_of_the_table(
        store: SqlStore, filters: dict[str, Any], indexes: set[str]) -> None:
    _fill(store, 3_000)
    plan = _plan(store, roots_query(limit=50, **filters))
    text = "\n".join(plan)
    used = set(re.findall(r"\bix_commands_\w+", text))
    if store.engine.dialect.name == "postgresql":
        # With statistics, PostgreSQL may rightly walk the roots' own order and check a
        # filter that a third of the roots pass, rather than seek the filter's index.
        indexes = indexes | {"ix_commands_roots"}
    assert used and used <= indexes, text
    if store.engine.dialect.name == "sqlite":
        assert not any(line.startswith("SCAN commands") and "INDEX" not in line
                       for line in plan), text
        assert "TEMP B-TREE" not in text, text  # the index gives the order: no sort
    else:
        assert "Seq Scan" not in text and "Sort" not in text, text
