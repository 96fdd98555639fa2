"""Idempotent submits: a submit key names one root forever.

That holds on a real SQLite file and a real PostgreSQL, across reopening the database and across
processes racing with one key.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from persistence import SqlStore, open_store
from persistence.schema import commands
from statemachines import (
    Command,
    CommandRecord,
    CommandRegistry,
    ExecutionReason,
    InvalidParameters,
    ResourceRef,
    submit_root,
    submit_roots,
)
from statemachines.core.errors import SubmitKeyConflict, SubmitKeyTaken
from statemachines.core.ports.store_protocol import StoreTransaction
from statemachines.core.records.frozen_json import freeze
from statemachines.example.vm import ImageInventory
from tests.conftest import POSTGRES_ENV, drop_endaction_tables


class Order(Command):
    type_name = "Order"


class Refund(Command):
    type_name = "Refund"


def registry() -> CommandRegistry:
    return CommandRegistry([Order, Refund])


def _url(store: SqlStore) -> str:
    return store.engine.url.render_as_string(hide_password=False)


def _rows(store: SqlStore) -> int:
    """Commands in the database, counted there (not from what a submit answered)."""
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(commands)).scalar_one())


def test_the_same_key_and_request_answer_the_same_root_and_write_nothing(
        store: SqlStore) -> None:
    first = submit_root(store, registry(), "Order", {"item": "disk", "count": 2}, key="o-1")
    # Another key order of the same parameters is the same request (canonical JSON).
    again = submit_root(store, registry(), "Order", {"count": 2, "item": "disk"}, key="o-1")
    assert again.id == first.id and again.submit_key == "o-1"
    assert again.created_at == first.created_at
    assert _rows(store) == 1
    assert [r for r, _, _ in store.leases()] == [first.id]
    stored = store.command(first.id)
    assert stored is not None and stored.submit_key == "o-1"
    found = store.root_by_key("o-1")
    assert found is not None and found.id == first.id
    assert store.root_by_key("o-2") is None


def test_without_a_key_every_submit_is_a_new_root(store: SqlStore) -> None:
    first = submit_root(store, registry(), "Order", {"item": "disk"})
    second = submit_root(store, registry(), "Order", {"item": "disk"})
    assert first.id != second.id and first.submit_key is second.submit_key is None
    assert _rows(store) == 2


@pytest.mark.parametrize(("type_name", "parameters", "entity", "differs"), [
    ("Order", {"item": "disk", "count": 3}, None, "other parameters (count differs)"),
    # Equal in Python, not in JSON: what is stored is JSON.
    ("Order", {"item": "disk", "count": 1.0}, None, "other parameters (count differs)"),
    ("Order", {"item": "disk", "count": True}, None, "other parameters (count differs)"),
    ("Order", {"item": "disk", "count": 1, "rush": False}, None,
     "other parameters (rush differs)"),
    ("Refund", {"item": "disk", "count": 1}, None, "is of type Order, not Refund"),
    ("Order", {"item": "disk", "count": 1}, ResourceRef("vm", "v1"),
     "has entity none, not vm/v1"),
])
def test_the_same_key_for_another_request_is_refused_naming_the_root(
        store: SqlStore, type_name: str, parameters: dict[str, Any],
        entity: ResourceRef | None, differs: str) -> None:
    first = submit_root(store, registry(), "Order", {"item": "disk", "count": 1}, key="o-1")
    with pytest.raises(SubmitKeyConflict) as refused:
        submit_root(store, registry(), type_name, parameters, key="o-1", entity=entity)
    assert (refused.value.key, refused.value.root_id) == ("o-1", first.id)
    assert "'o-1'" in str(refused.value) and first.id in str(refused.value)
    assert differs in str(refused.value)
    assert isinstance(refused.value, ValueError)
    assert _rows(store) == 1


def test_another_execution_reason_is_another_request(store: SqlStore) -> None:
    first = submit_root(store, registry(), "Order", {}, key="o-1")
    with pytest.raises(SubmitKeyConflict,
                       match="has execution reason REGULAR_FLOW, not ROLLBACK_FLOW"):
        submit_root(store, registry(), "Order", {}, key="o-1",
                    execution_reason=ExecutionReason.ROLLBACK_FLOW)
    assert store.root_by_key("o-1").id == first.id  # type: ignore[union-attr]


@pytest.mark.parametrize(("key", "says"), [
    ("", "must be a non-empty string"),
    (" o-1", "must not begin or end with whitespace"),
    ("o-1\n", "must not begin or end with whitespace"),
    ("o\t1", "printable"),
    ("o\x001", "printable"),
    ("o\u200b1", "printable"),  # a zero-width space: invisible in every log that shows it
    ("o\ud8001", "printable"),  # a lone surrogate: no encoding stores it
    ("k" * 201, "201 characters long, at most 200"),
    (17, "must be a non-empty string"),
])
def test_bad_keys_are_refused_before_anything_is_written(store: SqlStore, key: Any,
                                                         says: str) -> None:
    with pytest.raises(InvalidParameters, match="submit key") as refused:
        submit_root(store, registry(), "Order", {}, key=key)
    assert says in str(refused.value)
    assert _rows(store) == 0


def test_the_longest_key_and_unicode_keys_are_kept(store: SqlStore) -> None:
    for key in ("k" * 200, "commande n° 17 — été", "注文-17"):
        record = submit_root(store, registry(), "Order", {}, key=key)
        assert store.root_by_key(key).id == record.id  # type: ignore[union-attr]
        assert submit_root(store, registry(), "Order", {}, key=key).id == record.id
    assert _rows(store) == 3


def test_a_batch_mixes_new_known_and_keyless_requests(store: SqlStore) -> None:
    known = submit_root(store, registry(), "Order", {"n": 1}, key="a")
    batch = submit_roots(store, registry(), [("Order", {"n": 1}), ("Order", {"n": 2}),
                                             ("Refund", {"n": 3})], keys=["a", "b", None])
    assert batch[0].id == known.id
    assert [r.submit_key for r in batch] == ["a", "b", None]
    assert len({r.id for r in batch}) == 3
    assert _rows(store) == 3
    again = submit_roots(store, registry(), [("Order", {"n": 2}), ("Order", {"n": 1})],
                         keys=["b", "a"])
    assert [r.id for r in again] == [batch[1].id, known.id]
    assert _rows(store) == 3


def test_a_batch_with_one_conflict_writes_nothing(store: SqlStore) -> None:
    known = submit_root(store, registry(), "Order", {"n": 1}, key="a")
    with pytest.raises(SubmitKeyConflict) as refused:
        submit_roots(store, registry(), [("Order", {"n": 5}), ("Order", {"n": 2})],
                     keys=["new", "a"])
    assert refused.value.root_id == known.id
    assert _rows(store) == 1 and store.root_by_key("new") is None


@pytest.mark.parametrize(("keys", "says"), [
    (["a", "a"], "submit key 'a' is given twice"),
    (["a"], "2 requests and 1 keys"),
])
def test_a_batch_of_keys_that_cannot_name_its_requests_is_refused(
        store: SqlStore, keys: list[str | None], says: str) -> None:
    with pytest.raises(InvalidParameters, match=says):
        submit_roots(store, registry(), [("Order", {}), ("Order", {})], keys=keys)
    assert _rows(store) == 0


def test_keys_survive_reopening_the_database(store: SqlStore) -> None:
    first = submit_root(store, registry(), "Order", {"item": "disk"}, key="o-1")
    url = _url(store)
    store.dispose()
    reopened = open_store(url, create=False, ledgers=[ImageInventory])
    try:
        assert reopened.root_by_key("o-1").submit_key == "o-1"  # type: ignore[union-attr]
        assert submit_root(reopened, registry(), "Order", {"item": "disk"},
                           key="o-1").id == first.id
        with pytest.raises(SubmitKeyConflict):
            submit_root(reopened, registry(), "Order", {"item": "tape"}, key="o-1")
        assert _rows(reopened) == 1
    finally:
        reopened.dispose()


def _keyed_root(command_id: str, key: str) -> CommandRecord:
    return CommandRecord(id=command_id, root_id=command_id, parent_id=None,
                         end_group_id=command_id, type="Order",
                         execution_reason=ExecutionReason.REGULAR_FLOW, parameters=freeze({}),
                         created_at=1.0, updated_at=1.0, submit_key=key)


def test_the_database_itself_refuses_a_second_root_under_one_key(store: SqlStore) -> None:
    """A submit that lost a race meets the unique index, as `SubmitKeyTaken`.

    The transaction is rolled back. Keyless rows (children, most roots) share NULL freely.
    """
    with store.transaction() as tx:
        tx.write([_keyed_root("r1", "k")], [], [], [], [])
    with pytest.raises(SubmitKeyTaken, match="submit key"), store.transaction() as tx:
        tx.write([_keyed_root("r2", "other"), _keyed_root("r3", "k")], [], [], [], [])
    assert store.command("r2") is None and _rows(store) == 1
    submit_roots(store, registry(), [("Order", {})] * 3)
    assert _rows(store) == 4


class _Interleaved:
    """A real store that lets a rival submit of the same key commit in the middle of this one.

    Its first keyed look-up is answered, then another client's submit of the same key commits,
    before this submit writes: the race, made to happen every time. (PostgreSQL only: on SQLite the
    look-up holds the write lock, so the other client would wait for this one instead.)
    """

    def __init__(self, store: SqlStore, rival: SqlStore, rival_parameters: dict[str, Any]) -> None:
        self._store = store
        self._rival = rival
        self._rival_parameters = rival_parameters
        self.rival_id: str | None = None
        self.lookups = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    @contextmanager
    def _transaction(self) -> Iterator[StoreTransaction]:
        with self._store.transaction() as tx:
            yield _LookupThenRival(tx, self)

    def transaction(self) -> AbstractContextManager[StoreTransaction]:
        return self._transaction()


class _LookupThenRival:
    def __init__(self, tx: StoreTransaction, owner: _Interleaved) -> None:
        self._tx = tx
        self._owner = owner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tx, name)

    def roots_by_keys(self, keys: Any) -> dict[str, CommandRecord]:
        found = self._tx.roots_by_keys(keys)
        owner = self._owner
        owner.lookups += 1
        if owner.rival_id is None:
            owner.rival_id = submit_root(owner._rival, registry(), "Order",
                                         owner._rival_parameters, key="raced").id
        return found


@pytest.fixture
def postgres_url() -> str:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV}")
    return url


def _fresh_postgres(url: str) -> SqlStore:
    store = open_store(url, ledgers=[ImageInventory])
    drop_endaction_tables(store.engine)
    store.dispose()
    return open_store(url, ledgers=[ImageInventory])


@pytest.mark.postgres
@pytest.mark.parametrize(("rival_parameters", "conflict"), [({"n": 1}, False),
                                                            ({"n": 2}, True)])
def test_a_submit_that_loses_the_race_answers_with_the_winner(
        postgres_url: str, rival_parameters: dict[str, Any], conflict: bool) -> None:
    store = _fresh_postgres(postgres_url)
    rival = open_store(postgres_url, ledgers=[ImageInventory])
    try:
        raced = _Interleaved(store, rival, rival_parameters)
        if conflict:
            with pytest.raises(SubmitKeyConflict) as refused:
                submit_root(raced, registry(), "Order", {"n": 1}, key="raced")  # type: ignore[arg-type]
            assert refused.value.root_id == raced.rival_id
        else:
            record = submit_root(raced, registry(), "Order", {"n": 1}, key="raced")  # type: ignore[arg-type]
            assert record.id == raced.rival_id
        assert raced.lookups == 2, "the write must have met the rival's row and read it"
        assert _rows(store) == 1
    finally:
        rival.dispose()
        store.dispose()


PROCESSES = 8


def _submit_in_child(url: str, start: Barrier, answers: Any) -> None:
    """One client process: open the store, wait for the others, submit the shared key."""
    store = open_store(url, create=False, ledgers=[ImageInventory])
    try:
        start.wait(timeout=60)
        record = submit_root(store, registry(), "Order", {"item": "disk"}, key="shared")
        answers.put(record.id)
    except BaseException as err:
        answers.put(f"error: {type(err).__name__}: {err}")
        raise
    finally:
        store.dispose()


def _race_processes(url: str) -> list[str]:
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(PROCESSES)
    answers = context.Queue()
    processes = [context.Process(target=_submit_in_child, args=(url, start, answers))
                 for _ in range(PROCESSES)]
    for process in processes:
        process.start()
    found = [answers.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0, found
    return found


@pytest.mark.slow
@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgres",
                                                             marks=pytest.mark.postgres)])
def test_processes_submitting_one_key_at_once_make_one_root(database: str,
                                                            tmp_path: Path) -> None:
    if database == "sqlite":
        url = str(tmp_path / "race.db")
        open_store(url, ledgers=[ImageInventory]).dispose()
    else:
        url = os.environ.get(POSTGRES_ENV, "")
        if not url:
            pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV}")
        _fresh_postgres(url).dispose()
    answers = _race_processes(url)
    assert len(answers) == PROCESSES and len(set(answers)) == 1, answers
    store = open_store(url, create=False, ledgers=[ImageInventory])
    try:
        assert _rows(store) == 1
        assert store.root_by_key("shared").id == answers[0]  # type: ignore[union-attr]
        assert [r for r, _, _ in store.leases()] == [answers[0]]
    finally:
        store.dispose()
