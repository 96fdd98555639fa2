"""Schema version 2: task deadlines, lost reverts, cancel requests, held roots.

- `async_tasks.deadline`: when a task still polling is aborted on its agent (0: never).
- `resource_reverts.lost`: reverts whose outcome was lost with a dead engine or host;
  they are redone without spending the failure budget, within a bound of their own.
- `cancel_requests`: a root an operator asked to cancel; the engine that runs it acts on it.
- `held_roots`: a root the engine could not process, held with the error, so that one bad
  tree never starves the others.
- The Alembic version table replaces `endaction_schema`.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ID = sa.String(64)


def upgrade() -> None:
    """Add the tasks' deadlines and the reverts' lost counts, and the two tables of requests.

    Both columns default to 0 (no deadline, nothing lost), so rows in flight read as before;
    `endaction_schema` goes, as Alembic's version table now says the version.
    """
    op.add_column("async_tasks", sa.Column("deadline", sa.Float, nullable=False,
                                           server_default="0"))
    op.add_column("resource_reverts", sa.Column("lost", sa.Integer, nullable=False,
                                                server_default="0"))
    op.create_table(
        "cancel_requests",
        sa.Column("root_id", ID, sa.ForeignKey("commands.id"), primary_key=True),
        sa.Column("requested_at", sa.Float, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
    )
    op.create_table(
        "held_roots",
        sa.Column("root_id", ID, sa.ForeignKey("commands.id"), primary_key=True),
        sa.Column("held_at", sa.Float, nullable=False),
        sa.Column("error", sa.Text, nullable=False),
    )
    op.drop_table("endaction_schema")


def downgrade() -> None:
    """Refuse, with NotImplementedError: endaction schemas only move forward."""
    raise NotImplementedError("endaction schemas only move forward")
