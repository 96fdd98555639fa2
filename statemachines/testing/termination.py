"""The termination proof: a well-founded measure over the persisted state.

Every command and every task contributes one *rank*, a tuple compared lexicographically:

    command: (flow, 2*(H - depth) + 1, steps, credits)
    task:    (flow, 2*(H - depth of its command), steps, 0)

- flow is 1 for REGULAR_FLOW and 0 for ROLLBACK_FLOW: opposite work ranks below all regular work;
- depth is the distance from the root (opposite commands are children of what they revert) and H
  a bound on it, so whatever a command creates (children, tasks) ranks below it;
- steps are the longest path left in the object's machine. For a command, with M the bound on
  its steps (`Limits.max_steps`) and k the steps it has taken: not_started 3M + 9, executing
  3(M - k) + 8, stepping 3(M - k) + 7 (so `next_step`, back to executing with k + 1, lowers
  it), waiting and execution_failed 3, ending 2, rolling_back 1, terminal 0. For a task: the
  transitions left plus the start, poll and clear retries left (a retry writes a row without
  moving the machine, so it has to count), plus A for every attempt its retry policy still
  allows, A being more than a fresh task's steps: a failed attempt that gives way to the next
  one loses an A and the new attempt starts below it;
- credits are the opposite commands a REGULAR_FLOW command may still start, summed over the
  resources it made (its entity and what it added): B = max_attempts + max_lost_attempts for
  one without a revert state, B - attempts while it is reverting, 0 once reverted or
  revert_failed; 0 for ROLLBACK_FLOW commands. An attempt whose outcome was lost does not give
  its credit back: it only decides which budget gives up first. Credits come after steps: a
  step that adds a resource adds credits, but takes the command down a step first, and only
  in rolling_back (steps 1, for good) are credits spent.

A cancel request not yet acted on ranks (2, 0, 0, 0), above every command and task: acting on
it may abort tasks and refuse commands of its root, and always removes the request.

The measure of a state is the multiset of these ranks, ordered by the Dershowitz-Manna multiset
ordering, which is well-founded because the rank order is (tuples of naturals of fixed length).
Every engine step that commits strictly decreases it: a transition lowers its object's steps
(and may add objects that rank below it), a retry swaps a task for one below it, and starting
an opposite command consumes one credit of the reverted command while the command stays in
rolling_back. A rollback that loops would have to start opposite commands forever, with a
credit fewer each time: impossible with the revert-state guard, and the first thing the suite
catches without it. A command cannot step forever either: its steps are bounded by M.

Environment steps may raise the measure: submitting a root, and a restart, which grants tasks
whose clears were all refused a new round of clears. Each happens finitely often in any run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from ..core.machines.command_machine import CommandStatus
from ..core.machines.host_status import host_progress
from ..core.machines.reasons import ExecutionReason
from ..core.machines.task_machine import TaskStatus
from ..core.records.records import CommandRecord, TaskRecord, resources_of
from ..core.records.revert_state import ResourceRevert, RevertState
from .snapshot import RevertKey, Snapshot

Rank = tuple[int, int, int, int]
CANCEL_REQUEST: Rank = (2, 0, 0, 0)
Measure = Counter[Rank]

#: The steps of a command past its own steps, by status.
COMMAND_STEPS = {CommandStatus.WAITING: 3, CommandStatus.EXECUTION_FAILED: 3,
                 CommandStatus.ENDING: 2, CommandStatus.ROLLING_BACK: 1,
                 CommandStatus.ENDED_SUCCESS: 0, CommandStatus.ENDED_FAILURE: 0,
                 CommandStatus.ROLLBACK_FAILED: 0}


@dataclass(frozen=True)
class Bounds:
    """The engine's own limits; the measure and the tick bound are computed from them."""

    max_depth: int
    max_revert_attempts: int
    max_start_attempts: int
    max_clear_attempts: int
    max_poll_failures: int = 10
    max_lost_attempts: int = 5
    #: The steps a command may take (`Limits.max_steps`) and the attempts a task may have
    #: (the largest `RetryPolicy.max_attempts` of the run).
    max_steps: int = 4
    max_task_attempts: int = 1

    @property
    def compensations_per_resource(self) -> int:
        """B: the most opposite commands one resource can be given, lost attempts included."""
        return self.max_revert_attempts + self.max_lost_attempts

    @property
    def attempt_steps(self) -> int:
        """A: more than the steps of any task, however fresh."""
        return 12 + self.max_clear_attempts + self.max_poll_failures + self.max_start_attempts

    def command_steps(self, command: CommandRecord) -> int:
        """The longest path left in a command's machine, its steps still to take counted.

        With M the bound on steps and k the steps taken: not_started 3M + 9, executing
        3(M - k) + 8, stepping 3(M - k) + 7, and past its steps `COMMAND_STEPS`.
        """
        if command.status == CommandStatus.NOT_STARTED:
            return 3 * self.max_steps + 9
        if command.status == CommandStatus.EXECUTING:
            return 3 * (self.max_steps - command.step) + 8
        if command.status == CommandStatus.STEPPING:
            return 3 * (self.max_steps - command.step) + 7
        return COMMAND_STEPS[CommandStatus(command.status)]

    def attempts_left(self, task: TaskRecord, reason: str) -> int:
        """The further attempts a task's retry policy still allows it.

        A task already retried has none (its next attempt ranks for itself), nor has one of
        ROLLBACK_FLOW work, which is never retried.
        """
        if task.retried or reason != ExecutionReason.REGULAR_FLOW:
            return 0
        return max(0, task.max_attempts - task.attempt)

    def task_steps(self, task: TaskRecord, fresh_clear_round: bool = False) -> int:
        """The longest path left in a task's machine, its start, poll and clear retries counted.

        With `fresh_clear_round`, exhausted clears count a new round, as a restarted engine
        grants them.
        """
        clears = self.max_clear_attempts
        polls = self.max_poll_failures
        if task.status == TaskStatus.PENDING:
            # Above a polling task with no report yet (7 + clears + polls + 3), however many
            # start retries are spent: the last allowed start can be accepted with no answer.
            return 11 + clears + polls + max(0, self.max_start_attempts - task.attempts)
        polls_left = max(0, polls - task.attempts)
        progress = host_progress(task.host_status)
        if task.status == TaskStatus.POLLING:
            return 7 + clears + polls_left + progress
        if task.status == TaskStatus.ABORTING:
            # Below any polling task (its progress is at most 3), above a finished one.
            return 3 + clears + polls_left + progress
        if task.status in (TaskStatus.FINISHED, TaskStatus.START_FAILED):
            return 2 + clears
        if task.status in (TaskStatus.ENDING, TaskStatus.CLEAR_FAILED):
            attempts = task.attempts
            if fresh_clear_round and task.status == TaskStatus.CLEAR_FAILED and attempts >= clears:
                attempts = 0  # a restarted engine gives exhausted clears a new round
            return 1 + max(0, clears - attempts)
        return 0  # cleared

    def credits(self, reverts: Mapping[RevertKey, ResourceRevert],
                command: CommandRecord) -> int:
        """The opposite commands a REGULAR_FLOW command may still start, summed over its resources.

        Each resource it made starts with the full budget; one that is never reverted keeps it,
        unchanged, which the ordering does not mind. A ROLLBACK_FLOW command has none.
        """
        if command.execution_reason != ExecutionReason.REGULAR_FLOW:
            return 0
        total = 0
        for resource in resources_of(command):
            revert = reverts.get((resource, command.id))
            if revert is None:
                total += self.compensations_per_resource
            elif revert.state not in (RevertState.REVERTED, RevertState.REVERT_FAILED):
                total += max(0, self.compensations_per_resource - revert.attempts)
        return total


def _flow(reason: str) -> int:
    return 1 if reason == ExecutionReason.REGULAR_FLOW else 0


def measure(snap: Snapshot, bounds: Bounds, fresh_clear_round: bool = False) -> Measure:
    """The multiset of ranks; `fresh_clear_round` values the state as a restarted engine does."""
    ranks: Measure = Counter()
    depths: dict[str, int] = {}
    for command in snap.commands.values():
        depth = depths[command.id] = snap.depth(command)
        if depth > bounds.max_depth:
            raise AssertionError(f"command {command.id} is {depth} deep, beyond the bound "
                                 f"{bounds.max_depth} the measure was built for")
        if command.step > bounds.max_steps + 1:
            raise AssertionError(f"command {command.id} took {command.step} steps, beyond "
                                 f"the bound {bounds.max_steps} the measure was built for")
        level = 2 * (bounds.max_depth - depth) + 1
        ranks[(_flow(command.execution_reason), level, bounds.command_steps(command),
               bounds.credits(snap.reverts, command))] += 1
    for task in snap.tasks.values():
        owner = snap.commands.get(task.command_id)
        if owner is None:
            continue  # reported by the safety checks
        if task.max_attempts > bounds.max_task_attempts:
            raise AssertionError(f"task {task.id} may take {task.max_attempts} attempts, "
                                 f"beyond the bound {bounds.max_task_attempts} the measure "
                                 "was built for")
        level = 2 * (bounds.max_depth - depths[owner.id])
        steps = (bounds.task_steps(task, fresh_clear_round) + bounds.attempt_steps
                 * bounds.attempts_left(task, owner.execution_reason))
        ranks[(_flow(owner.execution_reason), level, steps, 0)] += 1
    ranks[CANCEL_REQUEST] += len(snap.cancel_requests)
    return ranks


def multiset_less(smaller: Measure, larger: Measure) -> bool:
    """Whether `smaller` < `larger` in the Dershowitz-Manna multiset ordering.

    It is when they differ and every rank `smaller` gained is below some rank `larger` lost.
    """
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
    resources: int  # commands owning a resource: each may be reverted

    def __add__(self, other: TreeSize) -> TreeSize:
        """The size of both trees together: a run's bound counts every root it submitted."""
        return TreeSize(self.commands + other.commands, self.tasks + other.tasks,
                        self.resources + other.resources)


def compensation_commits(bounds: Bounds, tasks_per_compensation: int) -> int:
    """Committing ticks one opposite command can take at most (with its tasks)."""
    return 1 + 3 * bounds.max_steps + 9 + tasks_per_compensation * _task_commits(bounds)


def _task_commits(bounds: Bounds) -> int:
    """A task's steps when it is created: pending, with every retry still to spend."""
    return 11 + bounds.max_start_attempts + bounds.max_clear_attempts + bounds.max_poll_failures


def commit_bound(size: TreeSize, bounds: Bounds, tasks_per_compensation: int) -> int:
    """How many committing ticks a tree of this size can take at most.

    Each committing tick performs at least one unit step: a transition, a retry, or starting
    an opposite command. Summing every object's steps, and every opposite command's own
    objects, bounds the count; a loop would exceed any such bound. `size.tasks` counts first
    attempts: each may be followed by `max_task_attempts - 1` more.
    """
    task = _task_commits(bounds) * bounds.max_task_attempts
    command = 3 * bounds.max_steps + 9
    compensation = compensation_commits(bounds, tasks_per_compensation)
    return (size.commands * command + size.tasks * task
            + size.resources * bounds.compensations_per_resource * compensation)


def tick_bound(size: TreeSize, bounds: Bounds, tasks_per_compensation: int) -> int:
    """The most ticks `run_until_idle` may take for trees of this size.

    Between two commits at most one tick waits for the agents or sleeps until a back-off is
    due, so twice the commits, plus the final idle check.
    """
    return 2 * commit_bound(size, bounds, tasks_per_compensation) + 2
