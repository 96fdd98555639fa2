"""Schema version 4: roots are the unit several workers share, leased in `root_leases`.

- `root_leases`: one row per root whose tree still has work (a command not ended, a task not
  cleared). A worker claims rows (owner, expiry) with SELECT ... FOR UPDATE SKIP LOCKED and
  works only on the trees it holds; an expired lease is taken over; the row goes when the
  tree is finished. Existing unfinished roots get a free row here, so work in flight at the
  upgrade is picked up by the first engine or worker to run.
- `async_tasks.lease_owner` and `lease_expires` go: they were never used (the lease is the
  root's, not the task's).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ID = sa.String(64)
# Frozen here: a migration must not change when the code's vocabularies do.
TERMINAL = ("ended_success", "ended_failure", "rollback_failed")


def upgrade() -> None:
    """Create `root_leases`, with a free row for every root that still has work.

    The tasks' lease columns, never used, are dropped.
    """
    op.create_table(
        "root_leases",
        sa.Column("root_id", ID, sa.ForeignKey("commands.id"), primary_key=True),
        sa.Column("owner", sa.String(200)),
        sa.Column("expires", sa.Float, nullable=False, server_default="0"),
    )
    terminal = ", ".join(f"'{s}'" for s in TERMINAL)
    op.execute(
        "INSERT INTO root_leases (root_id, owner, expires) "
        f"SELECT root_id, NULL, 0 FROM commands WHERE status NOT IN ({terminal}) "
        "UNION SELECT root_command_id, NULL, 0 FROM async_tasks WHERE status <> 'cleared'")
    # Plain ALTER TABLE (SQLite 3.35+ and PostgreSQL): a batch copy of async_tasks would have
    # to drop a table that async_task_entities references.
    op.execute("ALTER TABLE async_tasks DROP COLUMN lease_owner")
    op.execute("ALTER TABLE async_tasks DROP COLUMN lease_expires")


def downgrade() -> None:
    """Refuse, with NotImplementedError: endaction schemas only move forward."""
    raise NotImplementedError("endaction schemas only move forward")
