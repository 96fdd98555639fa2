"""How a worker shares a database with other workers: by leasing whole roots.

A root's tree (its commands, tasks and ends) is worked on by one worker at a time, the one
holding the root's lease; so two workers never write the same rows, and a dead worker's trees
are taken over when its leases lapse. The lease is renewed inside every tick's transaction,
with the lease rows locked until commit: a worker whose lease was taken over cannot commit a
tick over the new holder's work (it learns so and rolls back), and no worker takes over a
tree while its holder is writing it.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from ..errors import InvalidConfiguration
from ..records.limits import check_count, check_seconds
from ..records.records import MAX_NAME_LENGTH, name_problems


def default_worker_name() -> str:
    """The name of a worker not given one: host:pid, unique among live workers.

    A restart gets a new one (and waits for the old leases to lapse) unless given a stable
    name.
    """
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class WorkerLease:
    """Makes an `Engine` a worker that shares its database with others.

    Attributes:
        owner: the worker's name, written on every lease it holds; unique among workers. A
            worker restarted under the same name gets its leases back at once.
        ttl: seconds a lease lasts without renewal; a dead worker's trees wait this long
            before another worker takes them over. Renewed every `ttl / 3` at the latest, so
            it must outlast the slowest tick (agent calls included) by a wide margin.
        max_roots: the most roots one worker holds at a time. With `adaptive`, the share
            it holds starts at 64 (or this, if smaller), grows up to this while its ticks
            stay within `tick_budget` and shrinks back, never below where it started
            (statemachines/core/engine/claim_pacing.py); without, it is the share.
        claim_batch: roots claimed at once at first (without `adaptive`: always); small
            batches spread a burst of submissions over the workers.
        claim_interval: seconds between looking for free or lapsed roots while below its
            share, when no wake-up came (`Store.wakeups`): what "promptly" means for a root
            submitted where wake-ups do not reach (SQLite across processes).
        adaptive: let the share and the batch follow how the worker keeps up.
        tick_budget: seconds a tick's own work (its agent calls left out) may take before
            the worker claims less (`adaptive`); long ticks delay every poll, renewal and
            stop request of the worker.
    """

    owner: str = field(default_factory=default_worker_name)
    ttl: float = 30.0
    max_roots: int = 2048
    claim_batch: int = 8
    claim_interval: float = 0.5
    adaptive: bool = True
    tick_budget: float = 0.5

    def __post_init__(self) -> None:
        """Refuse a name that could not be written on leases and in logs, and bounds out of range.

        A worker with a bad setting then fails where it is configured, before it claims a root.
        """
        if problems := name_problems("worker name", self.owner, MAX_NAME_LENGTH * 2):
            raise InvalidConfiguration(problems[0])
        if any(not character.isprintable() for character in self.owner):
            raise InvalidConfiguration(f"worker name {self.owner!r} has characters that do not "
                                       "print (it is written in logs and on leases)")
        check_seconds("ttl", self.ttl, positive=True)
        check_seconds("claim_interval", self.claim_interval, positive=True)
        check_seconds("tick_budget", self.tick_budget, positive=True)
        check_count("max_roots", self.max_roots, 1)
        check_count("claim_batch", self.claim_batch, 1)
