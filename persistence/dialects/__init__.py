"""The differences between the databases the store runs on, as one interface.

`dialect_of(conn)` answers the `Dialect` for a connection's database: `SQLiteDialect`,
`PostgreSQLDialect`, or the portable defaults for another SQLAlchemy dialect. The store asks
it, and never which database it is on.
"""

from __future__ import annotations

from sqlalchemy import Connection, Engine

from .base import Dialect
from .postgresql import PostgreSQLDialect
from .sqlite import SQLiteDialect

_PORTABLE = Dialect()
_BY_NAME: dict[str, Dialect] = {d.name: d for d in (SQLiteDialect(), PostgreSQLDialect())}


def dialect_of(bind: Connection | Engine) -> Dialect:
    """The dialect of the database behind a connection or an engine."""
    return _BY_NAME.get(bind.dialect.name, _PORTABLE)


__all__ = ["Dialect", "PostgreSQLDialect", "SQLiteDialect", "dialect_of"]
