"""Schema version 1, as endaction 0.1 created it before migrations existed.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.String(64)


def upgrade() -> None:
    """Create the tables as endaction 0.1 made them, and record version 1 in `endaction_schema`.

    That table is what 0.1 read its schema version from, before Alembic's took over (0002).
    """
    op.create_table(
        "commands",
        sa.Column("id", ID, primary_key=True),
        sa.Column("root_id", ID, nullable=False, index=True),
        sa.Column("parent_id", ID, sa.ForeignKey("commands.id"), nullable=True, index=True),
        sa.Column("end_group_id", ID, nullable=False),
        sa.Column("type", sa.String(200), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("execution_reason", sa.String(32), nullable=False),
        sa.Column("parameters", sa.JSON, nullable=False),
        sa.Column("entity_type", sa.String(100)),
        sa.Column("entity_id", sa.String(200)),
        sa.Column("work_succeeded", sa.Boolean),
        sa.Column("outcome", sa.String(32)),
        sa.Column("error", sa.Text),
        sa.Column("not_before", sa.Float, nullable=False),
        sa.Column("end_attempts", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Index("ix_commands_status", "status"),
    )
    op.create_table(
        "async_tasks",
        sa.Column("id", ID, primary_key=True),
        sa.Column("command_id", ID, sa.ForeignKey("commands.id"), nullable=False, index=True),
        sa.Column("root_command_id", ID, nullable=False, index=True),
        sa.Column("agent", sa.String(100), nullable=False),
        sa.Column("verb", sa.String(100), nullable=False),
        sa.Column("agent_task_id", ID, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("host_status", sa.String(32)),
        sa.Column("host_result", sa.String(32)),
        sa.Column("message", sa.Text),
        sa.Column("parameters", sa.JSON, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("retry_at", sa.Float, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("lease_owner", sa.String(200)),
        sa.Column("lease_expires", sa.Float),
        sa.Index("ix_async_tasks_status", "status"),
    )
    op.create_table(
        "async_task_entities",
        sa.Column("task_id", ID, sa.ForeignKey("async_tasks.id"), primary_key=True),
        sa.Column("entity_type", sa.String(100), primary_key=True),
        sa.Column("entity_id", sa.String(200), primary_key=True),
    )
    op.create_table(
        "transitions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("object_kind", sa.String(16), nullable=False),
        sa.Column("object_id", ID, nullable=False, index=True),
        sa.Column("root_id", ID, nullable=False, index=True),
        sa.Column("trigger", sa.String(64), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("dest", sa.String(32), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("detail", sa.Text),
    )
    op.create_table(
        "resource_reverts",
        sa.Column("resource_type", sa.String(100), primary_key=True),
        sa.Column("resource_id", sa.String(200), primary_key=True),
        sa.Column("owner_id", ID, primary_key=True),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "images",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("vm", sa.String(200), nullable=False, index=True),
        sa.Column("root_id", ID, nullable=False, index=True),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
    )
    op.create_table(
        "settings",
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    schema_info = op.create_table(
        "endaction_schema",
        sa.Column("version", sa.Integer, primary_key=True),
    )
    op.bulk_insert(schema_info, [{"version": 1}])


def downgrade() -> None:
    """Drop every table of version 1, the VM example's `images` with them: an empty database."""
    for table in ("endaction_schema", "settings", "images", "resource_reverts", "transitions",
                  "async_task_entities", "async_tasks", "commands"):
        op.drop_table(table)
