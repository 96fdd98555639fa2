"""Worker fleets as real processes, for the chaos tests.

A fresh PostgreSQL database with the VM example's templates, worker processes with a log each, and
the progress and ends-once checks read from the database alone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import pytest
from sqlalchemy import text

from persistence import SqlStore, connect
from statemachines.core.machines.command_machine import TERMINAL_COMMAND_STATES
from statemachines.example.vm import LocalDiskAgent
from tests.conftest import POSTGRES_ENV, drop_endaction_tables
from tests.worlds import terminal_arrivals

TEMPLATES = 3
# Submits `count` VM roots with random disks and random copy failures, a little apart.
SUBMIT = """
import random, sys, time
from persistence import open_store
from statemachines import submit_root
from statemachines.example.vm import ImageInventory, add_vm_parameters, vm_registry
url, count, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
pause = float(sys.argv[4]) if len(sys.argv) > 4 else 0.03
rng = random.Random(seed)
store = open_store(url, create=False, ledgers=[ImageInventory])
registry = vm_registry()
for i in range(count):
    disks = rng.randint(1, 3)
    sources = [f"template-disk{rng.randrange(3)}" for _ in range(disks)]
    fail = [d for d in range(disks) if rng.random() < 0.2]
    submit_root(store, registry, "AddVmFromTemplate",
                add_vm_parameters(f"vm{seed}-{i}", sources, fail))
    time.sleep(rng.uniform(0, pause))
store.dispose()
"""


def postgres_url() -> str:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV}")
    return url


def fresh_database(url: str, storage: Path) -> None:
    """An empty endaction schema at `url`, and the templates in `storage`."""
    engine = connect(url)
    drop_endaction_tables(engine)
    engine.dispose()
    subprocess.run([sys.executable, "-m", "statemachines.cli", "db", "upgrade", "--db", url],
                   check=True, capture_output=True)
    agent = LocalDiskAgent(storage)
    for index in range(TEMPLATES):
        agent.ensure_template(f"template-disk{index}", 256 << 10)
    agent.close()


def submitter(url: str, count: int, seed: int, pause: float = 0.03) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", SUBMIT, url, str(count), str(seed),
                             str(pause)], stderr=subprocess.PIPE, text=True)


class Workers:
    """`endaction worker` processes by name, each with a log file; restartable."""

    def __init__(self, url: str, storage: Path, logs: Path, *, lease_ttl: float = 3,
                 agent: Sequence[str] = ()) -> None:
        """A fleet on `url` and `storage`, with no worker started yet.

        `agent`: the workers' agent options; by default `--storage STORAGE` (the agent in each
        worker's own process).
        """
        self.url, self.storage, self.logs, self.lease_ttl = url, storage, logs, lease_ttl
        self.agent = list(agent) or ["--storage", str(storage)]
        self.running: dict[str, subprocess.Popen[str]] = {}
        self.log_of: dict[str, Path] = {}
        self._files: list[IO[str]] = []

    def start(self, name: str, *extra: str, env: dict[str, str] | None = None) -> None:
        self.log_of[name] = self.logs / f"{name}-{len(self._files)}.log"
        log = self.log_of[name].open("w")
        self._files.append(log)
        self.running[name] = subprocess.Popen(
            [sys.executable, "-m", "statemachines.cli", "worker", "--db", self.url,
             *self.agent, "--name", name, "--interval", "0.2",
             "--lease-ttl", str(self.lease_ttl), "-v", *extra],
            stdout=log, stderr=subprocess.STDOUT, text=True,
            env=None if env is None else {**os.environ, **env})

    def stop(self, name: str, sig: signal.Signals) -> int:
        """Signal a worker and wait for it.

        A SIGTERM that comes while it is still starting (importing, before it holds anything) ends
        it as a plain SIGTERM would.
        """
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

    def check_alive(self) -> None:
        for name, process in self.running.items():
            assert process.poll() is None, f"worker {name} died: {self.tail(name)}"

    def tail(self, name: str) -> str:
        return self.log_of[name].read_text()[-3000:]

    def tracebacks(self) -> list[str]:
        return [f"{log.name} has a traceback: {log.read_text()[-1500:]}"
                for log in self.log_of.values() if "Traceback" in log.read_text()]

    def close(self) -> None:
        for process in self.running.values():
            process.kill()
            process.wait()
        for log in self._files:
            log.close()


def cut_every_connection(url: str) -> int:
    """Cut every other connection to the database, as a failover or a network cut would.

    Every other means all but this function's own: the caller's own are cut too. Returns how many.
    """
    engine = connect(url)
    try:
        with engine.connect() as conn:
            return len(conn.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()")).all())
    finally:
        engine.dispose()


def progress(store: SqlStore) -> tuple[int, int]:
    """(roots ended, roots still leased or waiting for a worker)."""
    ended = sum(store.command(root).status in TERMINAL_COMMAND_STATES  # type: ignore[union-attr]
                for root in store.root_ids())
    return ended, len(store.leases())


def ends_once(store: SqlStore) -> list[str]:
    """From the transitions history: every command reached a terminal state exactly once."""
    problems = []
    for root in store.root_ids():
        arrivals = terminal_arrivals(store, root)
        commands, _ = store.tree(root)
        problems += [f"command {c.id} of root {root} reached a terminal state "
                     f"{arrivals[c.id]} times" for c in commands if arrivals[c.id] != 1]
    return problems
