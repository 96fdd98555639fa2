"""Roots ended per second by 1, 2 and 4 worker processes on one PostgreSQL database.

They run the same workload, measured in one run, on two hosts:

- `simulated`: each worker process runs the library's `Worker` with an in-memory host that
  answers at once (safe here because no worker dies, so no tree changes hands): the figures
  are the engine's and the database's (claims, leases, ticks, fan-in).
- `local-disk`: `endaction worker` processes sharing one local-disk storage host, whose
  journal is one cross-process file lock with an fsync per write: the host is shared, as a
  real storage host is, and it is the bottleneck.

The workload: ROOTS AddVmFromTemplate roots of 2 disks each, every 4th with a failing copy
(so a quarter roll back through RemoveImage); 4 KiB templates. The workers are started first
and idle; the roots are submitted in one transaction, and the clock runs from then until
every root has ended and every lease row is gone. The database is emptied between runs.

Usage: python benchmarks/workers_throughput.py [--db URL] [--roots N] [--workers 1,2,4]
       [--hosts simulated,local-disk]
(default URL: $ENDACTION_TEST_POSTGRES_URL or postgresql://postgres@127.0.0.1:5432/test)
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import text

from persistence import connect, open_store
from persistence.ledger import ledger_tables
from persistence.schema import metadata
from persistence.schema_version import VERSION_TABLE
from statemachines import submit_roots
from statemachines.core.machines.command_machine import TERMINAL_COMMAND_STATES
from statemachines.example.vm import (
    ImageInventory,
    LocalDiskAgent,
    add_vm_parameters,
    vm_registry,
)

DEFAULT_URL = os.environ.get("ENDACTION_TEST_POSTGRES_URL",
                             "postgresql://postgres@127.0.0.1:5432/test")


def _empty(url: str) -> None:
    engine = connect(url)
    with engine.begin() as conn:
        for name in (*reversed(metadata.sorted_tables), VERSION_TABLE,
                     *ledger_tables([ImageInventory])):
            conn.execute(text(f"DROP TABLE IF EXISTS {getattr(name, 'name', name)} CASCADE"))
    engine.dispose()


def serve(url: str, name: str) -> None:
    """One `simulated` worker process: the library's Worker, until SIGTERM."""
    import threading

    from statemachines import Engine, Worker, WorkerLease
    from statemachines.example.vm import STORAGE_AGENT, SimulatedAgent

    store = open_store(url, create=False, ledgers=[ImageInventory])
    engine = Engine(store, {STORAGE_AGENT: SimulatedAgent()}, vm_registry(),
                    lease=WorkerLease(owner=name))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    Worker(engine, stop=stop).run()
    store.dispose()


def _start(host: str, url: str, storage: Path, name: str) -> subprocess.Popen[str]:
    if host == "simulated":
        command = [sys.executable, __file__, "--db", url, "--serve", name]
    else:
        command = [sys.executable, "-m", "statemachines.cli", "worker", "--db", url,
                   "--storage", str(storage), "--name", name]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)


def run(host: str, url: str, workers: int, roots: int) -> tuple[float, int]:
    """Seconds to end `roots` roots with `workers` workers, and how many rolled back."""
    _empty(url)
    subprocess.run([sys.executable, "-m", "statemachines.cli", "db", "upgrade", "--db", url],
                   check=True, capture_output=True)
    with tempfile.TemporaryDirectory() as folder:
        storage = Path(folder) / "storage"
        agent = LocalDiskAgent(storage)
        agent.ensure_template("template-disk0", 4096)
        agent.close()
        processes = [_start(host, url, storage, f"bench{i}") for i in range(workers)]
        store = open_store(url, create=False, ledgers=[ImageInventory])
        try:
            time.sleep(3)  # let every worker import and start polling for roots
            requests = [("AddVmFromTemplate",
                         add_vm_parameters(f"vm{i}", ["template-disk0"] * 2,
                                           [1] if i % 4 == 0 else []))
                        for i in range(roots)]
            started = time.perf_counter()
            ids = [r.id for r in submit_roots(store, vm_registry(), requests)]
            while store.leases():
                if time.perf_counter() - started > 600:
                    raise SystemExit(f"{workers} worker(s): not done after 600 s")
                time.sleep(0.05)
            elapsed = time.perf_counter() - started
            statuses = [store.command(r).status for r in ids]  # type: ignore[union-attr]
            assert all(s in TERMINAL_COMMAND_STATES for s in statuses)
            failed = sum(s != "ended_success" for s in statuses)
        finally:
            for process in processes:
                process.send_signal(signal.SIGTERM)
            for process in processes:
                process.wait(timeout=60)
            store.dispose()
    return elapsed, failed


def main() -> None:
    """Print a line per host and worker count; with `--serve NAME`, be one simulated worker."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=DEFAULT_URL)
    parser.add_argument("--roots", type=int, default=400)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--hosts", default="simulated,local-disk")
    parser.add_argument("--serve", metavar="NAME", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.db, args.serve)
        return
    counts = [int(n) for n in args.workers.split(",")]
    print(f"{args.roots} roots of 2 disks (1 in 4 rolled back), {os.cpu_count()} CPU(s), "
          f"PostgreSQL at {connect(args.db).url.host} on the same machine")
    for host in args.hosts.split(","):
        base: float | None = None
        for count in counts:
            elapsed, failed = run(host, args.db, count, args.roots)
            rate = args.roots / elapsed
            base = base or rate
            print(f"{host:>10} host, {count} worker(s): {elapsed:6.2f} s, {rate:7.1f} roots/s,"
                  f" {rate / base:4.2f}x one worker, {failed} rolled back")


if __name__ == "__main__":
    main()
