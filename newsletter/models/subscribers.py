"""Subscribers, what they subscribed to, and the addresses never to be mailed."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from newsletter.models.types import UTCDateTime, utcnow


class SubscriberStatus(StrEnum):
    pending = "pending"
    active = "active"
    unsubscribed = "unsubscribed"
    bounced = "bounced"
    complained = "complained"


SUPPRESSING = frozenset(
    {SubscriberStatus.unsubscribed, SubscriberStatus.bounced, SubscriberStatus.complained}
)
STATUS_CHECK = "status IN ('pending', 'active', 'unsubscribed', 'bounced', 'complained')"


class Subscriber(SQLModel, table=True):
    __table_args__ = (sa.CheckConstraint(STATUS_CHECK, name="ck_subscriber_status"),)

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=254, unique=True)  # normalised: subscribers.addresses
    name: str = Field(default="", max_length=300)
    status: SubscriberStatus = Field(
        default=SubscriberStatus.pending,
        sa_column=sa.Column(sa.String(16), nullable=False, index=True),
    )
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    confirmed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # set while a confirmation link is outstanding; cleared when used, so a link works once
    confirm_nonce: str | None = Field(default=None, max_length=64)
    confirm_sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # part of every preferences and unsubscribe link; changing it revokes them all
    link_key: str = Field(default="", max_length=64)


class Subscription(SQLModel, table=True):
    """A subscriber receives a digest; rows of subscription_tag narrow it to some tags
    (none: every tag of the digest)."""

    __table_args__ = (
        # a digest's subscribers in id order: what the delivery ledger streams
        sa.Index("ix_subscription_digest_subscriber", "digest_id", "subscriber_id"),
    )

    subscriber_id: int = Field(
        sa_column=sa.Column(
            sa.ForeignKey("subscriber.id", ondelete="CASCADE"), primary_key=True, nullable=False
        )
    )
    digest_id: int = Field(
        sa_column=sa.Column(
            sa.ForeignKey("digest.id", ondelete="CASCADE"), primary_key=True, nullable=False
        )
    )


class SubscriptionTag(SQLModel, table=True):
    """One tag a subscription is narrowed to. Keyed by tag id: a renamed tag stays chosen,
    a deleted one drops out of everyone's choice."""

    __tablename__ = "subscription_tag"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["subscriber_id", "digest_id"],
            ["subscription.subscriber_id", "subscription.digest_id"],
            ondelete="CASCADE",
        ),
        sa.Index("ix_subscription_tag_tag", "tag_id"),
    )

    subscriber_id: int = Field(primary_key=True)
    digest_id: int = Field(primary_key=True)
    tag_id: int = Field(
        sa_column=sa.Column(
            sa.ForeignKey("tag.id", ondelete="CASCADE"), primary_key=True, nullable=False
        )
    )


class Suppression(SQLModel, table=True):
    """An address never to be mailed again, whatever else says so (imports included)."""

    email: str = Field(primary_key=True, max_length=254)
    reason: str = Field(max_length=16)  # unsubscribed | bounced | complained
    detail: str = ""
    # set by an operator (`subscribers suppress`): no sign-up lifts it, only `unsuppress`
    by_operator: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class SignupRequest(SQLModel, table=True):
    """A sign-up as it arrived, stored before anything else happens to it: every address
    costs the same to accept, and a crash or a mail outage loses none. A worker turns it
    into a subscriber and, when one is due, a queued confirmation email."""

    __tablename__ = "signup_request"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=254)  # normalised
    name: str = Field(default="", max_length=300)  # cleaned
    digests: str = ""  # slugs separated by spaces, checked when it arrived
    tags: str = ""  # slugs separated by spaces
    client: str = Field(default="", max_length=64)  # the client's network (rate limits)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    lease_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    processed_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)


class Outbound(SQLModel, table=True):
    """A transactional email (a confirmation) waiting to go, going or gone: the same
    claim, lease and SMTP-answer policy as the digest ledger."""

    __table_args__ = (sa.Index("ix_outbound_due", "status", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(default="confirm", max_length=16)
    subscriber_id: int = Field(
        sa_column=sa.Column(sa.ForeignKey("subscriber.id", ondelete="CASCADE"), nullable=False)
    )
    email: str = Field(max_length=254)
    client: str = Field(default="", max_length=64)  # whose sign-up asked for it
    status: str = Field(default="queued", max_length=16)  # DeliveryStatus values
    attempts: int = 0
    next_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    lease_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    claimed_by: str | None = Field(default=None, max_length=64)
    last_error: str = ""
    message_id: str | None = Field(default=None, max_length=300)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
