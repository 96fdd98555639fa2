"""Alembic migrations of the endaction schema: numbered, ordered, run in one transaction."""
