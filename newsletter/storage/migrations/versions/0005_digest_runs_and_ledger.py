"""digest schedules and templates, runs, their posts, and the delivery ledger

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    with op.batch_alter_table("digest") as batch:
        batch.add_column(sa.Column("max_items", sa.Integer(), nullable=False, server_default="10"))
        batch.add_column(
            sa.Column("cron", sa.String(200), nullable=False, server_default="0 7 * * *")
        )
        batch.add_column(sa.Column("timezone", sa.String(64), nullable=False, server_default="UTC"))
        batch.add_column(
            sa.Column(
                "subject",
                sa.String(500),
                nullable=False,
                server_default="{{ digest.name }}: {{ issue.date }}",
            )
        )
        batch.add_column(
            sa.Column("template", sa.String(100), nullable=False, server_default="digest")
        )
        batch.add_column(
            sa.Column("skip_if_empty", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch.add_column(
            sa.Column("paused", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("schedule_from", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("updated_at", sa.DateTime(), nullable=True))
    op.get_bind().execute(
        sa.text("UPDATE digest SET schedule_from = :now, updated_at = :now"), {"now": now}
    )
    with op.batch_alter_table("digest") as batch:
        batch.alter_column("schedule_from", existing_type=sa.DateTime(), nullable=False)
        batch.alter_column("updated_at", existing_type=sa.DateTime(), nullable=False)

    op.create_table(
        "digest_tag",
        sa.Column("digest_id", sa.Integer(), nullable=False),
        sa.Column("tag_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["digest_id"], ["digest.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tag_id"], ["tag.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("digest_id", "tag_id"),
    )
    op.create_table(
        "digest_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("digest_id", sa.Integer(), nullable=False),
        sa.Column("scheduled_for", sa.DateTime(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("window_start", sa.DateTime(), nullable=True),
        sa.Column("window_end", sa.DateTime(), nullable=True),
        sa.Column("subject", sa.String(1000), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["digest_id"], ["digest.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("digest_id", "scheduled_for", name="uq_digest_run_scheduled"),
    )
    op.create_index("ix_digest_run_status", "digest_run", ["status"])
    op.create_table(
        "run_article",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["digest_run.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["article_id"], ["article.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "position"),
    )
    op.create_table(
        "delivery",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("segment", sa.String(400), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=True),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("last_error", sa.String(), nullable=False),
        sa.Column("message_id", sa.String(300), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["digest_run.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscriber.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "subscriber_id", name="uq_delivery_run_subscriber"),
    )
    op.create_index("ix_delivery_claim", "delivery", ["run_id", "status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_delivery_claim", table_name="delivery")
    op.drop_table("delivery")
    op.drop_table("run_article")
    op.drop_index("ix_digest_run_status", table_name="digest_run")
    op.drop_table("digest_run")
    op.drop_table("digest_tag")
    with op.batch_alter_table("digest") as batch:
        for column in (
            "updated_at",
            "schedule_from",
            "paused",
            "skip_if_empty",
            "template",
            "subject",
            "timezone",
            "cron",
            "max_items",
        ):
            batch.drop_column(column)
