"""The persisted shape of commands, tasks and their history, as plain records.

Records are the models the shared machines move; they carry no behaviour so the store can
build them from rows and the engine can hold tens of thousands without per-object machinery.
Parameters are frozen snapshots (oVirt shared one mutable parameters object between a command
and its children, so a child could rewrite its parent's inputs).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

from ..machines.command_machine import CommandStatus, Outcome
from ..machines.host_status import HostResult, HostStatus, host_ended_successfully
from ..machines.reasons import ExecutionReason
from ..machines.task_machine import TaskStatus
from .retry_policy import RetryPolicy
from .revert_state import ResourceRef

# Widths of the columns these names are stored in: a longer one is refused where it enters,
# with its name, instead of failing the tick's write (PostgreSQL checks widths; SQLite not).
MAX_NAME_LENGTH = 100  # agents, verbs, resource types
MAX_ID_LENGTH = 200  # resource ids, command types
MAX_OBJECT_ID_LENGTH = 64  # ids of commands and tasks
MAX_SUBMIT_KEY_LENGTH = 200  # a client's idempotency key of a root


def name_problems(what: str, value: object, limit: int) -> list[str]:
    """Why `value` cannot be stored as a name of at most `limit` characters, if it cannot."""
    if not isinstance(value, str) or not value:
        return [f"{what} must be a non-empty string (got {value!r:.80})"]
    if len(value) > limit:
        return [f"{what} is {len(value)} characters long, at most {limit} fit"]
    if "\x00" in value:
        return [f"{what} must not contain NUL characters"]
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return [f"{what} must be Unicode text (it has a lone surrogate)"]
    return []


@dataclass(slots=True, eq=False)
class CommandRecord:
    """One command as its row persists it: the model the command machine moves.

    It carries no behaviour, so the store builds it from a row and the engine holds tens of
    thousands. Records compare by identity (`eq=False`): each stands for one row, not for its
    values.
    """

    id: str
    root_id: str
    parent_id: str | None
    # The command whose fan-in covers this one: the root for ordinary children, the command
    # itself for roots and for opposite commands (they end on their own).
    end_group_id: str
    type: str
    execution_reason: ExecutionReason
    parameters: Mapping[str, Any]
    status: CommandStatus = CommandStatus.NOT_STARTED
    entity_type: str | None = None
    entity_id: str | None = None
    # Fan-in verdict of the end group (None until the end is claimed); the override guard reads it.
    work_succeeded: bool | None = None
    # For readers: what its end meant (succeeded, rolled_back, reverted, lost, ...).
    outcome: Outcome | None = None
    error: str | None = None
    not_before: float = 0.0
    end_attempts: int = 0
    created_at: float = 0.0
    updated_at: float = 0.0
    version: int = 0
    # The steps it has taken: 1 once `execute` ran, one more for every `next_step`.
    step: int = 0
    # Whether its own work (its tasks' last attempts, its own hooks) succeeded, as decided
    # when its end was claimed (None until then): what `ctx.own_work_succeeded` answers after.
    own_work_succeeded: bool | None = None
    # What it recorded for its parent to read (`ctx.set_output`): JSON data, or None.
    output: Any = None
    # Resources it made beyond its entity (`ctx.add_resource`), as (type, id), in order.
    resources: tuple[tuple[str, str], ...] = ()
    # The key a client submitted the root under (roots only; None for most): it names this
    # root forever, so that a retried submit finds it instead of making another.
    submit_key: str | None = None


def resources_of(record: CommandRecord) -> tuple[ResourceRef, ...]:
    """What a command made, in the order it made them: its entity, then what it added."""
    found: list[ResourceRef] = []
    if record.entity_type is not None and record.entity_id is not None:
        found.append(ResourceRef(record.entity_type, record.entity_id))
    for kind, ident in record.resources:
        ref = ResourceRef(kind, ident)
        if ref not in found:
            found.append(ref)
    return tuple(found)


@dataclass(slots=True, eq=False)
class TaskRecord:
    """One task as its row persists it: the model the task machine moves.

    Like `CommandRecord`, it carries no behaviour and compares by identity.
    """

    id: str
    command_id: str
    root_command_id: str
    agent: str
    verb: str
    parameters: Mapping[str, Any]
    entities: tuple[tuple[str, str], ...] = ()
    status: TaskStatus = TaskStatus.PENDING
    host_status: HostStatus | None = None
    host_result: HostResult | None = None
    message: str | None = None
    attempts: int = 0
    # When a failed start, poll or clear may be tried again (back-off); 0 means now.
    retry_at: float = 0.0
    # When it is aborted if it has not ended (0: never); once aborting, the end of its grace.
    deadline: float = 0.0
    created_at: float = 0.0
    updated_at: float = 0.0
    version: int = 0
    # The step of its command that started it (1: execute).
    step: int = 1
    # Which run of this piece of work it is (1-based), and whether a later attempt replaced
    # it (then its failure is not its command's).
    attempt: int = 1
    retried: bool = False
    # How it is retried when it fails (None: never), as it was when the task was created.
    retry: RetryPolicy | None = None
    # What the agent returned with its end (JSON data), or None.
    output: Any = None

    @property
    def succeeded(self) -> bool:
        """Whether the agent reported the task finished with success."""
        return host_ended_successfully(self.host_status, self.host_result)

    @property
    def max_attempts(self) -> int:
        """The number of attempts its work may take: 1 without a retry policy."""
        return 1 if self.retry is None else self.retry.max_attempts


class ObjectKind(StrEnum):
    """What a history row is about."""

    COMMAND = "command"
    TASK = "task"


class HistoryEvent(StrEnum):
    """History rows that are no machine transition: the object stays in its state."""

    #: A command or task was written (its first row, from "" to its first state).
    CREATE = "create"
    #: A rolling-back command started an opposite command for its resource.
    COMPENSATE = "compensate"
    #: An operator's cancel request was acted on.
    CANCEL = "cancel"
    #: An operator's cleanup started one more opposite command (or found the resource gone),
    #: or left nothing behind of a command that had given up.
    CLEANUP = "cleanup"
    #: A failed task of the command is run again as a new attempt.
    RETRY = "retry"
    #: The engine failed on this root and stopped working on it.
    HOLD = "hold"
    #: An engine took up a tree that was under way: after its own restart, or from a worker
    #: that died, froze past its lease or stopped (the detail names which, and who).
    RECOVER = "recover"


class HistoryEntry(NamedTuple):
    """One row of the append-only transitions history (a tuple: written as is, in bulk).

    `trigger` is a machine's trigger (`CommandTrigger`, `TaskTrigger`) or a `HistoryEvent`.
    """

    object_kind: str
    object_id: str
    root_id: str
    trigger: str
    source: str
    dest: str
    at: float
    detail: str | None = None
    #: The worker or engine that made the step (None: a client, or a schema before 0009).
    actor: str | None = None


@dataclass(slots=True, eq=False)
class HistoryPath:
    """One object's consecutive steps at one moment: what is stored as one history row.

    The recorder appends to an object's path for as long as each step leaves from where
    the last one arrived, so a tick stores one row per object it moved, not one per step
    (230,000 steps, 130,000 rows for a 10,000-disk rollback); readers get the steps back
    as `HistoryEntry`s.
    """

    object_kind: str
    object_id: str
    root_id: str
    source: str
    at: float
    #: (trigger, dest, detail) of every step, in order, starting from `source`.
    steps: list[tuple[str, str, str | None]]

    @classmethod
    def one(cls, entry: HistoryEntry) -> HistoryPath:
        """The path of the single step `entry` records."""
        return cls(entry.object_kind, entry.object_id, entry.root_id, entry.source, entry.at,
                   [(entry.trigger, entry.dest, entry.detail)])

    def entries(self) -> list[HistoryEntry]:
        """Its steps as `HistoryEntry`s, each leaving from where the one before arrived.

        A path carries no actor, so theirs is None.
        """
        found, source = [], self.source
        for trigger, dest, detail in self.steps:
            found.append(HistoryEntry(self.object_kind, self.object_id, self.root_id, trigger,
                                      source, dest, self.at, detail))
            source = dest
        return found


@dataclass(slots=True)
class ActiveState:
    """What a store hands an engine on start-up: everything not yet finished."""

    commands: list[CommandRecord] = field(default_factory=list)
    tasks: list[TaskRecord] = field(default_factory=list)
