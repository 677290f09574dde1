"""media: stored files (uploads, fetched URLs, inbound downloads), their bytes on PostgreSQL,
and Meta's media ids per channel and content

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 05:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from wagate.store.tables import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "media",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("media_type", sa.String(length=16), nullable=False),
        sa.Column("mime_type", sa.String(length=128), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("filename", sa.String(length=255), nullable=True),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("channel_id", sa.String(length=40), nullable=True),
        sa.Column("meta_media_id", sa.String(length=128), nullable=True),
        sa.Column("wamid", sa.String(length=255), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("available_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_media_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_media")),
    )
    op.create_index("ix_media_pending", "media", ["state", "available_at"], unique=False)
    op.create_index("ix_media_channel_wamid", "media", ["channel_id", "wamid"], unique=False)
    op.create_table(
        "media_chunks",
        sa.Column("media_id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("media_id", "seq", name=op.f("pk_media_chunks")),
    )
    op.create_table(
        "media_uploads",
        sa.Column("channel_id", sa.String(length=40), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("meta_media_id", sa.String(length=128), nullable=False),
        sa.Column("uploaded_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("channel_id", "sha256", name=op.f("pk_media_uploads")),
    )
    op.create_index(
        op.f("ix_media_uploads_uploaded_at"), "media_uploads", ["uploaded_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_media_uploads_uploaded_at"), table_name="media_uploads")
    op.drop_table("media_uploads")
    op.drop_table("media_chunks")
    op.drop_index("ix_media_channel_wamid", table_name="media")
    op.drop_index("ix_media_pending", table_name="media")
    op.drop_table("media")
