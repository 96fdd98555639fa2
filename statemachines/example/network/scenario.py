"""The property suite pointed at the network example: the same proofs, another domain.

Endpoints are submitted with names of their own; the controlled agent stands in for the
network host, and its effects say what each verb does to the network: a DNS record or a
plugged port appears or goes away. What is left behind is any address, record or port, on
the network or in the ledgers, that belongs to no successfully provisioned endpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from persistence import SqlStore
from statemachines import CommandStatus, Store
from statemachines.testing import ControlledAgent, Scenario, Snapshot, Submission, TreeSize

from .commands import NETWORK_AGENT, endpoint_parameters, network_registry
from .host import CREATE_DNS_RECORD, DELETE_DNS_RECORD, PLUG_PORT, REVERT_TASK
from .ledgers import AddressPool, DnsRecords, Ports


def network_effect(verb: str, parameters: Mapping[str, Any], resources: set[str]) -> None:
    """What a task that took effect did to the network."""
    if verb == CREATE_DNS_RECORD:
        resources.add(str(parameters["name"]))
    elif verb == DELETE_DNS_RECORD:
        resources.discard(str(parameters["name"]))
    elif verb == PLUG_PORT:
        resources.add(str(parameters["port"]))
    elif verb == REVERT_TASK:
        resources.discard(str(parameters["port"]))


def network_resource_of(verb: str, parameters: Mapping[str, Any]) -> str | None:
    value = parameters.get("name", parameters.get("port"))
    return str(value) if value is not None else None


def network_leftovers(snap: Snapshot, agents: Mapping[str, ControlledAgent],
                      store: Store) -> set[str]:
    """Addresses, records and ports, on the network or in the ledgers, that belong to no
    endpoint that was provisioned."""
    succeeded = {i for i, c in snap.commands.items()
                 if c.parent_id is None and c.status == CommandStatus.ENDED_SUCCESS}
    owner = {network_resource_of(t.verb, t.parameters): t.root_command_id
             for t in snap.tasks.values() if t.verb in (CREATE_DNS_RECORD, PLUG_PORT)}
    assert isinstance(store, SqlStore), "the network example keeps its ledgers in SQL tables"
    rows = [*((a.address, a.root_id) for a in AddressPool.read_all(store.engine)),
            *((r.name, r.root_id) for r in DnsRecords.read_all(store.engine)),
            *((p.port, p.root_id) for p in Ports.read_all(store.engine))]
    owner.update(rows)
    present = {resource for resource, _ in rows}
    for agent in agents.values():
        present |= agent.resources
    return {r for r in present if owner.get(r) not in succeeded}


def endpoint_submissions() -> st.SearchStrategy[Submission]:
    """Endpoints whose DNS step, or none, is refused by the host (the agent may fail any
    other step too)."""
    return st.booleans().map(lambda refused: Submission(
        "ProvisionEndpoint", endpoint_parameters("svc", "svc.example.org", "sw1/p", refuse=refused),
        TreeSize(commands=4, tasks=2, resources=3)))


def unique_endpoints(submission: Submission, index: int) -> Submission:
    """The n-th endpoint of a run, with its own name and port (addresses come from the pool)."""
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
        compensation_verbs=frozenset({DELETE_DNS_RECORD, REVERT_TASK}),
        leftovers=network_leftovers,
        unique=unique_endpoints,
        max_depth=2,
        max_roots=max_roots,
        task_timeout=90.0,
    )
