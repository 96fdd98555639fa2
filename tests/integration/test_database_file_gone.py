"""A SQLite store whose file is deleted, moved away or replaced while it is open.

The next use of the store says so (`DatabaseReplaced`, from persistence/database.py), no new file is
made at the path, whatever is put there later reads as itself (not through the old file's
write-ahead log), and a worker stops rather than waiting for a file that will not come back. The
processes' side (one `Error:` line, exit 1, the storage kept) is in
tests/cli/test_database_deleted.py.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from persistence import SqlStore
from persistence.database import DatabaseReplaced
from statemachines import Engine, StoreUnavailable, TickReport, Worker, WorkerLease
from statemachines.example.vm import (
    STORAGE_AGENT,
    SimulatedAgent,
    add_vm_parameters,
    vm_registry,
)
from tests.worlds import vm_store


def _store_with_work(path: Path) -> SqlStore:
    store = vm_store(str(path))
    store.put_setting("which", "the first")
    return store


def _integrity(path: Path) -> tuple[str | None, str | None]:
    """What a fresh store at `path` reads: its "which" setting, and SQLite's own check."""
    store = vm_store(str(path), create=False)
    try:
        with store.engine.connect() as conn:
            checked = conn.execute(text("PRAGMA integrity_check")).scalar()
        return store.setting("which"), checked
    finally:
        store.dispose()


def test_a_deleted_file_is_said_so_and_never_made_again(tmp_path: Path) -> None:
    path = tmp_path / "e.db"
    store = _store_with_work(path)
    try:
        with store.engine.connect(), store.engine.connect():
            pass  # two connections in the pool, both on the file about to go
        path.unlink()  # as `rm` does: its -wal and -shm stay
        for attempt in range(6):  # the pooled connections, then new ones
            with pytest.raises(DatabaseReplaced, match="deleted") as raised:
                if attempt % 2:
                    store.setting("which")
                else:
                    store.put_setting("which", "lost")
            assert str(path) in str(raised.value) and raised.value.path == str(path)
            assert not isinstance(raised.value, StoreUnavailable), "no outage to wait out"
            assert not path.exists(), "SQLite made a new, empty database at the path"
    finally:
        store.dispose()
    assert not path.exists()


def test_a_file_moved_away_keeps_every_commit(tmp_path: Path) -> None:
    path, moved = tmp_path / "e.db", tmp_path / "moved.db"
    store = _store_with_work(path)
    try:
        store.put_setting("last", "committed before the move")
        os.rename(path, moved)
        with pytest.raises(DatabaseReplaced, match="moved away"):
            store.setting("which")
    finally:
        store.dispose()
    assert not path.exists()
    kept = vm_store(str(moved), create=False)
    try:
        assert kept.setting("last") == "committed before the move"
    finally:
        kept.dispose()


def test_a_file_put_in_its_place_is_refused_then_reads_as_itself(tmp_path: Path) -> None:
    path, other = tmp_path / "e.db", tmp_path / "other.db"
    second = vm_store(str(other))
    second.put_setting("which", "the other")
    second.dispose()
    store = _store_with_work(path)
    try:
        os.replace(other, path)
        with pytest.raises(DatabaseReplaced, match="replaced by another file"), \
                store.transaction() as tx:
            tx.put_setting("which", "written over the other")
    finally:
        store.dispose()
    # The first file's log (e.db-wal) would otherwise be read over the other's pages.
    assert _integrity(path) == ("the other", "ok")


def test_a_file_made_by_the_store_is_watched_too(tmp_path: Path) -> None:
    path = tmp_path / "new" / "e.db"
    store = vm_store(str(path))  # created here, by this engine's first connection
    try:
        path.unlink()
        with pytest.raises(DatabaseReplaced):
            store.root_ids()
        assert not path.exists()
    finally:
        store.dispose()


def test_a_worker_stops_at_once_instead_of_backing_off(tmp_path: Path) -> None:
    path = tmp_path / "e.db"
    store = vm_store(str(path))
    engine = Engine(store, {STORAGE_AGENT: SimulatedAgent()}, vm_registry(), clock=time.time,
                    lease=WorkerLease(owner="w1", ttl=30, claim_interval=0.05))
    engine.submit("AddVmFromTemplate", add_vm_parameters("vm1", ["template-disk0"], []))
    ticked = threading.Event()

    def on_tick(_report: TickReport) -> None:
        ticked.set()

    worker = Worker(engine, interval=0.05, max_backoff=0.1, on_tick=on_tick)
    raised: list[BaseException] = []

    def run() -> None:
        try:
            worker.run()
        except BaseException as err:
            raised.append(err)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        assert ticked.wait(10), "the worker never ticked"
        path.unlink()
        thread.join(10)
        assert not thread.is_alive(), "the worker kept going on a deleted database file"
    finally:
        worker.stop.set()
        thread.join(10)
        store.dispose()
    assert len(raised) == 1 and isinstance(raised[0], DatabaseReplaced), raised
    assert worker.totals.outages == 0
    assert not path.exists()
