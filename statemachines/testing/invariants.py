"""The safety properties, checked against the persisted state after every step.

Each check returns the violations it found, as sentences naming the object, so a failing
property test says what went wrong and where rather than `assert False`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from ..core.machines.command_machine import TERMINAL_COMMAND_STATES, CommandStatus, CommandTrigger
from ..core.machines.reasons import ExecutionReason
from ..core.machines.task_machine import TaskStatus
from ..core.records.frozen_json import thaw
from ..core.records.records import ObjectKind
from ..core.records.revert_state import REVERT_ORDER, RevertState
from .controlled_agent import ControlledAgent
from .snapshot import Snapshot

_TERMINAL = {s.value for s in TERMINAL_COMMAND_STATES}
# A task in one of these still has the agent working on it: its command cannot have ended.
_LIVE_TASK_STATES = {TaskStatus.PENDING.value, TaskStatus.POLLING.value,
                     TaskStatus.ABORTING.value}
# A task whose agent has said its last word on it.
_ENDED_TASK_STATES = {TaskStatus.FINISHED.value, TaskStatus.ENDING.value,
                      TaskStatus.CLEARED.value, TaskStatus.CLEAR_FAILED.value}


def fail_on(problems: list[str], when: str) -> None:
    """Raise the violations found, all of them, in one message that says what was checked."""
    if problems:
        raise AssertionError(f"{when}: " + "; ".join(problems))


def check_safety(snap: Snapshot) -> list[str]:
    """The properties that must hold in every persisted state, whatever happens next."""
    return [*_no_double_end(snap), *_rollback_never_succeeds(snap),
            *_compensated_at_most_once(snap), *_tasks_belong(snap)]


def _no_double_end(snap: Snapshot) -> list[str]:
    """No command is ended twice, nor reaches a terminal state twice.

    This is counted over transitions: a history row that moves nothing (a cleanup noted on a
    command that has ended) arrives nowhere.
    """
    ends: Counter[str] = Counter()
    finals: Counter[str] = Counter()
    for entry in snap.history:
        if entry.object_kind != ObjectKind.COMMAND:
            continue
        if entry.trigger == CommandTrigger.END:
            ends[entry.object_id] += 1
        if entry.dest in _TERMINAL and entry.source != entry.dest:
            finals[entry.object_id] += 1
    return ([f"command {i} was ended {n} times" for i, n in ends.items() if n > 1]
            + [f"command {i} reached a terminal state {n} times" for i, n in finals.items()
               if n > 1])


def _rollback_never_succeeds(snap: Snapshot) -> list[str]:
    rollback = {i for i, c in snap.commands.items()
                if c.execution_reason == ExecutionReason.ROLLBACK_FLOW}
    took_success = {e.object_id for e in snap.history
                    if e.object_kind == "command" and e.dest == CommandStatus.ENDED_SUCCESS}
    took_success |= {i for i, c in snap.commands.items()
                     if c.status == CommandStatus.ENDED_SUCCESS}
    return [f"ROLLBACK_FLOW command {i} ({snap.commands[i].type}) took the success path"
            for i in sorted(rollback & took_success)]


def _compensated_at_most_once(snap: Snapshot) -> list[str]:
    """No resource is reverted successfully twice, counted per root and resource.

    Resource names are not reused inside one tree, so two successful opposite commands for one
    means the same resource was reverted twice.
    """
    reverted: Counter[tuple[str, str, str]] = Counter()
    for command in snap.commands.values():
        opposite = (command.execution_reason == ExecutionReason.ROLLBACK_FLOW
                    and command.end_group_id == command.id)
        if opposite and command.outcome == "reverted" and command.entity_id is not None:
            reverted[(command.root_id, command.entity_type or "", command.entity_id)] += 1
    return [f"{kind}:{name} of root {root} was reverted successfully {n} times"
            for (root, kind, name), n in sorted(reverted.items()) if n > 1]


def _tasks_belong(snap: Snapshot) -> list[str]:
    problems = []
    for task in snap.tasks.values():
        command = snap.commands.get(task.command_id)
        if command is None:
            problems.append(f"task {task.id} ({task.verb}) belongs to no command")
        elif task.status in _LIVE_TASK_STATES and command.status in _TERMINAL:
            problems.append(f"task {task.id} ({task.verb}) is {task.status} but its command "
                            f"{command.id} ({command.type}) already ended {command.status}")
    return problems


def check_outputs(snap: Snapshot, agents: Mapping[str, ControlledAgent]) -> list[str]:
    """Every output an agent gave with a success is kept with its task, exactly.

    No task keeps one its agent did not give: crashes and retries included.
    """
    given: dict[str, Any] = {}
    for agent in agents.values():
        given.update(agent.outputs)
    problems = []
    for task in snap.tasks.values():
        if task.status not in _ENDED_TASK_STATES:
            continue
        expected = given.get(task.id) if task.succeeded else None
        if task.succeeded and thaw(task.output) != thaw(expected):
            problems.append(f"task {task.id} ({task.verb}) keeps the output {task.output!r:.80}"
                            f", its agent gave {expected!r:.80}")
    return problems


def check_revert_progress(before: Snapshot, after: Snapshot) -> list[str]:
    """Revert states only move forward, and their attempts never go down.

    The order is none -> reverting -> reverted | revert_failed, and revert_failed -> reverted
    by a cleanup; reverted is final.
    """
    problems = []
    for key, old in before.reverts.items():
        new = after.reverts.get(key)
        resource, owner = key
        if new is None:
            problems.append(f"the revert state of {resource} (owner {owner}) disappeared")
            continue
        if (REVERT_ORDER[new.state] < REVERT_ORDER[old.state]
                or (old.state == RevertState.REVERTED and new.state != old.state)):
            problems.append(f"the revert state of {resource} (owner {owner}) went back from "
                            f"{old.state} to {new.state}")
        if new.attempts < old.attempts or new.lost < old.lost:
            problems.append(f"the revert attempts of {resource} (owner {owner}) went down "
                            f"from {old.attempts} ({old.lost} lost) to {new.attempts} "
                            f"({new.lost} lost)")
    return problems


def check_quiescent(snap: Snapshot, max_clear_attempts: int) -> list[str]:
    """At the end of a run: every command terminal, every task cleared or given up on."""
    problems = [f"command {c.id} ({c.type}) is still {c.status}"
                for c in snap.commands.values() if c.status not in _TERMINAL]
    for task in snap.tasks.values():
        exhausted = (task.status == TaskStatus.CLEAR_FAILED
                     and task.attempts >= max_clear_attempts)
        if task.status != TaskStatus.CLEARED and not exhausted:
            problems.append(f"task {task.id} ({task.verb}) is still {task.status}")
    return problems


def revert_failed_resources(snap: Snapshot) -> set[str]:
    """What a run may leave behind: resources whose bounded reverts all failed."""
    return {r.resource.id for r in snap.reverts.values() if r.state == RevertState.REVERT_FAILED}
