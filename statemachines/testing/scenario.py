"""What a property run is about: your commands, your agents' effects, your leftovers.

The suite's machinery (rules, invariants, measure) is generic; a Scenario tells it what to
submit and how to recognise that something was left behind, so the same proof runs against
the example's commands and against yours.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis.strategies import SearchStrategy

from ..core.commands.command import CommandRegistry
from ..core.commands.compensation_policy import RevertPolicy
from ..core.ports.store_protocol import Store
from ..core.records.limits import Limits
from ..core.records.retry_policy import RetryPolicy
from ..core.records.revert_state import ResourceRef
from .controlled_agent import ControlledAgent, Effect, Output, no_effect, no_output
from .snapshot import Snapshot
from .termination import Bounds, TreeSize


@dataclass(frozen=True)
class Submission:
    """A root command to submit, with how large its tree can grow (for the tick bound)."""

    type_name: str
    parameters: Mapping[str, Any]
    size: TreeSize
    entity: ResourceRef | None = None


def _same(submission: Submission, index: int) -> Submission:
    return submission


def _nothing_left(snap: Snapshot, agents: Mapping[str, ControlledAgent],
                  store: Store) -> set[str]:
    return set()


def _no_resource(verb: str, parameters: Mapping[str, Any]) -> str | None:
    return None


def _no_check(snap: Snapshot) -> list[str]:
    return []


@dataclass(frozen=True)
class Scenario:
    """What a property run is about; `engine_machine(scenario)` builds the state machine.

    Attributes:
        registry: makes your CommandRegistry (called for every engine the run starts).
        submissions: a Hypothesis strategy of the roots to submit, with their tree sizes.
        open_store: opens (or reopens, after a crash) the store in a folder the run owns;
            register your ledgers there.
        agent_names: the agents your commands start tasks on; a ControlledAgent stands in
            for each.
        effect: what a task that took effect does to the world (`resources` is the set a
            ControlledAgent keeps): add what a copy made, discard what a delete removed.
        resource_of: which resource a task touches, for reverts made to fail for good.
        compensation_verbs: the verbs of your opposite commands' tasks.
        leftovers: what exists (on an agent or in your ledgers) though no successful root
            owns it; the run fails unless each is also marked revert_failed.
        unique: gives the n-th submission of a run names of its own.
        output: what a task that succeeds returns (verb, parameters, task id): the JSON
            your next steps read; the suite checks that each is kept exactly as given.
        check: your domain's own safety properties, checked after every step like the
            suite's (the violations, as sentences).
        policy: the engine's RevertPolicy for the run. This and the engine's other bounds
            below are what the termination measure is built from.
        retry: the engine's RetryPolicy; no command type may allow more attempts than it
            does.
        max_start_attempts: starts of one task the agent may fail (`Limits`).
        max_clear_attempts: clears of one ended task the agent may fail (`Limits`).
        max_poll_failures: polls of one task the agent may fail (`Limits`).
        task_timeout: seconds a task may run before its deadline (`Limits`).
        max_steps: steps one command may take (`Limits`).
        max_depth: a bound on your trees' depth (the measure's H).
        max_roots: roots submitted per run at most.
        tasks_per_compensation: tasks one opposite command starts at most (the tick bound).
    """

    registry: Callable[[], CommandRegistry]
    submissions: SearchStrategy[Submission]
    open_store: Callable[[Path], Store]
    agent_names: tuple[str, ...] = ("storage",)
    effect: Effect = no_effect
    resource_of: Callable[[str, Mapping[str, Any]], str | None] = _no_resource
    compensation_verbs: frozenset[str] = frozenset()
    leftovers: Callable[[Snapshot, Mapping[str, ControlledAgent], Store], set[str]] = (
        _nothing_left)
    unique: Callable[[Submission, int], Submission] = _same
    output: Output = no_output
    check: Callable[[Snapshot], list[str]] = _no_check
    policy: RevertPolicy = field(default_factory=lambda: RevertPolicy(backoff_seconds=1.0))
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    max_depth: int = 8
    max_roots: int = 3
    tasks_per_compensation: int = 1
    max_start_attempts: int = 5
    max_clear_attempts: int = 5
    max_poll_failures: int = 10
    # Short enough that `time_passes` drives some tasks past their deadline, into aborts.
    task_timeout: float = 3600.0
    max_steps: int = 4
    # Limits.max_opposite_commands_per_tick: 1 makes every rollback of two or more resources
    # take its opposite commands over several ticks, as a big fan-out's does.
    max_opposite_commands_per_tick: int = Limits.max_opposite_commands_per_tick

    @property
    def bounds(self) -> Bounds:
        """The bounds the termination measure and the tick bound of a run are computed from."""
        return Bounds(self.max_depth, self.policy.max_attempts, self.max_start_attempts,
                      self.max_clear_attempts, self.max_poll_failures,
                      self.policy.max_lost_attempts, self.max_steps,
                      self.retry.max_attempts)

    @property
    def limits(self) -> Limits:
        """The engine's limits for a run: the bounds the measure was built from."""
        return Limits(max_start_attempts=self.max_start_attempts,
                      max_clear_attempts=self.max_clear_attempts,
                      max_poll_failures=self.max_poll_failures,
                      task_timeout=self.task_timeout, max_steps=self.max_steps,
                      max_opposite_commands_per_tick=self.max_opposite_commands_per_tick)

    def agent(self) -> ControlledAgent:
        """A fresh agent for one run, doing to the world what this scenario's tasks do."""
        return ControlledAgent(effect=self.effect, compensation_verbs=self.compensation_verbs,
                               resource_of=self.resource_of, output_of=self.output)
