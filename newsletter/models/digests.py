"""Digests (what editors schedule), their runs (one issue each) and the delivery ledger
(one row per run and subscriber: the truth about who was mailed)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from newsletter.models.types import UTCDateTime, utcnow

DEFAULT_DIGEST = "digest"  # created by migration 0004; sign-ups without a choice get it
DEFAULT_SUBJECT = "{{ digest.name }}: {{ issue.date }}"


class Digest(SQLModel, table=True):
    """A newsletter readers can choose, and when and how it is composed."""

    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(max_length=200, unique=True)
    name: str = Field(max_length=300)
    description: str = ""
    max_items: int = 10
    # a five-field cron expression read in `timezone` (presets are stored as cron too)
    cron: str = Field(default="0 7 * * *", max_length=200)
    timezone: str = Field(default="UTC", max_length=64)
    subject: str = Field(default=DEFAULT_SUBJECT, max_length=500)  # a Jinja2 template
    template: str = Field(default="digest", max_length=100)  # templates/email/<name>.html|txt
    skip_if_empty: bool = True
    paused: bool = False
    # firings at or before this moment never make a run (set when the schedule is set)
    schedule_from: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class DigestTag(SQLModel, table=True):
    """A tag a digest draws its posts from (none: every tag)."""

    __tablename__ = "digest_tag"

    digest_id: int = Field(
        sa_column=sa.Column(
            sa.ForeignKey("digest.id", ondelete="CASCADE"), primary_key=True, nullable=False
        )
    )
    tag_id: int = Field(
        sa_column=sa.Column(
            sa.ForeignKey("tag.id", ondelete="CASCADE"), primary_key=True, nullable=False
        )
    )


class RunStatus(StrEnum):
    composing = "composing"  # writing the ledger
    sending = "sending"
    paused = "paused"  # by an editor, or by a refusal that is our problem (reason says)
    sent = "sent"  # every ledger row reached a final state
    skipped = "skipped"  # no posts and skip-if-empty
    cancelled = "cancelled"
    missed = "missed"  # the firing came while nothing ran, longer ago than catch_up_hours


ACTIVE_RUNS = frozenset({RunStatus.composing, RunStatus.sending})


class RunKind(StrEnum):
    scheduled = "scheduled"
    manual = "manual"  # "send now"


class DigestRun(SQLModel, table=True):
    """One issue of a digest: the firing it answers, its window of posts and its state."""

    __tablename__ = "digest_run"
    __table_args__ = (
        sa.UniqueConstraint("digest_id", "scheduled_for", name="uq_digest_run_scheduled"),
    )

    id: int | None = Field(default=None, primary_key=True)
    digest_id: int = Field(
        sa_column=sa.Column(sa.ForeignKey("digest.id", ondelete="CASCADE"), nullable=False)
    )
    scheduled_for: datetime = Field(sa_type=UTCDateTime, nullable=False)
    kind: str = Field(default=RunKind.scheduled, max_length=16)
    status: str = Field(default=RunStatus.composing, max_length=16, index=True)
    reason: str = ""  # why it is paused, skipped or missed
    window_start: datetime | None = Field(default=None, sa_type=UTCDateTime)
    window_end: datetime | None = Field(default=None, sa_type=UTCDateTime)
    subject: str = Field(default="", max_length=1000)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class RunArticle(SQLModel, table=True):
    """The posts of an issue, fixed when it is composed, in the order they are shown."""

    __tablename__ = "run_article"

    run_id: int = Field(
        sa_column=sa.Column(
            sa.ForeignKey("digest_run.id", ondelete="CASCADE"), primary_key=True, nullable=False
        )
    )
    position: int = Field(primary_key=True)
    article_id: int = Field(
        sa_column=sa.Column(sa.ForeignKey("article.id", ondelete="CASCADE"), nullable=False)
    )


class DeliveryStatus(StrEnum):
    queued = "queued"
    sending = "sending"  # claimed by a sender until lease_until
    sent = "sent"
    deferred = "deferred"  # a temporary refusal: tried again at next_attempt_at
    failed = "failed"
    skipped = "skipped"  # nothing to send (narrowed to no post, unsubscribed, cancelled)
    suppressed = "suppressed"  # the address may not be mailed


PENDING_DELIVERIES = frozenset(
    {DeliveryStatus.queued, DeliveryStatus.sending, DeliveryStatus.deferred}
)


class Delivery(SQLModel, table=True):
    """The ledger: one row per (run, subscriber). Senders claim rows with a lease, send, and
    record the outcome right after the SMTP transaction."""

    __table_args__ = (
        sa.UniqueConstraint("run_id", "subscriber_id", name="uq_delivery_run_subscriber"),
        # what a sender claims next: a run's rows by state and due time
        sa.Index("ix_delivery_claim", "run_id", "status", "next_attempt_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(
        sa_column=sa.Column(sa.ForeignKey("digest_run.id", ondelete="CASCADE"), nullable=False)
    )
    subscriber_id: int = Field(
        sa_column=sa.Column(sa.ForeignKey("subscriber.id", ondelete="CASCADE"), nullable=False)
    )
    status: str = Field(default=DeliveryStatus.queued, max_length=16)
    # the ids of the posts this subscriber gets, comma-separated: equal strings form a segment
    segment: str = Field(default="", max_length=400)
    attempts: int = 0
    next_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    lease_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    claimed_by: str | None = Field(default=None, max_length=64)
    last_error: str = ""
    message_id: str | None = Field(default=None, max_length=300)
    relay: str | None = Field(default=None, max_length=100)  # the relay that accepted it
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
