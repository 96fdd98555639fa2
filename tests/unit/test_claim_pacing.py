"""A worker's share and claim batch follow how it keeps up: they double after a short tick
that wanted more roots, halve after a long one, and stay within their bounds."""

from __future__ import annotations

from statemachines import WorkerLease
from statemachines.core.claim_pacing import START_SHARE, ClaimPacing


def _full_claim(pacing: ClaimPacing, held: int) -> int:
    room = pacing.room(held)
    pacing.claimed(room, room)
    return room


def test_short_ticks_with_full_claims_grow_share_and_batch_up_to_max_roots() -> None:
    pacing = ClaimPacing(WorkerLease(owner="w", max_roots=1000, claim_batch=8))
    assert (pacing.share, pacing.batch) == (START_SHARE, 8)
    held = 0
    for _ in range(20):
        held += _full_claim(pacing, held)
        pacing.after_tick(0.01, held)
    assert pacing.share == 1000
    assert pacing.batch <= pacing.share
    assert held <= 1000


def test_a_claim_that_finds_fewer_roots_than_asked_grows_nothing() -> None:
    pacing = ClaimPacing(WorkerLease(owner="w"))
    room = pacing.room(0)
    pacing.claimed(room, room - 1)
    pacing.after_tick(0.01, room - 1)
    assert (pacing.share, pacing.batch) == (START_SHARE, 8)


def test_long_ticks_halve_down_to_the_claim_batch_and_one_root() -> None:
    lease = WorkerLease(owner="w", claim_batch=4, tick_budget=0.1)
    pacing = ClaimPacing(lease)
    for _ in range(20):
        _full_claim(pacing, 0)
        pacing.after_tick(1.0, 0)
    assert (pacing.share, pacing.batch) == (4, 1)
    assert pacing.room(0) == 1


def test_a_share_smaller_than_the_start_is_the_ceiling() -> None:
    pacing = ClaimPacing(WorkerLease(owner="w", max_roots=4, claim_batch=8))
    assert pacing.share == 4
    assert pacing.room(0) == 4
    assert pacing.room(4) <= 0


def test_without_adaptive_the_share_and_batch_are_fixed() -> None:
    pacing = ClaimPacing(WorkerLease(owner="w", max_roots=100, claim_batch=8, adaptive=False))
    for seconds in (0.01, 5.0, 0.01):
        _full_claim(pacing, 0)
        pacing.after_tick(seconds, 0)
    assert (pacing.share, pacing.batch) == (100, 8)
