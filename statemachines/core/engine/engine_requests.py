"""What operators ask of an engine: cancel a root, clean up what was left revert_failed.

A single engine acts on a request in a transaction of its own; a worker takes a cleanup
request that another process wrote (`request_cleanup`), so that only one worker acts on it
and only in the roots no other worker holds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..operations.operator_requests import CLEANUP_REQUEST, request_cancel, request_cleanup
from ..records.revert_state import ResourceRevert
from ..records.tick_report import TickReport
from ..tick.phases import Tick
from .engine_leasing import WorkerLeasing

log = logging.getLogger("endaction.engine")


class EngineRequests(WorkerLeasing):
    """`Engine`'s operator requests; see the module's docstring."""

    ticks_committed: int

    def _in_transaction(self, report: TickReport, work: Callable[[Tick], object],
                        claim: int = 0) -> TickReport:
        raise NotImplementedError  # Engine's: one tick's transaction

    def cancel(self, root_id: str, reason: str = "cancelled by request") -> None:
        """Ask for a running root to be cancelled.

        Whichever engine runs it acts on it at its next tick (a worker: the next after the
        request's wake-up, or within its claim_interval where none reaches it): what has not
        started is refused, running tasks are aborted on their agents, and what already
        succeeded is reverted like after any other failure.

        Raises NotCancellable for an unknown id, a command that is not a root, or a root that
        has already ended.
        """
        request_cancel(self.store, root_id, reason, self.clock())

    def cleanup(self) -> list[ResourceRevert]:
        """Start one more opposite command for every ended owner's resource left `revert_failed`.

        Run the engine afterwards to carry them out; each resource reads `reverted` once one
        succeeds. Returns the resources retried or found gone.
        """
        if not self._loaded:
            self.recover()
        self.now = self.clock()
        retried: list[ResourceRevert] = []
        self._in_transaction(TickReport(number=self.ticks_committed + 1),
                             lambda tick: retried.extend(tick.start_cleanup()))
        return retried

    def request_cleanup(self) -> None:
        """Ask a worker to clean up: while workers hold leases, `cleanup` here is refused."""
        request_cleanup(self.store, self.clock())

    def serve_cleanup_request(self) -> list[ResourceRevert] | None:
        """A worker's part of `request_cleanup`: take a waiting request and start its reverts.

        If a request waits, take it (one worker does) and start the opposite commands of the
        resources left revert_failed, in roots no other worker holds; they run as this
        worker's roots. Returns the resources retried, or None if no request waited.
        """
        if self.store.setting(CLEANUP_REQUEST) is None:
            return None
        self.now = self.clock()
        mine = self._lease.owner
        elsewhere = {root for root, owner, _ in self.store.leases() if owner != mine}
        retried: list[ResourceRevert] = []
        taken: list[bool] = []

        def work(tick: Tick) -> None:
            if tick.state.tx.take_setting(CLEANUP_REQUEST):
                retried.extend(tick.start_cleanup(skip=elsewhere.__contains__))
                taken.append(True)  # only if the transaction then commits (see below)

        report = self._in_transaction(TickReport(number=self.ticks_committed + 1), work)
        if not taken or (report.errors and not report.committed):
            return None  # a hold rolled the transaction back, the request with it
        log.info("%s took a cleanup request: %d resource(s) retried", mine, len(retried))
        return retried
