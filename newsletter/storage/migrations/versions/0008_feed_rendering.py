"""feed_rendering: each feed's validators per format (digest of the bytes, Last-Modified)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Empty at first: the first rendering of each feed records its validators, with the
    # Last-Modified the feed had before (the version's changed_at), so nothing moves.
    op.create_table(
        "feed_rendering",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("format", sa.String(length=8), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=40), nullable=False),
        sa.Column("modified_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", "format"),
    )


def downgrade() -> None:
    op.drop_table("feed_rendering")
