"""Wake-ups: a transaction that makes work wakes the waiting workers when it commits.

Work here is a root submitted or given back, or a cancel or a cleanup requested. The workers waiting
on `Store.wakeups()` are woken in this process always, and across processes on PostgreSQL
(LISTEN/NOTIFY). A transaction that makes no work, or rolls back, wakes nobody; a listener whose
connection is cut reconnects and wakes once (it may have missed something); a worker woken claims at
once instead of at its next poll. Against a real SQLite file and the real PostgreSQL.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import text

from persistence import SqlStore, connect
from statemachines import CommandRegistry, Engine, Worker, WorkerLease, submit_root
from statemachines.core.machines.command_machine import TERMINAL_COMMAND_STATES
from statemachines.core.operations.operator_requests import request_cancel
from statemachines.example.vm import (
    COPY_VERB,
    STORAGE_AGENT,
    ImageInventory,
    Plan,
    SimulatedAgent,
    add_vm_parameters,
    vm_registry,
)
from tests.conftest import _postgres_store

#: Long enough that nothing here is noticed by polling: only a wake-up is that quick.
SLOW_POLL = 30.0


def _submit(store: SqlStore, name: str = "vm") -> str:
    return submit_root(store, vm_registry(), "AddVmFromTemplate",
                       add_vm_parameters(name, ["template-disk0"], [])).id


def _other_store(store: SqlStore) -> SqlStore:
    """A second store on the same database, as another process would open it."""
    return SqlStore(connect(store.engine.url.render_as_string(hide_password=False)),
                    ledgers=[ImageInventory])


def _listening(wakeups: object, seconds: float = 10.0) -> None:
    """Wait for the listener's first connection (it wakes once when it has one)."""
    assert wakeups.wait(seconds), "the listener never connected"  # type: ignore[attr-defined]


def test_a_submit_wakes_a_listener_of_the_same_store(store: SqlStore) -> None:
    wakeups = store.wakeups()
    try:
        if wakeups.listening:  # type: ignore[attr-defined]
            _listening(wakeups)
        assert not wakeups.wait(0.2)
        _submit(store)
        assert wakeups.wait(5.0)
        assert not wakeups.wait(0.2), "one submit woke it twice"
    finally:
        wakeups.close()


def test_work_that_makes_no_work_for_others_or_rolls_back_wakes_nobody(
        store: SqlStore) -> None:
    root = _submit(store)
    wakeups = store.wakeups()
    try:
        if wakeups.listening:  # type: ignore[attr-defined]
            _listening(wakeups)
        with store.transaction() as tx:  # a worker's lease renewal: nothing for anyone
            tx.renew_leases("w", [root], 10.0)
        with pytest.raises(RuntimeError), store.transaction() as tx:
            tx.request_cancel(root, "rolled back", 1.0)
            raise RuntimeError("the tick failed")
        assert not wakeups.wait(0.5)
        store.request_cancel(root, "by request", 1.0)
        assert wakeups.wait(5.0)
    finally:
        wakeups.close()


@pytest.fixture
def postgres_store() -> Iterator[SqlStore]:
    """LISTEN/NOTIFY is PostgreSQL's; SQLite wakes its own process only."""
    store = _postgres_store()
    yield store
    store.dispose()


@pytest.mark.postgres
def test_on_postgresql_another_process_wakes_it(postgres_store: SqlStore) -> None:
    store = postgres_store
    other = _other_store(store)
    wakeups = store.wakeups()
    try:
        _listening(wakeups)
        started = time.monotonic()
        _submit(other)
        assert wakeups.wait(5.0)
        assert time.monotonic() - started < 5.0
    finally:
        wakeups.close()
        other.dispose()


@pytest.mark.postgres
def test_a_listener_whose_connection_is_cut_reconnects_and_wakes(
        postgres_store: SqlStore) -> None:
    store = postgres_store
    other = _other_store(store)
    wakeups = store.wakeups()
    try:
        _listening(wakeups)
        with other.engine.begin() as conn:
            cut = conn.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE query LIKE 'LISTEN endaction_work%' AND pid <> pg_backend_pid() "
                "AND datname = current_database()"
            )).scalars().all()
        assert cut == [True]
        assert wakeups.wait(10.0), "no wake-up after the connection came back"
        _submit(other)
        assert wakeups.wait(5.0), "a submit after the reconnection did not wake it"
    finally:
        wakeups.close()
        other.dispose()


@contextlib.contextmanager
def _slow_polling_worker(store: SqlStore, agent: SimulatedAgent) -> Iterator[SqlStore]:
    """A real Worker on a thread whose claim_interval is SLOW_POLL.

    Only a wake-up gets it to new work soon. Yields the store to submit through: on SQLite the same
    one (one process), on PostgreSQL another, as from another process. Stopped and joined after.
    """
    engine = Engine(store, {STORAGE_AGENT: agent}, vm_registry(),
                    lease=WorkerLease(owner="w", claim_interval=SLOW_POLL))
    stop = threading.Event()
    thread = threading.Thread(target=Worker(engine, interval=0.05, stop=stop).run)
    submitter = store if store.engine.dialect.name == "sqlite" else _other_store(store)
    thread.start()
    try:
        yield submitter
    finally:
        stop.set()
        thread.join(timeout=30)
        if submitter is not store:
            submitter.dispose()
    assert not thread.is_alive()


def _until(done: Callable[[], bool], deadline: float, why: str) -> None:
    while not done():
        assert time.monotonic() < deadline, why
        time.sleep(0.02)


def _ended(store: SqlStore, root: str) -> Callable[[], bool]:
    return lambda: store.command(root).status in TERMINAL_COMMAND_STATES  # type: ignore[union-attr]


def test_a_worker_woken_runs_a_root_without_waiting_for_its_poll(store: SqlStore) -> None:
    """Its claim interval is 30 s: only a wake-up gets the root done soon."""
    with _slow_polling_worker(store, SimulatedAgent()) as submitter:
        time.sleep(1.0)  # the worker's first claim (nothing there) is behind it
        root = _submit(submitter)
        _until(_ended(store, root), time.monotonic() + SLOW_POLL / 2,
               "the worker waited for its poll")
    assert store.leases() == []


def test_a_cancel_request_wakes_a_busy_worker_that_reads_requests_only_when_woken(
        store: SqlStore) -> None:
    """A worker reads cancel requests when woken and every claim_interval, not in every tick.

    The claim_interval is 30 s here: the request's own wake-up is what gets it acted on soon.
    """
    # The copy runs until it is aborted; the rollback's removals end at once.
    agent = SimulatedAgent(decide=lambda verb, parameters: Plan(polls=10**9)
                           if verb == COPY_VERB else Plan())
    with _slow_polling_worker(store, agent) as submitter:
        root = _submit(submitter)
        deadline = time.monotonic() + SLOW_POLL / 2
        # The worker runs the root: its copy is on the agent.
        _until(lambda: bool(agent.started), deadline, "the worker never started the copy")
        request_cancel(submitter, root, "the operator changed their mind", time.time())
        _until(_ended(store, root), deadline, "the cancel waited for the next poll")
    assert store.command(root).status == "ended_failure"  # type: ignore[union-attr]
    assert agent.aborted and not agent.images


def test_a_root_cancelled_before_a_worker_claims_it_is_refused_not_started(
        store: SqlStore) -> None:
    """A tick that claims reads the cancel requests too, whatever the worker's request clock says.

    A burst of roots claimed batch after batch, one of them cancelled while it waited, never starts
    that one's work.
    """
    agent = SimulatedAgent()
    engine = Engine(store, {STORAGE_AGENT: agent}, vm_registry(),
                    lease=WorkerLease(owner="w", claim_interval=SLOW_POLL, claim_batch=4))
    roots = [_submit(store, f"vm{i}") for i in range(30)]
    victim = roots[12]
    first = engine.tick()  # claims the first batch, reads the (empty) requests
    assert first.committed and victim not in engine._roots
    request_cancel(store, victim, "cancelled while it waited", time.time())
    for _ in range(200):
        engine.tick()
        if store.command(victim).status in TERMINAL_COMMAND_STATES:  # type: ignore[union-attr]
            break
    assert store.command(victim).status == "ended_failure"  # type: ignore[union-attr]
    _, tasks = store.tree(victim)
    assert tasks == [], "the cancelled root's work was started"
    assert store.cancel_requests() == {}


def test_a_held_root_released_is_claimable_at_once_and_wakes_the_workers(
        store: SqlStore) -> None:
    """Releasing a held root frees its lease row and wakes the workers.

    The worker that held it never takes it back, and one of the workers claims it now, not when that
    lease lapses.
    """
    root = _submit(store)
    unknowing = Engine(store, {STORAGE_AGENT: SimulatedAgent()}, CommandRegistry(),
                       lease=WorkerLease(owner="w1"))
    unknowing.tick()  # claims it, cannot run its type: holds it
    assert root in store.held_roots()
    wakeups = store.wakeups()
    try:
        if wakeups.listening:  # type: ignore[attr-defined]
            _listening(wakeups)
        assert store.release_root(root)
        assert wakeups.wait(5.0)
    finally:
        wakeups.close()
    knowing = Engine(store, {STORAGE_AGENT: SimulatedAgent()}, vm_registry(),
                     lease=WorkerLease(owner="w2"))
    knowing.tick()
    assert root in knowing._roots, "the released root waited for the old lease to lapse"


def test_a_root_submitted_by_a_client_whose_clock_runs_ahead_is_claimable_at_once(
        store: SqlStore) -> None:
    root = submit_root(store, vm_registry(), "AddVmFromTemplate",
                       add_vm_parameters("vm", ["template-disk0"], []),
                       clock=lambda: time.time() + 3600).id
    engine = Engine(store, {STORAGE_AGENT: SimulatedAgent()}, vm_registry(),
                    lease=WorkerLease(owner="w"))
    engine.tick()
    assert root in engine._roots
