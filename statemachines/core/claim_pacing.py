"""How many roots a worker holds and claims at once, adapted to how well it keeps up.

A fixed share is wrong both ways: too small, and a worker with a fast database idles between
polls of tasks that ended long ago (64 roots held, each waiting its turn, bound one worker to
about 200 roots a second); too large, and one worker that woke first takes a whole burst, its
ticks grow long (every poll, renewal and stop request waits for them) and a second worker
gets nothing. So a worker starts with a modest share and batch, and after every tick:

- a tick within `tick_budget` after a claim that came back full, or that found no room in
  the share, doubles the share (up to `max_roots`) and the batch: it keeps up, and more
  roots may be waiting;
- a tick over `tick_budget` halves both (down to `claim_batch` for the share and one root
  for the batch): it is falling behind, and the roots it does not claim go to other workers.

Roots already held are never given back for it: a smaller share only stops new claims.
"""

from __future__ import annotations

from .leases import WorkerLease

#: The share a worker starts with (or `max_roots`, if smaller).
START_SHARE = 64


class ClaimPacing:
    """One worker's current share and claim batch (`WorkerLease.adaptive`)."""

    def __init__(self, lease: WorkerLease) -> None:
        self.lease = lease
        self.share = lease.max_roots if not lease.adaptive else min(START_SHARE,
                                                                    lease.max_roots)
        self.batch = min(lease.claim_batch, self.share)
        self._wanted_more = False

    def room(self, held: int) -> int:
        """How many roots to claim now, holding `held`."""
        room = min(self.batch, self.share - held)
        self._wanted_more |= room <= 0
        return room

    def claimed(self, asked: int, got: int) -> None:
        """A full claim: more roots may be waiting than this worker takes at once."""
        self._wanted_more |= got >= asked > 0

    def after_tick(self, seconds: float, held: int) -> None:
        lease = self.lease
        if not lease.adaptive:
            return
        if seconds > lease.tick_budget:
            self.share = max(min(lease.claim_batch, lease.max_roots), self.share // 2)
            self.batch = max(1, self.batch // 2)
        elif self._wanted_more:
            self.share = min(lease.max_roots, self.share * 2)
            self.batch = min(self.share, self.batch * 2)
        self.batch = min(self.batch, self.share)
        self._wanted_more = False
