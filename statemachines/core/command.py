"""The Command base class users subclass, and the context its hooks work through.

Hooks never touch the store or the agents directly: they ask the context to add a child
command or start a task, and the engine persists those in the tick's transaction. End hooks
must be idempotent: after a crash a claimed end is run again, and end_with_failure is called
again each time a compensation finishes (that is how the compensated command learns that
there is nothing left to revert).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar

from .errors import InvalidConfiguration, InvalidParameters, UnknownCommandType
from .ledger import Ledger
from .reasons import ExecutionReason
from .records import (
    MAX_ID_LENGTH,
    MAX_NAME_LENGTH,
    CommandRecord,
    TaskRecord,
    freeze,
    name_problems,
)
from .revert_state import ResourceRef

L = TypeVar("L", bound=Ledger)


class CommandContext(Protocol):
    """What a hook may do; the engine implements it over the tick's transaction."""

    @property
    def now(self) -> float: ...

    def ledger(self, kind: type[L]) -> L:
        """Your bookkeeping of one resource type (a `Ledger` registered with the store),
        bound to this tick's transaction: what you write commits or rolls back with the
        engine's own rows."""

    def resource_exists(self, resource: ResourceRef) -> bool:
        """What the ledger of the resource's type says (`Ledger.exists`); True when no ledger
        keeps that type (then only the revert state stops a second compensation)."""

    @property
    def work_succeeded(self) -> bool:
        """Whether all the work of this command's end group succeeded.

        The end group is the root and every child it created (or an opposite command alone),
        so a child whose own task succeeded still sees False when a sibling failed: whether
        this command's own work left something behind is what `resource_exists` answers."""

    def add_child(
        self,
        type_name: str,
        parameters: Mapping[str, Any],
        entity: ResourceRef | None = None,
    ) -> CommandRecord: ...

    def start_task(
        self,
        agent: str,
        verb: str,
        parameters: Mapping[str, Any],
        entities: Iterable[ResourceRef] = (),
        timeout: float | None = None,
    ) -> TaskRecord:
        """Start `verb` on `agent` once this tick commits; `timeout` (seconds, default
        `Limits.task_timeout`) is how long it may take before it is aborted."""


@dataclass(frozen=True)
class Compensation:
    """The opposite command that undoes a command's work (a delete for a copy), as
    `Command.revert` names it.

    Attributes:
        type_name: a registered command type; the engine creates it with ROLLBACK_FLOW, as a
            child of the command it undoes, with the resource as its entity.
        parameters: its parameters (JSON); checked like any child's.
    """

    type_name: str
    parameters: Mapping[str, Any] = field(default_factory=dict)


class Command:
    """Base of every command type; the engine builds one per record when a hook must run."""

    type_name: ClassVar[str] = ""

    def __init__(self, record: CommandRecord) -> None:
        self.record = record

    @property
    def parameters(self) -> Mapping[str, Any]:
        return self.record.parameters

    @property
    def execution_reason(self) -> ExecutionReason:
        return self.record.execution_reason

    @classmethod
    def check_parameters(cls, parameters: Mapping[str, Any]) -> list[str]:
        """Problems with the shape of the parameters; refused before anything is persisted."""
        return []

    def validate(self, ctx: CommandContext) -> list[str]:
        """Reasons to refuse running against the current state (oVirt's canDoAction)."""
        return []

    def execute(self, ctx: CommandContext) -> None:
        """Create children and async tasks. An exception moves the command to execution_failed."""

    def end_successfully(self, ctx: CommandContext) -> None:
        """Called once the whole end group succeeded (REGULAR_FLOW only)."""

    def end_with_failure(self, ctx: CommandContext) -> None:
        """Bookkeeping of the failure path; idempotent, may be called again after compensations.

        An opposite command (ROLLBACK_FLOW) only ever ends here, never in end_successfully:
        its own success is `ctx.work_succeeded`, and its cleanup belongs behind that test."""

    def reverted_resource(self) -> ResourceRef | None:
        """The resource an opposite command would undo; None when there is nothing to undo.

        By default the command's entity, as given to `add_child(..., entity=...)` or
        `submit(..., entity=...)`: without one, `revert` is never called."""
        if self.record.entity_type is None or self.record.entity_id is None:
            return None
        return ResourceRef(self.record.entity_type, self.record.entity_id)

    def resource_exists(self, ctx: CommandContext, resource: ResourceRef) -> bool:
        """The first loop guard: is there still something to undo?

        By default the ledger registered for the resource's type answers (`Ledger.exists`);
        with no ledger for that type the answer is True, which leaves only the revert-state
        guard: a resource that was never made, or is already gone, then still gets an
        opposite command. Override it to ask something else."""
        return ctx.resource_exists(resource)

    def revert(self, ctx: CommandContext) -> Compensation | None:
        """The opposite command for this command's work, or None when the agent reverts natively."""
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
        try:
            return self._types[type_name]
        except KeyError:
            raise UnknownCommandType(type_name, list(self._types)) from None

    def check(self, type_name: str, parameters: Mapping[str, Any]) -> Mapping[str, Any]:
        """Refuse an unknown type or parameters that are malformed for it, naming why; return
        them frozen, as the record keeps them."""
        command_type = self.get(type_name)
        frozen = self.check_json(type_name, parameters)
        problems = command_type.check_parameters(parameters)
        if problems:
            raise InvalidParameters(type_name, problems)
        return frozen

    @staticmethod
    def check_json(what: str, parameters: Mapping[str, Any]) -> Mapping[str, Any]:
        """Parameters are a JSON object the database can store (no NaN, not too deep); return
        them frozen (checking is freezing: one walk)."""
        if not isinstance(parameters, Mapping):
            raise InvalidParameters(what, ["parameters must be a mapping"])
        try:
            return freeze(parameters)
        except (TypeError, ValueError) as err:
            raise InvalidParameters(what, [f"parameters must be JSON: {err}"]) from None
        except RecursionError:
            raise InvalidParameters(what, ["parameters are nested too deeply"]) from None

    def names(self) -> list[str]:
        return sorted(self._types)
