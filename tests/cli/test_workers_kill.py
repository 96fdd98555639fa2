"""Three worker processes on the real PostgreSQL, one SIGKILLed and one stopped mid-run.

200 roots with random copy failures are written by a separate process; one worker is killed with
SIGKILL mid-run and restarted (under its name or another), another is stopped with SIGTERM. The end
state is judged from the database and the storage directory alone: every root ended exactly once
(from the transitions history), nothing left behind, no lease held. ENDACTION_WORKERS_SEED replays a
run.
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest

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

ROOTS = 200
SEED = int(os.environ.get("ENDACTION_WORKERS_SEED", str(random.SystemRandom().randrange(10**6))))


def test_three_workers_survive_a_sigkill_and_a_sigterm(tmp_path: Path) -> None:
    url = postgres_url()
    rng = random.Random(SEED)
    print(f"seed {SEED}")
    storage = tmp_path / "storage"
    fresh_database(url, storage)
    store = vm_store(url, create=False)
    workers = Workers(url, storage, tmp_path)
    started = time.monotonic()
    try:
        for name in ("w1", "w2", "w3"):
            workers.start(name)
        submitting = submitter(url, ROOTS, SEED)
        time.sleep(rng.uniform(1.5, 4.0))
        killed_at = progress(store)
        assert workers.stop("w1", signal.SIGKILL) == -signal.SIGKILL
        print(f"SIGKILL w1 after {time.monotonic() - started:.1f} s at {killed_at}")
        time.sleep(rng.uniform(1.0, 3.0))
        stopped_at = progress(store)
        assert workers.stop("w2", signal.SIGTERM) == 0, workers.tail("w2")
        print(f"SIGTERM w2 after {time.monotonic() - started:.1f} s at {stopped_at}")
        assert "gave back" in workers.tail("w2")
        # Restarted under its name it takes its roots back at once; under another, its
        # roots wait for their leases to lapse and go to whichever worker claims them.
        workers.start("w1" if rng.random() < 0.5 else "w4")
        _, errors = submitting.communicate(timeout=120)
        assert submitting.returncode == 0, errors
        deadline = time.monotonic() + 300
        last_said = time.monotonic()
        while True:
            ended, leased = progress(store)
            if ended == ROOTS and leased == 0:
                break
            workers.check_alive()
            if time.monotonic() > deadline:
                raise AssertionError(f"seed {SEED}: {ended}/{ROOTS} ended, {leased} leased "
                                     f"after 300 s; w3: {workers.tail('w3')}")
            if time.monotonic() - last_said > 10:
                print(f"{ended}/{ROOTS} roots ended, {leased} leased")
                last_said = time.monotonic()
            time.sleep(0.5)
        print(f"all {ROOTS} roots ended after {time.monotonic() - started:.1f} s")
        for name in list(workers.running):
            assert workers.stop(name, signal.SIGTERM) == 0, workers.tail(name)
        problems = judge(store, storage) + ends_once(store) + workers.tracebacks()
    finally:
        workers.close()
        store.dispose()
    assert killed_at[0] < ROOTS, "the SIGKILL came after the run: not mid-run"
    assert problems == [], f"seed {SEED}: " + "; ".join(problems[:20])
