"""The first schema: journal, notifications, api_keys (what ``create_all`` made before).

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


def upgrade() -> None:
    op.create_table(
        "journal",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("ts_ns", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.SmallInteger, nullable=False),
        sa.Column("account", sa.BigInteger, nullable=False),
        sa.Column("counterparty", sa.BigInteger, nullable=False),
        sa.Column("market", sa.Integer, nullable=False),
        sa.Column("size", sa.Double, nullable=False),
        sa.Column("price", sa.Double, nullable=False),
        sa.Column("amount", sa.Double, nullable=False),
        sa.Column("fee", sa.Double, nullable=False),
        sa.Column("counterparty_fee", sa.Double, nullable=False),
        sa.Column("code", sa.Integer, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
    )
    op.create_index("ix_journal_kind_market", "journal", ["kind", "market"])
    op.create_table(
        "notifications",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("ts_ns", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("account", sa.BigInteger, nullable=True),
        sa.Column("market", sa.String(64), nullable=True),
        sa.Column("data", sa.Text, nullable=False),
    )
    op.create_index("ix_notifications_account", "notifications", ["account", "seq"])
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("account", sa.BigInteger, nullable=True),
        sa.Column("created_ns", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("api_keys")
    op.drop_index("ix_notifications_account", "notifications")
    op.drop_table("notifications")
    op.drop_index("ix_journal_kind_market", "journal")
    op.drop_table("journal")
