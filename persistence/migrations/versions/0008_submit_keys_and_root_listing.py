"""Schema version 8: idempotent submits and listing roots.

- `commands.submit_key`: the key a client submitted a root under (NULL for roots submitted
  without one, and for every child), under the unique partial index `ix_commands_submit_key`
  (keyed rows only: the rest cost it nothing). Unique, so that of two clients racing with one
  key only one root is ever written.
- `ix_commands_roots`, `ix_commands_roots_status`, `ix_commands_roots_type`: partial indexes
  on the root commands (`parent_id IS NULL`) in (created_at, id) order, alone or after the
  status or the type, so that listing roots (`endaction list`) reads a page of an index,
  never the table.
- `ix_commands_children` replaces `ix_commands_parent_id`: the same index of parents, of the
  children only. SQLite served `parent_id IS NULL` from the old one, which held the roots
  too: it read every root and sorted them for a page of 50, where the listing's indexes
  read the page alone. Children are looked up by `parent_id = ?`, which the new one serves.

Work in flight upgrades as it stands: no root had a key before. Building the indexes reads
the commands table once, inside the upgrade's one transaction (which holds writers off
meanwhile, on PostgreSQL too: CREATE INDEX CONCURRENTLY cannot run in a transaction).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# persistence.schema's conditions, kept here as they were at 0008.
ROOTS = "parent_id IS NULL"
CHILDREN = "parent_id IS NOT NULL"
KEYED = "submit_key IS NOT NULL"


def upgrade() -> None:
    """Add `commands.submit_key` under its unique partial index, and the indexes of listing.

    The roots' three partial indexes serve `endaction list`, and `ix_commands_children`
    replaces `ix_commands_parent_id` for looking up children.
    """
    # Plain ALTER TABLE ... ADD COLUMN (SQLite and PostgreSQL), as in 0007: a batch copy
    # would rewrite every row.
    op.add_column("commands", sa.Column("submit_key", sa.String(200), nullable=True))
    op.create_index("ix_commands_submit_key", "commands", ["submit_key"], unique=True,
                    sqlite_where=sa.text(KEYED), postgresql_where=sa.text(KEYED))
    op.drop_index("ix_commands_parent_id", table_name="commands")
    op.create_index("ix_commands_children", "commands", ["parent_id"],
                    sqlite_where=sa.text(CHILDREN), postgresql_where=sa.text(CHILDREN))
    for name, columns in (("ix_commands_roots", ["created_at", "id"]),
                          ("ix_commands_roots_status", ["status", "created_at", "id"]),
                          ("ix_commands_roots_type", ["type", "created_at", "id"])):
        op.create_index(name, "commands", columns, sqlite_where=sa.text(ROOTS),
                        postgresql_where=sa.text(ROOTS))


def downgrade() -> None:
    """Refuse, with NotImplementedError: endaction schemas only move forward."""
    raise NotImplementedError("endaction schemas only move forward")
