"""feed versions

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "feed_version",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("changed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    with op.batch_alter_table("feed_version", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_feed_version_version"), ["version"], unique=False)
    # The global counter exists from the start, so the first two changes made at once
    # serialise on its row lock instead of racing to insert it.
    table = sa.table(
        "feed_version", sa.column("key"), sa.column("version"), sa.column("changed_at")
    )
    op.bulk_insert(table, [{"key": "*", "version": 0, "changed_at": datetime(2000, 1, 1)}])


def downgrade() -> None:
    with op.batch_alter_table("feed_version", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_feed_version_version"))

    op.drop_table("feed_version")
