"""SQLAlchemy persistence for endaction: schema, database setup and the store."""

from .database import connect, normalise_url
from .schema import metadata
from .sql_store import SqlStore, open_store

__all__ = ["SqlStore", "connect", "metadata", "normalise_url", "open_store"]
