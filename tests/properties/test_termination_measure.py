"""The measure's own arithmetic: every step an object can take lowers its rank.

The property suite asserts the decrease on real runs; this checks the ranks against every
transition of the machines, retries and host-status progress included, so a change to a
machine that the measure does not account for fails here, by name, and not only when
Hypothesis happens to reach it. (The thorough profile found the one this file was written
for: the last allowed start accepted with no poll answer ranked equal to its pending self.)
"""

from __future__ import annotations

from collections import Counter
from itertools import product

import pytest

from statemachines import (
    CommandRecord,
    ExecutionReason,
    ResourceRef,
    ResourceRevert,
    RevertState,
    TaskRecord,
)
from statemachines.core.machines.command_machine import COMMAND_MACHINE
from statemachines.core.machines.task_machine import TASK_MACHINE
from statemachines.core.machines.task_machine import TaskStatus as T
from statemachines.testing import Bounds, multiset_less

BOUNDS = Bounds(max_depth=4, max_revert_attempts=3, max_start_attempts=5, max_clear_attempts=5)
HOST = [None, "init", "running", "aborting"]  # in the order a host may move forward


def _task(status: str, attempts: int = 0, host: str | None = None) -> TaskRecord:
    return TaskRecord(id="t", command_id="c", root_command_id="c", agent="a", verb="v",
                      parameters={}, status=status, attempts=attempts, host_status=host)


def _steps(task: TaskRecord) -> int:
    return BOUNDS.task_steps(task)


Move = tuple[TaskRecord, TaskRecord]


def _start_moves() -> list[Move]:
    """The moves a task's start can make.

    A start that failed and will be retried; then accepted or given up; a pending task aborted
    (deadline or cancel) keeps its count.
    """
    s = BOUNDS.max_start_attempts
    moves = []
    for a in range(s):
        if a + 1 < s:
            moves.append((_task(T.PENDING, a), _task(T.PENDING, a + 1)))
        for host in HOST:
            moves.append((_task(T.PENDING, a), _task(T.POLLING, 0, host)))
        moves.append((_task(T.PENDING, a), _task(T.START_FAILED, a)))
        moves.append((_task(T.PENDING, a), _task(T.ABORTING, a)))
    return moves


def _poll_moves() -> list[Move]:
    """What polls write: forward host states only.

    A failed poll is counted, the last one ends it; aborting, polls still fail and are counted.
    """
    moves = []
    for before, after in product(HOST, HOST):
        if HOST.index(after) > HOST.index(before):  # the engine writes forward moves only
            moves.append((_task(T.POLLING, 0, before), _task(T.POLLING, 0, after)))
            moves.append((_task(T.ABORTING, 0, before), _task(T.ABORTING, 0, after)))
    for host in HOST:
        moves.append((_task(T.POLLING, 0, host), _task(T.FINISHED, 0, "finished")))
    last = BOUNDS.max_poll_failures
    for a, host in product(range(last), HOST):
        if a + 1 < last:
            moves.append((_task(T.POLLING, a, host), _task(T.POLLING, a + 1, host)))
            moves.append((_task(T.ABORTING, a, host), _task(T.ABORTING, a + 1, host)))
        moves.append((_task(T.POLLING, a, host), _task(T.FINISHED, a + 1, "unknown")))
        moves.append((_task(T.POLLING, a, host), _task(T.ABORTING, a, host)))
        moves.append((_task(T.ABORTING, a, host), _task(T.FINISHED, a, "finished")))
    return moves


def _end_moves() -> list[Move]:
    moves = []
    for a in range(BOUNDS.max_start_attempts):
        moves.append((_task(T.FINISHED), _task(T.ENDING)))
        moves.append((_task(T.START_FAILED, a), _task(T.ENDING, a)))
    for a in range(BOUNDS.max_clear_attempts):
        for source in (T.ENDING, T.CLEAR_FAILED):
            moves.append((_task(source, a), _task(T.CLEARED, a)))
            moves.append((_task(source, a), _task(T.CLEAR_FAILED, a + 1)))
    return moves


def _task_moves() -> list[Move]:
    """Every write the engine can make to a task, as (before, after)."""
    return [*_start_moves(), *_poll_moves(), *_end_moves()]


@pytest.mark.parametrize(("before", "after"), _task_moves(),
                         ids=lambda t: f"{t.status}/{t.attempts}/{t.host_status}")
def test_every_task_write_lowers_its_steps(before: TaskRecord, after: TaskRecord) -> None:
    assert _steps(after) < _steps(before)


def test_the_task_moves_cover_every_transition_of_the_task_machine() -> None:
    covered = {(b.status, a.status) for b, a in _task_moves()}
    machine = {(source, spec.dest) for spec in TASK_MACHINE.transitions
               for source in spec.sources()}
    assert machine <= covered


def _command(status: str, step: int) -> CommandRecord:
    return CommandRecord(id="c", root_id="c", parent_id=None, end_group_id="c", type="T",
                         execution_reason=ExecutionReason.REGULAR_FLOW, parameters={},
                         status=status, step=step)


def test_every_command_transition_lowers_its_steps() -> None:
    """The steps a transition takes a command to are below those it leaves.

    That holds at every step count a command can be at, the loop through stepping included
    (`next_step` counts a step).
    """
    for spec in COMMAND_MACHINE.transitions:
        for source in spec.sources():
            for step in range(BOUNDS.max_steps + 2):
                if source == "not_started" and step:
                    continue  # nothing has run yet
                after = step + 1 if spec.trigger in ("execute", "next_step") else step
                before_rank = BOUNDS.command_steps(_command(source, step))
                after_rank = BOUNDS.command_steps(_command(spec.dest, after))
                if source == "stepping" and step > BOUNDS.max_steps:
                    continue  # a step beyond the bound cannot start work: never stepping
                assert after_rank < before_rank, (spec.trigger, source, step)
                assert after_rank >= 0


def test_a_retry_swaps_a_failed_attempt_for_one_that_ranks_below_it() -> None:
    """A retry swaps the failed attempt for a new pending one, and both rank below it.

    The failed attempt ends (finished -> ending, retried) and a new pending attempt takes its place:
    both are below the failed one, however its retries were spent.
    """
    from statemachines import RetryPolicy

    bounds = Bounds(max_depth=4, max_revert_attempts=3, max_start_attempts=5,
                    max_clear_attempts=5, max_task_attempts=4)
    policy = RetryPolicy(max_attempts=4)
    for attempt in range(1, 4):
        failed = TaskRecord(id="t", command_id="c", root_command_id="c", agent="a", verb="v",
                            parameters={}, status=T.FINISHED, host_status="finished",
                            attempt=attempt, retry=policy)
        ended = TaskRecord(id="t", command_id="c", root_command_id="c", agent="a", verb="v",
                           parameters={}, status=T.ENDING, attempt=attempt, retry=policy,
                           retried=True)
        following = TaskRecord(id="u", command_id="c", root_command_id="c", agent="a",
                               verb="v", parameters={}, attempt=attempt + 1, retry=policy)

        def rank(task: TaskRecord) -> int:
            return (bounds.task_steps(task)
                    + bounds.attempt_steps * bounds.attempts_left(task, "REGULAR_FLOW"))

        assert rank(ended) < rank(failed) and rank(following) < rank(failed), attempt


def test_multiset_ordering() -> None:
    big = Counter({(1, 3, 3, 5): 1})
    children = Counter({(1, 3, 3, 4): 1, (1, 1, 3, 5): 8, (1, 2, 0, 16): 8})
    assert multiset_less(children, big)  # one rank replaced by any number of smaller ones
    assert not multiset_less(big, children)
    assert not multiset_less(big, big)  # irreflexive: a step that changes nothing is caught
    assert not multiset_less(big + Counter({(0, 0, 0, 0): 1}), big)  # adding is never lower


def test_credits_count_every_resource_a_command_made() -> None:
    """A command may make several resources (its entity and what it added).

    Each has its own budget, and starting the revert of any of them spends one credit.
    """
    command = CommandRecord(id="c1", root_id="c1", parent_id=None, end_group_id="c1",
                            type="Custom", execution_reason=ExecutionReason.REGULAR_FLOW,
                            parameters={}, status="rolling_back", entity_type="disk",
                            entity_id="d1", resources=(("address", "a1"),))
    disk, address = ResourceRef("disk", "d1"), ResourceRef("address", "a1")
    reverts = {(disk, "c1"): ResourceRevert(disk, "c1", RevertState.REVERTING, attempts=1)}
    assert BOUNDS.credits({}, command) == 2 * (3 + 5)  # failed attempts, then lost ones
    assert BOUNDS.credits(reverts, command) == 7 + 8
    reverts[(address, "c1")] = ResourceRevert(address, "c1", RevertState.REVERTING, attempts=1)
    assert BOUNDS.credits(reverts, command) == 7 + 7
    reverts[(disk, "c1")] = ResourceRevert(disk, "c1", RevertState.REVERTED, attempts=1)
    assert BOUNDS.credits(reverts, command) == 7
