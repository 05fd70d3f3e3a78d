"""The editors' directory of subscribers: list and search in keyset pages, one
subscriber's view, counts for the dashboard, adding an address nobody has yet, and an
operator's suppression as it stands after.

Database work is synchronous (run it in a thread from async code).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, tzinfo

import sqlalchemy as sa
from sqlmodel import Session

from newsletter import cursors, storage
from newsletter.errors import DuplicateError, InvalidInputError, NotFoundError
from newsletter.models import Subscriber, SubscriberStatus
from newsletter.subscribers.addresses import normalize_email
from newsletter.subscribers.service import _must_be_new, add
from newsletter.subscribers.suppressions import suppress
from newsletter.text import has_forbidden_chars

PAGE_MAX = 100


@dataclass(frozen=True)
class DigestCount:
    slug: str
    name: str
    active: int  # active subscribers who receive it


@dataclass(frozen=True)
class SubscriberCounts:
    """What the dashboard shows: every status (zero included) and every digest."""

    by_status: dict[str, int]
    by_digest: list[DigestCount]

    @property
    def total(self) -> int:
        return sum(self.by_status.values())


def subscriber_counts(engine: sa.Engine) -> SubscriberCounts:
    """Subscribers by status, and the active subscribers of each digest."""
    with Session(engine) as session:
        stored = storage.count_by_status(session)
        per_digest = storage.count_by_digest(session, SubscriberStatus.active)
        return SubscriberCounts(
            by_status={s.value: stored.get(s.value, 0) for s in SubscriberStatus},
            by_digest=[
                DigestCount(d.slug, d.name, per_digest.get(d.id or 0, 0))
                for d in storage.all_digests(session)
            ],
        )


@dataclass(frozen=True)
class SubscriberView:
    """A subscriber as editors see them: choices by slug, and any suppression's reason."""

    email: str
    name: str
    status: str
    created_at: datetime
    confirmed_at: datetime | None
    digests: list[str]
    tags: list[str]
    suppressed: str | None


@dataclass(frozen=True)
class SubscriberPage:
    items: list[SubscriberView]
    next_cursor: str | None  # None: this is the last page


@dataclass(frozen=True)
class SuppressionView:
    email: str
    reason: str
    by_operator: bool
    created_at: datetime
    subscriber: SubscriberView | None  # None: nobody has subscribed with the address


def encode_cursor(after: int) -> str:
    return cursors.encode(after)


def decode_cursor(cursor: str) -> int:
    """The id a cursor continues after; InvalidInputError("cursor") for anything this
    list did not hand out."""
    key = cursors.decode(cursor)
    if key is None or len(key) != 1 or type(key[0]) is not int or not 0 <= key[0] < 2**63:
        raise InvalidInputError("cursor", "not a cursor this list handed out", cursor)
    return key[0]


def list_subscribers(
    engine: sa.Engine,
    search: str | None = None,
    status: str | None = None,
    digest: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> SubscriberPage:
    """One page of subscribers by id: `search` is part of the address (any case),
    `status` one of SubscriberStatus, `digest` a digest's slug. Pass the page's
    `next_cursor` back for the next page. InvalidInputError names a bad filter."""
    if status is not None and status not in SubscriberStatus.__members__:
        allowed = ", ".join(s.value for s in SubscriberStatus)
        raise InvalidInputError("status", f"{status!r:.40} is not one of {allowed}", status)
    if not 1 <= limit <= PAGE_MAX:
        raise InvalidInputError("limit", f"must be between 1 and {PAGE_MAX}", limit)
    for name, text in (("q", search), ("digest", digest)):
        # no database can be asked about NUL or a lone surrogate
        if text and (has_forbidden_chars(text) or len(text) > 254):
            raise InvalidInputError(name, "at most 254 characters, without control characters")
    after = decode_cursor(cursor) if cursor else 0
    with Session(engine) as session:
        digest_id = None
        if digest:
            found = storage.digest_by_slug(session, digest)
            if found is None:
                raise InvalidInputError("digest", f"no digest {digest!r:.80}", digest)
            digest_id = found.id
        rows = storage.subscriber_page(
            session, after, limit + 1, status, digest_id, (search or "").strip().lower()
        )
        items = _views(session, rows[:limit])
    more = len(rows) > limit
    return SubscriberPage(items, encode_cursor(rows[limit - 1].id or 0) if more else None)


def subscriber_view(engine: sa.Engine, email: str) -> SubscriberView:
    """The subscriber with `email` (NotFoundError when nobody has it)."""
    with Session(engine) as session:
        subscriber = storage.subscriber_by_email(session, normalize_email(email))
        if subscriber is None:
            raise NotFoundError("subscriber", email)
        return _views(session, [subscriber])[0]


def add_new(
    engine: sa.Engine,
    email: str,
    zone: tzinfo,
    name: str = "",
    digests: Iterable[str] = (),
    tags: Iterable[str] = (),
    now: datetime | None = None,
) -> SubscriberView:
    """`add` for an address nobody has yet: DuplicateError when somebody has it,
    InvalidInputError when it is suppressed or a choice names nothing."""
    address = normalize_email(email)
    _must_be_new(engine, address)
    try:
        add(engine, address, zone, name, digests, tags, now)
    except sa.exc.IntegrityError:  # another request stored the address in between
        raise DuplicateError("subscriber", address) from None
    return subscriber_view(engine, address)


def suppress_address(
    engine: sa.Engine, email: str, reason: str, now: datetime | None = None
) -> SuppressionView:
    """An operator's suppression (see suppressions.suppress), and what it is now."""
    address = normalize_email(email)
    suppress(engine, address, reason, now)
    with Session(engine) as session:
        row = storage.suppressions_for(session, [address])[address]
        subscriber = storage.subscriber_by_email(session, address)
        return SuppressionView(
            email=address,
            reason=row.reason,
            by_operator=row.by_operator,
            created_at=row.created_at,
            subscriber=_views(session, [subscriber])[0] if subscriber else None,
        )


def _views(session: Session, rows: list[Subscriber]) -> list[SubscriberView]:
    """Views of `rows` in a few queries for the whole list."""
    slugs = {d.id: d.slug for d in storage.all_digests(session)}
    choices = storage.subscriptions_of_many(session, [s.id or 0 for s in rows])
    suppressed = storage.suppressions_for(session, [s.email for s in rows])
    views = []
    for subscriber in rows:
        mine = choices.get(subscriber.id or 0, {})
        held = suppressed.get(subscriber.email)
        views.append(
            SubscriberView(
                email=subscriber.email,
                name=subscriber.name,
                status=str(subscriber.status),
                created_at=subscriber.created_at,
                confirmed_at=subscriber.confirmed_at,
                digests=sorted(slugs[d] for d in mine if d in slugs),
                tags=sorted({t for chosen in mine.values() for t in chosen}),
                suppressed=held.reason if held else None,
            )
        )
    return views
