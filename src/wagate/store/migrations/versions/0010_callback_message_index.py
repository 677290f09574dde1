"""retention: an index to delete a message's status callbacks with it

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 10:50:00

Pruning a message deleted its callbacks by lane, which no full index covers (only the pending
ones' partial index): every batch of messages read the whole callback table.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_callback_deliveries_message_id",
        "callback_deliveries",
        ["message_id"],
        unique=False,
        sqlite_where=sa.text("message_id IS NOT NULL"),
        postgresql_where=sa.text("message_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_callback_deliveries_message_id", table_name="callback_deliveries")
