"""The network example's bookkeeping: address leases, DNS records and plugged ports.

Three tables of its own, each kept by a ledger registered with the store; each ledger is the
existence guard of one resource type, so an opposite command runs only while what it reverts
is still recorded. A row goes in before the task that makes its resource starts: if the
host makes it and the answer is lost, the row is what says there is something to revert.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Column, MetaData, String, Table

from persistence import TableLedger

LEASE = "lease"
DNS_RECORD = "dns_record"
PORT = "port"

metadata = MetaData()

leases = Table(
    "net_leases", metadata,
    Column("lease", String(200), primary_key=True),
    # Empty until the pool has answered with the address it chose.
    Column("address", String(64), nullable=False),
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
class Lease:
    """An address the pool holds for a service, by the lease's name."""

    lease: str
    address: str
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
    """A switch port this example plugged, and the task that plugged it.

    The switch reverts a plug natively, by that task's id.
    """

    port: str
    vlan: str
    root_id: str
    plug_task: str
    status: str = "plugging"


class Leases(TableLedger[Lease]):
    """Address leases by name; the address is the pool's answer."""

    resource_type = LEASE
    table = leases
    row_type = Lease


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


NETWORK_LEDGERS = (Leases, DnsRecords, Ports)
