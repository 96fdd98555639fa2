"""New records a tick creates: children in an end group, opposite commands, tasks.

Everything a hook asks to create is checked here before it exists (a registered type, JSON
parameters, names that fit their columns, a bounded depth), so a mistake is that hook's
failure, named, and never a failed write at the end of the tick.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..commands.command import reference_problems
from ..errors import InvalidParameters, LimitExceeded, UnknownAgent
from ..machines.reasons import ExecutionReason
from ..records.records import (
    MAX_NAME_LENGTH,
    CommandRecord,
    HistoryEvent,
    TaskRecord,
    name_problems,
)
from ..records.retry_policy import RetryPolicy
from ..records.revert_state import ResourceRef
from .tick_state import TickState


def create_child(
    state: TickState,
    parent: CommandRecord,
    type_name: str,
    parameters: Mapping[str, Any],
    entity: ResourceRef | None,
    *,
    compensation: bool = False,
    not_before: float = 0.0,
) -> CommandRecord:
    """A child in the parent's end group, or an opposite command heading its own group.

    Children of an opposite command are opposite work too (ROLLBACK_FLOW), so nothing an
    opposite command does is ever reverted in turn: revert depth is one.
    """
    config, view = state.config, state.view
    frozen = config.registry.check(type_name, parameters)
    if entity is not None and (problems := reference_problems("entity", entity)):
        raise InvalidParameters(type_name, problems)
    limits = config.limits
    # An opposite command is exempt: it is one level below what it reverts, never more
    # (revert depth is one), and refusing it would leave that resource for good.
    if not compensation and view.depth_of(parent) + 1 > limits.max_tree_depth:
        raise LimitExceeded(
            f"{type_name} would be {view.depth_of(parent) + 1} levels below its root, "
            f"deeper than Limits.max_tree_depth ({limits.max_tree_depth})", "max_tree_depth")
    command_id = config.new_id()
    rollback = compensation or parent.execution_reason == ExecutionReason.ROLLBACK_FLOW
    record = CommandRecord(
        id=command_id, root_id=parent.root_id, parent_id=parent.id,
        end_group_id=command_id if compensation else parent.end_group_id,
        type=type_name,
        execution_reason=ExecutionReason.ROLLBACK_FLOW if rollback
        else ExecutionReason.REGULAR_FLOW,
        parameters=frozen,
        entity_type=entity.type if entity else None, entity_id=entity.id if entity else None,
        not_before=not_before, created_at=state.now, updated_at=state.now,
    )
    view.index_command(record)
    view.depths[record.id] = view.depth_of(parent) + 1
    state.recorder.changes.new_commands[record.id] = record
    state.recorder.history(record, HistoryEvent.CREATE, "", record.status,
                           f"{record.execution_reason} child of {parent.type} {parent.id}")
    return record


def create_task(
    state: TickState,
    command: CommandRecord,
    agent: str,
    verb: str,
    parameters: Mapping[str, Any],
    entities: Iterable[ResourceRef],
    timeout: float | None = None,
    *,
    retry: RetryPolicy | None = None,
    attempt: int = 1,
    step: int | None = None,
    start_at: float = 0.0,
) -> TaskRecord:
    """A new task of `command`, started no earlier than `start_at`.

    It is the task's first attempt (from a step's hook), or a later one that replaces a failed
    attempt (`retries`); its deadline counts from `start_at`, or from now if that is later.
    """
    config = state.config
    if agent not in config.agent_names:
        raise UnknownAgent(agent, list(config.agent_names))
    entities = tuple(entities)
    problems = name_problems("verb", verb, MAX_NAME_LENGTH)
    for entity in entities:
        problems += reference_problems("entity", entity)
    if timeout is not None and not timeout > 0:
        problems.append(f"timeout must be positive seconds (got {timeout!r})")
    if problems:
        raise InvalidParameters(f"task {verb!r:.40} of {command.type}", problems)
    frozen = config.registry.check_json(f"task {verb} of {command.type}", parameters)
    begins = max(state.now, start_at)
    task = TaskRecord(
        id=config.new_id(), command_id=command.id, root_command_id=command.root_id,
        agent=agent, verb=verb, parameters=frozen,
        entities=tuple((e.type, e.id) for e in entities),
        retry_at=start_at if start_at > state.now else 0.0,
        deadline=begins + (timeout or config.limits.task_timeout),
        created_at=state.now, updated_at=state.now,
        step=command.step if step is None else step, attempt=attempt, retry=retry,
    )
    state.view.index_task(task)
    state.recorder.changes.new_tasks[task.id] = task
    detail = f"{verb} on {agent}"
    if retry is not None:
        detail += f", attempt {attempt} of {retry.max_attempts}"
    state.recorder.history(task, HistoryEvent.CREATE, "", task.status, detail)
    return task
