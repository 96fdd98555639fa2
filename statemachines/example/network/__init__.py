"""Provisioning a service endpoint (address, DNS record, switch port), undone piece by piece.

The second worked example, in another domain than the VM's, written only against the public
API: its bookkeeping is three ledgers of its own (`NETWORK_LEDGERS`), its host an agent of its
own (`NetworkHost`), and one of its opposite commands (UnplugPort) uses the switch's native
revert. Run it with::

    store = open_store("net.db", ledgers=NETWORK_LEDGERS)
    engine = Engine(store, {NETWORK_AGENT: NetworkHost()}, network_registry())
"""

from .commands import (
    NETWORK_AGENT,
    NETWORK_COMMANDS,
    AllocateAddress,
    CreateDnsRecord,
    DeleteDnsRecord,
    PlugPort,
    ProvisionEndpoint,
    ReleaseAddress,
    UnplugPort,
    endpoint_parameters,
    network_registry,
)
from .host import NetworkHost
from .ledgers import NETWORK_LEDGERS, AddressPool, DnsRecords, Ports

__all__ = [
    "NETWORK_AGENT",
    "NETWORK_COMMANDS",
    "NETWORK_LEDGERS",
    "AddressPool",
    "AllocateAddress",
    "CreateDnsRecord",
    "DeleteDnsRecord",
    "DnsRecords",
    "NetworkHost",
    "PlugPort",
    "Ports",
    "ProvisionEndpoint",
    "ReleaseAddress",
    "UnplugPort",
    "endpoint_parameters",
    "network_registry",
]
