"""lanes as data: outbox and callback lane heads, account backoff, shared pacing, heartbeats

Revision ID: 0004
Revises: 0002
Create Date: 2026-12-06 10:00:00

Builds the lane tables from what is queued: each outbox lane's oldest message and each callback
lane's oldest pending event become the heads, due when they are available (or when their lease
ends), so that a claim after the upgrade picks up exactly what it would have before.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import wagate.store.tables

revision = "0004"
down_revision = "0002"
branch_labels = None
depends_on = None

_DUE = (
    "CASE WHEN {t}.lease_until IS NOT NULL AND {t}.lease_until > {t}.available_at"
    " THEN {t}.lease_until ELSE {t}.available_at END"
)


def upgrade() -> None:
    op.create_table(
        "outbox_lanes",
        sa.Column("channel_id", sa.String(length=40), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("head_id", sa.String(length=40), nullable=False),
        sa.Column("due_at", wagate.store.tables.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("channel_id", "phone", name=op.f("pk_outbox_lanes")),
        sa.UniqueConstraint("head_id", name=op.f("uq_outbox_lanes_head_id")),
    )
    with op.batch_alter_table("outbox_lanes", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_lanes_due", ["due_at", "head_id"], unique=False)
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        # Nothing reads it any more, and every accept paid for keeping it.
        batch_op.drop_index("ix_outbox_available_at")
    op.execute(
        "INSERT INTO outbox_lanes (channel_id, phone, head_id, due_at)"
        f" SELECT o.channel_id, o.phone, o.message_id, {_DUE.format(t='o')} FROM outbox o"
        " WHERE o.message_id = (SELECT MIN(h.message_id) FROM outbox h"
        "                       WHERE h.channel_id = o.channel_id AND h.phone = o.phone)"
    )

    op.create_table(
        "callback_arrivals",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("lane", sa.String(length=160), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_callback_arrivals")),
    )
    op.create_table(
        "callback_lanes",
        sa.Column("lane", sa.String(length=160), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("head_seq", sa.Integer(), nullable=False),
        sa.Column("due_at", wagate.store.tables.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("lane", name=op.f("pk_callback_lanes")),
        sa.UniqueConstraint("head_seq", name=op.f("uq_callback_lanes_head_seq")),
    )
    with op.batch_alter_table("callback_lanes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_callback_lanes_account_due", ["account_id", "due_at", "head_seq"], unique=False
        )
    op.create_table(
        "callback_accounts",
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("due_at", wagate.store.tables.UTCDateTime(), nullable=True),
        sa.Column("failures", sa.Integer(), server_default="0", nullable=False),
        sa.Column("failed_at", wagate.store.tables.UTCDateTime(), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_callback_accounts_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_callback_accounts")),
    )
    with op.batch_alter_table("callback_accounts", schema=None) as batch_op:
        batch_op.create_index("ix_callback_accounts_due", ["due_at"], unique=False)
    with op.batch_alter_table("callback_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_callback_deliveries_lane")
        batch_op.create_index(
            "ix_callback_deliveries_pending_lane",
            ["lane", "seq"],
            unique=False,
            sqlite_where=sa.text("status = 'pending'"),
            postgresql_where=sa.text("status = 'pending'"),
        )
    op.execute(
        "INSERT INTO callback_lanes (lane, account_id, head_seq, due_at)"
        f" SELECT d.lane, d.account_id, d.seq, {_DUE.format(t='d')} FROM callback_deliveries d"
        " WHERE d.seq = (SELECT MIN(p.seq) FROM callback_deliveries p"
        "                WHERE p.lane = d.lane AND p.status = 'pending')"
    )
    op.execute(
        "INSERT INTO callback_accounts (account_id, due_at, failures)"
        " SELECT account_id, MIN(due_at), 0 FROM callback_lanes GROUP BY account_id"
    )

    op.create_table(
        "channel_pacing",
        sa.Column("channel_id", sa.String(length=40), nullable=False),
        sa.Column("tat_us", sa.BigInteger(), nullable=False),
        sa.Column("factor", sa.Float(), nullable=True),
        sa.Column("since_us", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("channel_id", name=op.f("pk_channel_pacing")),
    )
    op.create_table(
        "workers",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", wagate.store.tables.UTCDateTime(), nullable=False),
        sa.Column("seen_at", wagate.store.tables.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workers")),
    )


def downgrade() -> None:
    op.drop_table("workers")
    op.drop_table("channel_pacing")
    with op.batch_alter_table("callback_deliveries", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_callback_deliveries_pending_lane",
            sqlite_where=sa.text("status = 'pending'"),
            postgresql_where=sa.text("status = 'pending'"),
        )
        batch_op.create_index("ix_callback_deliveries_lane", ["lane", "seq"], unique=False)
    with op.batch_alter_table("callback_accounts", schema=None) as batch_op:
        batch_op.drop_index("ix_callback_accounts_due")
    op.drop_table("callback_accounts")
    with op.batch_alter_table("callback_lanes", schema=None) as batch_op:
        batch_op.drop_index("ix_callback_lanes_account_due")
    op.drop_table("callback_lanes")
    op.drop_table("callback_arrivals")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_available_at", ["available_at"], unique=False)
    with op.batch_alter_table("outbox_lanes", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_lanes_due")
    op.drop_table("outbox_lanes")
