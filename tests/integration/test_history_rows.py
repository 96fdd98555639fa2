"""The stored history holds every transition, however the ticks wrote it."""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from persistence import SqlStore, store_reads
from persistence import history_segments as history_segments_module
from persistence.dialects import SQLiteDialect
from persistence.schema import history_segments
from statemachines import CommandStatus, StoreUnavailable
from statemachines.core.tick import recorder
from tests.worlds import World, vm_store


def _paths(store: SqlStore, root_id: str) -> Counter[tuple[tuple[str, str, str, str], ...]]:
    """Each object's steps (kind, trigger, source, dest), in order: ids and times aside."""
    steps: dict[str, list[tuple[str, str, str, str]]] = {}
    for h in store.history_of_root(root_id):
        steps.setdefault(h.object_id, []).append((h.object_kind, h.trigger, h.source, h.dest))
    return Counter(tuple(path) for path in steps.values())


def _rows(store: SqlStore) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(history_segments)).scalar() or 0)


def _rollback(store: SqlStore) -> str:
    world = World(store)
    root = world.submit_vm(world.engine(), 6, fail=(2,))
    world.engine().run_until_idle()
    return root


def test_history_spilled_in_chunks_mid_tick_is_the_same_history(
        store: SqlStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rollback whose ticks hand their history over every 5 entries reads back the same.

    The real chunk is 50,000 entries. The history reads back as the same paths as one written whole,
    only in more segments.
    """
    whole = vm_store(str(tmp_path / "whole.db"))
    try:
        expected = _paths(whole, _rollback(whole))
        whole_rows = _rows(whole)
    finally:
        whole.dispose()
    monkeypatch.setattr(recorder, "HISTORY_CHUNK", 5)
    root = _rollback(store)
    assert _paths(store, root) == expected
    assert sum(len(path) for path in expected.elements()) > _rows(store) > whole_rows


def test_a_database_error_while_history_spills_inside_a_hook_aborts_the_tick(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """History spills from wherever the recorder fills up, hooks included.

    A child created or a task started can fill it. A database error there is the database's, so the
    tick rolls back and is tried again; it must not fail the hook's command or hold its root.
    """
    store = vm_store(str(tmp_path / "spill.db"))
    monkeypatch.setattr(recorder, "HISTORY_CHUNK", 3)
    real, failed = SQLiteDialect.insert_rows, []

    def flaky(self: SQLiteDialect, conn: Any, table: Any, *args: Any) -> None:
        if table.name == "history_segments" and not failed:
            failed.append(table.name)
            raise OperationalError("INSERT INTO history_segments", (),
                                   sqlite3.OperationalError("disk I/O error"))
        real(self, conn, table, *args)

    try:
        world = World(store)
        engine = world.engine()
        root = world.submit_vm(engine, 2)
        monkeypatch.setattr(SQLiteDialect, "insert_rows", flaky)
        with pytest.raises(StoreUnavailable, match="disk I/O error"):
            engine.tick()
        assert failed and store.held_roots() == {}
        engine.run_until_idle()
        commands, _ = store.tree(root)
        assert {c.status for c in commands} == {CommandStatus.ENDED_SUCCESS}
        assert [h.trigger for h in store.history(root)][:3] == ["create", "execute", "executed"]
    finally:
        store.dispose()


def test_an_id_too_long_for_a_like_pattern_is_looked_for_in_python(store: SqlStore) -> None:
    """SQLite refuses LIKE patterns over 50,000 bytes, so such an id is looked for without one.

    It is found nowhere, instead of failing as if the database had gone away.
    """
    root = _rollback(store)
    with store.engine.connect() as conn:
        segments = list(store_reads._segments(conn, root, "x" * 60_000))
    assert segments and not list(history_segments_module.expand_all(segments, "x" * 60_000))
    assert store.history("x" * 60_000) == []
