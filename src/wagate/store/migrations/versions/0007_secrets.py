"""secrets at rest: channel access tokens, app secrets and callback secrets sealed with the
secret key (wagate.secret_box); a key check so a process with another key stops at start

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 05:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from wagate.secret_box import SecretBox

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _box() -> SecretBox:
    """The key `wagate.store.db.migrate` was given, else the process's (WAGATE_SECRET_KEY or the
    data folder's key file)."""
    from wagate import secret_box

    given = context.config.attributes.get("secret_box")
    return given if isinstance(given, SecretBox) else secret_box.active()


def upgrade() -> None:
    from wagate.store import secret_rows

    # A sealed callback secret is ~170 characters. SQLite does not enforce a VARCHAR's length
    # (and rebuilding `accounts` there would trip the foreign keys that point at it).
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column(
            "accounts", "callback_secret", existing_type=sa.String(length=128), type_=sa.Text()
        )
    op.create_table(
        "secret_key_check",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sealed", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_secret_key_check")),
    )
    conn = op.get_bind()
    # A new database has nothing to seal: its key check is written at the first start.
    if secret_rows.has_plaintext(conn):
        secret_rows.reseal_all(conn, _box(), plaintext_only=True)


def downgrade() -> None:
    from wagate.store import secret_rows

    conn = op.get_bind()
    secret_rows.open_all(conn, _box())
    op.drop_table("secret_key_check")
    if conn.dialect.name != "sqlite":
        op.alter_column(
            "accounts", "callback_secret", existing_type=sa.Text(), type_=sa.String(length=128)
        )
