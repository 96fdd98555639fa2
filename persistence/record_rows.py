"""Records and rows, both ways: which columns a record writes, and the record a row reads as.

Rows go to the bulk writer as plain tuples (persistence/bulk.py), so the order of each
`*_COLUMNS` tuple is the order of the values its `*_row` function returns. JSON the engine
keeps beside a record (a task's output, a command's resources) is stored as its text, NULL
when there is none, so that most rows carry nothing for it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from enum import StrEnum
from sys import intern
from typing import Any, TypeVar

from sqlalchemy import Connection, RowMapping, select

from statemachines.core.errors import InvalidConfiguration, StoreError
from statemachines.core.machines.command_machine import CommandStatus, Outcome
from statemachines.core.machines.host_status import HostResult, HostStatus
from statemachines.core.machines.reasons import ExecutionReason
from statemachines.core.machines.task_machine import TaskStatus
from statemachines.core.records.frozen_json import freeze, to_json
from statemachines.core.records.records import CommandRecord, TaskRecord
from statemachines.core.records.retry_policy import RetryPolicy
from statemachines.core.records.revert_state import ResourceRef, ResourceRevert, RevertState

from .batching import matching
from .schema import async_task_entities
from .text_columns import storable

COMMAND_MUTABLE = ("status", "work_succeeded", "outcome", "error", "not_before",
                   "end_attempts", "updated_at", "step", "own_work_succeeded", "output",
                   "resources")
TASK_MUTABLE = ("status", "host_status", "host_result", "message", "attempts", "retry_at",
                "deadline", "updated_at", "retried", "output")
#: Columns of text that comes from outside (agents, exceptions): made storable (text_columns).
FREE_TEXT = frozenset({"error", "message"})
#: Columns of JSON the engine keeps beside a record: written as their text, NULL for None.
JSON_TEXT = frozenset({"output", "resources"})

COMMAND_COLUMNS = ("id", "root_id", "parent_id", "end_group_id", "type", "status",
                   "execution_reason", "parameters", "entity_type", "entity_id",
                   "work_succeeded", "outcome", "error", "not_before", "end_attempts",
                   "created_at", "updated_at", "version", "step", "own_work_succeeded",
                   "output", "resources", "submit_key")


def json_text(value: Any) -> str | None:
    """What a JSON-text column holds for a value: None as NULL."""
    return None if value is None else to_json(value)


def resources_text(resources: tuple[tuple[str, str], ...]) -> str | None:
    """A command's added resources: NULL for none, which is most commands."""
    return to_json(resources) if resources else None


def command_row(c: CommandRecord) -> tuple[Any, ...]:
    """A command's values in the order of `COMMAND_COLUMNS`, as the bulk writer inserts them."""
    return (c.id, c.root_id, c.parent_id, c.end_group_id, c.type, c.status, c.execution_reason,
            to_json(c.parameters), c.entity_type, c.entity_id, c.work_succeeded, c.outcome,
            storable(c.error), c.not_before, c.end_attempts, c.created_at, c.updated_at,
            c.version, c.step, c.own_work_succeeded, json_text(c.output),
            resources_text(c.resources), c.submit_key)


TASK_COLUMNS = ("id", "command_id", "root_command_id", "agent", "verb", "agent_task_id",
                "status", "host_status", "host_result", "message", "parameters", "attempts",
                "retry_at", "deadline", "created_at", "updated_at", "version", "step",
                "attempt", "retried", "retry_policy", "output")


def task_row(t: TaskRecord) -> tuple[Any, ...]:
    """A task's values in the order of `TASK_COLUMNS`; its own id stands as its agent_task_id."""
    return (t.id, t.command_id, t.root_command_id, t.agent, t.verb, t.id, t.status,
            t.host_status, t.host_result, storable(t.message), to_json(t.parameters),
            t.attempts, t.retry_at, t.deadline, t.created_at, t.updated_at, t.version,
            t.step, t.attempt, t.retried,
            None if t.retry is None else to_json(t.retry.to_mapping()), json_text(t.output))


E = TypeVar("E", bound=StrEnum)


def _enum(kind: type[E], value: str, row: RowMapping, column: str) -> E:
    """A column of a closed vocabulary, as its enum.

    A value outside it is named in a StoreError, not a crash. (The lookup uses the enum's own
    value map: calling the class costs several times more, 40,000 times when 10,000 disks are
    recovered.)
    """
    member: E | None = kind._value2member_map_.get(value)  # type: ignore[assignment]
    if member is None:
        raise StoreError(f"row {row['id']} has {column} {value!r}, which this endaction does "
                         f"not know (one of {', '.join(kind)} was expected)")
    return member


def _parameters(r: RowMapping) -> Mapping[str, Any]:
    """A row's parameters, frozen as they are stored.

    A NaN written by hand into a SQLite row loads as NaN: one such row must not stop every root
    from loading.
    """
    try:
        return freeze(r["parameters"], finite=False)
    except (TypeError, ValueError) as err:
        raise StoreError(f"row {r['id']} has parameters endaction cannot use: {err}") from None


def _json(r: RowMapping, column: str) -> Any:
    """A JSON-text column, frozen; None when NULL."""
    text = r[column]
    if text is None:
        return None
    try:
        return freeze({"value": json.loads(text)}, finite=False)["value"]
    except (TypeError, ValueError, RecursionError) as err:
        raise StoreError(f"row {r['id']} has {column} endaction cannot use: {err}") from None


def _resources(r: RowMapping) -> tuple[tuple[str, str], ...]:
    """A command's added resources as (type, id) pairs; none when the column is NULL."""
    found = _json(r, "resources")
    if found is None:
        return ()
    try:
        return tuple((intern(str(kind)), str(ident)) for kind, ident in found)
    except (TypeError, ValueError) as err:
        raise StoreError(f"row {r['id']} has resources endaction cannot use: {err}") from None


def command_of(r: RowMapping) -> CommandRecord:
    """The command record a row reads as, with its ids and names interned.

    They are interned here and in `task_of` because every row read brings its own copy of its
    parent's, root's and group's ids, where records made by a running engine share one string
    per id. Shared, 10,000 loaded disks hold 12% less, and the engine's lookups by id meet the
    same object instead of comparing equal text.
    """
    outcome = r["outcome"]
    parent = r["parent_id"]
    return CommandRecord(
        id=intern(r["id"]), root_id=intern(r["root_id"]),
        parent_id=None if parent is None else intern(parent),
        end_group_id=intern(r["end_group_id"]), type=intern(r["type"]),
        execution_reason=_enum(ExecutionReason, r["execution_reason"], r, "execution_reason"),
        parameters=_parameters(r), status=_enum(CommandStatus, r["status"], r, "status"),
        entity_type=r["entity_type"], entity_id=r["entity_id"],
        work_succeeded=r["work_succeeded"], error=r["error"],
        outcome=None if outcome is None else _enum(Outcome, outcome, r, "outcome"),
        not_before=r["not_before"], end_attempts=r["end_attempts"],
        created_at=r["created_at"], updated_at=r["updated_at"], version=r["version"],
        step=r["step"], own_work_succeeded=r["own_work_succeeded"], output=_json(r, "output"),
        resources=_resources(r), submit_key=r["submit_key"],
    )


def _retry(r: RowMapping) -> RetryPolicy | None:
    """A task's retry policy as stored; a policy this endaction cannot read is a StoreError."""
    stored = _json(r, "retry_policy")
    if stored is None:
        return None
    try:
        return RetryPolicy.from_mapping(stored)
    except InvalidConfiguration as err:
        raise StoreError(f"row {r['id']}: {err}") from None


def task_of(r: RowMapping, entities: Sequence[tuple[str, str]]) -> TaskRecord:
    """The task record a row reads as, with the entities read for it (`entities_of`)."""
    host_status, host_result = r["host_status"], r["host_result"]
    return TaskRecord(
        id=intern(r["id"]), command_id=intern(r["command_id"]),
        root_command_id=intern(r["root_command_id"]),
        agent=intern(r["agent"]), verb=intern(r["verb"]), parameters=_parameters(r),
        entities=tuple(entities), status=_enum(TaskStatus, r["status"], r, "status"),
        host_status=None if host_status is None else _enum(HostStatus, host_status, r,
                                                           "host_status"),
        host_result=None if host_result is None else _enum(HostResult, host_result, r,
                                                           "host_result"),
        message=r["message"], attempts=r["attempts"],
        retry_at=r["retry_at"], deadline=r["deadline"], created_at=r["created_at"],
        updated_at=r["updated_at"], version=r["version"], step=r["step"],
        attempt=r["attempt"], retried=bool(r["retried"]), retry=_retry(r),
        output=_json(r, "output"),
    )


def revert_of(r: RowMapping) -> ResourceRevert:
    """The revert state a row of the revert table reads as."""
    return ResourceRevert(ResourceRef(r["resource_type"], r["resource_id"]), r["owner_id"],
                          RevertState(r["state"]), r["attempts"], r["last_error"], r["lost"])


def entities_of(conn: Connection, task_ids: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
    """The (type, id) entities of each task, by task id, read by `batching.matching`'s conditions.

    A task with no entities is missing from the result.
    """
    found: dict[str, list[tuple[str, str]]] = {}
    for condition in matching(conn, async_task_entities.c.task_id, task_ids):
        rows = conn.execute(select(async_task_entities).where(condition))
        for task_id, kind, ident in rows:
            found.setdefault(task_id, []).append((kind, ident))
    return found
