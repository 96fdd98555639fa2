"""Schema version 5: one history row per object per tick, holding the path it took.

A 10,000-disk rollback wrote 230,000 history rows, one per transition, and they were half of
everything a tick wrote. Now an object's transitions within one tick share a row:

- `transitions.path`: NULL for a row of one step (every row written before this version
  reads as it did: trigger, source, dest, detail); otherwise the JSON list of the tick's
  steps, `[[trigger, dest, detail], ...]`, starting from `source`. The row's own trigger,
  dest and detail are its last step's, so `dest` is where the object stood when the tick
  committed.

Nothing is rewritten: old rows are one step each, which is what a NULL path says.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the nullable `transitions.path`: every row already written reads as one step."""
    # Plain ALTER TABLE (SQLite and PostgreSQL): adding a nullable column rewrites nothing.
    op.add_column("transitions", sa.Column("path", sa.Text(), nullable=True))


def downgrade() -> None:
    """Refuse, with NotImplementedError: endaction schemas only move forward."""
    raise NotImplementedError("endaction schemas only move forward")
