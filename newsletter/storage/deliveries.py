"""The delivery ledger: writing a run's rows, claiming them with a lease, recording
outcomes, counting. Plain rows, not ORM objects: a run may have a million of them.
Callers pass a Session and own the transaction."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from newsletter.models import (
    Delivery,
    DeliveryStatus,
    DigestRun,
    RunStatus,
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionTag,
    Suppression,
    Tag,
)
from newsletter.storage.common import claim_rows


@dataclass(frozen=True)
class Reader:
    """A subscriber of a digest as the ledger writer sees them."""

    id: int
    tags: frozenset[str]  # the tags they narrowed the digest to (empty: all)


@dataclass(frozen=True)
class Recipient:
    """A claimed row with what sending needs to know about its subscriber now."""

    delivery_id: int
    subscriber_id: int
    segment: str
    attempts: int
    email: str
    name: str
    status: str
    link_key: str
    suppressed: str | None  # the suppression reason, if the address is suppressed
    subscribed: bool  # still subscribed to the run's digest


def audience_page(session: Session, digest_id: int, after: int, limit: int) -> list[Reader]:
    """The next `limit` active, unsuppressed subscribers of a digest with an id above
    `after`, in id order (keyset pagination over ix_subscription_digest_subscriber)."""
    rows = session.execute(
        sa.select(col(Subscription.subscriber_id))
        .join(Subscriber, col(Subscriber.id) == Subscription.subscriber_id)
        .outerjoin(Suppression, col(Suppression.email) == Subscriber.email)
        .where(
            col(Subscription.digest_id) == digest_id,
            col(Subscription.subscriber_id) > after,
            col(Subscriber.status) == SubscriberStatus.active.value,
            col(Suppression.email).is_(None),
        )
        .order_by(col(Subscription.subscriber_id))
        .limit(limit)
    ).all()
    ids = [row[0] for row in rows]
    tags: dict[int, set[str]] = {}
    if ids:
        for sid, slug in session.execute(
            sa.select(col(SubscriptionTag.subscriber_id), col(Tag.slug))
            .join(Tag, col(Tag.id) == SubscriptionTag.tag_id)
            .where(
                col(SubscriptionTag.digest_id) == digest_id,
                col(SubscriptionTag.subscriber_id).in_(ids),
            )
        ):
            tags.setdefault(sid, set()).add(slug)
    return [Reader(sid, frozenset(tags.get(sid, ()))) for sid in ids]


def last_ledger_subscriber(session: Session, run_id: int) -> int:
    """The highest subscriber id with a row in the run's ledger (0: none yet)."""
    found = session.execute(
        sa.select(sa.func.max(Delivery.subscriber_id)).where(col(Delivery.run_id) == run_id)
    ).scalar()
    return int(found or 0)


def deliveries_written(session: Session, run_id: int) -> int:
    return int(
        session.execute(
            sa.select(sa.func.count()).where(col(Delivery.run_id) == run_id)
        ).scalar_one()
    )


def add_deliveries(session: Session, rows: Sequence[Mapping[str, object]]) -> None:
    """Ledger rows; a row another composer of the same run wrote already is left as it is
    (two composers of one run write the same rows, in the same order)."""
    if rows:
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        session.execute(
            insert(Delivery).on_conflict_do_nothing(index_elements=["run_id", "subscriber_id"]),
            list(rows),
        )


def ledger_written(session: Session) -> None:
    """After a ledger is written: on PostgreSQL, refresh the planner's statistics of the
    delivery table. Autovacuum analyses it only later; until then a claim planned on the
    old statistics (a table it believes nearly empty) joins its picked rows by scanning
    the whole ledger for each of them, which cost 0.4 s per batch of 500 at 10,000 rows."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.text("ANALYZE delivery"))


def _due(run_id: int, now: datetime) -> sa.ColumnElement[bool]:
    return sa.and_(
        col(Delivery.run_id) == run_id,
        col(Delivery.status).in_([DeliveryStatus.queued, DeliveryStatus.deferred]),
        sa.or_(col(Delivery.next_attempt_at).is_(None), col(Delivery.next_attempt_at) <= now),
    )


def _expired(run_id: int, now: datetime) -> sa.ColumnElement[bool]:
    """Rows of a sender that died: its lease ran out."""
    return sa.and_(
        col(Delivery.run_id) == run_id,
        col(Delivery.status) == DeliveryStatus.sending,
        col(Delivery.lease_until) < now,
    )


def claim(
    session: Session, run_id: int, worker: str, now: datetime, lease_until: datetime, limit: int
) -> tuple[list[Recipient], int]:
    """Claim up to `limit` due rows of a run for `worker` until `lease_until` (rows whose
    lease ran out first, then queued and deferred ones), each kind in one statement
    (PostgreSQL: FOR UPDATE SKIP LOCKED, so concurrent senders take disjoint rows; SQLite
    serialises writers); returns them with their subscribers' state, and how many were
    taken over from a sender whose lease ran out. Each kind is
    picked through the (run, status, next attempt) index: an OR of both would make the
    database sort every due row of the run for each batch."""
    values = {
        "status": DeliveryStatus.sending.value,
        "lease_until": lease_until,
        "claimed_by": worker,
        "updated_at": now,
    }
    returning = (col(Delivery.subscriber_id), col(Delivery.segment), col(Delivery.attempts))

    def pick(due: sa.ColumnElement[bool], most: int) -> list[tuple[int, int, str, int]]:
        rows = claim_rows(session, Delivery, due, values, most, returning, ordered=False)
        return [tuple(row) for row in rows]

    taken_over = pick(_expired(run_id, now), limit)
    claimed = taken_over + (
        pick(_due(run_id, now), limit - len(taken_over)) if len(taken_over) < limit else []
    )
    return recipients(session, run_id, claimed), len(taken_over)


def recipients(
    session: Session, run_id: int, claimed: list[tuple[int, int, str, int]]
) -> list[Recipient]:
    if not claimed:
        return []
    ids = [sid for _, sid, _, _ in claimed]
    digest_id = session.execute(
        sa.select(col(DigestRun.digest_id)).where(col(DigestRun.id) == run_id)
    ).scalar_one()
    people = {
        row[0]: row
        for row in session.execute(
            sa.select(
                col(Subscriber.id),
                col(Subscriber.email),
                col(Subscriber.name),
                col(Subscriber.status),
                col(Subscriber.link_key),
                col(Suppression.reason),
            )
            .outerjoin(Suppression, col(Suppression.email) == Subscriber.email)
            .where(col(Subscriber.id).in_(ids))
        )
    }
    subscribed = set(
        session.execute(
            sa.select(col(Subscription.subscriber_id)).where(
                col(Subscription.digest_id) == digest_id, col(Subscription.subscriber_id).in_(ids)
            )
        ).scalars()
    )
    found = []
    for delivery_id, sid, segment, attempts in sorted(claimed):
        person = people.get(sid)
        if person is None:
            continue  # the subscriber was removed: the row went with them
        _, email, name, status, link_key, reason = person
        found.append(
            Recipient(
                delivery_id,
                sid,
                segment,
                attempts,
                email,
                name,
                status,
                link_key,
                reason,
                sid in subscribed,
            )
        )
    return found


def record(
    session: Session,
    delivery_id: int,
    worker: str,
    now: datetime,
    status: DeliveryStatus,
    *,
    attempts: int | None = None,
    next_attempt_at: datetime | None = None,
    last_error: str | None = None,
    message_id: str | None = None,
) -> None:
    """Write one row's outcome (only while `worker` still holds it)."""
    values: dict[str, object] = {
        "status": status.value,
        "updated_at": now,
        "lease_until": None,
        "next_attempt_at": next_attempt_at,
    }
    if attempts is not None:
        values["attempts"] = attempts
    if last_error is not None:
        values["last_error"] = last_error[:2000]
    if message_id is not None:
        values["message_id"] = message_id
    session.execute(
        sa.update(Delivery)
        .where(col(Delivery.id) == delivery_id, col(Delivery.claimed_by) == worker)
        .values(**values)
    )


def renew(
    session: Session,
    run_id: int,
    worker: str,
    lease_until: datetime,
    only: Sequence[int] | None = None,
) -> set[int]:
    """Extend the lease on the rows of a run `worker` holds (of `only` these ids, if
    given); returns the ids it still holds."""
    held = [
        col(Delivery.run_id) == run_id,
        col(Delivery.claimed_by) == worker,
        col(Delivery.status) == DeliveryStatus.sending,
    ]
    if only is not None:
        held.append(col(Delivery.id).in_(list(only)))
    rows = session.execute(
        sa.update(Delivery).where(*held).values(lease_until=lease_until).returning(col(Delivery.id))
    ).all()
    return {row[0] for row in rows}


def release(session: Session, run_id: int, worker: str) -> None:
    """Give back the rows `worker` holds of a run without sending them (a pause)."""
    session.execute(
        sa.update(Delivery)
        .where(
            col(Delivery.run_id) == run_id,
            col(Delivery.claimed_by) == worker,
            col(Delivery.status) == DeliveryStatus.sending,
        )
        .values(status=DeliveryStatus.queued.value, lease_until=None)
    )


def skip_pending(session: Session, run_id: int, reason: str, now: datetime) -> int:
    """Mark every row of the run still waiting as skipped (a cancel); returns how many."""
    result = session.execute(
        sa.update(Delivery)
        .where(
            col(Delivery.run_id) == run_id,
            col(Delivery.status).in_([DeliveryStatus.queued, DeliveryStatus.deferred]),
        )
        .values(status=DeliveryStatus.skipped.value, last_error=reason, updated_at=now)
    )
    return int(getattr(result, "rowcount", 0))


def counts(session: Session, run_ids: Iterable[int]) -> dict[int, dict[str, int]]:
    """run id -> delivery status -> rows."""
    found: dict[int, dict[str, int]] = {}
    ids = list(run_ids)
    if not ids:
        return found
    for run_id, status, count in session.execute(
        sa.select(col(Delivery.run_id), col(Delivery.status), sa.func.count())
        .where(col(Delivery.run_id).in_(ids))
        .group_by(col(Delivery.run_id), col(Delivery.status))
    ):
        found.setdefault(run_id, {})[status] = count
    return found


def pending_count(session: Session, run_id: int) -> int:
    """Rows of the run not yet in a final state."""
    return int(
        session.execute(
            sa.select(sa.func.count()).where(
                col(Delivery.run_id) == run_id,
                col(Delivery.status).in_(
                    [DeliveryStatus.queued, DeliveryStatus.deferred, DeliveryStatus.sending]
                ),
            )
        ).scalar_one()
    )


def next_due(session: Session, run_id: int) -> datetime | None:
    """When the earliest deferred row of the run is due again."""
    return session.execute(
        sa.select(sa.func.min(Delivery.next_attempt_at)).where(
            col(Delivery.run_id) == run_id,
            col(Delivery.status).in_([DeliveryStatus.queued, DeliveryStatus.deferred]),
        )
    ).scalar()


def ledger(session: Session, run_id: int) -> list[Delivery]:
    """Every row of a run (for tests and `runs show --rows` on small runs)."""
    return list(
        session.exec(select(Delivery).where(Delivery.run_id == run_id).order_by(col(Delivery.id)))
    )


def waiting_by_run_status(session: Session) -> dict[str, int]:
    """Ledger rows still to be sent (queued, deferred, sending) over the runs in progress
    (composing, sending, paused), by delivery status; a status with no row is left out.
    Reads digest_run by status, then each run's rows through ix_delivery_claim."""
    in_progress = sa.select(col(DigestRun.id)).where(
        col(DigestRun.status).in_([RunStatus.composing, RunStatus.sending, RunStatus.paused])
    )
    return {
        status: int(count)
        for status, count in session.execute(
            sa.select(col(Delivery.status), sa.func.count())
            .where(
                col(Delivery.run_id).in_(in_progress),
                col(Delivery.status).in_(
                    [DeliveryStatus.queued, DeliveryStatus.deferred, DeliveryStatus.sending]
                ),
            )
            .group_by(col(Delivery.status))
        )
    }


@dataclass(frozen=True)
class Outcome:
    """What became of one claimed row, to be written with others in one batch."""

    delivery_id: int
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None = None
    error: str | None = None  # None keeps the row's last error
    message_id: str | None = None
    relay: str | None = None


def record_many(session: Session, worker: str, now: datetime, outcomes: Sequence[Outcome]) -> None:
    """Write a batch of outcomes in one executemany (rows `worker` no longer holds, taken
    over after its lease ran out, are left to their new holder)."""
    if not outcomes:
        return
    table = Delivery.__table__  # type: ignore[attr-defined]
    statement = (
        sa.update(table)
        .where(table.c.id == sa.bindparam("b_id"), table.c.claimed_by == worker)
        .values(
            status=sa.bindparam("b_status"),
            attempts=sa.bindparam("b_attempts"),
            next_attempt_at=sa.bindparam("b_next", type_=table.c.next_attempt_at.type),
            last_error=sa.func.coalesce(
                sa.bindparam("b_error", type_=sa.String), table.c.last_error
            ),
            message_id=sa.func.coalesce(sa.bindparam("b_mid", type_=sa.String), table.c.message_id),
            relay=sa.func.coalesce(sa.bindparam("b_relay", type_=sa.String), table.c.relay),
            lease_until=None,
            updated_at=now,
        )
    )
    session.connection().execute(
        statement,
        [
            {
                "b_id": o.delivery_id,
                "b_status": o.status.value,
                "b_attempts": o.attempts,
                "b_next": o.next_attempt_at,
                "b_error": None if o.error is None else o.error[:2000],
                "b_mid": o.message_id,
                "b_relay": o.relay,
            }
            for o in outcomes
        ],
    )


# --------------------------------------------------------------------------- editors' views


def audience_count(session: Session, digest_id: int, tag_slugs: Iterable[str] | None) -> int:
    """Active, unsuppressed subscribers of a digest (the readers a ledger would hold). With
    `tag_slugs`, only those who would get at least one post tagged so: readers who did not
    narrow the digest, and readers who chose one of these tags."""
    query = (
        sa.select(sa.func.count())
        .select_from(Subscription)
        .join(Subscriber, col(Subscriber.id) == Subscription.subscriber_id)
        .outerjoin(Suppression, col(Suppression.email) == Subscriber.email)
        .where(
            col(Subscription.digest_id) == digest_id,
            col(Subscriber.status) == SubscriberStatus.active.value,
            col(Suppression.email).is_(None),
        )
    )
    if tag_slugs is not None:
        chosen = sa.select(col(SubscriptionTag.subscriber_id)).where(
            col(SubscriptionTag.digest_id) == digest_id,
            col(SubscriptionTag.subscriber_id) == Subscription.subscriber_id,
        )
        matching = chosen.join(Tag, col(Tag.id) == SubscriptionTag.tag_id).where(
            col(Tag.slug).in_(list(tag_slugs))
        )
        query = query.where(sa.or_(~chosen.exists(), matching.exists()))
    return int(session.execute(query).scalar_one())


def sent_since(session: Session, run_id: int, since: datetime) -> int:
    """Rows of the run that became sent at `since` or later (their last write)."""
    return int(
        session.execute(
            sa.select(sa.func.count()).where(
                col(Delivery.run_id) == run_id,
                col(Delivery.status) == DeliveryStatus.sent.value,
                col(Delivery.updated_at) >= since,
            )
        ).scalar_one()
    )
