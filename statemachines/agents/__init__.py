"""Agents: the protocol, a deterministic simulated agent and a local-disk storage agent."""

from .local_disk import LocalDiskAgent
from .protocol import Abortable, Agent, AgentError, TaskRejected
from .simulated import Plan, SimulatedAgent

__all__ = [
    "Abortable",
    "Agent",
    "AgentError",
    "LocalDiskAgent",
    "Plan",
    "SimulatedAgent",
    "TaskRejected",
]
