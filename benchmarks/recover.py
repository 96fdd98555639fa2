"""Recovery of N in-flight tasks after a SIGKILL.

The figures are how long the new engine takes to load them, and whether the run after it is as
fast as the same run that never crashed.

A child process submits the seed's scenario (N disks, one failing) and ticks until every copy
is running on the host, then kills itself with SIGKILL. A new engine over the same database
meets a host that kept running (the simulated host, given the tasks the database says are
running), loads (`recover`), and runs to the end. The uncrashed baseline is the same run from
the same point in one process.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from persistence import open_store
from statemachines import Engine, HostStatus, TaskReport, TaskStatus
from statemachines.example.vm import (
    STORAGE_AGENT,
    ImageInventory,
    SimulatedAgent,
    add_vm_parameters,
    vm_registry,
)

from .counting import peak_rss_mb


class HoldingHost(SimulatedAgent):
    """Reports every task running while `holding`; then as the simulated host would."""

    holding = True

    def poll(self, task_ids: Sequence[str]) -> Mapping[str, TaskReport]:
        """While `holding`, report each known task running, so that every copy stays in flight."""
        if self.holding:
            return {i: TaskReport(HostStatus.RUNNING) for i in task_ids if i in self.tasks}
        return super().poll(task_ids)


def _engine(path: Path, agent: SimulatedAgent) -> tuple[Engine, Any]:
    store = open_store(str(path), ledgers=[ImageInventory])
    return Engine(store, {STORAGE_AGENT: agent}, vm_registry()), store


def _to_the_crash_point(engine: Engine, count: int) -> None:
    """Submit, and tick until every copy is running on the host."""
    sources = [f"template-disk{i}" for i in range(count)]
    engine.submit("AddVmFromTemplate", add_vm_parameters("vm", sources, [count // 2]))
    for _ in range(20):
        engine.tick()
        tasks = engine._view.tasks.values()
        if tasks and all(t.status == TaskStatus.POLLING for t in tasks):
            return
    raise SystemExit("the copies never all started")


def child(count: int, path: Path) -> None:
    """The process that dies: in flight, then SIGKILL."""
    engine, _ = _engine(path, HoldingHost())
    _to_the_crash_point(engine, count)
    os.kill(os.getpid(), signal.SIGKILL)


def run(count: int, repeat: int = 6) -> dict[str, Any]:
    """`repeat` rounds, each an uncrashed run and a crashed one side by side.

    The crashed one goes first in every other round (an even `repeat` balances the orders: the
    second run of a round is the slower one). The comparison is the median of the rounds' own
    ratios: the two runs of a round share whatever the shared machine was doing then, which a
    minimum taken over all rounds does not. Every figure is reported too, the ratios in round
    order.
    """
    rounds = [_round(count, i) for i in range(repeat)]
    ratios = [r["after"] / r["uncrashed"] for r in rounds]
    return {"case": "recover", "database": "sqlite", "count": count,
            "in_flight_tasks": rounds[0]["in_flight"],
            "load_seconds": min(r["load"] for r in rounds),
            "run_after_seconds": statistics.median(r["after"] for r in rounds),
            "uncrashed_run_seconds": statistics.median(r["uncrashed"] for r in rounds),
            "ratio_to_uncrashed": statistics.median(ratios), "round_ratios": ratios,
            "rounds": rounds, "peak_rss_mb": peak_rss_mb()}


def _round(count: int, index: int) -> dict[str, float]:
    """One uncrashed run and one crashed run, in a fresh folder.

    Which comes first alternates from round to round: the second run in a process is the slower
    one (a heap the first run fragmented), and that must not count against either.
    """
    with tempfile.TemporaryDirectory() as folder:
        if index % 2:
            crashed = _crashed(count, Path(folder))
            uncrashed = _uncrashed(count, Path(folder))
        else:
            uncrashed = _uncrashed(count, Path(folder))
            crashed = _crashed(count, Path(folder))
    return {"round": index, **crashed, "uncrashed": uncrashed}


def _uncrashed(count: int, folder: Path) -> float:
    host = HoldingHost()
    engine, store = _engine(folder / "baseline.db", host)
    _to_the_crash_point(engine, count)
    host.holding = False
    started = time.perf_counter()
    engine.run_until_idle(poll_interval=0)
    seconds = time.perf_counter() - started
    store.dispose()
    return seconds


def _crashed(count: int, folder: Path) -> dict[str, float]:
    path = folder / "crashed.db"
    died = subprocess.run([sys.executable, "-m", "benchmarks", "recover-child", "--count",
                           str(count), "--db", str(path)], capture_output=True, text=True)
    if died.returncode != -signal.SIGKILL:
        raise SystemExit(f"the child did not die as planned: {died.stderr[-2000:]}")
    host = HoldingHost()
    store = open_store(str(path), ledgers=[ImageInventory])
    for root in store.root_ids():
        for task in store.tree(root)[1]:
            if task.status == TaskStatus.POLLING:  # the host kept running them
                host.start(task.id, task.verb, task.parameters)
    host.holding = False
    engine = Engine(store, {STORAGE_AGENT: host}, vm_registry())
    started = time.perf_counter()
    engine.recover()
    loaded = time.perf_counter() - started
    in_flight = len(engine._view.tasks)
    started = time.perf_counter()
    engine.run_until_idle(poll_interval=0)
    after = time.perf_counter() - started
    store.dispose()
    return {"in_flight": in_flight, "load": loaded, "after": after}
