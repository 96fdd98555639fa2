"""What one engine tick did, for progress displays and for tests that count steps."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class TickReport:
    """The counts and errors of one engine tick, filled in as the tick goes.

    Progress displays print its `summary`, metrics read its `transitions` and timings, and
    tests count steps with it; `committed` says whether the tick's transaction committed.
    """

    number: int = 0
    committed: bool = False
    tasks_started: int = 0
    tasks_polled: int = 0
    tasks_running: int = 0
    tasks_succeeded: int = 0
    tasks_failed: int = 0
    tasks_cleared: int = 0
    # Failed tasks started again as a new attempt (RetryPolicy).
    tasks_retried: int = 0
    commands_executed: int = 0
    # `next_step` calls: steps after a command's first.
    steps_taken: int = 0
    commands_ended: int = 0
    # Roots among them, and those of these that did not end successfully.
    roots_ended: int = 0
    roots_failed: int = 0
    # Their ids, for what reads a whole tree once it is over (traces, metrics, a caller
    # waiting for one root).
    ended_roots: list[str] = field(default_factory=list)
    compensations_started: int = 0
    # Opposite commands whose end ran: with compensations_started, what a display shows running.
    compensations_ended: int = 0
    errors: list[str] = field(default_factory=list)
    # Every transition the tick took, by (kind, command type or task verb, status entered,
    # outcome or host result so far): what metrics count by type and status. The kind is
    # "command", "compensation" (ROLLBACK_FLOW) or "task".
    transitions: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)
    # Seconds the whole tick took, agent calls included; set as `Engine.tick` returns (an
    # on_commit callback, called inside the tick, still sees None).
    duration: float | None = None
    # Of which the agent phase (starts, polls, clears, aborts): a slow host's share.
    agent_seconds: float = 0.0

    def summary(self) -> str:
        """One line for a progress display: every count that is not zero, or "waiting"."""
        parts = [
            f"{label} {value}"
            for label, value in (
                ("started", self.tasks_started),
                ("polling", self.tasks_running),
                ("succeeded", self.tasks_succeeded),
                ("failed", self.tasks_failed),
                ("retried", self.tasks_retried),
                ("executed", self.commands_executed),
                ("steps", self.steps_taken),
                ("ended", self.commands_ended),
                ("opposite commands started", self.compensations_started),
                ("opposite commands ended", self.compensations_ended),
                ("cleared", self.tasks_cleared),
            )
            if value
        ]
        return ", ".join(parts) or "waiting"
