"""A crash at any point, then recovery, ends exactly as a run without the crash."""

from __future__ import annotations

from pathlib import Path

import pytest

from statemachines import TickReport
from tests.worlds import Died, DyingAgent, World, vm_store


class Crash(BaseException):
    """Stands for the process dying: nothing catches it, nothing after it runs."""


def _baseline(tmp_path: Path) -> dict[str, object]:
    world = World(vm_store(str(tmp_path / "baseline.db")))
    engine = world.engine()
    root = world.submit_vm(engine, disks=3, fail=(1,))
    engine.run_until_idle()
    return world.end_state(root)


def _count_steps(tmp_path: Path) -> int:
    world = World(vm_store(str(tmp_path / "count.db")))
    steps: list[int] = []
    engine = world.engine(on_commit=lambda report: steps.append(report.number))
    world.submit_vm(engine, disks=3, fail=(1,))
    engine.run_until_idle()
    return len(steps)


def test_crash_after_every_persisted_step_leaves_nothing_behind(tmp_path: Path) -> None:
    baseline = _baseline(tmp_path)
    steps = _count_steps(tmp_path)
    assert steps >= 6
    for crash_at in range(1, steps + 1):
        world = World(vm_store(str(tmp_path / f"crash-{crash_at}.db")))

        def crash(report: TickReport, crash_at: int = crash_at) -> None:
            if report.number == crash_at:
                raise Crash

        engine = world.engine(on_commit=crash)
        root = world.submit_vm(engine, disks=3, fail=(1,))
        with pytest.raises(Crash):
            engine.run_until_idle()
        del engine  # the dead process's memory is gone; only the database and the agent remain

        recovered = world.engine()
        recovered.recover()
        recovered.run_until_idle()
        end = world.end_state(root)
        assert end == baseline, f"crash after step {crash_at}"
        assert end["agent_images"] == [] and end["inventory"] == []
        ends = world.ends_per_command(root)
        assert set(ends.values()) == {1}, f"a command ended twice (crash after step {crash_at})"


def test_crash_between_agent_call_and_commit(tmp_path: Path) -> None:
    baseline = _baseline(tmp_path)
    for die_at in range(1, 30):
        agent = DyingAgent(die_in_call=die_at)
        world = World(vm_store(str(tmp_path / f"mid-{die_at}.db")), agent=agent)
        engine = world.engine()
        root = world.submit_vm(engine, disks=3, fail=(1,))
        try:
            engine.run_until_idle()
        except Died:
            recovered = world.engine()
            recovered.run_until_idle()
        assert world.end_state(root) == baseline, f"died in agent call {die_at}"
        assert set(world.ends_per_command(root).values()) == {1}
