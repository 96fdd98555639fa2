"""Provisioning a service endpoint in three ordered steps: an address, its name, a port.

ProvisionEndpoint is one command that works in steps, each making one resource:

1. `execute`: the pool leases an address for the service (the pool picks it);
2. `next_step`: a DNS record for the address the pool returned (the task's output);
3. `next_step`: the switch port; step 4 starts nothing, and the command ends.

When a step fails, what the earlier ones made is reverted, last made first, each resource by an
opposite command of its own that the engine starts with ROLLBACK_FLOW: DeleteDnsRecord
deletes the record by name (the DNS server has no native revert), ReleaseAddress gives the lease
back, and UnplugPort asks the switch to revert its plug natively, by the id of the task that
made it.

Written against the public API only: this is the file to copy for a third domain.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from statemachines import (
    Command,
    CommandContext,
    CommandRegistry,
    Compensation,
    ResourceRef,
    TaskRecord,
)

from .host import (
    ALLOCATE_ADDRESS,
    CREATE_DNS_RECORD,
    DELETE_DNS_RECORD,
    PLUG_PORT,
    RELEASE_ADDRESS,
    REVERT_TASK,
)
from .ledgers import DNS_RECORD, LEASE, PORT, DnsRecord, DnsRecords, Lease, Leases, PortPlug, Ports

NETWORK_AGENT = "network"
_NAME = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,98}[a-z0-9])?$")
_PORT = re.compile(r"^[A-Za-z0-9_.-]{1,60}/[A-Za-z0-9_./-]{1,60}$")


def endpoint_parameters(service: str, hostname: str, port: str, pool: str = "10.0.0.0/29",
                        vlan: int = 100) -> dict[str, Any]:
    """Parameters of a ProvisionEndpoint: `port` is "switch/port"; `pool` a CIDR block."""
    return {"service": service, "hostname": hostname, "port": port, "pool": pool,
            "vlan": vlan}


def _problems(parameters: Mapping[str, Any]) -> list[str]:
    problems = []
    if not isinstance(parameters.get("service"), str) or not _NAME.match(parameters["service"]):
        problems.append(f"'service' must be a name (got {parameters.get('service')!r})")
    if not isinstance(parameters.get("hostname"), str) or not _NAME.match(parameters["hostname"]):
        problems.append(f"'hostname' must be a DNS name (got {parameters.get('hostname')!r})")
    if not isinstance(parameters.get("port"), str) or not _PORT.match(parameters["port"]):
        problems.append(f"'port' must be 'switch/port' (got {parameters.get('port')!r})")
    vlan = parameters.get("vlan")
    if not isinstance(vlan, int) or isinstance(vlan, bool) or not 1 <= vlan <= 4094:
        problems.append(f"'vlan' must be 1..4094 (got {vlan!r})")
    try:
        network = ipaddress.ip_network(str(parameters.get("pool")))
        if network.num_addresses > 4096:
            problems.append("'pool' must hold at most 4096 addresses")
    except ValueError as err:
        problems.append(f"'pool' must be a CIDR block: {err}")
    return problems


def _task(ctx: CommandContext, verb: str) -> TaskRecord:
    return next(t for t in ctx.tasks if t.verb == verb)


class ProvisionEndpoint(Command):
    """The endpoint, in three ordered steps, each making one resource."""

    type_name = "ProvisionEndpoint"

    @classmethod
    def check_parameters(cls, parameters: Mapping[str, Any]) -> list[str]:
        """The parameters' problems, refused before anything is persisted.

        A service or hostname that is not a DNS name, a port that is not "switch/port", a VLAN
        outside 1..4094, and a pool that is not a CIDR block of at most 4096 addresses.
        """
        return _problems(parameters)

    def validate(self, ctx: CommandContext) -> list[str]:
        """The service, DNS name or port already in its ledger, each refused as taken.

        No two roots may own one resource: the rollback of one would take away the other's.
        """
        p = self.parameters
        taken = [(ctx.ledger(Leases).exists(p["service"]), f"service {p['service']}"),
                 (ctx.ledger(DnsRecords).exists(p["hostname"]), f"DNS name {p['hostname']}"),
                 (ctx.ledger(Ports).exists(p["port"]), f"port {p['port']}")]
        return [f"{what} is taken" for exists, what in taken if exists]

    def execute(self, ctx: CommandContext) -> None:
        """Step 1: a lease on an address of the pool, named after the service."""
        p = self.parameters
        ctx.add_resource(ResourceRef(LEASE, p["service"]))
        ctx.ledger(Leases).put(Lease(p["service"], "", self.record.root_id))
        ctx.start_task(NETWORK_AGENT, ALLOCATE_ADDRESS,
                       {"lease": p["service"], "pool": p["pool"]},
                       entities=[ResourceRef(LEASE, p["service"])])

    def next_step(self, ctx: CommandContext) -> None:
        """Step 2, the DNS record for the address the pool answered with; step 3, the port.

        Each step adds its resource and its ledger row with the task that makes it, so that a
        rollback finds it. Step 4 starts nothing: the endpoint is done.
        """
        p = self.parameters
        if ctx.step == 2:
            # Step 2: the DNS record, for the address the pool answered with.
            address = _task(ctx, ALLOCATE_ADDRESS).output["address"]
            ctx.ledger(Leases).put(Lease(p["service"], address, self.record.root_id))
            ctx.add_resource(ResourceRef(DNS_RECORD, p["hostname"]))
            ctx.ledger(DnsRecords).put(DnsRecord(p["hostname"], address, self.record.root_id))
            ctx.start_task(NETWORK_AGENT, CREATE_DNS_RECORD,
                           {"name": p["hostname"], "address": address},
                           entities=[ResourceRef(DNS_RECORD, p["hostname"])])
        elif ctx.step == 3:
            # Step 3: the switch port. Step 4 starts nothing: the endpoint is done.
            ctx.add_resource(ResourceRef(PORT, p["port"]))
            task = ctx.start_task(NETWORK_AGENT, PLUG_PORT,
                                  {"port": p["port"], "vlan": p["vlan"]},
                                  entities=[ResourceRef(PORT, p["port"])])
            ctx.ledger(Ports).put(PortPlug(p["port"], str(p["vlan"]), self.record.root_id,
                                           task.id))

    def end_successfully(self, ctx: CommandContext) -> None:
        """Mark the DNS record and the port plug active; the output is the leased address."""
        p = self.parameters
        record = ctx.ledger(DnsRecords).get(p["hostname"])
        if record is not None:
            ctx.ledger(DnsRecords).put(DnsRecord(record.name, record.address, record.root_id,
                                                 "active"))
        plug = ctx.ledger(Ports).get(p["port"])
        if plug is not None:
            ctx.ledger(Ports).put(PortPlug(plug.port, plug.vlan, plug.root_id, plug.plug_task,
                                           "active"))
        ctx.set_output({"address": _task(ctx, ALLOCATE_ADDRESS).output["address"]})

    def revert(self, ctx: CommandContext, resource: ResourceRef) -> Compensation | None:
        """Every resource whose row is there is reverted, even one whose own task failed.

        A host may have acted before it failed, and each revert is harmless on what was never
        made (a release of a free lease, a delete of a missing record, the revert of a plug
        that changed nothing).
        """
        if resource.type == LEASE:
            return Compensation(ReleaseAddress.type_name, {"lease": resource.id})
        if resource.type == DNS_RECORD:
            # The DNS server has no native revert: the opposite operation is a delete by name.
            return Compensation(DeleteDnsRecord.type_name, {"name": resource.id})
        plug = ctx.ledger(Ports).get(resource.id)
        if plug is None:
            return None
        # The switch reverts natively, given the id of the task that plugged the port.
        return Compensation(UnplugPort.type_name, {"port": plug.port, "task": plug.plug_task},
                            native=True)


class _Undo(Command):
    """An opposite command: one task, while its resource is still in its ledger.

    The row goes once the task succeeded (an opposite command ends only in end_with_failure).
    """

    submittable = False  # it reverts what a rollback found made: never a root of its own
    verb = ""
    ledger: type[Leases] | type[DnsRecords] | type[Ports]

    def key(self) -> str:
        assert self.record.entity_id is not None  # its entity: the resource it reverts
        return self.record.entity_id

    def execute(self, ctx: CommandContext) -> None:
        if ctx.ledger(self.ledger).exists(self.key()):
            ctx.start_task(NETWORK_AGENT, self.verb, dict(self.parameters),
                           entities=[ResourceRef(self.ledger.resource_type, self.key())])

    def end_with_failure(self, ctx: CommandContext) -> None:
        if ctx.work_succeeded:
            ctx.ledger(self.ledger).remove(self.key())


class ReleaseAddress(_Undo):
    """The opposite of a lease: the pool takes the address back."""

    type_name, verb, ledger = "ReleaseAddress", RELEASE_ADDRESS, Leases


class DeleteDnsRecord(_Undo):
    """The opposite of a DNS record: a delete by name."""

    type_name, verb, ledger = "DeleteDnsRecord", DELETE_DNS_RECORD, DnsRecords


class UnplugPort(_Undo):
    """The opposite of a plug: the switch's own revert of the plugging task."""

    type_name, verb, ledger = "UnplugPort", REVERT_TASK, Ports


NETWORK_COMMANDS: tuple[type[Command], ...] = (
    ProvisionEndpoint, ReleaseAddress, DeleteDnsRecord, UnplugPort)


def network_registry() -> CommandRegistry:
    """The network example's commands, ready for an Engine."""
    return CommandRegistry(NETWORK_COMMANDS)
