"""Schema version 6: the history as one row per root per tick; indexes of unfinished rows.

Schema 0005 stored one `transitions` row per object per tick; a 10,000-disk rollback still
wrote 130,000 of them, the largest single write of every tick. A tree's history is read as a
whole, so it is now written as a whole: `history_segments` holds one row per root per tick,
every object's path in `steps` as JSON (persistence/history_segments.py).

Nothing is rewritten: `transitions` keeps the rows written before this version and readers
read both, the old rows first (they are older than any segment).

The status indexes of `commands` and `async_tasks` served no query (an engine loads what
is unfinished with NOT IN and !=, which no index on status serves) and cost a write on every
transition. They give way to partial indexes of the unfinished rows, which the load at
start-up does use: it reads what is in flight, not every command ever run.

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
    """Create `history_segments`, and trade the status indexes for partial ones.

    The partial indexes cover the unfinished rows only, under the conditions the store's
    start-up query states word for word.
    """
    op.create_table(
        "history_segments",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("root_id", sa.String(64), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("steps", sa.Text(), nullable=False),
    )
    op.create_index("ix_history_segments_root_id", "history_segments", ["root_id"])
    op.drop_index("ix_commands_status", table_name="commands")
    op.drop_index("ix_async_tasks_status", table_name="async_tasks")
    # The conditions are literal, and the store's start-up query states them word for word.
    active_commands = "status NOT IN ('ended_success', 'ended_failure', 'rollback_failed')"
    active_tasks = "status != 'cleared'"
    op.create_index("ix_commands_active", "commands", ["root_id"],
                    sqlite_where=sa.text(active_commands),
                    postgresql_where=sa.text(active_commands))
    op.create_index("ix_async_tasks_active", "async_tasks", ["root_command_id"],
                    sqlite_where=sa.text(active_tasks), postgresql_where=sa.text(active_tasks))


def downgrade() -> None:
    """Refuse, with NotImplementedError: endaction schemas only move forward."""
    raise NotImplementedError("endaction schemas only move forward")
