"""A bounded soak: two workers and a task host on the real PostgreSQL, with random faults.

A steady stream of roots runs for ENDACTION_SOAK_SECONDS (75 by default), with a random fault every
few seconds: a worker SIGKILLed and restarted, a worker stopped past its lease, every database
connection cut, the host stopped for a while. The memory (RSS) and open files of every process are
sampled each second and must stay flat over the run; at the end every root ended once, nothing is
left behind and no lease is held, judged from the database and the files. ENDACTION_WORKERS_SEED
replays the faults' order.
"""

from __future__ import annotations

import os
import random
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from statemachines import StoreUnavailable
from tests.cli.fleet import (
    Workers,
    cut_every_connection,
    ends_once,
    fresh_database,
    postgres_url,
    progress,
)
from tests.cli.hosts import Host
from tests.cli.judge import judge
from tests.worlds import vm_store

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

SECONDS = float(os.environ.get("ENDACTION_SOAK_SECONDS", "75"))
RATE = 4.0  # roots a second
TTL = 3.0
SEED = int(os.environ.get("ENDACTION_WORKERS_SEED", str(random.SystemRandom().randrange(10**6))))
# Submits roots at a steady rate until told the count, each under a submit key, retrying
# through the cuts: a root whose commit landed but whose answer was lost is not made twice.
SUBMIT = """
import random, sys, time
from persistence import open_store
from statemachines import StoreUnavailable, submit_root
from statemachines.example.vm import ImageInventory, add_vm_parameters, vm_registry
url, count, rate, seed = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
rng = random.Random(seed)
store = open_store(url, create=False, ledgers=[ImageInventory])
registry = vm_registry()
started = time.monotonic()
for i in range(count):
    disks = rng.randint(1, 3)
    sources = [f"template-disk{rng.randrange(3)}" for _ in range(disks)]
    fail = [d for d in range(disks) if rng.random() < 0.2]
    for attempt in range(50):
        try:
            submit_root(store, registry, "AddVmFromTemplate",
                        add_vm_parameters(f"soak{i}", sources, fail), key=f"soak-{i}")
            break
        except StoreUnavailable:
            time.sleep(0.2)
    else:
        sys.exit(f"root {i} could not be submitted through 50 cuts")
    time.sleep(max(0.0, started + (i + 1) / rate - time.monotonic()))
store.dispose()
"""


@dataclass
class Samples:
    """One process's memory and open files, a sample a second."""

    name: str
    rss_kib: list[int] = field(default_factory=list)
    fds: list[int] = field(default_factory=list)

    def take(self, pid: int) -> None:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            fds = len(os.listdir(f"/proc/{pid}/fd"))
        except (FileNotFoundError, ProcessLookupError):
            return  # it has just died: a fault, sampled again once restarted
        rss = next(int(line.split()[1]) for line in status.splitlines()
                   if line.startswith("VmRSS:"))
        self.rss_kib.append(rss)
        self.fds.append(fds)

    def growth(self) -> list[str]:
        """What grew between the first and the second half of the run after warm-up."""
        if len(self.rss_kib) < 20:
            return []  # too short-lived (restarted by a fault) to judge
        start = len(self.rss_kib) // 4
        rss, fds = self.rss_kib[start:], self.fds[start:]
        half = len(rss) // 2
        early, late = statistics.median(rss[:half]), statistics.median(rss[half:])
        print(f"{self.name}: RSS {self.rss_kib[0] / 1024:.0f} MiB at start, median "
              f"{early / 1024:.1f} then {late / 1024:.1f} MiB; open files up to "
              f"{max(fds[:half])} then {max(fds[half:])} ({len(self.rss_kib)} samples)")
        problems = []
        if late > early * 1.05 + 3 * 1024:
            problems.append(f"{self.name}'s memory grew from {early / 1024:.1f} to "
                            f"{late / 1024:.1f} MiB")
        if max(fds[half:]) > max(fds[:half]) + 4:
            problems.append(f"{self.name}'s open files grew from {max(fds[:half])} to "
                            f"{max(fds[half:])}")
        return problems


def _retried_progress(store: object) -> tuple[int, int]:
    for _ in range(20):
        try:
            return progress(store)  # type: ignore[arg-type]
        except StoreUnavailable:
            time.sleep(0.2)
    return progress(store)  # type: ignore[arg-type]


def _sample_and_resume(host: Host, workers: Workers, samples: dict[tuple[str, int], Samples],
                       stopped: list[tuple[float, subprocess.Popen[str]]], now: float) -> None:
    """Each process's memory, sampled; the stopped ones whose pause is over, continued."""
    assert host.process is not None
    for name, process in {"host": host.process, **workers.running}.items():
        samples.setdefault((name, process.pid), Samples(name)).take(process.pid)
    for resume_at, process in [s for s in stopped if s[0] <= now]:
        process.send_signal(signal.SIGCONT)
        stopped.remove((resume_at, process))


def _inject(rng: random.Random, workers: Workers, host: Host, url: str, now: float,
            stopped: list[tuple[float, subprocess.Popen[str]]]) -> str:
    """Inject one fault, chosen at random, now, and return which.

    The faulty worker killed (and restarted), or paused past its lease; every database connection
    cut; or the host stalled.
    """
    fault = rng.choice(["kill", "pause", "cut", "stall-host"])
    if fault == "kill":
        assert workers.stop("faulty", signal.SIGKILL) == -signal.SIGKILL
        workers.start("faulty")
    elif fault == "pause":
        workers.running["faulty"].send_signal(signal.SIGSTOP)
        stopped.append((now + TTL + rng.uniform(0.5, 2), workers.running["faulty"]))
    elif fault == "cut":
        cut_every_connection(url)
    else:
        assert host.process is not None
        host.process.send_signal(signal.SIGSTOP)
        stopped.append((now + rng.uniform(0.5, 3), host.process))
    return fault


def test_a_fleet_under_a_steady_stream_and_random_faults_stays_flat(tmp_path: Path) -> None:
    url = postgres_url()
    rng = random.Random(SEED)
    roots = int(SECONDS * RATE)
    print(f"seed {SEED}: {roots} roots over {SECONDS:g} s")
    storage = tmp_path / "storage"
    fresh_database(url, storage)
    host = Host(storage, "--workers", "8", logs=tmp_path)
    host.start()
    assert host.process is not None
    agent = ["--agent-url", host.url, "--agent-token-file", str(host.token_file)]
    workers = Workers(url, storage, tmp_path, lease_ttl=TTL, agent=agent)
    samples: dict[tuple[str, int], Samples] = {}
    faults: list[str] = []
    store = vm_store(url, create=False)
    submitting = subprocess.Popen([sys.executable, "-c", SUBMIT, url, str(roots), str(RATE),
                                   str(SEED)], stderr=subprocess.PIPE, text=True)
    try:
        workers.start("steady")
        workers.start("faulty")
        started = time.monotonic()
        next_fault = started + rng.uniform(3, 6)
        stopped: list[tuple[float, subprocess.Popen[str]]] = []  # (resume at, process)
        while True:
            now = time.monotonic()
            _sample_and_resume(host, workers, samples, stopped, now)
            if now >= next_fault and now - started < SECONDS and not stopped:
                faults.append(_inject(rng, workers, host, url, now, stopped))
                next_fault = now + rng.uniform(2, 6)
            if submitting.poll() is not None and not stopped:
                ended, leased = _retried_progress(store)
                if ended == roots and leased == 0:
                    break
            assert host.process.poll() is None, "the host died"
            workers.check_alive()
            assert now - started < SECONDS + 240, (
                f"seed {SEED}: {_retried_progress(store)} of {roots} after "
                f"{now - started:.0f} s; faults {faults}")
            time.sleep(1.0)
        elapsed = time.monotonic() - started
        assert submitting.returncode == 0, submitting.communicate()[1]
        for name in list(workers.running):
            assert workers.stop(name, signal.SIGTERM) == 0, workers.tail(name)
        assert host.stop() == 0, host.stderr()[-3000:]
        host_log = host.stderr()
        problems = judge(store, storage) + ends_once(store) + workers.tracebacks()
        submitted = len(store.root_ids())
    finally:
        for process in [host.process, *workers.running.values()]:
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGCONT)
        workers.close()
        host.stop()
        store.dispose()
        if submitting.poll() is None:
            submitting.kill()
    print(f"{roots} roots ended in {elapsed:.0f} s through faults: {', '.join(faults)}")
    for sampled in samples.values():
        problems += sampled.growth()
    judged = {s.name for s in samples.values() if len(s.rss_kib) >= 20}
    assert {"host", "steady"} <= judged, f"too few samples to judge: {judged}"
    assert submitted == roots, f"{submitted} roots in the database, {roots} submitted"
    assert "Traceback" not in host_log, host_log[-3000:]
    print(f"the host logged {len(host_log)} bytes")
    assert len(faults) >= SECONDS / 8, f"only {len(faults)} faults: too few to call a soak"
    assert problems == [], f"seed {SEED}: " + "; ".join(problems[:20])
