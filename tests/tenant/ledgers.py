"""What the tenant onboarding made, one table per kind of resource, each its own ledger."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Column, MetaData, String, Table

from persistence import TableLedger

metadata = MetaData()


@dataclass(frozen=True)
class Made:
    """A resource one tenant's onboarding made, and what its service said of it."""

    name: str
    tenant: str
    detail: str = ""


def _table(name: str) -> Table:
    return Table(name, metadata, Column("name", String(200), primary_key=True),
                 Column("tenant", String(100), nullable=False),
                 Column("detail", String(400), nullable=False))


class Buckets(TableLedger[Made]):
    resource_type = "bucket"
    table = _table("tenant_buckets")
    row_type = Made


class Databases(TableLedger[Made]):
    resource_type = "database"
    table = _table("tenant_databases")
    row_type = Made


class Schemas(TableLedger[Made]):
    resource_type = "schema"
    table = _table("tenant_schemas")
    row_type = Made


class Users(TableLedger[Made]):
    resource_type = "db_user"
    table = _table("tenant_users")
    row_type = Made


class Certificates(TableLedger[Made]):
    resource_type = "certificate"
    table = _table("tenant_certificates")
    row_type = Made


TENANT_LEDGERS = (Buckets, Databases, Schemas, Users, Certificates)
LEDGER_OF = {ledger.resource_type: ledger for ledger in TENANT_LEDGERS}
