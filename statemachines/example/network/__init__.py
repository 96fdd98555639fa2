"""Provisioning a service endpoint (address, DNS record, switch port), reverted piece by piece.

The second worked example, in another domain than the VM's, written only against the public
API: one command in three ordered steps, the pool's answer (the address) passed from the
first to the second, three resources each reverted by an opposite command of its own, three
ledgers (`NETWORK_LEDGERS`) and a host of its own (`NetworkHost`); one of its opposite
commands (UnplugPort) is the switch's native revert. Run it with::

    store = open_store("net.db", ledgers=NETWORK_LEDGERS)
    engine = Engine(store, {NETWORK_AGENT: NetworkHost()}, network_registry())

or as an application, with workers: `endaction worker --app statemachines.example.network:app`.
"""

from .application import app
from .commands import (
    NETWORK_AGENT,
    NETWORK_COMMANDS,
    DeleteDnsRecord,
    ProvisionEndpoint,
    ReleaseAddress,
    UnplugPort,
    endpoint_parameters,
    network_registry,
)
from .host import NetworkHost
from .ledgers import NETWORK_LEDGERS, DnsRecords, Leases, Ports

__all__ = [
    "NETWORK_AGENT",
    "NETWORK_COMMANDS",
    "NETWORK_LEDGERS",
    "DeleteDnsRecord",
    "DnsRecords",
    "Leases",
    "NetworkHost",
    "Ports",
    "ProvisionEndpoint",
    "ReleaseAddress",
    "UnplugPort",
    "app",
    "endpoint_parameters",
    "network_registry",
]
