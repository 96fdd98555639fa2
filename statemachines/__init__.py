"""endaction: persisted command and task state machines with the ExecutionReason rollback rule.

What a user needs to write commands, agents and a store-backed engine, and to read what the
engine did. The rest has a home of its own: the SQL store in `persistence`, the property suite
in `statemachines.testing`, the examples (each with its own hosts) in `statemachines.example.vm`
and `statemachines.example.network`, the machines themselves in `statemachines.core`.

For example::

    from persistence import open_store
    from statemachines import Engine
    from statemachines.example.network import (NETWORK_AGENT, NETWORK_LEDGERS, NetworkHost,
                                               endpoint_parameters, network_registry)

    store = open_store("net.db", ledgers=NETWORK_LEDGERS)
    engine = Engine(store, {NETWORK_AGENT: NetworkHost()}, network_registry())
    root = engine.submit("ProvisionEndpoint",
                         endpoint_parameters("web", "web.example.org", "sw1/ge-0/1"))
    engine.run_until_idle()
"""

from importlib.metadata import PackageNotFoundError, version

from .core.commands.command import Command, CommandContext, CommandRegistry, Compensation
from .core.commands.compensation_policy import RevertPolicy
from .core.engine.application import AgentSettings, App
from .core.engine.engine import Engine
from .core.engine.leases import WorkerLease
from .core.engine.worker import Worker
from .core.errors import (
    ConcurrentModification,
    EndactionError,
    EngineDidNotSettle,
    InvalidConfiguration,
    InvalidParameters,
    LeaseLost,
    MissingExtra,
    NotCancellable,
    NotSubmittable,
    StoreError,
    StoreUnavailable,
    SubmitKeyConflict,
    UnknownCommandType,
    WorkersHoldRoots,
)
from .core.machines.command_machine import CommandStatus, Outcome
from .core.machines.host_status import HostResult, HostStatus, TaskReport
from .core.machines.reasons import ExecutionReason
from .core.machines.task_machine import TaskStatus
from .core.operations.submission import submit_root, submit_roots
from .core.ports.agent_protocol import Abortable, Agent, AgentError, AgentUnreachable, TaskRejected
from .core.ports.ledger import Ledger
from .core.ports.store_protocol import Store
from .core.records.frozen_json import FrozenMap, thaw
from .core.records.limits import Limits
from .core.records.records import CommandRecord, HistoryEntry, HistoryPath, TaskRecord
from .core.records.retry_policy import RetryPolicy
from .core.records.revert_state import ResourceRef, ResourceRevert, RevertState
from .core.records.tick_report import TickReport

try:
    __version__ = version("endaction")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "Abortable",
    "Agent",
    "AgentError",
    "AgentSettings",
    "AgentUnreachable",
    "App",
    "Command",
    "CommandContext",
    "CommandRecord",
    "CommandRegistry",
    "CommandStatus",
    "Compensation",
    "ConcurrentModification",
    "EndactionError",
    "Engine",
    "EngineDidNotSettle",
    "ExecutionReason",
    "FrozenMap",
    "HistoryEntry",
    "HistoryPath",
    "HostResult",
    "HostStatus",
    "InvalidConfiguration",
    "InvalidParameters",
    "LeaseLost",
    "Ledger",
    "Limits",
    "MissingExtra",
    "NotCancellable",
    "NotSubmittable",
    "Outcome",
    "ResourceRef",
    "ResourceRevert",
    "RetryPolicy",
    "RevertPolicy",
    "RevertState",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "SubmitKeyConflict",
    "TaskRecord",
    "TaskRejected",
    "TaskReport",
    "TaskStatus",
    "TickReport",
    "UnknownCommandType",
    "Worker",
    "WorkerLease",
    "WorkersHoldRoots",
    "submit_root",
    "submit_roots",
    "thaw",
]
