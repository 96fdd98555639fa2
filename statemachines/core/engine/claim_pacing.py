"""How many roots a worker holds and claims at once, adapted to how well it keeps up.

A fixed share is wrong both ways: too small, and a worker with a fast database idles between
polls of tasks that ended long ago (64 roots held, each waiting its turn, bound one worker to
about 200 roots a second); too large, and one worker that woke first takes a whole burst, its
ticks grow long (every poll, renewal and stop request waits for them) and a second worker
gets nothing. So a worker starts with a modest share and batch, and after every tick:

- a tick within `tick_budget` after a claim that came back full, or that found no room in
  the share, doubles the share (up to `max_roots`) and the batch: it keeps up, and more
  roots may be waiting;
- a tick over `tick_budget` halves both, down to where they started: it is falling behind,
  and the roots it does not claim go to other workers.

A tick's time here is its own work, the agent calls left out (`Engine.tick` measures them
apart): a slow or unreachable host makes every tick long whatever the share, and shrinking
the share for it would leave the roots of healthy hosts unclaimed.

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
        # Never below where it starts (the fixed share and batch of earlier releases): a
        # slow stretch claims less than a fast one, never less than before.
        self.floor_share, self.floor_batch = self.share, self.batch
        self._wanted_more = False

    def room(self, held: int) -> int:
        """How many roots to claim now, holding `held`."""
        room = min(self.batch, self.share - held)
        # A full share wants more; one held over a share just halved does not.
        self._wanted_more |= held == self.share
        return room

    def claimed(self, asked: int, got: int) -> None:
        """A full claim: more roots may be waiting than this worker takes at once."""
        self._wanted_more |= got >= asked > 0

    def after_tick(self, seconds: float) -> None:
        """`seconds`: the tick's own work, its agent calls left out."""
        lease = self.lease
        if not lease.adaptive:
            return
        if seconds > lease.tick_budget:
            self.share = max(self.floor_share, self.share // 2)
            self.batch = max(self.floor_batch, self.batch // 2)
        elif self._wanted_more:
            self.share = min(lease.max_roots, self.share * 2)
            self.batch = min(self.share, self.batch * 2)
        self.batch = min(self.batch, self.share)
        self._wanted_more = False
