"""How a worker shares a database by leasing whole roots.

statemachines/core/engine/leases.py says why. Here: what a worker claims and when, inside its
tick's own transaction; its renewals, which fence every tick; the rows that follow its trees;
and its wake-ups. Part of `Engine` (statemachines/core/engine/engine.py).
"""

from __future__ import annotations

import logging

from ..errors import (
    LeaseLost,
    RootFault,
)
from ..ports.store_protocol import StoreTransaction
from .engine_loading import PARK_SECONDS, EngineLoading

log = logging.getLogger("endaction.engine")


class WorkerLeasing(EngineLoading):
    """`Engine`'s leases; see the module's docstring."""

    def _claim_room(self) -> int:
        """How many roots a worker below its share claims in this tick.

        It claims every claim_interval, or at once after a wake-up or a claim that came back
        full.
        """
        lease = self.lease
        if lease is None or self.now < self._claim_at:
            return 0
        self._claim_at = self.now + lease.claim_interval
        return max(0, self._pacing.room(len(self._roots)))

    def _claim(self, tx: StoreTransaction, room: int) -> list[RootFault]:
        """Claim free or lapsed roots inside the tick's own transaction, into the view.

        Their lease rows stay locked until the transaction commits, so nobody writes those
        trees meanwhile; taken into the view, their work is done in this same tick. A rollback
        of the transaction gives them back. Returns the roots this engine cannot run, to be
        held once the tick has committed.
        """
        lease = self._lease
        found = tx.claim_roots(lease.owner, self.now, self.now + lease.ttl, room)
        self._pacing.claimed(room, len(found))
        claimed = set(found) - self._roots
        if len(found) >= room:
            self._claim_at = self.now  # there may be more: look again at the next tick
        if not claimed:
            return []
        log.info("worker %s claimed %d root(s)", lease.owner, len(claimed))
        state, faults = self._loadable(tx.load_active(claimed))
        held = {fault.root_id for fault in faults}
        self.roots_taken_over += self._adopt(state, claimed - held, reset_clears=True,
                                             recovery=f"taken over by {self.actor}")
        return faults

    def wake(self) -> None:
        """Work was made for some worker (`Store.wakeups`): look for it at the next tick.

        The next tick looks for roots, instead of waiting for the next claim_interval, and
        reads the cancel requests.
        """
        self._claim_at = self._cancels_at = 0.0

    def release(self) -> int:
        """Give every lease back (a worker stopping cleanly); returns how many it held.

        Others then take its roots over at once instead of after `ttl`.
        """
        self._forget_view()
        released = self.store.release_leases(self._lease.owner)
        self._roots = set()
        return released

    def _cancels_due(self) -> bool:
        """Whether this tick reads the cancel requests.

        A single engine reads them in every tick; a worker when woken (a request wakes it,
        `Store.wakeups`) and every claim_interval otherwise, which spares each tick of a busy
        worker one read.
        """
        if self._single:
            return True
        if self.now < self._cancels_at:
            return False
        self._cancels_at = self.now + self._lease.claim_interval
        return True

    def _cancel_requested(self) -> bool:
        """A cancel request for a root this engine runs (one read; requests are rare)."""
        return any(root in self._view.commands for root in self.store.cancel_requests())

    @property
    def roots_held(self) -> int:
        """The roots this engine holds a lease on now, for a worker's summary line."""
        return len(self._roots)

    def _leases_due(self) -> bool:
        """Whether this tick must write leases, even with nothing else to do.

        It must when a worker's leases need renewing, or when leased roots turned out finished
        and their rows must go.
        """
        return self.now >= self._renew_at or bool(self._roots - self._view.live_roots())

    def _renew_leases(self, tx: StoreTransaction) -> None:
        """Renew the engine's leases, first thing in a tick; they stay locked until commit.

        A root taken over since (its lease had lapsed) means the view is stale: the
        transaction is rolled back (`LeaseLost`).
        """
        owner = self._lease.owner
        held = tx.renew_leases(owner, self._roots, self.now + self._lease.ttl)
        lost = self._roots - held
        if lost:
            raise LeaseLost(f"{owner} lost {len(lost)} root(s) to another worker (its lease "
                            f"had lapsed), e.g. {min(lost)}; rolled back")
        self._renew_at = self.now + self._lease.ttl / 3

    def _settle_roots(self, tx: StoreTransaction) -> set[str]:
        """Make the lease rows follow the trees; returns the roots still live and not parked.

        A root whose tree has no work left loses its row; one that has work again (a cleanup's
        opposite commands) gets one back. A worker parks the roots whose only work left is
        clears its host keeps refusing: they stop taking its share, and whoever claims them
        after `PARK_SECONDS` tries a new round of clears.
        """
        live = self._view.live_roots()
        until = self.now + self._lease.ttl
        if gone := self._roots - live:
            tx.finish_roots(gone)
        if new := live - self._roots:
            tx.open_roots(new, self._lease.owner, until)
        if not self._single and (parked := self._view.stuck_roots(live, self.limits)):
            tx.park_roots(parked, self._lease.owner, self.now + PARK_SECONDS)
            self._parked = parked
            live -= parked
        return live
