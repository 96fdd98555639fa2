"""`endaction cleanup` while workers run: asked of them, not done here.

A single engine may not work beside workers (their leases fence the roots), so with a fleet
running the command records a cleanup request that one worker takes and performs, and waits
(bounded, saying what it waits for) until every resource it found left `revert_failed` has
no opposite command in flight any more.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..core.engine.engine import Engine
from ..core.machines.command_machine import COMMAND_MACHINE
from ..core.machines.reasons import ExecutionReason
from ..core.operations.operator_requests import CLEANUP_REQUEST
from ..core.ports.store_protocol import Store
from ..core.records.revert_state import ResourceRevert, RevertState


class NotTaken(Exception):
    """No worker took the request within the wait (it stays, for a worker to take later)."""


def ask_the_workers(engine: Engine, store: Store, timeout: float,
                    note: Callable[[str], None],
                    notice_seconds: float = 10.0) -> list[ResourceRevert]:
    """Request the cleanup, then wait for the workers to carry it out.

    Waits for a worker to take the request and for its opposite commands to end. Returns the
    resources that were left revert_failed when it was asked.
    """
    left = [r for r in store.reverts() if r.state == RevertState.REVERT_FAILED]
    engine.request_cleanup()
    note(f"workers hold leases: asked them to clean up {len(left)} resource(s) left "
         "revert_failed")
    started = last = time.monotonic()

    def waiting(what: str) -> None:
        nonlocal last
        now = time.monotonic()
        if now - started >= timeout:
            raise NotTaken(f"{what} after {timeout:g} s")
        if now - last >= notice_seconds:
            note(f"still waiting ({now - started:.0f} s): {what}")
            last = now
        time.sleep(0.1)

    while store.setting(CLEANUP_REQUEST) is not None:
        waiting("no worker has taken the cleanup request (are workers running on this "
                "database?); it stays for the next worker that looks")
    while busy := _in_flight(store, left):
        waiting(f"{len(busy)} opposite command(s) still running for "
                f"{', '.join(str(r.resource) for r in busy[:3])}")
    return left


def _in_flight(store: Store, left: list[ResourceRevert]) -> list[ResourceRevert]:
    """The resources that an opposite command is still working on."""
    busy = []
    for revert in left:
        owner = store.command(revert.owner)
        if owner is None:
            continue
        commands, _ = store.tree(owner.root_id)
        if any(c.execution_reason == ExecutionReason.ROLLBACK_FLOW
               and (c.entity_type, c.entity_id) == (revert.resource.type, revert.resource.id)
               and not COMMAND_MACHINE.is_terminal(c.status) for c in commands):
            busy.append(revert)
    return busy
