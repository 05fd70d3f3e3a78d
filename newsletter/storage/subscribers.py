"""Queries on subscribers, their subscriptions, digests on offer and suppressions.
Callers pass a Session and own the transaction.

Subscriptions are exchanged as {digest id: frozenset of tag slugs} (an empty set: every
tag); rows of subscription_tag hold tag ids, so a renamed tag stays chosen."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from newsletter.models import (
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionTag,
    Suppression,
    Tag,
)
from newsletter.storage.common import insert_unique

Choices = dict[int, frozenset[str]]  # digest id -> tag slugs (empty: every tag)


def subscriber_by_id(session: Session, subscriber_id: int) -> Subscriber | None:
    return session.get(Subscriber, subscriber_id)


def subscriber_by_email(session: Session, email: str) -> Subscriber | None:
    return session.exec(select(Subscriber).where(Subscriber.email == email)).first()


def subscribers_by_emails(session: Session, emails: Iterable[str]) -> dict[str, Subscriber]:
    rows = session.exec(select(Subscriber).where(col(Subscriber.email).in_(list(emails))))
    return {s.email: s for s in rows}


def subscriber_ids(session: Session, emails: list[str]) -> dict[str, int]:
    rows = session.exec(
        select(Subscriber.email, Subscriber.id).where(col(Subscriber.email).in_(emails))
    )
    return {email: subscriber_id for email, subscriber_id in rows if subscriber_id is not None}


def add_subscriber(session: Session, subscriber: Subscriber) -> None:
    """Insert a new subscriber; DuplicateError (with the transaction rolled back) when
    another writer stored the address first."""
    insert_unique(session, subscriber, "subscriber", subscriber.email)


def delete_subscriber(session: Session, subscriber: Subscriber) -> None:
    session.delete(subscriber)


def insert_subscribers(
    session: Session, rows: list[dict[str, Any]], choices: Mapping[str, Choices]
) -> None:
    """Insert new subscribers (column values by name) and their choices (by email) in a few
    statements for the whole batch."""
    if not rows:
        return
    session.execute(sa.insert(Subscriber), rows)
    ids = subscriber_ids(session, [r["email"] for r in rows])
    _insert_choices(session, {ids[email]: wanted for email, wanted in choices.items()})


def _insert_choices(session: Session, choices: Mapping[int, Choices]) -> None:
    pairs = [(sid, digest) for sid, wanted in choices.items() for digest in wanted]
    if not pairs:
        return
    session.execute(
        sa.insert(Subscription), [{"subscriber_id": s, "digest_id": d} for s, d in pairs]
    )
    slugs = {slug for wanted in choices.values() for tags in wanted.values() for slug in tags}
    if not slugs:
        return
    tag_ids = dict(session.exec(select(Tag.slug, Tag.id).where(col(Tag.slug).in_(slugs))).all())
    narrowing = [
        {"subscriber_id": sid, "digest_id": digest, "tag_id": tag_ids[slug]}
        for sid, wanted in choices.items()
        for digest, tags in wanted.items()
        for slug in tags
        if slug in tag_ids
    ]
    if narrowing:
        session.execute(sa.insert(SubscriptionTag), narrowing)


def subscriptions_of(session: Session, subscriber_id: int) -> Choices:
    return subscriptions_of_many(session, [subscriber_id]).get(subscriber_id, {})


def subscriptions_of_many(session: Session, ids: list[int]) -> dict[int, Choices]:
    """subscriber id -> their choices, for many subscribers in two queries."""
    found: dict[int, dict[int, set[str]]] = {}
    if not ids:
        return {}
    for sid, digest in session.exec(
        select(Subscription.subscriber_id, Subscription.digest_id).where(
            col(Subscription.subscriber_id).in_(ids)
        )
    ):
        found.setdefault(sid, {})[digest] = set()
    for sid, digest, slug in session.exec(
        select(SubscriptionTag.subscriber_id, SubscriptionTag.digest_id, Tag.slug)
        .join(Tag, col(Tag.id) == SubscriptionTag.tag_id)
        .where(col(SubscriptionTag.subscriber_id).in_(ids))
    ):
        found[sid][digest].add(slug)
    return {
        sid: {digest: frozenset(tags) for digest, tags in wanted.items()}
        for sid, wanted in found.items()
    }


def set_subscriptions(session: Session, subscriber_id: int, wanted: Choices) -> None:
    """Make `wanted` the subscriber's choices (tag slugs that name no tag are left out)."""
    session.execute(sa.delete(Subscription).where(col(Subscription.subscriber_id) == subscriber_id))
    # SQLite applies ON DELETE CASCADE only with foreign keys on; be explicit for both.
    session.execute(
        sa.delete(SubscriptionTag).where(col(SubscriptionTag.subscriber_id) == subscriber_id)
    )
    _insert_choices(session, {subscriber_id: wanted})
    session.flush()


def subscribers(
    session: Session, status: str | None = None, batch: int = 1000
) -> Iterator[tuple[Subscriber, Choices]]:
    """Every subscriber with their choices, by id, fetched `batch` at a time so an export of
    any size runs in constant memory."""
    last = 0
    while True:
        query = select(Subscriber).where(col(Subscriber.id) > last)
        if status is not None:
            query = query.where(Subscriber.status == status)
        page = list(session.exec(query.order_by(col(Subscriber.id)).limit(batch)))
        if not page:
            return
        choices = subscriptions_of_many(session, [s.id or 0 for s in page])
        for subscriber in page:
            yield subscriber, choices.get(subscriber.id or 0, {})
        last = page[-1].id or 0
        session.expunge_all()


def count_by_status(session: Session) -> dict[str, int]:
    rows = session.exec(select(Subscriber.status, sa.func.count()).group_by(Subscriber.status))
    return {str(status): count for status, count in rows}


# --------------------------------------------------------------------------- suppressions


def suppressions_for(session: Session, emails: Iterable[str]) -> dict[str, Suppression]:
    rows = session.exec(select(Suppression).where(col(Suppression.email).in_(list(emails))))
    return {s.email: s for s in rows}


def suppress(
    session: Session, email: str, reason: str, detail: str, now: datetime, by_operator: bool = False
) -> None:
    """Record that `email` must not be mailed again. The first reason stays, except that a
    bounce or complaint replaces an unsubscribe: those are the ones no sign-up may undo. An
    operator's word marks the row for good (only an operator lifts it)."""
    row = session.get(Suppression, email)
    if row is None:
        row = Suppression(email=email, reason=reason, detail=detail, created_at=now)
        session.add(row)
    elif row.reason == SubscriberStatus.unsubscribed and reason in (
        SubscriberStatus.bounced,
        SubscriberStatus.complained,
    ):
        row.reason, row.detail, row.created_at = reason, detail, now
    if by_operator:
        row.by_operator = True
    session.flush()


def lift_suppression(session: Session, email: str) -> None:
    session.execute(sa.delete(Suppression).where(col(Suppression.email) == email))


# --------------------------------------------------------------------------- editors' views


def subscriber_page(
    session: Session,
    after: int = 0,
    limit: int = 50,
    status: str | None = None,
    digest_id: int | None = None,
    search: str | None = None,
) -> list[Subscriber]:
    """Up to `limit` subscribers with an id above `after`, by id (keyset pages: a page
    costs the same at any depth, and rows added meanwhile shift nothing). `search` is a
    part of the address, any case; `digest_id` keeps those who receive that digest."""
    query = select(Subscriber).where(col(Subscriber.id) > after)
    if status is not None:
        query = query.where(Subscriber.status == status)
    if search:
        query = query.where(col(Subscriber.email).icontains(search, autoescape=True))
    if digest_id is not None:
        receives = (
            select(Subscription.subscriber_id)
            .where(Subscription.digest_id == digest_id)
            .where(col(Subscription.subscriber_id) == col(Subscriber.id))
        )
        query = query.where(receives.exists())
    return list(session.exec(query.order_by(col(Subscriber.id)).limit(limit)))


def count_by_digest(session: Session, status: str) -> dict[int, int]:
    """digest id -> how many subscribers with `status` receive it (digests nobody
    receives are left out)."""
    rows = session.exec(
        select(Subscription.digest_id, sa.func.count())
        .join(Subscriber, col(Subscriber.id) == Subscription.subscriber_id)
        .where(Subscriber.status == status)
        .group_by(col(Subscription.digest_id))
    )
    return {digest: count for digest, count in rows}
