"""Errors the library raises; each names the thing that was wrong so an operator can act."""

from __future__ import annotations


class EndactionError(Exception):
    """Base of every error raised on purpose by endaction."""


class InvalidConfiguration(EndactionError, ValueError):
    """A setting, a registration or a declaration that cannot work.

    That is a bound that is no bound, a command type registered twice, a ledger without a
    resource type...; it is raised where it is made, before any work starts.
    """


class UnknownCommandType(EndactionError):
    """A type name no registered command type has, from a caller or from a persisted record.

    Its message lists the registered types. A record of an unknown type holds its root in a
    worker (a newer client's type during a rolling upgrade) and stops a single engine.

    Attributes:
        type_name: the name that was not found.
    """

    def __init__(self, type_name: str, known: list[str]) -> None:
        super().__init__(
            f"unknown command type {type_name!r}; registered types: {', '.join(sorted(known))}"
        )
        self.type_name = type_name


class NotSubmittable(EndactionError, ValueError):
    """A command type that runs only as part of a rollback was submitted as a root.

    Such a type is an opposite command; the submit is refused before anything is written.
    """

    def __init__(self, type_name: str) -> None:
        super().__init__(f"{type_name} is an opposite command: it runs only in a rollback, "
                         "as a child of the command whose work it reverts, never as a root")
        self.type_name = type_name


class SubmitKeyConflict(EndactionError, ValueError):
    """A submit key already names a root of another request.

    The other request had another type, other parameters, another entity or execution reason.
    A key names one root forever, so that a client retrying after a timeout gets the root it
    made; the same key for other work is a client's mistake, refused with nothing written
    rather than answered with a root it did not ask for.

    Attributes:
        key: the submit key.
        root_id: the root the key already names.
    """

    def __init__(self, key: str, root_id: str, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.root_id = root_id


class SubmitKeyTaken(EndactionError):
    """Another client's root took the submit key of one of a transaction's new roots.

    A store transaction's write raises it when the key was taken since the transaction looked
    it up (two clients racing with one key on PostgreSQL, whose readers do not wait for
    writers). The transaction rolls back; the submission looks again, finds the winner, and
    answers with it.
    """


class InvalidParameters(EndactionError):
    """Malformed parameters, refused before anything is persisted."""

    def __init__(self, type_name: str, problems: list[str]) -> None:
        super().__init__(f"invalid parameters for {type_name}: " + "; ".join(problems))
        self.type_name = type_name
        self.problems = problems


class UnknownAgent(EndactionError):
    """A task names an agent the engine was not configured with.

    Its message lists the configured agents and, where known, the task that needs it.
    `start_task` raises it in the step that asks; a loaded task of an unknown agent holds its
    root in a worker and stops a single engine.
    """

    def __init__(self, agent: str, known: list[str], needed_by: str = "") -> None:
        where = f" (needed by {needed_by})" if needed_by else ""
        super().__init__(
            f"no agent named {agent!r}{where}; configured agents: {', '.join(sorted(known))}")


class UnknownLedger(EndactionError):
    """A hook asked for a ledger the store was not given."""


class HookMisuse(EndactionError):
    """A command hook asked for something its phase does not allow."""


class StoreError(EndactionError):
    """The database refused a statement; the tick was rolled back, nothing persisted was lost."""


class StoreUnavailable(StoreError):
    """The database went away (connection refused or dropped, locked, disk full)."""


class ConcurrentModification(EndactionError):
    """A row changed under this engine (another engine works on the same database)."""


class EngineDidNotSettle(EndactionError):
    """run_until_idle hit its bound: either work is stuck on an agent or something loops."""


class NotCancellable(EndactionError):
    """The id names no root that is still running."""


class LimitExceeded(EndactionError):
    """A command asked for more than a documented bound (`Limits`) allows.

    Attributes:
        limit: the name of the `Limits` field that was hit.
    """

    def __init__(self, message: str, limit: str) -> None:
        super().__init__(message)
        self.limit = limit


class RootFault(EndactionError):
    """The engine failed while working on one root: that root is held, the others go on.

    Attributes:
        root_id: the root whose work raised.
        cause: what was raised.
    """

    def __init__(self, root_id: str, cause: BaseException) -> None:
        text = str(cause)
        described = f"{type(cause).__name__}: {text}" if text else type(cause).__name__
        super().__init__(f"the engine failed on root {root_id}: {described}")
        self.root_id = root_id
        self.cause = cause


class LeaseLost(ConcurrentModification):
    """A worker's lease on a root lapsed and another worker took the root over.

    This worker's tick is rolled back, and it goes on with the roots it still holds.
    """


class WorkersHoldRoots(EndactionError):
    """A single engine (not a worker) was started on a database where workers hold leases.

    It would race them for the same trees.
    """


#: The optional parts of endaction, and the top-level modules each extra installs.
EXTRAS: dict[str, tuple[str, ...]] = {
    "http": ("starlette", "uvicorn", "httpx"),
    "svg": ("graphviz",),
    "testing": ("hypothesis",),
}


class MissingExtra(InvalidConfiguration, ImportError):
    """A feature was used whose optional dependencies (an extra) are not installed.

    The library itself needs only SQLAlchemy and transitions; the HTTP task hosts, the web
    view and the metrics endpoint need the `http` extra, DOT, SVG and PNG diagrams the `svg`
    extra, the property kit (`statemachines.testing`) the `testing` extra. The message names
    the extra and the command that installs it.
    """

    def __init__(self, extra: str, feature: str, missing: str) -> None:
        super().__init__(f"{feature} needs endaction's {extra!r} extra, which is not installed "
                         f"({missing} is missing): pip install 'endaction[{extra}]'")
        self.extra = extra
        self.missing = missing


def extra_missing(err: ModuleNotFoundError, extra: str, feature: str) -> ImportError:
    """The error to raise for an import that failed inside a module of an extra.

    It is `MissingExtra` when the module not found is one the extra installs, and the import
    error itself otherwise, so that a genuine bug is never passed off as a missing extra.
    """
    top = (err.name or "").partition(".")[0]
    return MissingExtra(extra, feature, top) if top in EXTRAS[extra] else err


def require_extra(extra: str, feature: str) -> None:
    """Raise `MissingExtra` now unless every module of `extra` can be imported."""
    from importlib.util import find_spec

    for module in EXTRAS[extra]:
        if find_spec(module) is None:
            raise MissingExtra(extra, feature, module)
