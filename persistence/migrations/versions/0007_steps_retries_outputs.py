"""Schema version 7: steps, retries, outputs, causes, and commands with more than one resource.

- `commands.step`: the steps a command has taken (1 once executed); its machine loops
  through `stepping` and `executing` for every `next_step` that starts more work.
- `commands.own_work_succeeded`: whether the command's own work (its tasks, its hooks)
  succeeded, beside the verdict of its whole end group (`work_succeeded`).
- `commands.output`: JSON a command recorded for its parent to read.
- `commands.resources`: JSON list of the resources a command made beyond its entity.
- `async_tasks.step`: the step of its command that started it.
- `async_tasks.attempt`, `retried`, `retry_policy`: which attempt of its work a task is,
  whether a later attempt replaced it, and how it is retried (JSON; NULL: never).
- `async_tasks.output`: the JSON its agent returned with its end.

Work in flight upgrades as it stands: every command already executed has taken one step,
and every task is the first attempt of its work, retried never.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the columns the module lists, and count one step for every command already executed.

    The defaults make every task in flight the first attempt of its work, retried never; a
    command not yet started stays at step 0.
    """
    # Plain ALTER TABLE ... ADD COLUMN (SQLite and PostgreSQL): a batch copy of the tables
    # would rewrite every row, and their partial indexes with them.
    op.add_column("commands", sa.Column("step", sa.Integer(), nullable=False,
                                        server_default="0"))
    op.add_column("commands", sa.Column("own_work_succeeded", sa.Boolean(), nullable=True))
    op.add_column("commands", sa.Column("output", sa.Text(), nullable=True))
    op.add_column("commands", sa.Column("resources", sa.Text(), nullable=True))
    op.add_column("async_tasks", sa.Column("step", sa.Integer(), nullable=False,
                                           server_default="1"))
    op.add_column("async_tasks", sa.Column("attempt", sa.Integer(), nullable=False,
                                           server_default="1"))
    op.add_column("async_tasks", sa.Column("retried", sa.Boolean(), nullable=False,
                                           server_default=sa.false()))
    op.add_column("async_tasks", sa.Column("retry_policy", sa.Text(), nullable=True))
    op.add_column("async_tasks", sa.Column("output", sa.Text(), nullable=True))
    op.execute("UPDATE commands SET step = 1 WHERE status != 'not_started'")


def downgrade() -> None:
    """Refuse, with NotImplementedError: endaction schemas only move forward."""
    raise NotImplementedError("endaction schemas only move forward")
