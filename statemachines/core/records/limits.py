"""Every bound the engine keeps, in one place, so that no retry, wait or walk is unbounded.

A bound that lives as a literal deep in the engine is a bound nobody can find, tune or test;
each one here is named, documented and handed to the engine as one value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import InvalidConfiguration


def check_count(name: str, value: object, minimum: int) -> None:
    """A bound that counts: an int (not a bool) of at least `minimum`."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise InvalidConfiguration(
            f"{name} must be a whole number of at least {minimum} (got {value!r})")


def check_seconds(name: str, value: object, positive: bool) -> None:
    """A bound in seconds: finite (an infinite wait is no bound), and positive if asked."""
    if (not isinstance(value, int | float) or isinstance(value, bool)
            or not math.isfinite(value) or value < 0 or (positive and value == 0)):
        kind = "positive" if positive else "non-negative"
        raise InvalidConfiguration(
            f"{name} must be a finite, {kind} number of seconds (got {value!r})")


def check_factor(name: str, value: object) -> None:
    """A back-off's growth: a finite number of at least 1 (a shrinking back-off is none)."""
    if (not isinstance(value, int | float) or isinstance(value, bool)
            or not math.isfinite(value) or value < 1):
        raise InvalidConfiguration(f"{name} must be a finite number of at least 1 "
                                   f"(got {value!r})")


def backoff(first: float, factor: float, attempt: int, cap: float) -> float:
    """The delay before attempt number `attempt` (1-based) of something retried with back-off.

    There is none before the first, `first` before the second, times `factor` for each later
    one, never beyond `cap` (an exponent that overflows is the cap).
    """
    if attempt <= 1:
        return 0.0
    try:
        delay = first * factor ** (attempt - 2)
    except OverflowError:
        delay = cap
    return float(min(cap, delay))


@dataclass(frozen=True)
class Limits:
    """The engine's bounds; the defaults suit a storage host that answers within seconds.

    Attributes:
        max_start_attempts: starts of one task the agent may fail (raise) before the task
            ends `start_failed`; before giving up the engine asks the agent whether the start
            went through after all.
        max_clear_attempts: clears of one ended task the agent may fail before the engine
            stops asking (the task stays `clear_failed`; a restarted engine tries one more
            round).
        max_poll_failures: polls of one task the agent may fail (raise, or answer with
            something that is not a mapping) before the task ends `unknown`, recorded with
            the last error; polls after a failure back off like starts and clears.
        agent_retry_seconds: back-off before the second try of a failed start, clear or
            poll; it doubles with every further try.
        max_agent_retry_seconds: the back-off never grows beyond this.
        task_timeout: seconds from a task's creation to its deadline, unless `start_task`
            gives its own; past it the engine aborts the task on its agent, and it ends as a
            failure.
        abort_grace: seconds an aborted task has to confirm its end; past them it ends
            `unknown` (for an opposite command: lost, and redone).
        max_tree_depth: how deep a command tree may grow; `add_child` beyond it raises
            `LimitExceeded` inside `execute`, which fails that command (and so its root)
            instead of letting a runaway `execute` grow a tree forever.
        max_spawn_per_step: children and tasks one step (its `execute` or `next_step`
            call) may create; resources one step may add, apart.
        max_steps: steps one command may take (its `execute` is the first, each
            `next_step` one more); a `next_step` beyond them that starts work fails the
            command (`LimitExceeded`), so a command cannot step forever.
        max_output_bytes: the size of a task's output (what its agent returns with its
            end) and of a command's own output, as JSON text; a larger one is refused (a
            task reporting one ends `unknown`, a hook setting one raises).
        max_rounds_per_tick: rounds of "execute what is due, end what is ready" in one tick;
            a child created in a tick is executed in the same tick's next round, so this
            bounds how much of one deep tree a single transaction takes on (the rest waits
            for the next tick, and other roots are served in between).
        max_opposite_commands_per_tick: opposite commands one tick may start; a rolling-back
            command whose revert has not begun waits for the next tick once they are
            started (reverts under way always go on). A rollback of 10,000 resources then
            holds a window of opposite commands and their tasks in memory at a time, not all
            10,000 beside the commands they revert, and its first ones end while the last are
            still to start.
    """

    max_start_attempts: int = 5
    max_clear_attempts: int = 5
    max_poll_failures: int = 10
    agent_retry_seconds: float = 0.5
    max_agent_retry_seconds: float = 30.0
    task_timeout: float = 3600.0
    abort_grace: float = 60.0
    max_tree_depth: int = 10_000
    max_spawn_per_step: int = 100_000
    max_steps: int = 100
    max_output_bytes: int = 65_536
    max_rounds_per_tick: int = 100
    max_opposite_commands_per_tick: int = 1_000

    def __post_init__(self) -> None:
        """Refuse (InvalidConfiguration) a bound that is no bound, as the limits are made.

        Every count must be a whole number of at least 1, the agent back-offs finite and not
        negative, and the task timeout and abort grace finite and positive.
        """
        for name in ("max_start_attempts", "max_clear_attempts", "max_poll_failures",
                     "max_tree_depth", "max_spawn_per_step", "max_rounds_per_tick", "max_steps",
                     "max_output_bytes", "max_opposite_commands_per_tick"):
            check_count(f"Limits.{name}", getattr(self, name), minimum=1)
        for name in ("agent_retry_seconds", "max_agent_retry_seconds"):
            check_seconds(f"Limits.{name}", getattr(self, name), positive=False)
        for name in ("task_timeout", "abort_grace"):
            check_seconds(f"Limits.{name}", getattr(self, name), positive=True)

    def retry_delay(self, attempts: int) -> float:
        """Back-off after the `attempts`-th failed try of an agent call: 0.5 s, 1 s, 2 s..."""
        delay = self.agent_retry_seconds * 2 ** max(0, attempts - 1)
        return float(min(self.max_agent_retry_seconds, delay))
