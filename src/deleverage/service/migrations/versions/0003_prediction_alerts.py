"""Prediction alerts: the level each account chose for its predicted probability of
liquidation within a horizon (issue #19).

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
    op.create_table(
        "prediction_alerts",
        sa.Column("account", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("market", sa.String(64), primary_key=True),
        sa.Column("level", sa.Double, nullable=False),
        sa.Column("horizon_s", sa.Double, nullable=False),
        sa.Column("created_ns", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("prediction_alerts")
