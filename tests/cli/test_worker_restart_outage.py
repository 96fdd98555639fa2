"""A worker restarting while PostgreSQL cuts its connections backs off and starts.

The cuts stand for a failover or a proxy restart, and the worker takes them as it does cuts mid-run;
it once exited 1 when a cut came while it was opening the database. Each trial starts a worker while
every connection to the database is cut every few tens of milliseconds for a random while; the
worker must outlive it, then run the roots submitted meanwhile, and stop cleanly on SIGTERM. Judged
from the database: every root ended once, nothing left, no lease held.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from statemachines import StoreUnavailable, submit_root
from statemachines.example.vm import add_vm_parameters, vm_registry
from tests.cli.fleet import (
    Workers,
    cut_every_connection,
    ends_once,
    fresh_database,
    postgres_url,
    progress,
)
from tests.cli.judge import judge
from tests.worlds import vm_store

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

TRIALS = 6
SEED = int(os.environ.get("ENDACTION_WORKERS_SEED", str(random.SystemRandom().randrange(10**6))))
T = TypeVar("T")


def _retried(read: Callable[[], T]) -> T:
    """A read of the test's own, which the cuts may hit too: retried, bounded."""
    for _ in range(20):
        try:
            return read()
        except StoreUnavailable:
            time.sleep(0.2)
    return read()


def test_a_worker_started_while_its_connections_are_cut_backs_off_and_runs(
    tmp_path: Path,
) -> None:
    url = postgres_url()
    rng = random.Random(SEED)
    print(f"seed {SEED}")
    storage = tmp_path / "storage"
    fresh_database(url, storage)
    store = vm_store(url, create=False)
    workers = Workers(url, storage, tmp_path)
    cuts = 0
    try:
        for trial in range(TRIALS):
            _retried(lambda trial=trial: submit_root(  # type: ignore[misc]
                store, vm_registry(), "AddVmFromTemplate", add_vm_parameters(
                    f"vm{trial}", ["template-disk0", "template-disk1"],
                    [1] if trial % 2 else [])))
            name = f"w{trial % 2}"  # restarted under its name: it takes its roots back
            workers.start(name)
            # The first storm outlasts the worker's start-up; the others end at random.
            storm_until = time.monotonic() + (4.0 if trial == 0 else rng.uniform(0.5, 3.0))
            while time.monotonic() < storm_until:
                cuts += cut_every_connection(url)
                time.sleep(rng.uniform(0.01, 0.06))
            deadline = time.monotonic() + 60
            while _retried(lambda: progress(store)) != (trial + 1, 0):
                workers.check_alive()
                assert time.monotonic() < deadline, (
                    f"seed {SEED} trial {trial}: the roots did not end: {workers.tail(name)}")
                time.sleep(0.2)
            assert workers.stop(name, signal.SIGTERM) == 0, workers.tail(name)
        problems = judge(store, storage) + ends_once(store) + workers.tracebacks()
    finally:
        workers.close()
        store.dispose()
    at_start = sum("unavailable at start" in log.read_text() for log in tmp_path.glob("w*.log"))
    print(f"{cuts} connections cut over {TRIALS} starts; {at_start} start(s) backed off")
    assert at_start > 0, "no cut reached a worker while it started: nothing was tried"
    assert problems == [], f"seed {SEED}: " + "; ".join(problems[:20])
