"""A compensation lost with a dead engine or host is redone, not counted as a failure.

Killing `resume` right after it started a delete used to bring the task back `unknown`, and
three such crashes marked every image revert_failed for good, though nothing had failed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from persistence import SqlStore
from statemachines import CommandStatus, HostResult, RevertPolicy, RevertState
from statemachines.example.vm import Plan, SimulatedAgent
from tests.worlds import World, images_in


def _deletes(outcomes: list[HostResult]) -> SimulatedAgent:
    """Deletes end with these results in turn, then succeed; copies do as their disk says."""
    left = list(outcomes)

    def plan(verb: str, parameters: Mapping[str, Any]) -> Plan:
        if verb == "delete_image":
            return Plan(result=left.pop(0) if left else HostResult.SUCCESS)
        return Plan(result=HostResult.FAILURE if parameters.get("inject_failure")
                    else HostResult.SUCCESS)

    return SimulatedAgent(decide=plan)


def _run(store: SqlStore, agent: SimulatedAgent, policy: RevertPolicy) -> tuple[str, Any]:
    world = World(store, agent=agent, policy=policy)
    engine = world.engine()
    root = world.submit_vm(engine, disks=1, fail=(0,))
    engine.run_until_idle()
    commands, _ = store.tree(root)
    revert = next(iter(store.reverts()))
    return next(c.status for c in commands if c.id == root), revert


def test_lost_compensations_do_not_spend_the_failure_budget(store: SqlStore) -> None:
    agent = _deletes([HostResult.UNKNOWN] * 4)
    status, revert = _run(store, agent, RevertPolicy(max_attempts=3, max_lost_attempts=5))
    assert status == CommandStatus.ENDED_FAILURE
    assert (revert.state, revert.attempts, revert.lost) == (RevertState.REVERTED, 5, 4)
    assert agent.images == set() and images_in(store) == []


def test_a_compensation_lost_every_time_still_gives_up_within_its_own_bound(
    store: SqlStore,
) -> None:
    agent = _deletes([HostResult.UNKNOWN] * 100)
    status, revert = _run(store, agent, RevertPolicy(max_attempts=3, max_lost_attempts=5))
    assert status == CommandStatus.ROLLBACK_FAILED
    assert (revert.state, revert.attempts, revert.lost) == (RevertState.REVERT_FAILED, 5, 5)
    owner = store.command(revert.owner)
    assert owner is not None and owner.error is not None
    assert "its outcome was lost 5 time(s)" in owner.error


def test_real_failures_still_give_up_after_max_attempts(store: SqlStore) -> None:
    agent = _deletes([HostResult.FAILURE] * 100)
    status, revert = _run(store, agent, RevertPolicy(max_attempts=3, max_lost_attempts=5))
    assert status == CommandStatus.ROLLBACK_FAILED
    assert (revert.state, revert.attempts, revert.lost) == (RevertState.REVERT_FAILED, 3, 0)
