"""bounces and relays: bounce reports matched to deliveries, per-relay send windows shared
by every worker, and the relay that accepted each delivery

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bounce",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("external_id", sa.String(length=300), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=True),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("diagnostic", sa.String(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["delivery_id"], ["delivery.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("external_id"),
    )
    op.create_index("ix_bounce_email_received", "bounce", ["email", "received_at"])
    op.create_table(
        "relay_usage",
        sa.Column("relay", sa.String(length=100), nullable=False),
        sa.Column("period", sa.String(length=8), nullable=False),
        sa.Column("window_start", sa.DateTime(), nullable=False),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("relay", "period"),
    )
    with op.batch_alter_table("delivery") as batch:
        batch.add_column(sa.Column("relay", sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("delivery") as batch:
        batch.drop_column("relay")
    op.drop_table("relay_usage")
    op.drop_index("ix_bounce_email_received", table_name="bounce")
    op.drop_table("bounce")
