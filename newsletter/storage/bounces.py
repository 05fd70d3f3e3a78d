"""Bounce and complaint reports, and the ledger rows they are matched to. Callers pass a
Session and own the transaction."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlmodel import Session, col, select

from newsletter.models import Bounce, BounceKind, Delivery, DeliveryStatus, Subscriber
from newsletter.storage.common import insert_unique


def bounce_recorded(session: Session, external_id: str) -> bool:
    """Whether the report with this key is stored already."""
    found = session.execute(
        sa.select(col(Bounce.id)).where(col(Bounce.external_id) == external_id)
    ).first()
    return found is not None


def add_bounce(session: Session, bounce: Bounce) -> None:
    """Store a report; DuplicateError (with the transaction rolled back) when another
    reader of the same report stored it first."""
    insert_unique(session, bounce, "bounce", bounce.external_id)


def delivery_subscriber(session: Session, delivery_id: int) -> tuple[int, str] | None:
    """(subscriber id, address) of the ledger row `delivery_id`; None when there is no such
    row (its run or its subscriber was deleted since)."""
    row = session.execute(
        sa.select(col(Subscriber.id), col(Subscriber.email))
        .join(Delivery, col(Delivery.subscriber_id) == Subscriber.id)
        .where(col(Delivery.id) == delivery_id)
    ).first()
    return (int(row[0]), str(row[1])) if row is not None else None


def delivery_by_message(
    session: Session, run_id: int, subscriber_id: int, message_id: str
) -> int | None:
    """The ledger row of (run, subscriber) when it was sent with exactly `message_id`
    (found through uq_delivery_run_subscriber, not by scanning message ids)."""
    return session.execute(
        sa.select(col(Delivery.id)).where(
            col(Delivery.run_id) == run_id,
            col(Delivery.subscriber_id) == subscriber_id,
            col(Delivery.message_id) == message_id,
        )
    ).scalar()


def latest_sent(session: Session, subscriber_id: int, limit: int) -> list[int]:
    """The ids of the subscriber's `limit` newest sent ledger rows, newest first."""
    return list(
        session.execute(
            sa.select(col(Delivery.id))
            .where(
                col(Delivery.subscriber_id) == subscriber_id,
                col(Delivery.status) == DeliveryStatus.sent.value,
            )
            .order_by(col(Delivery.id).desc())
            .limit(limit)
        ).scalars()
    )


def soft_bounced(session: Session, delivery_ids: Iterable[int]) -> set[int]:
    """Which of these ledger rows have a soft bounce recorded."""
    ids = list(delivery_ids)
    if not ids:
        return set()
    return set(
        session.execute(
            sa.select(col(Bounce.delivery_id))
            .where(
                col(Bounce.delivery_id).in_(ids),
                col(Bounce.kind) == BounceKind.soft.value,
            )
            .distinct()
        ).scalars()
    )


def recent_bounces(session: Session, limit: int, email: str | None = None) -> list[Bounce]:
    """The newest reports first (of one address when `email` is given)."""
    query = select(Bounce)
    if email is not None:
        query = query.where(col(Bounce.email) == email)
    return list(
        session.exec(
            query.order_by(col(Bounce.received_at).desc(), col(Bounce.id).desc()).limit(limit)
        )
    )
