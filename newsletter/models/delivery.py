"""What delivery keeps beside the ledger: bounces and complaints that came back after a
relay accepted a message, and the send counts that throttle each relay across workers."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from newsletter.models.types import UTCDateTime, utcnow


class BounceKind(StrEnum):
    hard = "hard"  # the mailbox does not exist: suppress at once
    soft = "soft"  # full, greylisted, too big: suppress after several in a row
    complaint = "complaint"  # the reader marked it as spam (an ARF report): suppress


class Bounce(SQLModel, table=True):
    """A delivery status notification (RFC 3464), a complaint report (RFC 5965) or a
    provider's webhook event, matched to the delivery it is about where it could be."""

    __table_args__ = (sa.Index("ix_bounce_email_received", "email", "received_at"),)

    id: int | None = Field(default=None, primary_key=True)
    # the report's own id (its Message-ID, or the provider's event id): a report read twice
    # (a mailbox polled again, a webhook retried) is recorded once
    external_id: str = Field(max_length=300, unique=True)
    delivery_id: int | None = Field(
        default=None,
        sa_column=sa.Column(sa.ForeignKey("delivery.id", ondelete="SET NULL"), nullable=True),
    )
    email: str = Field(max_length=254)
    kind: str = Field(max_length=16)
    status: str = Field(default="", max_length=16)  # the enhanced status code, e.g. 5.1.1
    diagnostic: str = ""
    source: str = Field(max_length=32)  # imap, pop3, ses, mailgun, postmark, sendgrid
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class RelayUsage(SQLModel, table=True):
    """Messages handed to a relay in the current window of a period ("second", "hour"),
    shared by every worker, so a provider's per-account rate holds however many send."""

    __tablename__ = "relay_usage"

    relay: str = Field(primary_key=True, max_length=100)
    period: str = Field(primary_key=True, max_length=8)
    window_start: datetime = Field(sa_type=UTCDateTime, nullable=False)
    used: int = 0
