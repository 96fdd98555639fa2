"""The termination proof: a well-founded measure over the persisted state.

Every command and every task contributes one *rank*, a tuple compared lexicographically:

    command: (flow, 2*(H - depth) + 1, credits, steps)
    task:    (flow, 2*(H - depth of its command), 0, steps)

- flow is 1 for REGULAR_FLOW and 0 for ROLLBACK_FLOW: opposite work ranks below all regular work;
- depth is the distance from the root (opposite commands are children of what they undo) and H
  a bound on it, so whatever a command creates (children, tasks) ranks below it;
- credits are the compensations a REGULAR_FLOW command may still start for its resource:
  B = max_attempts + max_lost_attempts until it has a revert state, B - attempts while that is
  reverting, 0 once reverted or revert_failed; 0 for ROLLBACK_FLOW commands. An attempt whose
  outcome was lost does not give its credit back: it only decides which budget gives up first;
- steps are the longest path left in the object's machine: for a command not_started 5,
  executing 4, waiting and execution_failed 3, ending 2, rolling_back 1, terminal 0; for a task
  the transitions left plus the start, poll and clear retries left (a retry writes a row
  without moving the machine, so it has to count).

A cancel request not yet acted on ranks (2, 0, 0, 0), above every command and task: acting on
it may abort tasks and refuse commands of its root, and always removes the request.

The measure of a state is the multiset of these ranks, ordered by the Dershowitz-Manna multiset
ordering, which is well-founded because the rank order is (tuples of naturals of fixed length).
Every engine step that commits strictly decreases it: a transition lowers its object's steps
(and may add objects that rank below it), and starting an opposite command consumes one credit
of the compensated command while the command stays in rolling_back. A rollback loop would have
to start compensations forever, with a credit fewer each time: impossible with the revert-state
guard, and the first thing the suite catches without it.

Environment steps may raise the measure: submitting a root, and a restart, which grants tasks
whose clears were all refused a new round of clears. Each happens finitely often in any run.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from ..core.command_machine import CommandStatus as C
from ..core.host_status import host_progress
from ..core.reasons import ExecutionReason
from ..core.records import CommandRecord, TaskRecord
from ..core.revert_state import ResourceRevert, RevertState
from ..core.task_machine import TaskStatus as T
from .snapshot import Snapshot

Rank = tuple[int, int, int, int]
CANCEL_REQUEST: Rank = (2, 0, 0, 0)
Measure = Counter[Rank]

COMMAND_STEPS = {C.NOT_STARTED: 5, C.EXECUTING: 4, C.WAITING: 3, C.EXECUTION_FAILED: 3,
                 C.ENDING: 2, C.ROLLING_BACK: 1, C.ENDED_SUCCESS: 0, C.ENDED_FAILURE: 0,
                 C.ROLLBACK_FAILED: 0}


@dataclass(frozen=True)
class Bounds:
    """The engine's own limits; the measure and the tick bound are computed from them."""

    max_depth: int
    max_revert_attempts: int
    max_start_attempts: int
    max_clear_attempts: int
    max_poll_failures: int = 10
    max_lost_attempts: int = 5

    @property
    def compensations_per_resource(self) -> int:
        return self.max_revert_attempts + self.max_lost_attempts

    def task_steps(self, task: TaskRecord, fresh_clear_round: bool = False) -> int:
        clears = self.max_clear_attempts
        polls = self.max_poll_failures
        if task.status == T.PENDING:
            # Above a polling task with no report yet (7 + clears + polls + 3), however many
            # start retries are spent: the last allowed start can be accepted with no answer.
            return 11 + clears + polls + max(0, self.max_start_attempts - task.attempts)
        polls_left = max(0, polls - task.attempts)
        progress = host_progress(task.host_status)
        if task.status == T.POLLING:
            return 7 + clears + polls_left + progress
        if task.status == T.ABORTING:
            # Below any polling task (its progress is at most 3), above a finished one.
            return 3 + clears + polls_left + progress
        if task.status in (T.FINISHED, T.START_FAILED):
            return 2 + clears
        if task.status in (T.ENDING, T.CLEAR_FAILED):
            attempts = task.attempts
            if fresh_clear_round and task.status == T.CLEAR_FAILED and attempts >= clears:
                attempts = 0  # a restarted engine gives exhausted clears a new round
            return 1 + max(0, clears - attempts)
        return 0  # cleared

    def credits(self, reverts_by_owner: dict[str, ResourceRevert],
                command: CommandRecord) -> int:
        """Any REGULAR_FLOW command may own a resource (through its entity or its own
        `reverted_resource()`), so each starts with the full budget; one that never
        compensates keeps it, unchanged, which the ordering does not mind."""
        if command.execution_reason != ExecutionReason.REGULAR_FLOW:
            return 0
        revert = reverts_by_owner.get(command.id)
        if revert is None:
            return self.compensations_per_resource
        if revert.state in (RevertState.REVERTED, RevertState.REVERT_FAILED):
            return 0
        return max(0, self.compensations_per_resource - revert.attempts)


def _flow(reason: str) -> int:
    return 1 if reason == ExecutionReason.REGULAR_FLOW else 0


def measure(snap: Snapshot, bounds: Bounds, fresh_clear_round: bool = False) -> Measure:
    """The multiset of ranks; `fresh_clear_round` values the state as a restarted engine does."""
    ranks: Measure = Counter()
    depths: dict[str, int] = {}
    reverts = snap.reverts_by_owner
    for command in snap.commands.values():
        depth = depths[command.id] = snap.depth(command)
        if depth > bounds.max_depth:
            raise AssertionError(f"command {command.id} is {depth} deep, beyond the bound "
                                 f"{bounds.max_depth} the measure was built for")
        level = 2 * (bounds.max_depth - depth) + 1
        ranks[(_flow(command.execution_reason), level, bounds.credits(reverts, command),
               COMMAND_STEPS[C(command.status)])] += 1
    for task in snap.tasks.values():
        owner = snap.commands.get(task.command_id)
        if owner is None:
            continue  # reported by the safety checks
        level = 2 * (bounds.max_depth - depths[owner.id])
        ranks[(_flow(owner.execution_reason), level, 0,
               bounds.task_steps(task, fresh_clear_round))] += 1
    ranks[CANCEL_REQUEST] += len(snap.cancel_requests)
    return ranks


def multiset_less(smaller: Measure, larger: Measure) -> bool:
    """Dershowitz-Manna: `smaller` < `larger` when they differ and every rank `smaller` gained
    is below some rank `larger` lost."""
    gained = smaller - larger
    lost = larger - smaller
    if not gained and not lost:
        return False
    return all(any(g < x for x in lost) for g in gained)


@dataclass(frozen=True)
class TreeSize:
    """How big a submitted tree can grow, known from its parameters before it runs."""

    commands: int
    tasks: int
    resources: int  # commands owning a resource: each may be compensated

    def __add__(self, other: TreeSize) -> TreeSize:
        return TreeSize(self.commands + other.commands, self.tasks + other.tasks,
                        self.resources + other.resources)


def compensation_commits(bounds: Bounds, tasks_per_compensation: int) -> int:
    """Committing ticks one opposite command can take at most (with its tasks)."""
    return 1 + 5 + tasks_per_compensation * _task_commits(bounds)


def _task_commits(bounds: Bounds) -> int:
    """A task's steps when it is created: pending, with every retry still to spend."""
    return 11 + bounds.max_start_attempts + bounds.max_clear_attempts + bounds.max_poll_failures


def commit_bound(size: TreeSize, bounds: Bounds, tasks_per_compensation: int) -> int:
    """How many committing ticks a tree of this size can take at most.

    Each committing tick performs at least one unit step: a transition, a retry, or starting
    a compensation. Summing every object's steps, and every compensation's own objects, bounds
    the count; a loop would exceed any such bound."""
    task = _task_commits(bounds)
    command = 5
    compensation = compensation_commits(bounds, tasks_per_compensation)
    return (size.commands * command + size.tasks * task
            + size.resources * bounds.compensations_per_resource * compensation)


def tick_bound(size: TreeSize, bounds: Bounds, tasks_per_compensation: int) -> int:
    """Ticks of run_until_idle: between two commits at most one tick waits for the agents or
    sleeps until a back-off is due, so twice the commits, plus the final idle check."""
    return 2 * commit_bound(size, bounds, tasks_per_compensation) + 2
