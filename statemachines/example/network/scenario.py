"""The property suite pointed at the network example: the same proofs, another domain.

Endpoints are submitted with names of their own; the controlled agent stands in for the
network host: its effects say what each verb does to the network (a lease, a DNS record or a
plugged port appears or goes away) and its outputs what the pool answers (an address, which
the next step reads). What is left behind is any lease, record or port, on the network or in
the ledgers, that belongs to no successfully provisioned endpoint.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from persistence import SqlStore
from statemachines import CommandStatus, RetryPolicy, Store
from statemachines.testing import ControlledAgent, Scenario, Snapshot, Submission, TreeSize

from .commands import NETWORK_AGENT, endpoint_parameters, network_registry
from .host import (
    ALLOCATE_ADDRESS,
    CREATE_DNS_RECORD,
    DELETE_DNS_RECORD,
    PLUG_PORT,
    RELEASE_ADDRESS,
    REVERT_TASK,
)
from .ledgers import DnsRecords, Leases, Ports

_MAKES = {ALLOCATE_ADDRESS: "lease", CREATE_DNS_RECORD: "name", PLUG_PORT: "port"}
_UNDOES = {RELEASE_ADDRESS: "lease", DELETE_DNS_RECORD: "name", REVERT_TASK: "port"}


def network_effect(verb: str, parameters: Mapping[str, Any], resources: set[str]) -> None:
    """What a task that took effect did to the network."""
    if verb in _MAKES:
        resources.add(str(parameters[_MAKES[verb]]))
    elif verb in _UNDOES:
        resources.discard(str(parameters[_UNDOES[verb]]))


def network_resource_of(verb: str, parameters: Mapping[str, Any]) -> str | None:
    """The lease, DNS name or port that a task makes or reverts; None for another task.

    The suite reads it to tell which resource an opposite command's task touches (to make it
    fail for good), and the leftovers check to tell which root made each resource.
    """
    key = _MAKES.get(verb) or _UNDOES.get(verb)
    return str(parameters[key]) if key and key in parameters else None


def network_output(verb: str, parameters: Mapping[str, Any], task_id: str) -> Any:
    """What the pool answers: an address of its own choosing, as a real pool would."""
    if verb != ALLOCATE_ADDRESS:
        return None
    return {"address": f"10.0.0.{int(hashlib.sha256(task_id.encode()).hexdigest(), 16) % 250 + 1}"}


def network_leftovers(snap: Snapshot, agents: Mapping[str, ControlledAgent],
                      store: Store) -> set[str]:
    """Leases, records and ports that belong to no endpoint that was provisioned.

    Each is looked for both on the network and in the ledgers.
    """
    succeeded = {i for i, c in snap.commands.items()
                 if c.parent_id is None and c.status == CommandStatus.ENDED_SUCCESS}
    owner = {network_resource_of(t.verb, t.parameters): t.root_command_id
             for t in snap.tasks.values() if t.verb in _MAKES}
    assert isinstance(store, SqlStore), "the network example keeps its ledgers in SQL tables"
    rows = [*((lease.lease, lease.root_id) for lease in Leases.read_all(store.engine)),
            *((r.name, r.root_id) for r in DnsRecords.read_all(store.engine)),
            *((p.port, p.root_id) for p in Ports.read_all(store.engine))]
    owner.update(rows)
    present = {resource for resource, _ in rows}
    for agent in agents.values():
        present |= agent.resources
    return {r for r in present if owner.get(r) not in succeeded}


def endpoint_submissions() -> st.SearchStrategy[Submission]:
    """Endpoints of three steps (the agent may fail or lose any of their tasks)."""
    return st.just(Submission(
        "ProvisionEndpoint", endpoint_parameters("svc", "svc.example.org", "sw1/p"),
        TreeSize(commands=1, tasks=3, resources=3)))


def unique_endpoints(submission: Submission, index: int) -> Submission:
    """The n-th endpoint of a run, with its own service, name and port."""
    parameters = {**submission.parameters, "service": f"svc{index}",
                  "hostname": f"svc{index}.example.org", "port": f"sw1/p{index}"}
    return replace(submission, parameters=parameters)


def network_scenario(open_store: Callable[[Path], Store], max_roots: int = 3) -> Scenario:
    """Endpoints provisioned on one network host, any step of which may fail or be lost."""
    return Scenario(
        registry=network_registry,
        submissions=endpoint_submissions(),
        open_store=open_store,
        agent_names=(NETWORK_AGENT,),
        effect=network_effect,
        resource_of=network_resource_of,
        compensation_verbs=frozenset(_UNDOES),
        leftovers=network_leftovers,
        unique=unique_endpoints,
        output=network_output,
        retry=RetryPolicy(max_attempts=2, backoff_seconds=1.0),
        max_depth=2,
        max_roots=max_roots,
        max_steps=4,
        task_timeout=90.0,
    )
