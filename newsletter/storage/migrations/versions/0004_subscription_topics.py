"""subscription topics as rows, digest index, constrained subscriber status, default digest

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES = ("pending", "active", "unsubscribed", "bounced", "complained")
STATUS_CHECK = "status IN (" + ", ".join(f"'{s}'" for s in STATUSES) + ")"


def upgrade() -> None:
    conn = op.get_bind()
    # A status outside the five known ones cannot pass the new constraint: such a row was
    # never mailed, so it becomes pending (it must confirm before anything is sent).
    conn.execute(sa.text(f"UPDATE subscriber SET status = 'pending' WHERE NOT ({STATUS_CHECK})"))
    with op.batch_alter_table("subscriber") as batch:
        batch.create_check_constraint("ck_subscriber_status", STATUS_CHECK)

    op.create_table(
        "subscription_tag",
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("digest_id", sa.Integer(), nullable=False),
        sa.Column("tag_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["subscriber_id", "digest_id"],
            ["subscription.subscriber_id", "subscription.digest_id"],
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["tag_id"], ["tag.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("subscriber_id", "digest_id", "tag_id"),
    )
    op.create_index("ix_subscription_tag_tag", "subscription_tag", ["tag_id"])

    # the space-separated slugs become rows; a slug naming no tag any more is dropped
    tags: dict[str, int] = {
        slug: id_ for slug, id_ in conn.execute(sa.text("SELECT slug, id FROM tag"))
    }
    rows = conn.execute(
        sa.text("SELECT subscriber_id, digest_id, tags FROM subscription WHERE tags <> ''")
    ).all()
    narrowing = [
        {"s": sid, "d": digest, "t": tags[slug]}
        for sid, digest, text in rows
        for slug in sorted(set(text.split()))
        if slug in tags
    ]
    if narrowing:
        conn.execute(
            sa.text(
                "INSERT INTO subscription_tag (subscriber_id, digest_id, tag_id) "
                "VALUES (:s, :d, :t)"
            ),
            narrowing,
        )
    with op.batch_alter_table("subscription") as batch:
        batch.drop_column("tags")
        batch.create_index("ix_subscription_digest_subscriber", ["digest_id", "subscriber_id"])

    # The one digest on offer until editors define their own, created here once.
    if conn.execute(sa.text("SELECT count(*) FROM digest WHERE slug = 'digest'")).scalar() == 0:
        conn.execute(
            sa.text(
                "INSERT INTO digest (slug, name, description) VALUES "
                "('digest', 'Newsletter', 'The latest posts, by email')"
            )
        )


def downgrade() -> None:
    conn = op.get_bind()
    with op.batch_alter_table("subscription") as batch:
        batch.drop_index("ix_subscription_digest_subscriber")
        batch.add_column(sa.Column("tags", sa.String(), nullable=False, server_default=""))
    rows = conn.execute(
        sa.text(
            "SELECT st.subscriber_id, st.digest_id, t.slug FROM subscription_tag st "
            "JOIN tag t ON t.id = st.tag_id"
        )
    ).all()
    joined: dict[tuple[int, int], list[str]] = {}
    for sid, digest, slug in rows:
        joined.setdefault((sid, digest), []).append(slug)
    for (sid, digest), slugs in joined.items():
        conn.execute(
            sa.text(
                "UPDATE subscription SET tags = :t WHERE subscriber_id = :s AND digest_id = :d"
            ),
            {"t": " ".join(sorted(slugs)), "s": sid, "d": digest},
        )
    op.drop_index("ix_subscription_tag_tag", table_name="subscription_tag")
    op.drop_table("subscription_tag")
    with op.batch_alter_table("subscriber") as batch:
        batch.drop_constraint("ck_subscriber_status", type_="check")
