"""Settling a rolling-back command, and what its end finally means.

Settling runs its end_with_failure, applies both loop guards and starts its opposite command.
A rolling-back command is settled when its end takes the failure path and again each time a
child (typically its opposite command) ends: end_with_failure runs again and the guards
decide whether anything is left to revert. This re-entry is the loop the guards must stop.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from ..commands.command import Command, Compensation
from ..commands.compensation_policy import Decision, decide
from ..errors import EndactionError
from ..machines.command_machine import (
    COMMAND_MACHINE,
    CommandStatus,
    CommandTrigger,
    HookPhase,
    Outcome,
)
from ..machines.host_status import HostStatus
from ..machines.reasons import ExecutionReason
from ..records.records import CommandRecord, HistoryEvent, resources_of
from ..records.revert_state import ResourceRef, ResourceRevert, RevertState
from .cleanup import record_what_is_left
from .containment import contain
from .engine_view import opposite_resource
from .hook_context import HookContext
from .spawning import create_child
from .tick_access import hook
from .tick_state import TickState, for_root

log = logging.getLogger("endaction.engine")


def drain(state: TickState) -> None:
    """Settle every queued rolling-back command, and whatever settling them queues.

    Once the tick has started `Limits.max_opposite_commands_per_tick` opposite commands, a
    command that has yet to start its first waits for the next tick (`view.resettle`, which
    a restart rebuilds from the rolling-back commands), so a tick's memory does not grow with
    the number of resources a rollback reverts. Commands whose revert is under way go on:
    what the window holds back is new work, never the end of work begun.
    """
    queue = state.to_settle
    window = state.config.limits.max_opposite_commands_per_tick
    while queue:
        record = queue.popleft()
        if record.status != CommandStatus.ROLLING_BACK:
            continue
        if state.report.compensations_started >= window and _not_begun(record):
            state.view.resettle.add(record.id)
            continue
        with for_root(record.root_id):
            settle(state, record)


def _not_begun(record: CommandRecord) -> bool:
    """A regular command with resources whose revert has not begun.

    No opposite command was started for it yet (that sets its outcome), and its own work did not
    fail.
    """
    return (record.execution_reason == ExecutionReason.REGULAR_FLOW and record.outcome is None
            and bool(resources_of(record)))


def settle(state: TickState, record: CommandRecord) -> None:
    """Move a rolling-back command on, once none of its children is still running.

    A hook that raises, or names an opposite command that cannot be built, gives up on this
    one command (rollback_failed, visible) and never stalls the engine.
    """
    if state.view.children.get(record.id):
        return  # a child (typically the opposite command) is still running
    with contain() as contained:
        command, ctx = hook(state, record, HookPhase.END_WITH_FAILURE)
        command.end_with_failure(ctx)
        if record.execution_reason == ExecutionReason.ROLLBACK_FLOW:
            _finish_opposite(state, record)
        else:
            _revert_resources(state, record, command, ctx)
    if contained.failed:
        message = f"rolling back {record.type} failed: {contained.describe()}"
        # A hook that raises is a bug, not a transient failure: running the opposite
        # command again would repeat work that may well have succeeded already. The
        # resource is left revert_failed, under its owner, for a cleanup once it is fixed.
        if record.execution_reason == ExecutionReason.ROLLBACK_FLOW:
            _mark_revert_failed(state, record, message)
        else:
            _mark_own_revert_failed(state, record, message)
        give_up(state, record, message)


def _mark_own_revert_failed(state: TickState, record: CommandRecord, message: str) -> None:
    """A regular command could not finish its rollback.

    What it made and is not reverted already is left for cleanup, under its own name.
    """
    for resource in resources_of(record):
        revert = state.tx.get_revert(resource, record.id)
        if revert.state not in (RevertState.REVERTED, RevertState.REVERT_FAILED):
            state.tx.put_revert(replace(revert, state=RevertState.REVERT_FAILED,
                                        last_error=message))


def _mark_revert_failed(state: TickState, record: CommandRecord, message: str) -> None:
    """An opposite command gave up: its resource is not reverted again (but cleaned up)."""
    reverted = reverted_by(record)
    if reverted is not None:
        revert = state.tx.get_revert(*reverted)
        if revert.state != RevertState.REVERTED:
            state.tx.put_revert(replace(revert, state=RevertState.REVERT_FAILED,
                                        last_error=message))


class _Wait:
    """An opposite command for the resource is in flight: settle again when it ends."""


_WAIT = _Wait()


def _revert_resources(state: TickState, record: CommandRecord, command: Command,
                      ctx: HookContext) -> None:
    """Revert what the command made, the last made first, one opposite command at a time.

    A later step's resource may depend on an earlier one's (a DNS record on its address). A
    resource given up on does not stop the others from being reverted; the command then gives
    up, naming each.
    """
    given_up: list[str] = []
    last = "nothing to revert"
    for resource in reversed(resources_of(record)):
        done = _revert(state, record, command, ctx, resource)
        if done is _WAIT:
            return
        if isinstance(done, _GaveUp):
            given_up.append(done.message)
        else:
            last = str(done)
    if given_up:
        give_up(state, record, "; ".join(given_up))
        return
    if record.outcome is None:
        record.outcome = Outcome.ROLLED_BACK
    _rolled_back(state, record, last)


class _GaveUp:
    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


def _revert(state: TickState, record: CommandRecord, command: Command, ctx: HookContext,
            resource: ResourceRef) -> str | _Wait | _GaveUp:
    """Apply both loop guards to one resource, then start its opposite command if work is left.

    Returns why nothing is left, `_WAIT`, or why it was given up on.
    """
    tx, view = state.tx, state.view
    exists = command.resource_exists(ctx, resource)
    revert = tx.get_revert(resource, record.id)
    decision = decide(state.config.policy, exists, revert)
    if decision == Decision.NOTHING_TO_REVERT:
        if not exists and revert.state == RevertState.REVERTING:
            # An earlier attempt (failed or lost) or someone else removed it after all.
            revert = replace(revert, state=RevertState.REVERTED)
            tx.put_revert(revert)
        reason = "no longer in the inventory" if not exists else f"already {revert.state}"
        return f"{resource} {reason}"
    if decision == Decision.GIVE_UP:
        if revert.state != RevertState.REVERT_FAILED:
            tx.put_revert(replace(revert, state=RevertState.REVERT_FAILED))
        return _GaveUp(gave_up_on(resource, revert))
    if view.reverting.get(resource):
        # Settled again when that opposite command ends (`on_terminal`): by then the
        # guards will most likely find nothing left to revert.
        view.awaiting_revert[resource].add(record.id)
        return _WAIT
    opposite = command.revert(ctx, resource)
    if opposite is None:
        return _nothing_left(state, record, revert, resource)
    return _start_opposite(state, record, revert, resource, opposite)


def _nothing_left(state: TickState, record: CommandRecord, revert: ResourceRevert,
                  resource: ResourceRef) -> str:
    """`revert` said nothing of the resource is left: believed only if its ledger agrees."""
    if state.tx.resource_exists(resource):
        raise RevertContradiction(
            f"revert returned None for {resource} (nothing to revert), but its ledger "
            "still holds it: drop its row before returning None, or name the opposite "
            "command that reverts it")
    state.tx.put_revert(replace(revert, state=RevertState.REVERTED))
    state.recorder.history(record, HistoryEvent.COMPENSATE, record.status, record.status,
                           f"nothing to revert for {resource}")
    return f"{resource}: nothing to revert"


def _start_opposite(state: TickState, record: CommandRecord, revert: ResourceRevert,
                    resource: ResourceRef, opposite: Compensation) -> _Wait:
    """Start the opposite command that `revert` named, as a child of `record`.

    It starts after the policy's delay for this attempt; the resource is `reverting` until it
    ends.
    """
    attempt = revert.attempts + 1
    child = create_child(
        state, record, opposite.type_name, opposite.parameters, resource, compensation=True,
        not_before=state.now + state.config.policy.delay_before(attempt))
    state.tx.put_revert(replace(revert, state=RevertState.REVERTING, attempts=attempt))
    if opposite.native:
        if record.outcome is None:
            record.outcome = Outcome.ROLLED_BACK_NATIVELY
    elif record.outcome in (None, Outcome.ROLLED_BACK_NATIVELY):
        record.outcome = Outcome.ROLLED_BACK
    state.report.compensations_started += 1
    native = " (native revert)" if opposite.native else ""
    state.recorder.history(record, HistoryEvent.COMPENSATE, record.status, record.status,
                           f"{opposite.type_name} {child.id} for {resource}{native}, attempt "
                           f"{attempt}")
    return _WAIT


class RevertContradiction(EndactionError):
    """`revert` said nothing is left of a resource its ledger still holds."""


def _finish_opposite(state: TickState, record: CommandRecord) -> None:
    """Settle an opposite command's own outcome, and its resource's revert state with it.

    The resource is reverted, or the attempt failed, or its outcome was lost (redone without
    spending the failure budget).
    """
    if record.outcome == Outcome.CHILD_REVERT_FAILED:
        message = "a child of this opposite command gave up (see its error)"
        _mark_revert_failed(state, record, message)
        return give_up(state, record, message)
    tasks = state.view.tasks_by_command.get(record.id, ())
    if record.work_succeeded:
        record.outcome = Outcome.REVERTED
    elif tasks and all(t.succeeded or t.host_status == HostStatus.UNKNOWN for t in tasks):
        record.outcome = Outcome.LOST
    else:
        record.outcome = Outcome.ATTEMPT_FAILED
    reverted = reverted_by(record)
    if reverted is not None:
        revert = state.tx.get_revert(*reverted)
        if record.outcome == Outcome.REVERTED:
            revert = replace(revert, state=RevertState.REVERTED, last_error=None)
        else:
            messages = "; ".join(t.message for t in tasks if t.message)
            revert = replace(revert, last_error=messages or record.error
                             or f"{record.type} {record.id} failed",
                             lost=revert.lost + (record.outcome == Outcome.LOST))
        state.tx.put_revert(revert)
    if (record.outcome == Outcome.REVERTED and record.parent_id is not None
            and record.parent_id not in state.view.commands):
        # The command it reverts had ended: this was a cleanup's opposite command.
        record_what_is_left(state, record.root_id)
    return _rolled_back(state, record, record.outcome)


def _rolled_back(state: TickState, record: CommandRecord, detail: str) -> None:
    if record.outcome == Outcome.CHILD_REVERT_FAILED:
        return give_up(state, record, "a command under it could not be rolled back: what it "
                       "made is left revert_failed (see its error)")
    state.recorder.fire(record, COMMAND_MACHINE, CommandTrigger.ROLLED_BACK, detail)
    state.on_terminal(record)
    return None


def give_up(state: TickState, record: CommandRecord, message: str) -> None:
    """End a rolling-back command in rollback_failed, with the outcome revert_failed.

    `message` is added to its error and logged. A parent still rolling back is marked
    child_revert_failed, so that its end says the tree's rollback did not get everything back.
    """
    # The cause of the failure stays first: a reader of the root learns what went wrong,
    # then that its rollback did not get everything back.
    record.error = message if record.error is None else f"{record.error}; then: {message}"
    record.outcome = Outcome.REVERT_FAILED
    log.error("%s %s: %s", record.type, record.id, message)
    state.recorder.fire(record, COMMAND_MACHINE, CommandTrigger.GIVE_UP, message)
    parent = state.view.commands.get(record.parent_id) if record.parent_id else None
    if parent is not None and parent.status == CommandStatus.ROLLING_BACK:
        # The parent's own rollback may succeed, but the tree's did not: it must say so.
        parent.outcome = Outcome.CHILD_REVERT_FAILED
        state.recorder.touch(parent)
    state.on_terminal(record)


def reverted_by(record: CommandRecord) -> tuple[ResourceRef, str] | None:
    """The resource an opposite command reverts, and the command whose revert row it is.

    Only the head of its own ROLLBACK_FLOW group reverts one, not one of its children: for any
    other command, None.
    """
    resource = opposite_resource(record)
    if resource is None or record.parent_id is None:
        return None
    return resource, record.parent_id


def gave_up_on(resource: ResourceRef, revert: ResourceRevert) -> str:
    """Why a resource could not be reverted, read from its revert state, for its owner's error."""
    if revert.state == RevertState.REVERT_FAILED:
        why = "it was given up on"
    elif revert.failures and revert.lost:
        why = (f"{revert.failures} attempt(s) failed and the outcome of {revert.lost} was "
               "lost")
    elif revert.lost:
        why = f"its outcome was lost {revert.lost} time(s)"
    else:
        why = f"{revert.failures} attempt(s) failed"
    return (f"{resource} could not be reverted: {why}"
            + (f" (last: {revert.last_error})" if revert.last_error else ""))
