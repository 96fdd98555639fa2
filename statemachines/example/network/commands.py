"""Provisioning a service endpoint: an address from a pool, a DNS record, a switch port.

ProvisionEndpoint picks a free address and starts three children, one per resource. When one
of them fails, the others are undone by their opposite commands, each started by the engine
with ROLLBACK_FLOW: ReleaseAddress returns the address to the pool (bookkeeping only),
DeleteDnsRecord deletes the record by name (the DNS server has no undo), and UnplugPort asks
the switch to revert its plug natively, by the id of the task that made it.

Written against the public API only: this is the file to copy for a third domain.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from statemachines import Command, CommandContext, CommandRegistry, Compensation, ResourceRef

from .host import CREATE_DNS_RECORD, DELETE_DNS_RECORD, PLUG_PORT, REVERT_TASK
from .ledgers import (
    ADDRESS,
    DNS_RECORD,
    PORT,
    AddressPool,
    Allocation,
    DnsRecord,
    DnsRecords,
    PortPlug,
    Ports,
)

NETWORK_AGENT = "network"
_NAME = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,98}[a-z0-9])?$")
_PORT = re.compile(r"^[A-Za-z0-9_.-]{1,60}/[A-Za-z0-9_./-]{1,60}$")


def endpoint_parameters(service: str, hostname: str, port: str, pool: str = "10.0.0.0/29",
                        vlan: int = 100, refuse: bool = False) -> dict[str, Any]:
    """Parameters of a ProvisionEndpoint: `port` is "switch/port"; `pool` a CIDR block."""
    return {"service": service, "hostname": hostname, "port": port, "pool": pool,
            "vlan": vlan, "fail": refuse}


def _problems(parameters: Mapping[str, Any]) -> list[str]:
    problems = []
    if not isinstance(parameters.get("service"), str) or not parameters["service"]:
        problems.append("'service' must be a non-empty name")
    if not isinstance(parameters.get("hostname"), str) or not _NAME.match(parameters["hostname"]):
        problems.append(f"'hostname' must be a DNS name (got {parameters.get('hostname')!r})")
    if not isinstance(parameters.get("port"), str) or not _PORT.match(parameters["port"]):
        problems.append(f"'port' must be 'switch/port' (got {parameters.get('port')!r})")
    vlan = parameters.get("vlan")
    if not isinstance(vlan, int) or isinstance(vlan, bool) or not 1 <= vlan <= 4094:
        problems.append(f"'vlan' must be 1..4094 (got {vlan!r})")
    return problems


class ProvisionEndpoint(Command):
    """The root: picks a free address from the pool and starts one child per resource."""

    type_name = "ProvisionEndpoint"

    @classmethod
    def check_parameters(cls, parameters: Mapping[str, Any]) -> list[str]:
        problems = _problems(parameters)
        try:
            network = ipaddress.ip_network(str(parameters.get("pool")))
            if network.num_addresses > 4096:
                problems.append("'pool' must hold at most 4096 addresses")
        except ValueError as err:
            problems.append(f"'pool' must be a CIDR block: {err}")
        return problems

    def execute(self, ctx: CommandContext) -> None:
        p = self.parameters
        pool = [str(a) for a in ipaddress.ip_network(str(p["pool"])).hosts()]
        address = ctx.ledger(AddressPool).first_free(pool)
        if address is None:
            raise RuntimeError(f"no free address left in {p['pool']}")
        ctx.add_child(AllocateAddress.type_name, {"address": address, "service": p["service"]},
                      entity=ResourceRef(ADDRESS, address))
        ctx.add_child(CreateDnsRecord.type_name,
                      {"name": p["hostname"], "address": address, "fail": p.get("fail", False)},
                      entity=ResourceRef(DNS_RECORD, p["hostname"]))
        ctx.add_child(PlugPort.type_name, {"port": p["port"], "vlan": p["vlan"]},
                      entity=ResourceRef(PORT, p["port"]))


class AllocateAddress(Command):
    """Takes an address from the pool: bookkeeping only, no agent involved."""

    type_name = "AllocateAddress"

    def validate(self, ctx: CommandContext) -> list[str]:
        if ctx.ledger(AddressPool).exists(self.parameters["address"]):
            return [f"address {self.parameters['address']} is taken"]
        return []

    def execute(self, ctx: CommandContext) -> None:
        ctx.ledger(AddressPool).put(Allocation(self.parameters["address"],
                                               self.parameters["service"], self.record.root_id))

    def revert(self, ctx: CommandContext) -> Compensation:
        return Compensation(ReleaseAddress.type_name, {"address": self.parameters["address"]})


class ReleaseAddress(Command):
    """The opposite of AllocateAddress: the address goes back to the pool."""

    type_name = "ReleaseAddress"

    def execute(self, ctx: CommandContext) -> None:
        ctx.ledger(AddressPool).remove(self.parameters["address"])


class CreateDnsRecord(Command):
    """Gives the address a name on the DNS server."""

    type_name = "CreateDnsRecord"

    def validate(self, ctx: CommandContext) -> list[str]:
        if ctx.ledger(DnsRecords).exists(self.parameters["name"]):
            return [f"DNS name {self.parameters['name']} is taken"]
        return []

    def execute(self, ctx: CommandContext) -> None:
        p = self.parameters
        # Recorded before the task starts: if the server creates the record and then the
        # answer is lost, the row is what tells the engine there is something to delete.
        ctx.ledger(DnsRecords).put(DnsRecord(p["name"], p["address"], self.record.root_id))
        ctx.start_task(NETWORK_AGENT, CREATE_DNS_RECORD,
                       {"name": p["name"], "address": p["address"], "fail": p.get("fail", False)},
                       entities=[ResourceRef(DNS_RECORD, p["name"])])

    def end_successfully(self, ctx: CommandContext) -> None:
        record = ctx.ledger(DnsRecords).get(self.parameters["name"])
        if record is not None:
            ctx.ledger(DnsRecords).put(DnsRecord(record.name, record.address, record.root_id,
                                                 "active"))

    def revert(self, ctx: CommandContext) -> Compensation:
        """The DNS server has no undo: the opposite operation is a delete by name."""
        return Compensation(DeleteDnsRecord.type_name, {"name": self.parameters["name"]})


class DeleteDnsRecord(Command):
    """The opposite of CreateDnsRecord; acts only while the record is in the ledger."""

    type_name = "DeleteDnsRecord"

    def execute(self, ctx: CommandContext) -> None:
        if ctx.ledger(DnsRecords).exists(self.parameters["name"]):
            ctx.start_task(NETWORK_AGENT, DELETE_DNS_RECORD, {"name": self.parameters["name"]},
                           entities=[ResourceRef(DNS_RECORD, self.parameters["name"])])

    def end_with_failure(self, ctx: CommandContext) -> None:
        if ctx.work_succeeded:  # an opposite command only ever ends here
            ctx.ledger(DnsRecords).remove(self.parameters["name"])


class PlugPort(Command):
    """Plugs a switch port into the service's VLAN; the switch can revert the plug itself."""

    type_name = "PlugPort"

    def validate(self, ctx: CommandContext) -> list[str]:
        if ctx.ledger(Ports).exists(self.parameters["port"]):
            return [f"port {self.parameters['port']} is in use"]
        return []

    def execute(self, ctx: CommandContext) -> None:
        p = self.parameters
        task = ctx.start_task(NETWORK_AGENT, PLUG_PORT, {"port": p["port"], "vlan": p["vlan"]},
                              entities=[ResourceRef(PORT, p["port"])])
        ctx.ledger(Ports).put(PortPlug(p["port"], str(p["vlan"]), self.record.root_id, task.id))

    def revert(self, ctx: CommandContext) -> Compensation | None:
        """The switch reverts natively, given the id of the task that plugged the port."""
        plug = ctx.ledger(Ports).get(self.parameters["port"])
        if plug is None:
            return None
        return Compensation(UnplugPort.type_name, {"port": plug.port, "task": plug.plug_task})


class UnplugPort(Command):
    """The opposite of PlugPort: the switch's own revert of the plugging task."""

    type_name = "UnplugPort"

    def execute(self, ctx: CommandContext) -> None:
        if ctx.ledger(Ports).exists(self.parameters["port"]):
            ctx.start_task(NETWORK_AGENT, REVERT_TASK,
                           {"task": self.parameters["task"], "port": self.parameters["port"]},
                           entities=[ResourceRef(PORT, self.parameters["port"])])

    def end_with_failure(self, ctx: CommandContext) -> None:
        if ctx.work_succeeded:
            ctx.ledger(Ports).remove(self.parameters["port"])


NETWORK_COMMANDS: tuple[type[Command], ...] = (
    ProvisionEndpoint, AllocateAddress, ReleaseAddress, CreateDnsRecord, DeleteDnsRecord,
    PlugPort, UnplugPort)


def network_registry() -> CommandRegistry:
    """The network example's commands, ready for an Engine."""
    return CommandRegistry(NETWORK_COMMANDS)
