"""Schema version 6: the history as one row per root per tick.

Schema 0005 stored one `transitions` row per object per tick; a 10,000-disk rollback still
wrote 130,000 of them, the largest single write of every tick. A tree's history is read as a
whole, so it is now written as a whole: `history_segments` holds one row per root per tick,
every object's path in `steps` as JSON (persistence/history_segments.py).

Nothing is rewritten: `transitions` keeps the rows written before this version and readers
read both, the old rows first (they are older than any segment).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "history_segments",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("root_id", sa.String(64), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("steps", sa.Text(), nullable=False),
    )
    op.create_index("ix_history_segments_root_id", "history_segments", ["root_id"])


def downgrade() -> None:
    raise NotImplementedError("endaction schemas only move forward")
