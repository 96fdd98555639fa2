"""SQLAlchemy persistence for endaction.

The store, its schema and migrations, and ledgers over your own tables (SQLite files by default,
PostgreSQL to scale out).
"""

from .database import connect, normalise_url
from .ledger import SqlLedger, TableLedger
from .schema_version import NoSchema, NotAnEndactionDatabase, SchemaMismatch
from .sql_store import SqlStore, open_store

__all__ = [
    "NoSchema",
    "NotAnEndactionDatabase",
    "SchemaMismatch",
    "SqlLedger",
    "SqlStore",
    "TableLedger",
    "connect",
    "normalise_url",
    "open_store",
]
