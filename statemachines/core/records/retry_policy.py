"""How a forward task that failed is tried again before its command fails.

Peers retry a failed step before they revert (Temporal's retry policies, DBOS's step
retries, TaskFlow's retry atoms); a transient refusal of a host should not roll a whole tree
back. Each attempt is a task of its own, with its own id (a host must never mistake a retry
for the start it already ran), its own row and its own history; the one it replaces ends as
`retried`. The policy is persisted with each task, so an engine recovered after a crash
retries what the engine that created the task would have: crashes never count as attempts,
and a deploy that changes a policy changes it for new tasks only.

What is never retried: a task its host rejected for good (`TaskRejected`), a task aborted at
its deadline or for a cancel, the tasks of opposite commands (their budget is
`RevertPolicy`'s), and any task once something else in its end group failed (the group is
going to roll back: more work would only be reverted).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidConfiguration
from .limits import backoff, check_count, check_factor, check_seconds

#: Attempts one task may have at most, whatever a policy says: a bound the proof can use.
MAX_TASK_ATTEMPTS = 100


@dataclass(frozen=True)
class RetryPolicy:
    """How often, and how far apart, a failed forward task is run again.

    Given to the `Engine` (`retry=`) for every command type, to one type as its class
    attribute `Command.retry`, or to one task (`ctx.start_task(..., retry=...)`); the most
    specific wins.

    Attributes:
        max_attempts: runs of the task in all, the first included (1: never retried; at
            most 100).
        backoff_seconds: the delay before the second attempt.
        backoff_factor: how the delay grows for each later attempt.
        max_backoff_seconds: the delay never grows beyond this.
    """

    max_attempts: int = 1
    backoff_seconds: float = 1.0
    backoff_factor: float = 2.0
    max_backoff_seconds: float = 60.0

    def __post_init__(self) -> None:
        """Refuse (InvalidConfiguration) a policy with a value out of range, as it is made.

        It needs 1 to `MAX_TASK_ATTEMPTS` attempts, finite delays that are not negative, and a
        factor of at least 1; a stored policy read back goes through the same check.
        """
        check_count("RetryPolicy.max_attempts", self.max_attempts, minimum=1)
        if self.max_attempts > MAX_TASK_ATTEMPTS:
            raise InvalidConfiguration(f"RetryPolicy.max_attempts must be at most "
                                       f"{MAX_TASK_ATTEMPTS} (got {self.max_attempts})")
        check_seconds("RetryPolicy.backoff_seconds", self.backoff_seconds, positive=False)
        check_seconds("RetryPolicy.max_backoff_seconds", self.max_backoff_seconds,
                      positive=False)
        check_factor("RetryPolicy.backoff_factor", self.backoff_factor)

    @property
    def retries(self) -> bool:
        """Whether it runs a failed task again at all: a policy of one attempt is no policy."""
        return self.max_attempts > 1

    def delay_before(self, attempt: int) -> float:
        """Back-off before attempt number `attempt` (1-based); the first runs at once."""
        return backoff(self.backoff_seconds, self.backoff_factor, attempt,
                       self.max_backoff_seconds)

    def to_mapping(self) -> dict[str, Any]:
        """As the store keeps it with each task."""
        return {"max_attempts": self.max_attempts, "backoff_seconds": self.backoff_seconds,
                "backoff_factor": self.backoff_factor,
                "max_backoff_seconds": self.max_backoff_seconds}

    @classmethod
    def from_mapping(cls, value: Mapping[str, Any]) -> RetryPolicy:
        """What `to_mapping` wrote; a value it could not have written is named, not used."""
        try:
            return cls(**{key: value[key] for key in
                          ("max_attempts", "backoff_seconds", "backoff_factor",
                           "max_backoff_seconds")})
        except (KeyError, TypeError, InvalidConfiguration) as err:
            raise InvalidConfiguration(f"a stored retry policy is not one: {value!r:.200} "
                                       f"({err})") from None


#: The default: a task that fails makes its command fail, as before retries existed.
NO_RETRY = RetryPolicy()
