"""endaction: persisted command and task state machines with the ExecutionReason rollback rule.

The public API: subclass `Command`, register it, hand an `Engine` a store and agents.
"""

from .agents import Abortable, Agent, AgentError, LocalDiskAgent, Plan, SimulatedAgent, TaskRejected
from .command import Command, CommandContext, CommandRegistry, Compensation
from .command_machine import COMMAND_MACHINE, CommandStatus, Outcome, ends_successfully
from .compensation_policy import RevertPolicy
from .engine import Engine
from .errors import (
    ConcurrentModification,
    EndactionError,
    EngineDidNotSettle,
    InvalidParameters,
    LimitExceeded,
    NotCancellable,
    RootFault,
    StoreError,
    StoreUnavailable,
    UnknownAgent,
    UnknownCommandType,
)
from .host_status import HOST_MACHINE, HostResult, HostStatus, TaskReport
from .inventory import ImageInventory, ImageRow, ImageStatus
from .limits import Limits
from .reasons import ExecutionReason
from .records import CommandRecord, HistoryEntry, TaskRecord
from .revert_state import ResourceRef, ResourceRevert, RevertState
from .store_protocol import Store, StoreTransaction
from .task_machine import TASK_MACHINE, TaskStatus
from .tick_report import TickReport

__all__ = [
    "COMMAND_MACHINE",
    "HOST_MACHINE",
    "TASK_MACHINE",
    "Abortable",
    "Agent",
    "AgentError",
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
    "HistoryEntry",
    "HostResult",
    "HostStatus",
    "ImageInventory",
    "ImageRow",
    "ImageStatus",
    "InvalidParameters",
    "LimitExceeded",
    "Limits",
    "LocalDiskAgent",
    "NotCancellable",
    "Outcome",
    "Plan",
    "ResourceRef",
    "ResourceRevert",
    "RevertPolicy",
    "RevertState",
    "RootFault",
    "SimulatedAgent",
    "Store",
    "StoreError",
    "StoreTransaction",
    "StoreUnavailable",
    "TaskRecord",
    "TaskRejected",
    "TaskReport",
    "TaskStatus",
    "TickReport",
    "UnknownAgent",
    "UnknownCommandType",
    "ends_successfully",
]
