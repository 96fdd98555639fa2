"""An operator's `cancel` and `cleanup` racing two running workers on the real PostgreSQL.

A stream of roots is submitted while cancels land on random roots (not started, running, rolling
back, just ended) from the library and from `endaction cancel` processes, and two `endaction
cleanup` processes ask at once for a resource a demo left revert_failed. Judged from the database
and the files: every command ended once, nothing left behind (the resource cleaned up, exactly
once), no cancel request or lease left over, every root a cancel reached before it succeeded ended
cancelled.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from persistence import SqlStore
from statemachines import ExecutionReason, NotCancellable, Outcome, RevertState
from statemachines.core.machines.command_machine import TERMINAL_COMMAND_STATES
from statemachines.core.operations.operator_requests import request_cancel
from tests.cli.fleet import (
    Workers,
    ends_once,
    fresh_database,
    postgres_url,
    progress,
    submitter,
)
from tests.cli.judge import judge
from tests.worlds import vm_store

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ROOTS = 60
SEED = int(os.environ.get("ENDACTION_WORKERS_SEED", str(random.SystemRandom().randrange(10**6))))


def _cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "statemachines.cli", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _cancel_at_random(store: SqlStore, rng: random.Random, demo_root: str,
                      asked: dict[str, str], refused: list[str], stop: threading.Event) -> None:
    """An operator cancelling roots at random, mostly recent ones, until `stop`.

    What was accepted (with the root's status then) goes in `asked`, what was refused in `refused`.
    """
    while not stop.wait(rng.uniform(0.05, 0.25)):
        roots = [r for r in store.root_ids() if r != demo_root]
        if not roots:
            continue
        root = rng.choice(roots[-10:] if rng.random() < 0.7 else roots)
        record = store.command(root)
        try:
            request_cancel(store, root, "the operator changed their mind", time.time())
        except NotCancellable as refusal:
            refused.append(str(refusal))
            continue
        asked.setdefault(root, record.status if record else "?")


def test_cancel_and_cleanup_racing_two_workers_leave_nothing(tmp_path: Path) -> None:
    url = postgres_url()
    rng = random.Random(SEED)
    print(f"seed {SEED}")
    storage = tmp_path / "storage"
    fresh_database(url, storage)
    left = subprocess.run([sys.executable, "-m", "statemachines.cli", "demo", "--images", "4",
                           "--fail", "1", "--fail-rollback", "2", "--db", url, "--storage",
                           str(storage), "--json"], capture_output=True, text=True, timeout=120)
    assert left.returncode == 3, left.stderr[-2000:]  # one resource left revert_failed
    demo_root = json.loads(left.stdout)["root"]["id"]
    store = vm_store(url, create=False)
    workers = Workers(url, storage, tmp_path, lease_ttl=5)
    asked: dict[str, str] = {}  # root -> its status when the cancel was accepted
    refused: list[str] = []
    stop = threading.Event()

    canceller = threading.Thread(target=_cancel_at_random, daemon=True,
                                 args=(store, rng, demo_root, asked, refused, stop))
    try:
        workers.start("w1", "--max-roots", "6")
        workers.start("w2", "--max-roots", "6")
        submitting = submitter(url, ROOTS, SEED, pause=0.1)
        canceller.start()
        time.sleep(rng.uniform(1.0, 3.0))
        cleanups = [_cli("cleanup", "--db", url, "--timeout", "120", "--json") for _ in (1, 2)]
        time.sleep(rng.uniform(0.5, 2.0))
        by_cli = [r for r in store.root_ids() if r != demo_root][-3:]
        cancels = [_cli("cancel", root, "--db", url, "--reason", "from the command line")
                   for root in by_cli]
        _, errors = submitting.communicate(timeout=120)
        assert submitting.returncode == 0, errors
        stop.set()
        canceller.join(timeout=30)
        cleaned = [(c.wait(timeout=150), *c.communicate()) for c in cleanups]
        cancelled_by_cli = [(c.wait(timeout=60), c.communicate()[1]) for c in cancels]
        deadline = time.monotonic() + 180
        while progress(store) != (ROOTS + 1, 0):
            workers.check_alive()
            assert time.monotonic() < deadline, f"seed {SEED}: {progress(store)} after 180 s"
            time.sleep(0.3)
        for name in list(workers.running):
            assert workers.stop(name, signal.SIGTERM) == 0, workers.tail(name)
        problems = judge(store, storage) + ends_once(store) + workers.tracebacks()
        commands, _ = store.tree(demo_root)
        undone = [c for c in commands if c.execution_reason == ExecutionReason.ROLLBACK_FLOW
                  and c.outcome == Outcome.REVERTED]
        pending = store.cancel_requests()
        reverts = {r.state for r in store.reverts()}
        outcomes = {root: store.command(root) for root in asked}
    finally:
        stop.set()
        workers.close()
        store.dispose()
    for code, out, err in cleaned:
        assert code == 0, (code, out[-2000:], err[-2000:])
        assert json.loads(out)["leftovers"] == []
    for code, err in cancelled_by_cli:  # accepted, or refused because the root had ended
        assert code == 0 or (code == 2 and "has already ended" in err), err
    # Each cleanup either asked the workers (they held leases) or, with none held at that
    # moment, ran itself beside them; either way the resource was undone once.
    worker_logs = "".join(log.read_text() for log in tmp_path.glob("w*.log"))
    asked_workers = sum("asked them to clean up" in err for _, _, err in cleaned)
    assert worker_logs.count("took a cleanup request") <= asked_workers
    print(f"{asked_workers} cleanup(s) asked the workers")
    assert reverts == {RevertState.REVERTED}, reverts
    # The demo undid 3 of its 4 images; the cleanup undid the 4th, once, whoever ran it.
    assert len(undone) == 4, [(c.type, c.entity_id, c.status) for c in undone]
    assert pending == {}, f"cancel requests left over: {pending}"
    assert problems == [], f"seed {SEED}: " + "; ".join(problems[:20])
    cancelled = [root for root, record in outcomes.items()
                 if record is not None and record.outcome == Outcome.CANCELLED]
    print(f"{len(asked)} cancel(s) accepted, {len(refused)} refused, "
          f"{len(cancelled)} root(s) ended cancelled")
    assert cancelled, "no cancel reached a running root: nothing was tried"
    for root, record in outcomes.items():
        assert record is not None and record.status in TERMINAL_COMMAND_STATES
        if record.outcome == Outcome.SUCCEEDED:
            continue  # the cancel came after its work had succeeded: too late to matter
        assert record.status != "ended_success", (root, record.status, record.outcome)
