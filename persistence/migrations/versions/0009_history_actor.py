"""Schema version 9: who made each step of the history.

- `history_segments.actor`: the worker (its lease name) or single engine (`host:pid`) whose
  transaction wrote the segment; NULL for what a client wrote (a submitted root's first
  row) and for every segment written before 0009.

Work in flight upgrades as it stands: the column is added empty, its old rows keep NULL.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the nullable `history_segments.actor`; segments written before keep NULL."""
    # Plain ALTER TABLE ... ADD COLUMN, as in 0007 and 0008: no row is rewritten.
    op.add_column("history_segments", sa.Column("actor", sa.String(200), nullable=True))


def downgrade() -> None:
    """Drop `history_segments.actor`: the upgrade only added it, so only the actors are lost."""
    op.drop_column("history_segments", "actor")
