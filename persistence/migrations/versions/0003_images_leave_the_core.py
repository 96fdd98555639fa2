"""Schema version 3: the `images` table leaves endaction's schema.

It was the VM example's inventory, created by the core. Inventories are now users' own tables,
kept by their ledgers (`persistence.TableLedger`), and the example registers its images the
same way. An empty `images` table is dropped (the example's ledger creates its own when it
is used); one with rows stays, and the example's ledger adopts it: its columns are the same.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Drop the `images` table if it is empty; one with rows stays for the example to adopt."""
    bind = op.get_bind()
    if not sa.inspect(bind).has_table("images"):
        return
    if bind.execute(sa.text("SELECT count(*) FROM images")).scalar() == 0:
        op.drop_table("images")


def downgrade() -> None:
    """Refuse, with NotImplementedError: endaction schemas only move forward."""
    raise NotImplementedError("endaction schemas only move forward")
