"""The SQL store against a real SQLite file and a real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from persistence import SqlStore
from statemachines import (
    CommandRecord,
    CommandStatus,
    ConcurrentModification,
    ExecutionReason,
    ResourceRef,
    ResourceRevert,
    RevertState,
    StoreError,
    TaskStatus,
)
from statemachines.core.records.frozen_json import freeze
from tests.worlds import World, images_in, vm_store


def _waiting(command_id: str) -> CommandRecord:
    return CommandRecord(id=command_id, root_id=command_id, parent_id=None,
                         end_group_id=command_id, type="AddVmFromTemplate",
                         execution_reason=ExecutionReason.REGULAR_FLOW,
                         parameters=freeze({"vm": "v", "disks": [{"source": "s"}]}),
                         status="waiting", created_at=1.0, updated_at=1.0)


def test_claiming_an_end_succeeds_exactly_once(store: SqlStore) -> None:
    with store.transaction() as tx:
        tx.write([_waiting("a"), _waiting("b")], [], [], [], [])
    with store.transaction() as tx:
        assert tx.claim_ends(["a", "b"]) == {"a", "b"}
    with store.transaction() as tx:
        assert tx.claim_ends(["a", "b"]) == set()
    claimed = store.command("a")
    assert claimed is not None and (claimed.status, claimed.version) == (CommandStatus.ENDING, 1)


def test_a_stale_write_is_refused_and_rolled_back(store: SqlStore) -> None:
    record = _waiting("a")
    with store.transaction() as tx:
        tx.write([record], [], [], [], [])
    stale = _waiting("a")
    record.status = "ending"
    with store.transaction() as tx:
        tx.write([], [record], [], [], [])
    stale.status = "executing"
    with pytest.raises(ConcurrentModification), store.transaction() as tx:
        tx.write([], [stale], [], [], [])
    kept = store.command("a")
    assert kept is not None and kept.status == CommandStatus.ENDING


@pytest.mark.parametrize("rows", [3, 120, 12_000])  # row by row; bulk; bulk across chunks
def test_a_stale_write_among_many_is_refused_and_rolled_back(store: SqlStore, rows: int) -> None:
    """One row changed by another writer refuses the whole write and leaves every row as it was.

    That holds however the rows go: one statement each, or one UPDATE from a COPY on PostgreSQL.
    """
    records = [_waiting(f"c{i:05d}") for i in range(rows)]
    with store.transaction() as tx:
        tx.write(records, [], [], [], [])
    stale = _waiting(records[rows // 2].id)
    stale.status, stale.error = "ending", "another engine"
    with store.transaction() as tx:
        tx.write([], [stale], [], [], [])
    for record in records:
        record.status, record.error = "ending", "this engine\x00"
    with pytest.raises(ConcurrentModification, match=f"1 of {rows} commands rows"), \
            store.transaction() as tx:
        tx.write([], records, [], [], [])
    assert [c.error for c in (store.command(records[i].id) for i in (0, rows // 2, rows - 1))
            if c is not None] == [None, "another engine", None]
    for record in records:
        record.version = 0 if record.id != stale.id else 1
    with store.transaction() as tx:
        tx.write([], records, [], [], [])
    written = store.command(records[-1].id)
    assert written is not None and (written.error, written.version) == ("this engine\\0", 1)


def test_revert_states_round_trip(store: SqlStore) -> None:
    image = ResourceRef("image", "d0")
    with store.transaction() as tx:
        assert tx.get_revert(image, "c1") == ResourceRevert(image, "c1")
        tx.put_revert(ResourceRevert(image, "c1", RevertState.REVERTING, 1))
        tx.put_revert(ResourceRevert(image, "c1", RevertState.REVERTED, 1))
    with store.transaction() as tx:
        tx.prefetch([image])
        assert tx.get_revert(image, "c1").state == RevertState.REVERTED
        assert tx.get_revert(image, "c2") == ResourceRevert(image, "c2")
    assert list(store.reverts()) == [ResourceRevert(image, "c1", RevertState.REVERTED, 1)]


def test_parameters_are_immutable_snapshots() -> None:
    source = {"vm": "v", "disks": [{"source": "s"}]}
    record = _waiting("a")
    record.parameters = freeze(source)
    source["vm"] = "changed"
    assert record.parameters["vm"] == "v"
    with pytest.raises(TypeError):
        record.parameters["vm"] = "x"  # type: ignore[index]
    with pytest.raises(TypeError):
        record.parameters["disks"][0]["source"] = "x"


def test_whole_run_with_a_failure(store: SqlStore) -> None:
    world = World(store)
    engine = world.engine()
    root = world.submit_vm(engine, disks=4, fail=(3,))
    engine.run_until_idle()
    commands, tasks = store.tree(root)
    assert next(c.status for c in commands if c.id == root) == CommandStatus.ENDED_FAILURE
    assert sum(c.type == "RemoveImage" for c in commands) == 4
    assert all(t.status == TaskStatus.CLEARED for t in tasks)
    assert images_in(store) == [] and world.agent.images == set()
    assert store.load_active().commands == [] and store.load_active().tasks == []


def test_loaded_records_share_one_string_per_id(store: SqlStore) -> None:
    """As records made in memory do: memory and lookups after a recovery depend on it."""
    world = World(store)
    engine = world.engine()
    world.submit_vm(engine, disks=3)
    engine.tick()
    engine.tick()
    active = store.load_active()
    by_id = {c.id: c for c in active.commands}
    children = [c for c in active.commands if c.parent_id is not None]
    assert children and all(c.parent_id is by_id[c.parent_id].id for c in children)
    assert all(c.root_id is by_id[c.root_id].id for c in active.commands)
    assert active.tasks and all(t.command_id is by_id[t.command_id].id for t in active.tasks)


def test_sqlite_runs_in_wal_mode(sqlite_store: SqlStore) -> None:
    with sqlite_store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"


def test_sqlite_readers_do_not_block_the_writer(tmp_path: Path) -> None:
    store = vm_store(str(tmp_path / "endaction.db"), busy_timeout_ms=50)
    with store.engine.connect() as reader:
        reader.execute(text("SELECT count(*) FROM commands")).scalar()  # holds a read txn
        with store.transaction() as tx:
            tx.write([_waiting("a")], [], [], [], [])
    assert store.command("a") is not None
    store.dispose()


def test_two_writers_asking_for_the_same_cancel_at_once_both_succeed(store: SqlStore) -> None:
    """On PostgreSQL both may see no row under READ COMMITTED: the insert must not collide."""
    import threading

    with store.transaction() as tx:
        tx.write([_waiting("a")], [], [], [], [])
    first_inserted = threading.Event()
    errors: list[BaseException] = []

    def first() -> None:
        try:
            with store.transaction() as tx:
                tx.request_cancel("a", "first", 1.0)
                first_inserted.set()
                threading.Event().wait(0.3)  # hold the uncommitted row
        except BaseException as err:
            errors.append(err)
            first_inserted.set()

    thread = threading.Thread(target=first)
    thread.start()
    first_inserted.wait(5)
    try:
        store.request_cancel("a", "second", 2.0)  # SQLite: waits for the write lock
    except BaseException as err:
        errors.append(err)
    thread.join()
    assert errors == []
    assert store.cancel_requests() == {"a": "first"}


def test_a_status_this_endaction_does_not_know_is_named_not_a_crash(store: SqlStore) -> None:
    with store.transaction() as tx:
        tx.write([_waiting("a")], [], [], [], [])
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE commands SET status = 'half_done' WHERE id = 'a'"))
    with pytest.raises(StoreError, match="row a has status 'half_done'"):
        store.load_active()


def test_a_nan_stored_by_hand_loads_as_it_is(tmp_path: Path) -> None:
    """A NaN stored by hand must not stop every root from loading.

    SQLite keeps JSON as text, so a NaN can be written there by hand (PostgreSQL's json refuses it
    at the door). New parameters with a NaN are refused, but a stored one loads as it is.
    """
    store = vm_store(str(tmp_path / "nan.db"))
    try:
        with store.transaction() as tx:
            tx.write([_waiting("a"), _waiting("b")], [], [], [], [])
        with store.engine.begin() as conn:
            conn.execute(text("""UPDATE commands SET parameters = '{"size": NaN}' """
                              "WHERE id = 'a'"))
        loaded = {c.id: c for c in store.load_active().commands}
        assert sorted(loaded) == ["a", "b"] and loaded["a"].parameters["size"] != 0
    finally:
        store.dispose()


def test_a_longer_id_never_matches_the_row_of_its_prefix(store: SqlStore) -> None:
    """A 65-character id must not be cut to 64 and match the row it is a prefix of.

    Many ids go to PostgreSQL as one array parameter; cast to the column's varchar(64)[], a longer
    id would be cut.
    """
    from sqlalchemy import select

    from persistence.batching import matching
    from persistence.schema import commands

    record = _waiting("x" * 64)
    with store.transaction() as tx:
        tx.write([record], [], [], [], [])
    with store.engine.connect() as conn:
        found = [row.id for condition in matching(conn, commands.c.id, ["x" * 64 + "y", "z"])
                 for row in conn.execute(select(commands.c.id).where(condition))]
    assert found == []
