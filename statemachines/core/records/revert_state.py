"""Per-resource revert state: the second loop guard, persisted so it survives restarts.

A resource moves only forward: none -> reverting -> reverted | revert_failed, and
revert_failed -> reverted when an operator's cleanup succeeds. Once reverted it is never
reverted again; after the bounded retries it stays revert_failed, visible, until a cleanup
finds it reverted.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple


class RevertState(StrEnum):
    """Where one resource's revert stands: none, reverting, reverted or revert_failed.

    It moves only forward (`REVERT_ORDER`); a resource reverted is never reverted again.
    """

    NONE = "none"
    REVERTING = "reverting"
    REVERTED = "reverted"
    REVERT_FAILED = "revert_failed"


# Forward order of the revert states; a write that goes backwards is a bug.
REVERT_ORDER = {
    RevertState.NONE: 0,
    RevertState.REVERTING: 1,
    RevertState.REVERT_FAILED: 2,
    RevertState.REVERTED: 3,
}


class ResourceRef(NamedTuple):
    """A thing a command created and that an opposite command may have to remove.

    A named tuple, not a frozen dataclass: the engine makes and hashes hundreds of
    thousands of them in a large rollback, and a tuple's construction and hash are C.

    Attributes:
        type: its kind ("disk", "address"); a Ledger registered for it keeps what exists.
        id: its name within that kind.
    """

    type: str
    id: str

    def __str__(self) -> str:
        """`type:id`, the form messages name a resource in."""
        return f"{self.type}:{self.id}"


@dataclass(frozen=True)
class ResourceRevert:
    """The revert state of one resource as created by one command (`owner`).

    Keyed by owner too, so a resource name reused by a later root starts afresh instead of
    inheriting "already reverted" from the VM that had the name before.
    """

    resource: ResourceRef
    owner: str
    state: RevertState = RevertState.NONE
    # Opposite commands started for it, and how many of them ended with their outcome lost
    # (with a dead engine or host) rather than failed: attempts - lost failed for real.
    attempts: int = 0
    last_error: str | None = None
    lost: int = 0

    @property
    def failures(self) -> int:
        """The number of opposite commands that failed for real, the lost ones not counted."""
        return self.attempts - self.lost
