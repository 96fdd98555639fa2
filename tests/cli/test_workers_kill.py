"""Three worker processes on the real PostgreSQL, 200 roots with random copy failures written
by a separate process; one worker is killed with SIGKILL mid-run and restarted (under its
name or another), another is stopped with SIGTERM. The end state is judged from the database and the
storage directory alone: every root ended exactly once (from the transitions history),
nothing left behind, no lease held. ENDACTION_WORKERS_SEED replays a run."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import pytest

from persistence import SqlStore, connect
from statemachines.core.command_machine import TERMINAL_COMMAND_STATES
from statemachines.example.vm import LocalDiskAgent
from tests.cli.judge import judge
from tests.conftest import POSTGRES_ENV, drop_endaction_tables
from tests.worlds import terminal_arrivals, vm_store

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ROOTS = 200
TEMPLATES = 3
SEED = int(os.environ.get("ENDACTION_WORKERS_SEED", str(random.SystemRandom().randrange(10**6))))
SUBMIT = """
import random, sys, time
from persistence import open_store
from statemachines import submit_root
from statemachines.example.vm import ImageInventory, add_vm_parameters, vm_registry
url, count, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
store = open_store(url, create=False, ledgers=[ImageInventory])
registry = vm_registry()
for i in range(count):
    disks = rng.randint(1, 3)
    sources = [f"template-disk{rng.randrange(3)}" for _ in range(disks)]
    fail = [d for d in range(disks) if rng.random() < 0.2]
    submit_root(store, registry, "AddVmFromTemplate", add_vm_parameters(f"vm{i}", sources, fail))
    time.sleep(rng.uniform(0, 0.03))
store.dispose()
"""


class Workers:
    def __init__(self, url: str, storage: Path, logs: Path) -> None:
        self.url, self.storage, self.logs = url, storage, logs
        self.running: dict[str, subprocess.Popen[str]] = {}
        self.log_of: dict[str, Path] = {}
        self._files: list[IO[str]] = []

    def start(self, name: str) -> None:
        self.log_of[name] = self.logs / f"{name}-{len(self._files)}.log"
        log = self.log_of[name].open("w")
        self._files.append(log)
        self.running[name] = subprocess.Popen(
            [sys.executable, "-m", "statemachines.cli", "worker", "--db", self.url,
             "--storage", str(self.storage), "--name", name, "--interval", "0.2",
             "--lease-ttl", "3", "-v"],
            stdout=log, stderr=subprocess.STDOUT, text=True)

    def stop(self, name: str, sig: signal.Signals) -> int:
        """Signal a worker and wait for it; a SIGTERM that comes while it is still starting
        (importing, before it holds anything) ends it as a plain SIGTERM would."""
        process = self.running.pop(name)
        process.send_signal(sig)
        try:
            code = process.wait(timeout=60)
            if code == -signal.SIGTERM and "starting on" not in self.tail(name):
                return 0
            return code
        except subprocess.TimeoutExpired:
            process.kill()
            raise AssertionError(f"worker {name} did not stop within 60 s of {sig.name}: "
                                 f"{self.tail(name)}") from None

    def tail(self, name: str) -> str:
        return self.log_of[name].read_text()[-3000:]

    def close(self) -> None:
        for process in self.running.values():
            process.kill()
            process.wait()
        for log in self._files:
            log.close()


def _progress(store: SqlStore) -> tuple[int, int]:
    """(roots ended, roots still leased or waiting for a worker)."""
    ended = sum(store.command(root).status in TERMINAL_COMMAND_STATES  # type: ignore[union-attr]
                for root in store.root_ids())
    return ended, len(store.leases())


def _ends_once(store: SqlStore) -> list[str]:
    """From the transitions history: every command reached a terminal state exactly once."""
    problems = []
    for root in store.root_ids():
        arrivals = terminal_arrivals(store, root)
        commands, _ = store.tree(root)
        problems += [f"command {c.id} of root {root} reached a terminal state "
                     f"{arrivals[c.id]} times" for c in commands if arrivals[c.id] != 1]
    return problems


def test_three_workers_survive_a_sigkill_and_a_sigterm(tmp_path: Path) -> None:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV}")
    rng = random.Random(SEED)
    print(f"seed {SEED}")
    engine = connect(url)
    drop_endaction_tables(engine)
    engine.dispose()
    subprocess.run([sys.executable, "-m", "statemachines.cli", "db", "upgrade", "--db", url],
                   check=True, capture_output=True)
    storage = tmp_path / "storage"
    agent = LocalDiskAgent(storage)
    for index in range(TEMPLATES):
        agent.ensure_template(f"template-disk{index}", 256 << 10)
    agent.close()
    store = vm_store(url, create=False)
    workers = Workers(url, storage, tmp_path)
    started = time.monotonic()
    try:
        for name in ("w1", "w2", "w3"):
            workers.start(name)
        submitter = subprocess.Popen([sys.executable, "-c", SUBMIT, url, str(ROOTS), str(SEED)],
                                     stderr=subprocess.PIPE, text=True)
        time.sleep(rng.uniform(1.5, 4.0))
        killed_at = _progress(store)
        assert workers.stop("w1", signal.SIGKILL) == -signal.SIGKILL
        print(f"SIGKILL w1 after {time.monotonic() - started:.1f} s at {killed_at}")
        time.sleep(rng.uniform(1.0, 3.0))
        stopped_at = _progress(store)
        assert workers.stop("w2", signal.SIGTERM) == 0, workers.tail("w2")
        print(f"SIGTERM w2 after {time.monotonic() - started:.1f} s at {stopped_at}")
        assert "gave back" in workers.tail("w2")
        # Restarted under its name it takes its roots back at once; under another, its
        # roots wait for their leases to lapse and go to whichever worker claims them.
        workers.start("w1" if rng.random() < 0.5 else "w4")
        _, errors = submitter.communicate(timeout=120)
        assert submitter.returncode == 0, errors
        deadline = time.monotonic() + 300
        last_said = time.monotonic()
        while True:
            ended, leased = _progress(store)
            if ended == ROOTS and leased == 0:
                break
            for name, process in workers.running.items():
                assert process.poll() is None, f"worker {name} died: {workers.tail(name)}"
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
        problems = judge(store, storage) + _ends_once(store)
        problems += [f"{log.name} has a traceback: {log.read_text()[-1500:]}"
                     for log in tmp_path.glob("w*.log") if "Traceback" in log.read_text()]
    finally:
        workers.close()
        store.dispose()
    assert killed_at[0] < ROOTS, "the SIGKILL came after the run: not mid-run"
    assert problems == [], f"seed {SEED}: " + "; ".join(problems[:20])
