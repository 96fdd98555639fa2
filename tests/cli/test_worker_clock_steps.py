"""Two workers on the real PostgreSQL, one of them on a machine whose wall clock steps.

It steps an hour forward and then two hours back (stepped_clock.c, preloaded: as an NTP step or a
bad RTC would, the wall clock steps and the monotonic one does not), each step far past the lease.
Leases and deadlines are read on the database's clock, so the stepped worker neither takes the
other's roots (forward) nor writes leases that lapse at once (back). Sampled from the database
through the run: no lease runs further ahead of the database's time than its ttl; judged at the end:
every root ended once, nothing left behind, no lease held.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
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

SHIM = Path(__file__).with_name("stepped_clock.c")
ROOTS = 80
TTL = 3.0
SEED = int(os.environ.get("ENDACTION_WORKERS_SEED", str(random.SystemRandom().randrange(10**6))))


def test_a_worker_whose_clock_steps_past_the_lease_takes_nothing_it_should_not(
    tmp_path: Path,
) -> None:
    url = postgres_url()
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        pytest.skip("stepping one process's clock needs a C compiler for stepped_clock.c")
    shim = tmp_path / "stepped_clock.so"
    subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-o", str(shim), str(SHIM), "-ldl"],
                   check=True, capture_output=True)
    print(f"seed {SEED}")
    storage = tmp_path / "storage"
    fresh_database(url, storage)
    offset = tmp_path / "clock-offset"
    offset.write_text("0\n")
    stepped = {"LD_PRELOAD": str(shim), "STEP_CLOCK_FILE": str(offset)}
    store = vm_store(url, create=False)
    workers = Workers(url, storage, tmp_path, lease_ttl=TTL)
    furthest = 0.0  # how far past the database's time a lease ran, at worst
    try:
        workers.start("steady", "--max-roots", "8")
        workers.start("stepped", "--max-roots", "8", env=stepped)
        submitting = submitter(url, ROOTS, SEED, pause=0.1)
        started = time.monotonic()
        steps = [(2.0, "3600\n"), (5.0, "-3600\n")]  # an hour ahead, then an hour behind
        deadline = started + 240
        while True:
            elapsed = time.monotonic() - started
            if steps and elapsed >= steps[0][0]:
                offset.write_text(steps.pop(0)[1])
            now = store.database_time()
            furthest = max([furthest, *(expires - now for _, _, expires in store.leases())])
            ended, leased = progress(store)
            if not steps and ended == ROOTS and leased == 0:
                break
            workers.check_alive()
            assert time.monotonic() < deadline, f"seed {SEED}: {ended}/{ROOTS} ended after 240 s"
            time.sleep(0.2)
        _, errors = submitting.communicate(timeout=60)
        assert submitting.returncode == 0, errors
        stepped_log = workers.tail("stepped")
        for name in list(workers.running):
            assert workers.stop(name, signal.SIGTERM) == 0, workers.tail(name)
        problems = judge(store, storage) + ends_once(store) + workers.tracebacks()
    finally:
        workers.close()
        store.dispose()
    assert "claimed" in stepped_log, "the stepped worker took no roots: nothing was tried"
    assert furthest <= TTL + 1.0, f"a lease ran {furthest:.0f} s past the database's time"
    assert problems == [], f"seed {SEED}: " + "; ".join(problems[:20])
