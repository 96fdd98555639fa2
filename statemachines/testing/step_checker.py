"""The proofs' running state between steps: the last persisted snapshot, and how to value it.

Every driver (the Hypothesis machine, the enumerated small worlds, a user's own loop) checks a
step the same way: read the state back, require revert states to have moved only forward,
and require a committing tick to lower the termination measure and any other tick to leave
the database as it was.
"""

from __future__ import annotations

from ..core.ports.store_protocol import Store
from .invariants import check_revert_progress, fail_on
from .snapshot import Snapshot, take_snapshot
from .termination import Bounds, Measure, measure, multiset_less


class StepChecker:
    """The proofs' running state over one store: the last snapshot, and each step's checks.

    Each step must pass them: revert states move only forward, and every committing tick
    lowers the measure.
    """

    def __init__(self, store: Store, roots: list[str], bounds: Bounds) -> None:
        """`roots` is read at each observation: append to it as roots are submitted."""
        self.store = store
        self.roots = roots
        self.bounds = bounds
        self.snap = take_snapshot(store, roots)
        # After a restart the measure is taken as the recovered engine values the state.
        self.fresh_clear_round = False

    def observe(self) -> Snapshot:
        """Read the persisted state back; revert states must only have moved forward."""
        snap = take_snapshot(self.store, self.roots)
        fail_on(check_revert_progress(self.snap, snap), "revert states")
        self.snap = snap
        return snap

    def restarted(self, store: Store) -> None:
        """A new engine recovered over `store`: it grants exhausted clears a new round."""
        self.store = store
        self.fresh_clear_round = True
        self.observe()

    def committed(self, when: str = "") -> Snapshot:
        """After a committing tick: the measure must be lower than at the last observation."""
        before = measure(self.snap, self.bounds, self.fresh_clear_round)
        snap = self.observe()
        after = measure(snap, self.bounds)
        if not multiset_less(after, before):
            raise AssertionError(
                f"a committing tick {when} did not lower the termination measure: ranks gained "
                f"{dict(after - before)}, ranks lost {dict(before - after)}".replace("  ", " "))
        self.fresh_clear_round = False
        return snap

    def unchanged(self) -> Snapshot:
        """After a tick that committed nothing: the database must be as it was."""
        before: Measure = measure(self.snap, self.bounds)
        snap = self.observe()
        if measure(snap, self.bounds) != before:
            raise AssertionError("a tick that committed nothing changed the database")
        return snap
