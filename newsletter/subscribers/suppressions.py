"""Addresses that must not be mailed: marking them (a reader leaving, a bounce, a
complaint, an operator's word) and, for an operator alone, lifting that word."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session

from newsletter import storage
from newsletter.errors import InvalidInputError, NotFoundError
from newsletter.models import SUPPRESSING, SubscriberStatus, utcnow
from newsletter.storage.retry import retry_on_busy
from newsletter.subscribers.addresses import normalize_email


@retry_on_busy()
def mark(
    engine: sa.Engine,
    email: str,
    status: SubscriberStatus,
    detail: str,
    now: datetime | None,
    by_operator: bool = False,
) -> None:
    """Give the address a suppressing status and record the suppression (even when no
    subscriber has the address yet, so a later sign-up or import cannot bring it back)."""
    assert status in SUPPRESSING
    now = now or utcnow()
    with Session(engine) as session:
        subscriber = storage.subscriber_by_email(session, email)
        if subscriber is not None:
            subscriber.status = status
            subscriber.confirm_nonce = None
            subscriber.updated_at = now
        storage.suppress(session, email, status, detail, now, by_operator)
        session.commit()


def suppress(engine: sa.Engine, email: str, reason: str, now: datetime | None = None) -> None:
    """An operator's word: never mail `email` again (reason: unsubscribed, bounced or
    complained), whatever a sign-up, a confirmation link or an import says."""
    if reason not in SUPPRESSING:
        raise InvalidInputError(
            "reason", f"{reason!r:.40} is not unsubscribed, bounced or complained", reason
        )
    address = normalize_email(email)
    mark(engine, address, SubscriberStatus(reason), "suppressed by an operator", now, True)


def unsuppress(engine: sa.Engine, email: str, now: datetime | None = None) -> None:
    """Lift any suppression of `email` (an operator's decision). Its subscriber, if any,
    becomes unsubscribed: mail resumes only after a new sign-up and confirmation, or
    `subscribers add` on the operator's word."""
    address = normalize_email(email)
    now = now or utcnow()
    with Session(engine) as session:
        if not storage.suppressions_for(session, [address]):
            raise NotFoundError("suppression", address)
        storage.lift_suppression(session, address)
        subscriber = storage.subscriber_by_email(session, address)
        if subscriber is not None and subscriber.status in SUPPRESSING:
            subscriber.status = SubscriberStatus.unsubscribed
            subscriber.updated_at = now
        session.commit()
