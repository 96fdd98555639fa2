"""How long the seed's scenario takes at scale: one VM of N disks, one copy fails, all rolled back.

Prints figures only; the side-by-side run with OpenStack TaskFlow belongs to the benchmark
issue. Usage: python benchmarks/rollback_scale.py [N ...]   (default: 1000 10000)
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from persistence import open_store
from statemachines import Engine
from statemachines.example.vm import ImageInventory, SimulatedAgent, add_vm_parameters, vm_registry


def run(disks: int) -> None:
    """Time one rollback of `disks` disks on SQLite, check nothing is left, print the figures."""
    with tempfile.TemporaryDirectory() as folder:
        store = open_store(str(Path(folder) / "bench.db"), ledgers=[ImageInventory])
        agent = SimulatedAgent()
        engine = Engine(store, {"storage": agent}, vm_registry())
        sources = [f"template-disk{i}" for i in range(disks)]
        root = engine.submit("AddVmFromTemplate", add_vm_parameters("vm", sources, [disks // 2]))
        started = time.perf_counter()
        ticks = engine.run_until_idle(poll_interval=0)
        elapsed = time.perf_counter() - started
        commands, _ = store.tree(root)
        status = next(c.status for c in commands if c.id == root)
        assert status == "ended_failure" and not agent.images
        assert not ImageInventory.read_all(store.engine)
        print(f"{disks:>6} disks: {elapsed:6.2f} s, {ticks} ticks, root {status}, "
              f"{sum(c.type == 'RemoveImage' for c in commands)} opposite commands, "
              f"{elapsed / disks * 1e3:.2f} ms per disk")
        store.dispose()


if __name__ == "__main__":
    for count in [int(a) for a in sys.argv[1:]] or [1000, 10000]:
        run(count)
