"""A worker's share and claim batch follow how it keeps up.

They double after a short tick that wanted more roots, halve after a long one, and never go below
where they started (the fixed share and batch of earlier releases) nor above `max_roots`.
"""

from __future__ import annotations

from statemachines import WorkerLease
from statemachines.core.engine.claim_pacing import START_SHARE, ClaimPacing


def _full_claim(pacing: ClaimPacing, held: int) -> int:
    room = pacing.room(held)
    pacing.claimed(room, room)
    return room


def test_short_ticks_with_full_claims_grow_share_and_batch_up_to_max_roots() -> None:
    pacing = ClaimPacing(WorkerLease(owner="w", max_roots=1000, claim_batch=8))
    assert (pacing.share, pacing.batch) == (START_SHARE, 8)
    held = 0
    for _ in range(20):
        held += max(0, _full_claim(pacing, held))
        pacing.after_tick(0.01)
    assert pacing.share == 1000
    assert pacing.batch <= pacing.share
    assert held <= 1000


def test_a_claim_that_finds_fewer_roots_than_asked_grows_nothing() -> None:
    pacing = ClaimPacing(WorkerLease(owner="w"))
    room = pacing.room(0)
    pacing.claimed(room, room - 1)
    pacing.after_tick(0.01)
    assert (pacing.share, pacing.batch) == (START_SHARE, 8)


def test_a_full_share_grows_on_a_short_tick() -> None:
    pacing = ClaimPacing(WorkerLease(owner="w"))
    assert pacing.room(START_SHARE) == 0
    pacing.after_tick(0.01)
    assert pacing.share == 2 * START_SHARE


def test_long_ticks_halve_back_to_where_they_started_never_below() -> None:
    lease = WorkerLease(owner="w", claim_batch=4, tick_budget=0.1)
    pacing = ClaimPacing(lease)
    for _ in range(6):
        _full_claim(pacing, 0)
        pacing.after_tick(0.01)
    assert pacing.share > START_SHARE and pacing.batch > 4
    for _ in range(20):
        _full_claim(pacing, 0)
        pacing.after_tick(1.0)
    assert (pacing.share, pacing.batch) == (START_SHARE, 4)


def test_a_share_halved_below_what_the_worker_holds_does_not_grow_back_at_once() -> None:
    """A worker holding more roots than its halved share is over it, not short of roots.

    Holding 1,000 roots when a long tick halves its share to 512, it must not double the share again
    on the short ticks after that.
    """
    pacing = ClaimPacing(WorkerLease(owner="w", max_roots=1024))
    while pacing.share < 1024:
        _full_claim(pacing, 0)
        pacing.after_tick(0.01)
    pacing.after_tick(2.0)
    assert pacing.share == 512
    for _ in range(3):
        assert pacing.room(1000) < 0
        pacing.after_tick(0.01)
    assert pacing.share == 512


def test_a_share_smaller_than_the_start_is_the_ceiling() -> None:
    pacing = ClaimPacing(WorkerLease(owner="w", max_roots=4, claim_batch=8))
    assert pacing.share == 4
    assert pacing.room(0) == 4
    assert pacing.room(4) <= 0


def test_without_adaptive_the_share_and_batch_are_fixed() -> None:
    pacing = ClaimPacing(WorkerLease(owner="w", max_roots=100, claim_batch=8, adaptive=False))
    for seconds in (0.01, 5.0, 0.01):
        _full_claim(pacing, 0)
        pacing.after_tick(seconds)
    assert (pacing.share, pacing.batch) == (100, 8)
