"""An operator's cleanup: one more opposite command for every resource given up on.

A resource left `revert_failed` stays visible until an operator runs `cleanup` (once the
cause is fixed). Each gets one more opposite command, started under the command that made
it, which has ended; it reads `reverted` once that succeeds. When nothing a command (and
everything under it) made is left any more, its outcome becomes `cleaned_up`, recorded in
its history: the tree no longer reads as broken, and its status stays what its end was, so
no command is ended twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from ..machines.command_machine import COMMAND_MACHINE, HookPhase, Outcome
from ..records.records import CommandRecord, HistoryEvent
from ..records.revert_state import ResourceRevert, RevertState
from .containment import contain
from .spawning import create_child
from .tick_access import hook
from .tick_state import TickState

#: The outcomes of commands that left something behind, or had a child that did.
_LEFT_BEHIND = (Outcome.REVERT_FAILED, Outcome.CHILD_REVERT_FAILED)


def start_cleanup(state: TickState,
                  skip: Callable[[str], bool] = lambda root_id: False) -> list[ResourceRevert]:
    """Start one more opposite command for every resource given up on (revert_failed).

    Only resources whose owner has ended are retried, outside the roots `skip` names (another
    worker holds them); the resource reads reverted once one succeeds. Returns the resources
    retried (or found gone).
    """
    retried = []
    tx, recorder, report = state.tx, state.recorder, state.report
    for revert, owner in tx.failed_reverts():
        if skip(owner.root_id):
            continue
        if state.view.reverting.get(revert.resource):
            continue  # an opposite command for it is in flight already
        if not COMMAND_MACHINE.is_terminal(owner.status):
            continue  # its own rollback still decides
        with contain() as contained:
            command, ctx = hook(state, owner, HookPhase.CLEANUP)
            exists = command.resource_exists(ctx, revert.resource)
            opposite = command.revert(ctx, revert.resource) if exists else None
            if not exists:
                tx.put_revert(replace(revert, state=RevertState.REVERTED))
                recorder.history(owner, HistoryEvent.CLEANUP, owner.status, owner.status,
                                 f"{revert.resource} is gone already")
                record_what_is_left(state, owner.root_id)
            elif opposite is not None:
                child = create_child(state, owner, opposite.type_name, opposite.parameters,
                                     revert.resource, compensation=True)
                tx.put_revert(replace(revert, attempts=revert.attempts + 1))
                report.compensations_started += 1
                recorder.history(owner, HistoryEvent.CLEANUP, owner.status, owner.status,
                                 f"{opposite.type_name} {child.id} for {revert.resource}")
        if contained.failed:
            report.errors.append(
                f"cleanup of {revert.resource} ({owner.type} {owner.id}) failed: "
                f"{contained.describe()}")
        elif exists and opposite is None:
            report.errors.append(
                f"{owner.type} {owner.id} names no opposite command for {revert.resource}")
        else:
            retried.append(revert)
    return retried


def record_what_is_left(state: TickState, root_id: str) -> None:
    """Mark `cleaned_up` the commands of `root_id`'s tree that no longer leave anything behind.

    It runs after a cleanup reverted a resource of the tree: every command of it that reads as
    having left something behind, and under which nothing is left now, reads `cleaned_up` (its
    error keeps the cause; its history says when).
    """
    tx, recorder = state.tx, state.recorder
    commands = {c.id: c for c in tx.commands_of_root(root_id)}
    changed = recorder.changes.changed_commands
    for command_id in commands:
        if command_id in changed:
            commands[command_id] = changed[command_id]
    left = {r.owner for r in tx.reverts_of(list(commands))
            if r.state == RevertState.REVERT_FAILED}
    # Which commands have something left in their subtree: walk up from each owner.
    left_under: set[str] = set()
    for owner in left:
        current: CommandRecord | None = commands.get(owner)
        while current is not None and current.id not in left_under:
            left_under.add(current.id)
            current = commands.get(current.parent_id) if current.parent_id else None
    for command in commands.values():
        if command.outcome in _LEFT_BEHIND and command.id not in left_under:
            command.outcome = Outcome.CLEANED_UP
            recorder.touch(command)
            recorder.history(command, HistoryEvent.CLEANUP, command.status, command.status,
                             "a cleanup reverted what was left: nothing it made is left")
