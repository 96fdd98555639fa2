"""When a failed command gets an opposite command: both loop guards, in one place.

Guard 1 (the seed's): act only while the resource is still in the engine's inventory.
Guard 2: a persisted per-resource revert state; reverted or revert_failed resources are never
reverted again, and a failing revert is retried a bounded number of times with
exponential back-off. The guards can be switched off only to prove, in the property suite,
that the suite notices.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ..records.limits import backoff, check_count, check_factor, check_seconds
from ..records.revert_state import ResourceRevert, RevertState

# No back-off grows beyond an hour, whatever the factor: a delay past any clock is no bound.
MAX_BACKOFF_SECONDS = 3600.0


@dataclass(frozen=True)
class RevertPolicy:
    """How failed reverts are retried.

    Attributes:
        max_attempts: opposite commands of one resource that may fail before the resource is
            left `revert_failed` (visible, and retried by `cleanup`).
        max_lost_attempts: opposite commands whose outcome was lost (their task ended
            `unknown`: a dead engine or host) that are redone before giving up; they do not
            spend `max_attempts`, since nothing is known to have failed.
        backoff_seconds, backoff_factor: the delay before the second attempt, and how it
            grows for each later one (never beyond an hour).
        existence_guard, revert_state_guard: the two loop guards; switched off only to prove
            that the property suite notices.
    """

    max_attempts: int = 3
    max_lost_attempts: int = 5
    backoff_seconds: float = 0.5
    backoff_factor: float = 2.0
    existence_guard: bool = True
    revert_state_guard: bool = True

    def __post_init__(self) -> None:
        """Refuse (InvalidConfiguration) a policy with a value out of range, as it is made.

        It needs at least one attempt of each kind, a finite delay that is not negative, and a
        factor of at least 1 (a shrinking back-off is none).
        """
        check_count("RevertPolicy.max_attempts", self.max_attempts, minimum=1)
        check_count("RevertPolicy.max_lost_attempts", self.max_lost_attempts, minimum=1)
        check_seconds("RevertPolicy.backoff_seconds", self.backoff_seconds, positive=False)
        check_factor("RevertPolicy.backoff_factor", self.backoff_factor)

    def delay_before(self, attempt: int) -> float:
        """Back-off before attempt number `attempt` (1-based); the first runs at once."""
        return backoff(self.backoff_seconds, self.backoff_factor, attempt, MAX_BACKOFF_SECONDS)


class Decision(Enum):
    """What the loop guards decide for one resource of a failing command.

    NOTHING_TO_REVERT: it is gone, or already reverted. COMPENSATE: revert it, by an opposite
    command (unless `Command.revert` finds nothing left). GIVE_UP: leave it `revert_failed`,
    visible for `cleanup`.
    """

    NOTHING_TO_REVERT = "nothing_to_revert"
    COMPENSATE = "compensate"
    GIVE_UP = "give_up"


def decide(policy: RevertPolicy, exists: bool, revert: ResourceRevert) -> Decision:
    """Apply both loop guards, as `policy` leaves them on, to a resource and its revert state.

    The existence guard comes first: a resource that no longer exists has nothing to revert.
    Then the revert-state guard: a resource reverted is never reverted again, and one left
    `revert_failed`, or past its bound of failed or lost attempts, is given up on.
    """
    if policy.existence_guard and not exists:
        return Decision.NOTHING_TO_REVERT
    if policy.revert_state_guard:
        if revert.state == RevertState.REVERTED:
            return Decision.NOTHING_TO_REVERT
        if revert.state == RevertState.REVERT_FAILED:
            return Decision.GIVE_UP
        if revert.failures >= policy.max_attempts or revert.lost >= policy.max_lost_attempts:
            return Decision.GIVE_UP
    return Decision.COMPENSATE
