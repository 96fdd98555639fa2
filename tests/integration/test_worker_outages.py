"""A worker keeps going when PostgreSQL drops its connections mid-tick.

The tick is rolled back, the worker backs off (logging each time), reconnects, and nothing committed
is lost.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import event, text

from persistence import SqlStore, connect
from statemachines import (
    Engine,
    StoreUnavailable,
    Worker,
    WorkerLease,
    submit_root,
)
from statemachines.core.machines.command_machine import TERMINAL_COMMAND_STATES
from statemachines.example.vm import (
    STORAGE_AGENT,
    SimulatedAgent,
    add_vm_parameters,
    image_name,
    vm_registry,
)
from tests.cli.fleet import cut_every_connection
from tests.worlds import images_in, terminal_arrivals

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
ROOTS = 30


def _terminate(url: str, pid: int) -> None:
    """Cut one connection, by its backend's pid."""
    engine = connect(url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        engine.dispose()


def _read(what: object) -> object:
    """A read of the test's own that may itself hit a cut connection: retried, bounded."""
    for _ in range(50):
        with contextlib.suppress(StoreUnavailable):
            return what() if callable(what) else what
        time.sleep(0.1)
    raise AssertionError("the database stayed unavailable")


def test_connections_cut_mid_tick_cost_ticks_and_nothing_else(store: SqlStore,
                                                               caplog: pytest.LogCaptureFixture
                                                               ) -> None:
    if store.engine.dialect.name != "postgresql":
        pytest.skip("cuts PostgreSQL connections")
    url = store.engine.url.render_as_string(hide_password=False)
    agent = SimulatedAgent()
    roots = [submit_root(store, vm_registry(), "AddVmFromTemplate",
                         add_vm_parameters(f"vm{i}", ["template-disk0", "template-disk1"],
                                           [1] if i % 4 == 0 else [])).id
             for i in range(ROOTS)]
    engine = Engine(store, {STORAGE_AGENT: agent}, vm_registry(),
                    lease=WorkerLease(owner="survivor", ttl=30, claim_interval=0.05))
    worker = Worker(engine, interval=0.05, max_backoff=0.4)
    # Cuts from outside land mostly between ticks, where a stale connection is replaced
    # before use; these land inside a tick's transaction, on the very connection writing.
    writes = {"seen": 0, "cut": 0}

    def cut_while_writing(conn: object, cursor: Any, statement: str, *rest: object) -> None:
        if not statement.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")):
            return
        writes["seen"] += 1
        if writes["cut"] < 5 and writes["seen"] % 7 == 0:
            writes["cut"] += 1
            _terminate(url, cursor.connection.info.backend_pid)

    event.listen(store.engine, "before_cursor_execute", cut_while_writing)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    cuts = 0
    deadline = time.monotonic() + 120
    try:
        while True:
            statuses = _read(lambda: [store.command(r).status for r in roots])  # type: ignore[union-attr]
            if all(s in TERMINAL_COMMAND_STATES for s in statuses) and not _read(store.leases):
                break
            assert time.monotonic() < deadline, f"not done after 120 s: {Counter(statuses)}"
            if cuts < 15:
                cuts += 1
                cut_every_connection(url)
            time.sleep(0.07)
    finally:
        worker.stop.set()
        thread.join(timeout=30)
        event.remove(store.engine, "before_cursor_execute", cut_while_writing)
    assert not thread.is_alive()
    assert worker.totals.outages > 0, "no cut hit the worker: the test proved nothing"
    assert "the database is unavailable" in caplog.text
    for root in roots:
        arrivals = terminal_arrivals(store, root)
        assert set(arrivals.values()) == {1}, (root, arrivals)
    created = [r for r in roots if store.command(r).status == "ended_success"]  # type: ignore[union-attr]
    expected = {image_name(store.command(r).parameters["vm"], d)  # type: ignore[union-attr]
                for r in created for d in (0, 1)}
    assert len(created) == ROOTS - len(range(0, ROOTS, 4))
    assert agent.images == expected
    assert {row.id for row in images_in(store)} == expected
    assert store.leases() == []


def test_a_connection_cut_during_the_history_copy_is_a_store_outage(store: SqlStore) -> None:
    """A connection cut during the history's COPY comes out as StoreUnavailable.

    The history goes by COPY on PostgreSQL, below SQLAlchemy: its failures must still come out as
    StoreUnavailable (which a worker waits out), not as a driver exception.
    """
    if store.engine.dialect.name != "postgresql":
        pytest.skip("COPY is PostgreSQL's")
    from statemachines.core.records.records import HistoryEvent, HistoryPath, ObjectKind

    url = store.engine.url.render_as_string(hide_password=False)
    root = submit_root(store, vm_registry(), "AddVmFromTemplate",
                       add_vm_parameters("vm0", ["template-disk0"])).id
    entry = HistoryPath(ObjectKind.COMMAND, root, root, "", 0.0, [(HistoryEvent.CREATE, "x", None)])
    with pytest.raises(StoreUnavailable), \
            store.transaction() as tx:
        tx.write([], [], [], [], [entry])  # opens the connection
        cut_every_connection(url)
        tx.write([], [], [], [], [entry] * 1000)
    assert len(store.history(root)) == 1, "the rolled-back tick wrote nothing"
