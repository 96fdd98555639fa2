"""`endaction cleanup` while two workers run, on a SQLite file and on PostgreSQL.

A demo leaves a resource revert_failed (its delete failed for good in that process), two worker
processes start, and cleanup asks them; one takes the request and reverts the resource. Judged from
the database and the storage directory: nothing left, every command ended once, no lease held.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from persistence import connect
from statemachines import Outcome, RevertState, submit_roots
from statemachines.core.machines.command_machine import TERMINAL_COMMAND_STATES
from statemachines.example.vm import add_vm_parameters, vm_registry
from tests.cli.judge import judge
from tests.conftest import POSTGRES_ENV, drop_endaction_tables
from tests.worlds import vm_store

pytestmark = pytest.mark.slow
# Work that keeps both workers holding leases (4 roots each at a time) for several seconds:
# long enough that cleanup, a process of its own, starts while they do.
BUSY = 80


def _cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "statemachines.cli", *args],
                          capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "fleet.db")
        return
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV}")
    engine = connect(url)
    drop_endaction_tables(engine)
    engine.dispose()
    yield url
    engine = connect(url)
    drop_endaction_tables(engine)
    engine.dispose()


def test_cleanup_is_performed_by_a_worker_while_two_run(db: str, tmp_path: Path) -> None:
    storage = str(tmp_path / "storage")
    left = _cli("demo", "--images", "4", "--fail", "1", "--fail-rollback", "2", "--db", db,
                "--storage", storage, "--json")
    assert left.returncode == 3, left.stderr[-2000:]
    vm = json.loads(left.stdout)["root"]["vm"]
    assert json.loads(left.stdout)["leftovers"] == [f"{vm}-disk2"]
    store = vm_store(db, create=False)
    try:  # work for the workers, so that they hold leases while cleanup runs
        busy = [r.id for r in submit_roots(store, vm_registry(), [
            ("AddVmFromTemplate", add_vm_parameters(f"busy{i}", [f"template-disk{d}"
                                                                 for d in range(3)], []))
            for i in range(BUSY)])]
    finally:
        store.dispose()
    logs = [(tmp_path / f"w{i}.log").open("w") for i in (1, 2)]
    workers = [subprocess.Popen(
        [sys.executable, "-m", "statemachines.cli", "worker", "--db", db, "--name", f"w{i}",
         "--interval", "0.2", "--lease-ttl", "5", "--max-roots", "4", "--storage", storage],
        stdout=log, stderr=subprocess.STDOUT) for i, log in ((1, logs[0]), (2, logs[1]))]
    try:
        store = vm_store(db, create=False)
        try:
            deadline = time.monotonic() + 60
            while not {"w1", "w2"} <= {owner for _, owner, _ in store.leases()}:
                assert time.monotonic() < deadline, "the workers did not take roots"
                time.sleep(0.1)
        finally:
            store.dispose()
        cleaned = _cli("cleanup", "--db", db, "--timeout", "90", "--json")
        store = vm_store(db, create=False)
        try:  # the workers finish their own roots too
            deadline = time.monotonic() + 120
            while store.leases():
                assert time.monotonic() < deadline, "the workers did not finish"
                time.sleep(0.2)
        finally:
            store.dispose()
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        codes = [worker.wait(timeout=60) for worker in workers]
        for log in logs:
            log.close()
    worker_logs = "".join((tmp_path / f"w{i}.log").read_text() for i in (1, 2))
    assert cleaned.returncode == 0, cleaned.stderr[-2000:] + worker_logs[-2000:]
    assert "asked them to clean up 1 resource(s)" in cleaned.stderr
    report = json.loads(cleaned.stdout)
    assert [row["state"] for row in report["retried"]] == [RevertState.REVERTED]
    assert report["leftovers"] == [] and report["still_failed"] == []
    assert codes == [0, 0], worker_logs[-3000:]
    assert worker_logs.count("took a cleanup request") == 1  # exactly one worker did it
    store = vm_store(db, create=False)
    try:
        assert {r.state for r in store.reverts()} == {RevertState.REVERTED}
        root = json.loads(left.stdout)["root"]["id"]
        assert store.command(root).outcome == Outcome.CLEANED_UP  # type: ignore[union-attr]
        # Every command reached a terminal state once: the cleanup's history rows note what
        # happened to a command that had ended (source == dest), they move nothing.
        arrivals = Counter(h.object_id for h in store.history_of_root(root)
                           if h.object_kind == "command" and h.source != h.dest
                           and h.dest in TERMINAL_COMMAND_STATES)
        commands, _ = store.tree(root)
        assert {c.id: arrivals[c.id] for c in commands} == {c.id: 1 for c in commands}
        assert not store.leases()
        assert judge(store, Path(storage)) == []  # the busy VMs' images are theirs
        made = {f"busy{i}-disk{d}.img" for i in range(BUSY) for d in range(3)}
        assert all(store.command(r).status == "ended_success"  # type: ignore[union-attr]
                   for r in busy)
    finally:
        store.dispose()
    assert {p.name for p in (Path(storage) / "images").glob("*.img")} == made
