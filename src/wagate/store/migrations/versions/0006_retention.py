"""retention: an index to delete a message's idempotency keys with it

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 02:30:00
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_idempotency_keys_message_id", "idempotency_keys", ["message_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_idempotency_keys_message_id", table_name="idempotency_keys")
