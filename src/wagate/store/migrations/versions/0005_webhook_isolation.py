"""webhook isolation: parked statuses remember their channel; indexes for pruning them and for
finding a shared webhook's channels by WABA

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Reports parked before now name no channel, so no channel's send may take them; a report
    # is parked for the moments between Meta's webhook and our own commit of the send.
    op.execute(sa.text("DELETE FROM pending_statuses"))
    with op.batch_alter_table("pending_statuses", schema=None) as batch_op:
        batch_op.add_column(sa.Column("channel_id", sa.String(length=40), nullable=False))
        batch_op.drop_constraint("uq_pending_statuses_wamid_status", type_="unique")
        batch_op.create_unique_constraint(
            "uq_pending_statuses_wamid_channel_status", ["wamid", "channel_id", "status"]
        )
        batch_op.create_index(
            batch_op.f("ix_pending_statuses_received_at"), ["received_at"], unique=False
        )
    with op.batch_alter_table("channels", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_channels_waba_id"), ["waba_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("channels", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_channels_waba_id"))
    op.execute(sa.text("DELETE FROM pending_statuses"))
    with op.batch_alter_table("pending_statuses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pending_statuses_received_at"))
        batch_op.drop_constraint("uq_pending_statuses_wamid_channel_status", type_="unique")
        batch_op.create_unique_constraint("uq_pending_statuses_wamid_status", ["wamid", "status"])
        batch_op.drop_column("channel_id")
