"""The agents shipped with endaction: a deterministic simulated storage host for tests, and
the local-disk storage host the demo runs on. The protocol they follow is `statemachines.Agent`."""

from .local_disk import LocalDiskAgent
from .simulated import COPY_VERB, DELETE_VERB, Plan, SimulatedAgent

__all__ = ["COPY_VERB", "DELETE_VERB", "LocalDiskAgent", "Plan", "SimulatedAgent"]
