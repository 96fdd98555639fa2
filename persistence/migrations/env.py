"""Alembic's entry point: migrate the connection `persistence.schema_version` hands over.

The caller has already begun the transaction (BEGIN IMMEDIATE on SQLite, an advisory lock on
PostgreSQL), so every step and the version row commit together or not at all: a process
killed half-way leaves the database exactly as it found it.
"""

from __future__ import annotations

from alembic import context

from persistence.schema_version import VERSION_TABLE

connection = context.config.attributes["connection"]
context.configure(connection=connection, version_table=VERSION_TABLE,
                  transaction_per_migration=False)
with context.begin_transaction():
    context.run_migrations()
