"""Fan-in and the end of an end group: claimed once, decided once, run children first.

A group is ready when every member has finished executing and every task has had its last
word from its agent. Its members' ends are claimed in one conditional statement (the durable
AttemptingEndAction guard: two engines can never end the same command twice), its verdict is
decided once, and the command machine takes each member along it.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence

from ..errors import ConcurrentModification
from ..machines.command_machine import (
    COMMAND_MACHINE,
    READY_TO_END_STATES,
    CommandStatus,
    CommandTrigger,
    HookPhase,
    Outcome,
)
from ..machines.reasons import ExecutionReason
from ..machines.task_machine import DONE_TASK_STATES, TASK_MACHINE, TaskTrigger
from ..records.records import CommandRecord
from .containment import contain
from .tick_access import hook
from .tick_state import TickState, for_root
from .verdicts import name_first_cause, own_work_succeeded

log = logging.getLogger("endaction.engine")


def ready_groups(state: TickState) -> list[str]:
    """The heads of the touched end groups whose fan-in is complete, in id order.

    A group is ready when every member has finished executing (or is ending already) and
    every task has had its last word from its agent. The touched groups are cleared: one not
    ready is touched again when something in it happens.
    """
    view = state.view
    ready = []
    for head_id in sorted(view.touched_groups):
        members = view.group_members.get(head_id)
        if members and all(
            m.status in READY_TO_END_STATES or m.status == CommandStatus.ENDING
            for m in members.values()
        ) and all(
            t.status in DONE_TASK_STATES or t.retried
            for m in members for t in view.tasks_by_command.get(m, ())
        ):
            ready.append(head_id)
    view.touched_groups.clear()
    return ready


def end_groups(state: TickState, heads: list[str]) -> None:
    """Claim the ends of every ready group in one atomic statement, then end each group."""
    state.flush_commands()
    groups = {head_id: list(state.view.group_members[head_id].values()) for head_id in heads}
    state.prefetch(m for members in groups.values() for m in members)
    verdicts = {head_id: _verdict(state, head_id, members)
                for head_id, members in groups.items()}
    to_claim = [m for members in groups.values() for m in members
                if m.status != CommandStatus.ENDING]
    claimed = state.tx.claim_ends([m.id for m in to_claim])
    if len(claimed) != len(to_claim):
        lost = sorted({m.id for m in to_claim} - claimed)
        raise ConcurrentModification(
            f"the end of command(s) {', '.join(lost[:5])} was claimed by another engine")
    for member in to_claim:
        member.version += 1  # claim_ends bumped the row's version in the store
        member.end_attempts += 1
        state.recorder.fire(member, COMMAND_MACHINE, CommandTrigger.CLAIM_END)
    for head_id, members in groups.items():
        with for_root(members[0].root_id):
            _end_group(state, head_id, members, verdicts[head_id])


def _verdict(state: TickState, head_id: str, members: list[CommandRecord]) -> bool:
    """Did all the group's work succeed? Read before the claim moves members to `ending`."""
    head = state.view.commands.get(head_id)
    if head is not None and head.work_succeeded is not None:
        # False: a member was refused. True/False on an `ending` head: decided before a crash.
        return head.work_succeeded
    return all(m.status != CommandStatus.EXECUTION_FAILED for m in members) and all(
        t.succeeded for m in members for t in state.view.tasks_by_command.get(m.id, ())
        if not t.retried)


def _end_group(state: TickState, head_id: str, members: list[CommandRecord],
               succeeded: bool) -> None:
    """Run every member's end along the group's single verdict, children first.

    The success hooks run before the verdict is written: one that raises turns the whole
    group to the failure path, so a command whose success bookkeeping failed never
    reads `ended_success`, and what its group made is reverted.
    """
    fire, report = state.recorder.fire, state.report
    ordered = children_first(head_id, members)
    if succeeded:
        succeeded = _end_successfully(state, ordered)
    for member in members:
        member.work_succeeded = succeeded
        member.own_work_succeeded = own_work_succeeded(state, member)
        for task in state.view.tasks_by_command.get(member.id, ()):
            if task.status in DONE_TASK_STATES:
                # Clears get their own budget: a task that needed start retries must not
                # arrive with its clear attempts already spent.
                task.attempts, task.retry_at = 0, 0.0
                fire(task, TASK_MACHINE, TaskTrigger.CLAIM_END)
    for member in ordered:
        fire(member, COMMAND_MACHINE, CommandTrigger.END,
             "work succeeded" if succeeded else "work failed")
        report.commands_ended += 1
        if member.execution_reason == ExecutionReason.ROLLBACK_FLOW:
            report.compensations_ended += 1
        if member.status == CommandStatus.ENDED_SUCCESS:
            member.outcome = Outcome.SUCCEEDED
        elif (member.outcome is None and member.own_work_succeeded is False
              and member.execution_reason == ExecutionReason.REGULAR_FLOW):
            member.outcome = Outcome.FAILED  # whose work failed: this one's (its error says why)
    state.to_settle.extend(m for m in ordered if m.status == CommandStatus.ROLLING_BACK)


def _end_successfully(state: TickState, ordered: list[CommandRecord]) -> bool:
    """Run the success hooks, children first; False as soon as one raises."""
    for member in ordered:
        if member.execution_reason != ExecutionReason.REGULAR_FLOW:
            continue  # an opposite command never ends successfully
        with contain() as contained:
            command, ctx = hook(state, member, HookPhase.END_SUCCESSFULLY)
            command.end_successfully(ctx)
        if contained.failed:
            cause = f"end_successfully raised {contained.describe()}"
            member.error = f"{cause}; the group took the failure path"
            member.outcome = Outcome.FAILED
            log.error("%s %s: %s", member.type, member.id, member.error)
            state.recorder.touch(member)
            head = state.view.commands.get(member.end_group_id)
            if head is not None:
                name_first_cause(head, member, cause)
                state.recorder.touch(head)
            return False
    return True


def children_first(head_id: str, members: Sequence[CommandRecord]) -> list[CommandRecord]:
    """Post-order over the group, so a parent's end sees its children already ended."""
    by_parent: dict[str | None, list[CommandRecord]] = defaultdict(list)
    ids = {m.id for m in members}
    for member in members:
        by_parent[member.parent_id if member.parent_id in ids else None].append(member)
    ordered: list[CommandRecord] = []
    # Without recursion: a group may be deeper than Python's recursion limit.
    stack: list[tuple[CommandRecord, bool]] = [(top, False) for top in reversed(by_parent[None])]
    while stack:
        record, children_done = stack.pop()
        if children_done:
            ordered.append(record)
            continue
        stack.append((record, True))
        stack.extend((child, False) for child in reversed(by_parent.get(record.id, ())))
    return ordered
