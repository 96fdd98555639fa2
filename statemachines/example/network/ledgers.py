"""The network example's bookkeeping: allocated addresses, DNS records and plugged ports.

Three tables of its own, each kept by a ledger registered with the store; each ledger is the
existence guard of one resource type, so an opposite command runs only while what it undoes
is still recorded.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Column, MetaData, String, Table

from persistence import TableLedger

ADDRESS = "address"
DNS_RECORD = "dns_record"
PORT = "port"

metadata = MetaData()

addresses = Table(
    "net_addresses", metadata,
    Column("address", String(64), primary_key=True),
    Column("service", String(100), nullable=False),
    Column("root_id", String(64), nullable=False),
)
dns_records = Table(
    "net_dns_records", metadata,
    Column("name", String(200), primary_key=True),
    Column("address", String(64), nullable=False),
    Column("root_id", String(64), nullable=False),
    Column("status", String(16), nullable=False),
)
ports = Table(
    "net_ports", metadata,
    Column("port", String(200), primary_key=True),
    Column("vlan", String(16), nullable=False),
    Column("root_id", String(64), nullable=False),
    Column("plug_task", String(64), nullable=False),
    Column("status", String(16), nullable=False),
)


@dataclass(frozen=True)
class Allocation:
    """An address taken from the pool, by the service (and root) that holds it."""

    address: str
    service: str
    root_id: str


@dataclass(frozen=True)
class DnsRecord:
    """A name this example gave an address on the DNS server."""

    name: str
    address: str
    root_id: str
    status: str = "creating"


@dataclass(frozen=True)
class PortPlug:
    """A switch port this example plugged, and the task that plugged it (the switch reverts
    a plug natively, by that task's id)."""

    port: str
    vlan: str
    root_id: str
    plug_task: str
    status: str = "plugging"


class AddressPool(TableLedger[Allocation]):
    """Allocated addresses; an address with no row is free."""

    resource_type = ADDRESS
    table = addresses
    row_type = Allocation

    def first_free(self, pool: list[str]) -> str | None:
        self.prefetch(pool)
        return next((address for address in pool if not self.exists(address)), None)


class DnsRecords(TableLedger[DnsRecord]):
    """DNS records by name."""

    resource_type = DNS_RECORD
    table = dns_records
    row_type = DnsRecord


class Ports(TableLedger[PortPlug]):
    """Plugged ports by "switch/port"."""

    resource_type = PORT
    table = ports
    row_type = PortPlug


NETWORK_LEDGERS = (AddressPool, DnsRecords, Ports)
