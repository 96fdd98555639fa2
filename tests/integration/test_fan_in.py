"""Fan-in: a group ends only after every sibling finished, and no command ever ends twice."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from statemachines import CommandStatus, HostResult, TaskStatus
from statemachines.example.vm import Plan
from tests.factories import make_engine
from tests.worlds import World, images_in, vm_store

RESULTS = st.sampled_from([HostResult.SUCCESS, HostResult.FAILURE, HostResult.UNKNOWN])
PLANS = st.builds(Plan, result=RESULTS, polls=st.integers(0, 4), partial=st.booleans(),
                  forget=st.booleans())


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(copy_plans=st.lists(PLANS, min_size=1, max_size=5))
def test_no_end_before_all_siblings_finished_and_no_double_end(
    tmp_path_factory: Any, copy_plans: list[Plan]
) -> None:
    folder: Path = tmp_path_factory.mktemp("fan-in")
    store = vm_store(str(folder / "endaction.db"))
    world = World(store)
    plans = iter(copy_plans)

    def decide(verb: str, parameters: Mapping[str, Any]) -> Plan:
        return next(plans) if verb == "copy_image" else Plan()

    world.agent.decide = decide
    engine = world.engine()
    root = world.submit_vm(engine, disks=len(copy_plans))
    for _ in range(200):
        engine.tick()
        commands, tasks = store.tree(root)
        copies = [t for t in tasks if t.verb == "copy_image"]
        group = [c for c in commands if c.end_group_id == root]
        if any(t.status in (TaskStatus.PENDING, TaskStatus.POLLING) for t in copies):
            before_end = (CommandStatus.NOT_STARTED, CommandStatus.EXECUTING,
                          CommandStatus.WAITING, CommandStatus.EXECUTION_FAILED)
            assert all(c.status in before_end for c in group), (
                "a command ended before all its siblings finished")
        if engine.is_idle():
            break
    assert engine.is_idle()

    ends = world.ends_per_command(root)
    commands, _ = store.tree(root)
    assert all(ends[c.id] == 1 for c in commands), ends
    all_ok = all(p.result == HostResult.SUCCESS and not p.forget for p in copy_plans)
    root_status = next(c.status for c in commands if c.id == root)
    assert root_status == (CommandStatus.ENDED_SUCCESS if all_ok else CommandStatus.ENDED_FAILURE)
    if not all_ok:
        assert world.agent.images == set()
        assert images_in(store) == []
    store.dispose()


def test_a_command_without_tasks_ends_in_the_tick_that_executed_it(tmp_path: Path) -> None:
    """Its claim runs in the same transaction as its execution, so the write must come first."""
    from statemachines import Command, CommandRegistry

    class Bookkeeping(Command):
        type_name = "Bookkeeping"

    store = vm_store(str(tmp_path / "endaction.db"))
    engine = make_engine(store, {}, registry=CommandRegistry([Bookkeeping]))
    command_id = engine.submit("Bookkeeping", {})
    report = engine.tick()
    assert report.committed and engine.is_idle()
    record = store.command(command_id)
    assert record is not None and record.status == CommandStatus.ENDED_SUCCESS
    store.dispose()
