"""The stored history holds every transition, however the ticks wrote it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from persistence import SqlStore
from persistence.schema import transitions
from statemachines.core import recorder
from tests.worlds import World, vm_store


def _paths(store: SqlStore, root_id: str) -> Counter[tuple[tuple[str, str, str, str], ...]]:
    """Each object's steps (kind, trigger, source, dest), in order: ids and times aside."""
    steps: dict[str, list[tuple[str, str, str, str]]] = {}
    for h in store.history_of_root(root_id):
        steps.setdefault(h.object_id, []).append((h.object_kind, h.trigger, h.source, h.dest))
    return Counter(tuple(path) for path in steps.values())


def _rows(store: SqlStore) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(transitions)).scalar() or 0)


def _rollback(store: SqlStore) -> str:
    world = World(store)
    root = world.submit_vm(world.engine(), 6, fail=(2,))
    world.engine().run_until_idle()
    return root


def test_history_spilled_in_chunks_mid_tick_is_the_same_history(
        store: SqlStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rollback whose ticks hand their history over every 5 entries (the real chunk is
    250,000) reads back as the same paths as one written whole, only in more rows."""
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
