"""The Command base class users subclass, and the context its hooks work through.

Hooks never touch the store or the agents directly: they ask the context to add a child
command or start a task, and the engine persists those in the tick's transaction. End hooks
must be idempotent: after a crash a claimed end is run again, and end_with_failure is called
again each time an opposite command finishes (that is how the reverted command learns that
there is nothing left to revert).

A command works in steps: `execute` is its first, and a command that overrides `next_step`
gets it called each time everything the step before started has ended, with what those
tasks and children returned, until a step starts nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar

from ..errors import InvalidConfiguration, InvalidParameters, UnknownCommandType
from ..machines.reasons import ExecutionReason
from ..ports.ledger import Ledger
from ..records.frozen_json import freeze
from ..records.records import (
    MAX_ID_LENGTH,
    MAX_NAME_LENGTH,
    CommandRecord,
    TaskRecord,
    name_problems,
)
from ..records.retry_policy import RetryPolicy
from ..records.revert_state import ResourceRef

L = TypeVar("L", bound=Ledger)


class CommandContext(Protocol):
    """What a hook may do and read; the engine implements it over the tick's transaction."""

    @property
    def now(self) -> float:
        """The tick's time, in seconds since the epoch by the engine's clock.

        It is one value for the whole tick, the time its records are stamped with: by default
        the database's clock, which every worker agrees on.
        """

    @property
    def step(self) -> int:
        """The step this hook runs in: 1 in `execute`, 2 in the first `next_step`, and so on.

        In an end hook, it is the number of steps the command took.
        """

    def ledger(self, kind: type[L]) -> L:
        """Your bookkeeping of one resource type (a `Ledger` registered with the store).

        It is bound to this tick's transaction: what you write commits or rolls back with the
        engine's own rows.
        """

    def resource_exists(self, resource: ResourceRef) -> bool:
        """What the ledger of the resource's type says (`Ledger.exists`).

        True when no ledger keeps that type: then only the revert state stops a second opposite
        command.
        """

    @property
    def work_succeeded(self) -> bool:
        """Whether all the work of this command's end group succeeded (the group's verdict).

        The end group is the root and every child it created (or an opposite command alone),
        so a child whose own task succeeded still sees False when a sibling failed; its own
        verdict is `own_work_succeeded`.
        """

    @property
    def own_work_succeeded(self) -> bool:
        """Whether this command's own work succeeded (its children's work is theirs).

        It did when the last attempt of every task it started succeeded, and none of its steps
        raised.

        A `revert` that sees False knows its own task failed: if the agent left nothing
        behind, there is nothing to revert.
        """

    @property
    def tasks(self) -> tuple[TaskRecord, ...]:
        """This command's tasks (copies), the last attempt of each, in the order they were started.

        Their fields for a hook to read: `verb`, `step`, `status`, `host_result`, `message`,
        `output`, `attempt`.
        """

    @property
    def children(self) -> tuple[CommandRecord, ...]:
        """The children this command added (copies), in the order they were added.

        Its opposite commands are not among them. Their fields for a hook to read: `type`,
        `status`, `outcome`, `output`, `error`.
        """

    @property
    def resources(self) -> tuple[ResourceRef, ...]:
        """What this command made, in the order it made them.

        That is its entity, then every resource added with `add_resource`. The failure path
        reverts them last first.
        """

    def add_child(
        self,
        type_name: str,
        parameters: Mapping[str, Any],
        entity: ResourceRef | None = None,
    ) -> CommandRecord:
        """A child command in this command's end group (in a step only).

        `entity` is the resource it makes, reverted by its own opposite command if the group
        fails.
        """

    def start_task(
        self,
        agent: str,
        verb: str,
        parameters: Mapping[str, Any],
        entities: Iterable[ResourceRef] = (),
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
    ) -> TaskRecord:
        """Start `verb` on `agent` once this tick commits (in a step only).

        `timeout` (seconds, default `Limits.task_timeout`) is how long each attempt may take
        before it is aborted; `retry` overrides the command type's and the engine's
        `RetryPolicy`.
        """

    def add_resource(self, resource: ResourceRef) -> None:
        """Record that this command makes `resource`, before starting the task that makes it.

        In a step only. If the group fails, the resource gets its own opposite command
        (`revert`), its own existence guard and its own revert state, like an entity. Adding
        one twice, or the entity, is adding it once.
        """

    def set_output(self, output: Any) -> None:
        """Record JSON data for this command's parent to read (`ctx.children[i].output`).

        It may be at most `Limits.max_output_bytes` of it; a later call replaces it.
        """


@dataclass(frozen=True)
class Compensation:
    """The opposite command that reverts a command's work, as `Command.revert` names it.

    For a copy, say, it is a delete.

    Attributes:
        type_name: a registered command type; the engine creates it with ROLLBACK_FLOW, as a
            child of the command it reverts, with the resource as its entity.
        parameters: its parameters (JSON); checked like any child's.
        native: the opposite command reverts the work through the agent's own revert of the
            task that made it (the switch's `revert_task`, by that task's id): a native
            revert. It runs like any opposite command (both guards, its own revert budget);
            the flag only makes the reverted command read `rolled_back_natively`.
    """

    type_name: str
    parameters: Mapping[str, Any] = field(default_factory=dict)
    native: bool = False


class Command:
    """Base of every command type; the engine builds one per record when a hook must run.

    Attributes:
        type_name: the name it is registered and persisted under.
        retry: how its failed tasks are retried before it fails (None: the engine's policy).
        submittable: whether it may be submitted as a root. An opposite command sets it
            False: it reverts a resource a rollback found made, as a ROLLBACK_FLOW child of
            the command that made it; submitted on its own it would revert something that a
            successful root still owns.
    """

    type_name: ClassVar[str] = ""
    retry: ClassVar[RetryPolicy | None] = None
    submittable: ClassVar[bool] = True

    def __init__(self, record: CommandRecord) -> None:
        self.record = record

    @property
    def parameters(self) -> Mapping[str, Any]:
        """The command's parameters, frozen, as its record keeps them."""
        return self.record.parameters

    @property
    def execution_reason(self) -> ExecutionReason:
        """The execution reason: REGULAR_FLOW for work, ROLLBACK_FLOW for an opposite command."""
        return self.record.execution_reason

    @classmethod
    def check_parameters(cls, parameters: Mapping[str, Any]) -> list[str]:
        """Problems with the shape of the parameters; refused before anything is persisted."""
        return []

    @classmethod
    def takes_steps(cls) -> bool:
        """Whether it overrides `next_step`.

        Only then does a step that started work wait for it (in `stepping`) before the next one.
        """
        return cls.next_step is not Command.next_step

    def validate(self, ctx: CommandContext) -> list[str]:
        """Reasons to refuse running against the current state (oVirt's canDoAction)."""
        return []

    def execute(self, ctx: CommandContext) -> None:
        """The first step: add children, start tasks, add resources.

        An exception moves the command to execution_failed.
        """

    def next_step(self, ctx: CommandContext) -> None:
        """The next step: read what the previous one's work returned, and start more.

        It runs once everything the previous step started has ended and all the work of the end
        group so far has succeeded: read what they returned (`ctx.tasks`, `ctx.children`,
        `ctx.step`) and start the next tasks and children. A step that starts nothing is the
        last; one that raises fails the command like a failed `execute`.

        Not overridden, a command takes one step (its `execute`).
        """

    def end_successfully(self, ctx: CommandContext) -> None:
        """Called once the whole end group succeeded (REGULAR_FLOW only)."""

    def end_with_failure(self, ctx: CommandContext) -> None:
        """Bookkeeping of the failure path; idempotent, may be called again after reverts.

        An opposite command (ROLLBACK_FLOW) only ever ends here, never in end_successfully:
        its own success is `ctx.work_succeeded`, and its cleanup belongs behind that test.
        """

    def resource_exists(self, ctx: CommandContext, resource: ResourceRef) -> bool:
        """The first loop guard: is there still something to revert?

        By default the ledger registered for the resource's type answers (`Ledger.exists`);
        with no ledger for that type the answer is True, which leaves only the revert-state
        guard: a resource that was never made, or is already gone, then still gets an
        opposite command. Override it to ask something else.
        """
        return ctx.resource_exists(resource)

    def revert(self, ctx: CommandContext, resource: ResourceRef) -> Compensation | None:
        """The opposite command that reverts `resource` (one of `ctx.resources`).

        It is asked on the failure path while the resource still exists, last made first.

        Return None when nothing of it is left to revert (`ctx.own_work_succeeded` is False and
        the agent left nothing behind): the engine starts nothing and records the resource
        `reverted`. Drop its ledger row here first: a ledger that still holds a resource
        `revert` says is gone is a contradiction, and the command gives up on it
        (`revert_failed`, visible) rather than leave the row behind silently.
        """
        return None


def reference_problems(what: str, ref: ResourceRef) -> list[str]:
    """Why a resource reference cannot be stored, if it cannot."""
    return [*name_problems(f"{what} type", ref.type, MAX_NAME_LENGTH),
            *name_problems(f"{what} id", ref.id, MAX_ID_LENGTH)]


class CommandRegistry:
    """Maps persisted type names to classes; a name it does not know is an error, never a guess.

    Args:
        types: the Command subclasses to register (each with its own `type_name`).
    """

    def __init__(self, types: Iterable[type[Command]] = ()) -> None:
        self._types: dict[str, type[Command]] = {}
        for command_type in types:
            self.register(command_type)

    def register(self, command_type: type[Command]) -> None:
        """Register a command type under its `type_name`; registering one class twice is harmless.

        A class with no name, with a name that cannot be stored, or with a name another class
        holds is refused (InvalidConfiguration) at registration, not when a record names it.
        """
        name = command_type.type_name
        if not name:
            raise InvalidConfiguration(f"{command_type.__qualname__} has no type_name")
        problems = name_problems("type_name", name, MAX_ID_LENGTH)
        if problems:
            raise InvalidConfiguration(f"{command_type.__qualname__}: {problems[0]}")
        existing = self._types.get(name)
        if existing is not None and existing is not command_type:
            raise InvalidConfiguration(f"command type {name!r} registered twice")
        self._types[name] = command_type

    def get(self, type_name: str) -> type[Command]:
        """The class registered under `type_name`; an unknown name raises UnknownCommandType.

        The error lists the registered names, so a misspelt or unregistered type is plain.
        """
        try:
            return self._types[type_name]
        except KeyError:
            raise UnknownCommandType(type_name, list(self._types)) from None

    def check(self, type_name: str, parameters: Mapping[str, Any]) -> Mapping[str, Any]:
        """Refuse an unknown type or parameters that are malformed for it, naming why.

        Return the parameters frozen, as the record keeps them.
        """
        command_type = self.get(type_name)
        frozen = self.check_json(type_name, parameters)
        problems = command_type.check_parameters(parameters)
        if problems:
            raise InvalidParameters(type_name, problems)
        return frozen

    @staticmethod
    def check_json(what: str, parameters: Mapping[str, Any]) -> Mapping[str, Any]:
        """Check that parameters are a JSON object the database can store (no NaN, not too deep).

        Return them frozen (checking is freezing: one walk).
        """
        if not isinstance(parameters, Mapping):
            raise InvalidParameters(what, ["parameters must be a mapping"])
        try:
            return freeze(parameters)
        except (TypeError, ValueError) as err:
            raise InvalidParameters(what, [f"parameters must be JSON: {err}"]) from None
        except RecursionError:
            raise InvalidParameters(what, ["parameters are nested too deeply"]) from None

    def names(self) -> list[str]:
        """The registered type names, sorted: what the engine checks loaded records against."""
        return sorted(self._types)
