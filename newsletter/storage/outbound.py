"""Queries on sign-up requests and transactional mail (confirmations): storing, claiming
with a lease, recording outcomes, counting what was sent. Callers pass a Session and own
the transaction."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from newsletter.models import DeliveryStatus, Outbound, SignupRequest
from newsletter.storage.common import claim_rows

PENDING = [DeliveryStatus.queued, DeliveryStatus.sending, DeliveryStatus.deferred]


def add_signup_request(session: Session, request: SignupRequest) -> None:
    session.add(request)
    session.flush()


def claim_signup_requests(
    session: Session, now: datetime, lease_until: datetime, limit: int
) -> list[SignupRequest]:
    """Up to `limit` unprocessed sign-up requests, oldest first, leased until
    `lease_until` so that two workers do not process the same one at once."""
    due = sa.and_(
        col(SignupRequest.processed_at).is_(None),
        sa.or_(col(SignupRequest.lease_until).is_(None), col(SignupRequest.lease_until) < now),
    )
    rows = claim_rows(session, SignupRequest, due, {"lease_until": lease_until}, limit)
    ids = [row[0] for row in rows]
    if not ids:
        return []
    return list(
        session.exec(
            select(SignupRequest)
            .where(col(SignupRequest.id).in_(ids))
            .order_by(col(SignupRequest.id))
        )
    )


def signup_processed(session: Session, request_id: int, now: datetime) -> None:
    session.execute(
        sa.update(SignupRequest)
        .where(col(SignupRequest.id) == request_id)
        .values(processed_at=now, lease_until=None)
    )


def release_signup_request(session: Session, request_id: int) -> None:
    """Give a claimed request back at once (it could not be processed this time)."""
    session.execute(
        sa.update(SignupRequest).where(col(SignupRequest.id) == request_id).values(lease_until=None)
    )


def unprocessed_signups(session: Session) -> int:
    return int(
        session.execute(
            sa.select(sa.func.count()).where(col(SignupRequest.processed_at).is_(None))
        ).scalar_one()
    )


def confirmation_pending(session: Session, subscriber_id: int) -> bool:
    """Whether a confirmation to this subscriber waits to be sent already."""
    found = session.execute(
        sa.select(col(Outbound.id)).where(
            col(Outbound.subscriber_id) == subscriber_id, col(Outbound.status).in_(PENDING)
        )
    ).first()
    return found is not None


def confirmations_since(
    session: Session, email: str, since: datetime, client: str | None = None
) -> int:
    """Confirmations sent to `email` since `since`; with `client`, those a sign-up from
    that client asked for, sent or still waiting."""
    query = sa.select(sa.func.count()).where(col(Outbound.email) == email)
    if client is None:
        query = query.where(
            col(Outbound.status) == DeliveryStatus.sent, col(Outbound.sent_at) >= since
        )
    else:
        query = query.where(
            col(Outbound.client) == client,
            col(Outbound.created_at) >= since,
            col(Outbound.status).in_([*PENDING, DeliveryStatus.sent]),
        )
    return int(session.execute(query).scalar_one())


def add_outbound(session: Session, message: Outbound) -> None:
    session.add(message)
    session.flush()


def claim_outbound(
    session: Session, worker: str, now: datetime, lease_until: datetime, limit: int
) -> list[Outbound]:
    """Up to `limit` due transactional messages, claimed for `worker` until `lease_until`."""
    due = sa.or_(
        sa.and_(
            col(Outbound.status).in_([DeliveryStatus.queued, DeliveryStatus.deferred]),
            sa.or_(col(Outbound.next_attempt_at).is_(None), col(Outbound.next_attempt_at) <= now),
        ),
        sa.and_(col(Outbound.status) == DeliveryStatus.sending, col(Outbound.lease_until) < now),
    )
    values = {
        "status": DeliveryStatus.sending.value,
        "lease_until": lease_until,
        "claimed_by": worker,
    }
    ids = [row[0] for row in claim_rows(session, Outbound, due, values, limit)]
    if not ids:
        return []
    rows = session.exec(
        select(Outbound).where(col(Outbound.id).in_(ids)).order_by(col(Outbound.id))
    )
    found = list(rows)
    for row in found:
        session.expunge(row)
    return found


def record_outbound(
    session: Session,
    message_id: int,
    worker: str,
    status: DeliveryStatus,
    *,
    attempts: int,
    next_attempt_at: datetime | None,
    last_error: str,
    sent_id: str | None,
    sent_at: datetime | None,
) -> None:
    session.execute(
        sa.update(Outbound)
        .where(col(Outbound.id) == message_id, col(Outbound.claimed_by) == worker)
        .values(
            status=status.value,
            attempts=attempts,
            next_attempt_at=next_attempt_at,
            last_error=last_error[:2000],
            message_id=sent_id,
            sent_at=sent_at,
            lease_until=None,
        )
    )


def next_outbound_due(session: Session) -> datetime | None:
    return session.execute(
        sa.select(sa.func.min(Outbound.next_attempt_at)).where(
            col(Outbound.status).in_([DeliveryStatus.queued, DeliveryStatus.deferred])
        )
    ).scalar()


def outbound_for(session: Session, email: str) -> list[Outbound]:
    """Every transactional message to `email`, oldest first (tests, support)."""
    return list(
        session.exec(select(Outbound).where(Outbound.email == email).order_by(col(Outbound.id)))
    )


def retry_outbound_now(session: Session) -> None:
    """Make every waiting transactional message due now (an operator after an outage)."""
    session.execute(
        sa.update(Outbound)
        .where(col(Outbound.status).in_([DeliveryStatus.queued, DeliveryStatus.deferred]))
        .values(next_attempt_at=None)
    )
