"""sign-up requests and transactional mail queued; operator suppressions

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "signup_request",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("digests", sa.String(), nullable=False),
        sa.Column("tags", sa.String(), nullable=False),
        sa.Column("client", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.Column("processed_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_signup_request_processed_at", "signup_request", ["processed_at"])
    op.create_table(
        "outbound",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("client", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=True),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("last_error", sa.String(), nullable=False),
        sa.Column("message_id", sa.String(300), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscriber.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_outbound_due", "outbound", ["status", "next_attempt_at"])
    with op.batch_alter_table("suppression") as batch:
        batch.add_column(
            sa.Column("by_operator", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    # Suppressions an operator made before this revision said so in their detail.
    op.get_bind().execute(
        sa.text(
            "UPDATE suppression SET by_operator = :yes WHERE detail = 'suppressed by an operator'"
        ),
        {"yes": True},
    )


def downgrade() -> None:
    with op.batch_alter_table("suppression") as batch:
        batch.drop_column("by_operator")
    op.drop_index("ix_outbound_due", table_name="outbound")
    op.drop_table("outbound")
    op.drop_index("ix_signup_request_processed_at", table_name="signup_request")
    op.drop_table("signup_request")
