"""endaction's side of `python -m benchmarks compare-dbos`: the saga DBOS runs too.

It runs on the VM example, measured the way `benchmarks/dbos_peer.py` measures DBOS. The saga:
a root (AddVmFromTemplate) with K children (one CreateCloneOfTemplate per disk), on a storage
agent that answers at once (`instant_plan`); every 4th root fails its second copy and its
rollback reverts the others with RemoveImage, their opposite command (ROLLBACK_FLOW). The
helpers both sides share (workers started and stopped, the 1 ms status poll) are here too, so
that the two sides are timed by the same code.
"""

from __future__ import annotations

import json
import os
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Engine as SqlEngine
from sqlalchemy import text

from persistence import SqlStore, connect, open_store
from statemachines import Engine, HostResult, Worker, WorkerLease, submit_roots
from statemachines.core.machines.command_machine import TERMINAL_COMMAND_STATES
from statemachines.example.vm import (
    STORAGE_AGENT,
    ImageInventory,
    Plan,
    SimulatedAgent,
    add_vm_parameters,
    vm_registry,
)

from .databases import fresh_url

#: The child (0-based) that fails in every 4th root.
FAILING_CHILD = 1
#: How often the submitting process looks at the database while a throughput run goes on.
END_POLL_SECONDS = 0.05
#: How often it looks while it times one root (latency), on both sides.
LATENCY_POLL_SECONDS = 0.001
#: Untimed roots before the timed ones, so that the worker's first-use costs are paid.
WARM_ROOTS = 3
#: A run that has not ended by then is a failure, not a figure.
RUN_TIMEOUT = 900.0
#: Seconds a worker process may take to import, connect and say it is ready.
START_TIMEOUT = 120.0
#: Knobs the "tuned" latency variant sets (the others are the library's defaults).
TUNED_INTERVAL = 0.005

_TERMINAL = tuple(status.value for status in TERMINAL_COMMAND_STATES)


def fails(index: int) -> bool:
    """Whether root number `index` is one that fails a child (a quarter of them)."""
    return index % 4 == 0


def instant_plan(verb: str, parameters: Mapping[str, Any]) -> Plan:
    """The agent answers at the first poll: finished, failed if the disk says so."""
    if parameters.get("inject_failure"):
        return Plan(result=HostResult.FAILURE, polls=0)
    return Plan(polls=0)


def requests(roots: int, k: int, first: int = 0) -> list[tuple[str, dict[str, Any]]]:
    """`roots` AddVmFromTemplate requests of `k` disks, every 4th failing its second."""
    return [("AddVmFromTemplate",
             add_vm_parameters(f"vm{i}", ["template-disk0"] * k,
                               [FAILING_CHILD] if fails(i) else []))
            for i in range(first, first + roots)]


# --- processes: both sides start, await and stop their workers with these -------------------


class Workers:
    """Worker processes started with `command(name)`, which a case awaits and then stops.

    Each says `ready` on stdout once it polls for work, and one JSON line (what its agent holds)
    when it stops on SIGTERM.

    stderr goes to a file, not a pipe: a worker that logs a lot would otherwise block on a
    full pipe nobody reads, and the benchmark would measure that.
    """

    def __init__(self, command: Callable[[str], list[str]], count: int) -> None:
        # Closed by stop(), which __exit__ calls: they outlive this constructor on purpose.
        self._logs = [tempfile.TemporaryFile(mode="w+")  # noqa: SIM115
                      for _ in range(count)]
        self.processes = [
            subprocess.Popen(command(f"bench{i}"), stdout=subprocess.PIPE, stderr=log,
                             text=True)
            for i, log in enumerate(self._logs)]

    def __enter__(self) -> Workers:
        """Wait until every worker has said `ready`; if one does not, stop them all and fail."""
        try:
            for process, log in zip(self.processes, self._logs, strict=True):
                assert process.stdout is not None
                if not select.select([process.stdout], [], [], START_TIMEOUT)[0] \
                        or process.stdout.readline().strip() != "ready":
                    raise SystemExit(f"a worker did not start: {_tail(log)}")
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        """Stop every worker, so none outlives the case even when the case raised."""
        self.stop()

    def stop(self) -> list[dict[str, Any]]:
        """SIGTERM every worker, wait for it (SIGKILL after 60 s), and return their last lines.

        Every worker is gone when this returns. A worker that said no JSON line gets
        `{"error": ...}` with the end of its stderr instead.
        """
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        said: list[dict[str, Any]] = []
        for process, log in zip(self.processes, self._logs, strict=True):
            try:
                out, _ = process.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                out, _ = process.communicate()
            lines = [line for line in (out or "").splitlines() if line.startswith("{")]
            said.append(json.loads(lines[-1]) if lines else {"error": _tail(log)})
            log.close()
        self.processes = []
        self._logs = []
        return said


def _tail(log: IO[str]) -> str:
    log.flush()
    log.seek(0)
    return log.read()[-3000:]


_READY_CPU: list[float] = []


def announce_ready() -> threading.Event:
    """Tell the parent this worker is ready, and return the event SIGTERM sets."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    _READY_CPU.append(time.process_time())
    print("ready", flush=True)
    return stop


def say_stopped(**facts: Any) -> None:
    """The worker's last line: `facts`, and the CPU seconds it spent from ready to stop.

    The seconds count all its threads, its imports and start-up left out.
    """
    cpu = time.process_time() - _READY_CPU[0] if _READY_CPU else None
    print(json.dumps({**facts, "cpu_s": cpu}), flush=True)


def postgres_cpu_seconds() -> float | None:
    """CPU seconds every PostgreSQL process of this machine has used so far.

    The processes are the backends, WAL writer and checkpointer: read before and after a run,
    the difference is the database's share of its cost. None where the server's processes
    cannot be read (another machine, another user).
    """
    total, seen = 0, False
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "postgres":
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
        seen = True
    return total / tick if seen else None


def cpu_per_root(said: list[dict[str, Any]], postgres: tuple[float | None, float | None],
                 roots: int) -> dict[str, float | None]:
    """The workers' and PostgreSQL's CPU milliseconds per root of a throughput run."""
    workers = [s.get("cpu_s") for s in said]
    before, after = postgres
    return {"worker_cpu_ms_per_root": (sum(workers) / roots * 1e3
                                       if all(w is not None for w in workers) else None),
            "postgres_cpu_ms_per_root": ((after - before) / roots * 1e3
                                         if before is not None and after is not None
                                         else None)}


def wait_until(done: Callable[[], bool], interval: float, what: str) -> float:
    """Poll `done` every `interval` seconds; return the seconds it took."""
    started = time.perf_counter()
    while not done():
        if time.perf_counter() - started > RUN_TIMEOUT:
            raise SystemExit(f"{what}: not done after {RUN_TIMEOUT:.0f} s")
        time.sleep(interval)
    return time.perf_counter() - started


def status_poll(engine: SqlEngine, query: str, ended: Sequence[str]) -> Callable[[str], bool]:
    """A check that one row's status is one of `ended`, on a connection of its own held open.

    There is no pool check-out per look: the same cost per look on both sides.
    """
    conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    statement = text(query)

    def ended_yet(row_id: str) -> bool:
        return conn.execute(statement, {"id": row_id}).scalar() in ended

    return ended_yet


def latency_figures(samples: list[float]) -> dict[str, Any]:
    """The median and p90 of the timed roots in ms, and every sample, as both sides report them."""
    ordered = sorted(samples)
    return {"runs": len(samples), "median_ms": statistics.median(ordered) * 1e3,
            "p90_ms": ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))] * 1e3,
            "samples_ms": [round(s * 1e3, 2) for s in samples]}


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, measured as the other benchmarks measure it."""
    from .counting import peak_rss_mb as measured
    return measured()


# --- endaction's side ---------------------------------------------------------------------


def serve(url: str, name: str, variant: str = "defaults") -> None:
    """One worker process, as workers_throughput.serve() is, with the instant agent.

    "tuned" shortens the worker's and the lease's intervals to TUNED_INTERVAL.
    """
    store = open_store(url, create=False, ledgers=[ImageInventory])
    agent = SimulatedAgent(decide=instant_plan)
    tuned = variant == "tuned"
    lease = (WorkerLease(owner=name, claim_interval=TUNED_INTERVAL) if tuned
             else WorkerLease(owner=name))
    engine = Engine(store, {STORAGE_AGENT: agent}, vm_registry(), lease=lease)
    stop = announce_ready()
    worker = (Worker(engine, stop=stop, interval=TUNED_INTERVAL) if tuned
              else Worker(engine, stop=stop))
    totals = worker.run()
    store.dispose()
    say_stopped(images=len(agent.images), name=name, roots=totals.roots_ended)


def _worker_command(url: str, variant: str) -> Callable[[str], list[str]]:
    return lambda name: [sys.executable, "-m", "benchmarks", "saga-worker", "endaction",
                         "--db", url, "--name", name, "--variant", variant]


def _fresh_store(url: str) -> SqlStore:
    with tempfile.TemporaryDirectory() as folder:
        return open_store(fresh_url(url, Path(folder)), ledgers=[ImageInventory])


def _ended_roots(store: SqlStore) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(
            text("SELECT count(*) FROM commands WHERE parent_id IS NULL AND status IN "
                 f"({', '.join(repr(s) for s in _TERMINAL)})")).scalar() or 0)


def _failed_roots(store: SqlStore) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(
            text("SELECT count(*) FROM commands WHERE parent_id IS NULL "
                 "AND status != 'ended_success'")).scalar() or 0)


def _check(side: str, roots: int, k: int, failed: int, images: int) -> None:
    """Fail the case unless the saga did what it says, for the figures mean nothing otherwise.

    A quarter of the roots must have rolled back, and only the succeeded roots' images be left.
    """
    expected = sum(fails(i) for i in range(roots))
    if failed != expected or images != k * (roots - expected):
        raise SystemExit(f"{side}: {failed} root(s) failed (expected {expected}), "
                         f"{images} image(s) left (expected {k * (roots - expected)})")


def throughput(url: str, workers: int, roots: int, k: int) -> dict[str, Any]:
    """Roots/s of `workers` worker processes on PostgreSQL.

    The time runs from the submit (one transaction) until every root has ended and every lease
    is given back.
    """
    store = _fresh_store(url)
    try:
        with Workers(_worker_command(url, "defaults"), workers) as running:
            time.sleep(1)  # idle: every worker has polled for roots at least once
            batch = requests(roots, k)
            postgres_before = postgres_cpu_seconds()
            started = time.perf_counter()
            submit_roots(store, vm_registry(), batch)
            submitted = time.perf_counter() - started
            wait_until(lambda: _ended_roots(store) == roots and not store.leases(),
                       END_POLL_SECONDS, f"endaction, {workers} worker(s)")
            seconds = time.perf_counter() - started
            postgres_after = postgres_cpu_seconds()
            said = running.stop()
        failed = _failed_roots(store)
    finally:
        store.dispose()
    _check("endaction", roots, k, failed, sum(s.get("images", -1) for s in said))
    return {"side": "endaction", "case": "throughput", "database": "postgresql",
            "workers": workers, "roots": roots, "k": k, "seconds": seconds,
            "submit_seconds": submitted, "roots_per_s": roots / seconds, "failed": failed,
            # How the roots were shared: each worker's count of the roots it ended.
            "roots_per_worker": {str(s.get("name")): s.get("roots") for s in said},
            **cpu_per_root(said, (postgres_before, postgres_after), roots)}


def sqlite(roots: int, k: int) -> dict[str, Any]:
    """Roots/s of one engine in this process on a SQLite file.

    The time covers submit_roots, then run_until_idle.
    """
    with tempfile.TemporaryDirectory() as folder:
        store = open_store(str(Path(folder) / "bench.db"), ledgers=[ImageInventory])
        try:
            agent = SimulatedAgent(decide=instant_plan)
            engine = Engine(store, {STORAGE_AGENT: agent}, vm_registry())
            batch = requests(roots, k)
            started = time.perf_counter()
            submit_roots(store, vm_registry(), batch)
            engine.run_until_idle(poll_interval=0)
            seconds = time.perf_counter() - started
            if _ended_roots(store) != roots:
                raise SystemExit("endaction on SQLite: run_until_idle left roots unended")
            failed = _failed_roots(store)
        finally:
            store.dispose()
    _check("endaction", roots, k, failed, len(agent.images))
    return {"side": "endaction", "case": "sqlite", "database": "sqlite", "roots": roots,
            "k": k, "seconds": seconds, "roots_per_s": roots / seconds, "failed": failed,
            "peak_rss_mb": peak_rss_mb()}


def latency(url: str, variant: str, runs: int) -> dict[str, Any]:
    """Time one K=2 root from its submit to its end, on an idle worker, `runs` times.

    Each root is one that succeeds; its status is polled every millisecond until it has ended,
    and WARM_ROOTS untimed ones go first.
    """
    store = _fresh_store(url)
    try:
        with Workers(_worker_command(url, variant), 1):
            time.sleep(1)
            ended = status_poll(store.engine, "SELECT status FROM commands WHERE id = :id",
                                _TERMINAL)
            samples: list[float] = []
            for n in range(WARM_ROOTS + runs):
                request = requests(1, 2, first=4 * n + 1)  # never a failing one
                started = time.perf_counter()
                root = submit_roots(store, vm_registry(), request)[0].id
                wait_until(partial(ended, root), LATENCY_POLL_SECONDS, "endaction latency")
                if n >= WARM_ROOTS:
                    samples.append(time.perf_counter() - started)
    finally:
        store.dispose()
    return {"side": "endaction", "case": "latency", "variant": variant,
            **latency_figures(samples)}


def fanout(count: int, url: str | None) -> dict[str, Any]:
    """benchmarks/rollback.py's case: one root of `count` disks, the middle one failing."""
    from .rollback import run

    found = run(count, url)
    return {"side": "endaction", "case": "fanout", "database": found["database"],
            "count": count, "seconds": found["seconds"], "peak_rss_mb": found["peak_rss_mb"],
            "root_status": found["root_status"]}


def database_version(url: str) -> str:
    """What the server says it is ("PostgreSQL 15.20"), for the machine line."""
    engine = connect(url)
    try:
        with engine.connect() as conn:
            return " ".join(str(conn.execute(text("SELECT version()")).scalar()).split()[:2])
    finally:
        engine.dispose()


def machine() -> dict[str, Any]:
    """The cores and Python version of this machine, for the report's machine line."""
    return {"cores": os.cpu_count(), "python": sys.version.split()[0]}
