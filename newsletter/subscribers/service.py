"""Use cases on subscribers: sign-up with double opt-in, confirmation, preferences,
unsubscribe, suppression, and what editors do (add, remove, suppress, list and search in
keyset pages, counts). Web and CLI both go through `Subscribers` and the functions below.

Database work is synchronous (run it in a thread from async code); sending is async.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, tzinfo

import sqlalchemy as sa
from jinja2 import Environment
from sqlmodel import Session

from newsletter import articles, storage, tokens
from newsletter.config import Settings
from newsletter.errors import (
    DuplicateError,
    InvalidInputError,
    NotFoundError,
    RateLimited,
    TokenError,
)
from newsletter.mail import Mailer
from newsletter.models import (
    Digest,
    Subscriber,
    SubscriberStatus,
    utcnow,
)
from newsletter.storage import Choices
from newsletter.storage.retry import retry_on_busy
from newsletter.subscribers import bulk, links
from newsletter.subscribers.addresses import clean_name, normalize_email
from newsletter.subscribers.eligibility import Purpose, may_mail
from newsletter.subscribers.ratelimit import RateLimiter
from newsletter.subscribers.signups import Signups, resolve_choices
from newsletter.subscribers.suppressions import mark, suppress
from newsletter.text import has_forbidden_chars

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Choice:
    slug: str
    name: str
    chosen: bool


@dataclass(frozen=True)
class Preferences:
    email: str
    name: str
    status: str
    digests: list[Choice]
    tags: list[Choice]
    token: str


class Subscribers:
    """Everything a reader does with their subscription."""

    def __init__(
        self,
        engine: sa.Engine,
        settings: Settings,
        mailer: Mailer,
        templates: Environment,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.mailer = mailer
        self.templates = templates
        self.signups = Signups(engine, settings, mailer, templates, clock)
        limits = settings.subscribers
        self.by_ip = RateLimiter(limits.signups_per_ip_per_hour, 3600)
        self.by_address = RateLimiter(limits.signups_per_address_per_hour, 3600)

    # ------------------------------------------------------------------ sign-up

    async def subscribe(
        self,
        email: str,
        name: str = "",
        digests: Iterable[str] = (),
        tags: Iterable[str] = (),
        client: str | None = None,
    ) -> None:
        """Sign `email` up. Every valid request is stored and answered the same way, in
        the same time, whether the address is new, pending, subscribed or suppressed and
        whether mail is flowing; the confirmation email leaves from a queue."""
        address = normalize_email(email)
        if client is not None and not self.by_ip.allow(client):
            raise RateLimited("too many sign-ups from your network; try again in an hour")
        if not self.by_address.allow(address):
            raise RateLimited("too many sign-ups for this address; try again in an hour")
        await asyncio.to_thread(
            self.signups.accept, address, clean_name(name), list(digests), list(tags), client or ""
        )
        self.signups.nudge()

    async def invite(
        self, email: str, name: str = "", digests: Iterable[str] = (), tags: Iterable[str] = ()
    ) -> str:
        """An editor signs a new address up: it is stored as a sign-up and gets the
        confirmation email (pending until the reader follows it). Unlike `subscribe` the
        editor hears what stands in the way: DuplicateError when somebody has the address,
        InvalidInputError when it is suppressed. Returns the normalised address."""
        address = normalize_email(email)
        await asyncio.to_thread(_must_be_new, self.engine, address)
        await asyncio.to_thread(
            self.signups.accept, address, clean_name(name), list(digests), list(tags), ""
        )
        self.signups.nudge()
        return address

    def _choices(self, session: Session, digests: list[str], tags: list[str]) -> Choices:
        return resolve_choices(session, digests, tags)

    def digests(self, session: Session) -> list[Digest]:
        """The digests on offer (migration 0004 creates the first)."""
        return storage.all_digests(session)

    def link(self, page: str, token: str) -> str:
        return links.page(self.settings, page, token)

    def preferences_token(self, subscriber: Subscriber) -> str:
        assert subscriber.id is not None
        return links.preferences_token(self.settings, subscriber.id, subscriber.link_key)

    # ------------------------------------------------------------------ confirm, leave, choose

    @retry_on_busy()
    def confirm(self, token: str, now: datetime | None = None) -> Preferences:
        """Activate the subscriber the link was sent to. A link works once."""
        now = now or utcnow()
        claims = tokens.verify(self.settings.secret, token, "confirm", now)
        with Session(self.engine) as session:
            subscriber = storage.subscriber_by_id(session, claims.subject)
            if subscriber is None:
                raise TokenError("tampered", "This link is not valid any more.")
            if subscriber.confirm_nonce != claims.nonce:
                raise TokenError("used", "This confirmation link was already used.")
            suppressed = storage.suppressions_for(session, [subscriber.email]).get(subscriber.email)
            if not may_mail(
                Purpose.confirmation,
                subscriber.status,
                suppressed.reason if suppressed else None,
                by_operator=bool(suppressed and suppressed.by_operator),
            ):
                raise TokenError("used", "This address cannot be subscribed.")
            subscriber.status = SubscriberStatus.active
            subscriber.confirmed_at = now
            subscriber.updated_at = now
            subscriber.confirm_nonce = None
            if suppressed is not None:  # they unsubscribed once and asked to come back
                storage.lift_suppression(session, subscriber.email)
            session.commit()
            return self._preferences(session, subscriber)

    def check_confirmation(self, token: str, now: datetime | None = None) -> None:
        """TokenError unless `token` is a confirmation link that still works."""
        claims = tokens.verify(self.settings.secret, token, "confirm", now or utcnow())
        with Session(self.engine) as session:
            subscriber = storage.subscriber_by_id(session, claims.subject)
            if subscriber is None:
                raise TokenError("tampered", "This link is not valid any more.")
            if subscriber.confirm_nonce != claims.nonce:
                raise TokenError("used", "This confirmation link was already used.")

    @retry_on_busy()
    def unsubscribe(self, token: str, now: datetime | None = None) -> str:
        """Unsubscribe at once (idempotent); returns the address."""
        now = now or utcnow()
        subscriber = self._by_link(token, "unsubscribe", now)
        self.mark(subscriber.email, SubscriberStatus.unsubscribed, "unsubscribe link", now)
        return subscriber.email

    def preferences(self, token: str, now: datetime | None = None) -> Preferences:
        subscriber = self._by_link(token, "preferences", now or utcnow())
        with Session(self.engine) as session:
            fresh = storage.subscriber_by_id(session, subscriber.id or 0)
            assert fresh is not None
            return self._preferences(session, fresh)

    @retry_on_busy()
    def save_preferences(
        self, token: str, digests: list[str], tags: list[str], now: datetime | None = None
    ) -> Preferences:
        """Replace the subscriber's digests and tags. No digest at all means unsubscribing."""
        now = now or utcnow()
        subscriber = self._by_link(token, "preferences", now)
        if not digests:
            self.mark(subscriber.email, SubscriberStatus.unsubscribed, "no digest chosen", now)
            return self.preferences(token, now)
        with Session(self.engine) as session:
            wanted = self._choices(session, digests, tags)
            fresh = storage.subscriber_by_id(session, subscriber.id or 0)
            assert fresh is not None and fresh.id is not None
            storage.set_subscriptions(session, fresh.id, wanted)
            fresh.updated_at = now
            session.commit()
            return self._preferences(session, fresh)

    def check_link(self, token: str, purpose: str) -> None:
        """TokenError unless `token` is a live link for `purpose`."""
        self._by_link(token, purpose, utcnow())

    def offer_digests(self) -> list[tuple[str, str]]:
        """(slug, name) of the digests on offer."""
        with Session(self.engine) as session:
            return [(d.slug, d.name) for d in self.digests(session)]

    def offer(self, now: datetime) -> dict[str, object]:
        """What the sign-up form offers: the digests and the tags with their post counts."""
        return {
            "digests": self.offer_digests(),
            "tags": articles.tags_with_counts(self.engine, now),
        }

    def _by_link(self, token: str, purpose: str, now: datetime) -> Subscriber:
        claims = tokens.verify(self.settings.secret, token, purpose, now)
        with Session(self.engine) as session:
            subscriber = storage.subscriber_by_id(session, claims.subject)
            if subscriber is None or subscriber.link_key != claims.nonce:
                raise TokenError("tampered", "This link is not valid any more.")
            session.expunge(subscriber)
            return subscriber

    def _preferences(self, session: Session, subscriber: Subscriber) -> Preferences:
        assert subscriber.id is not None
        mine = storage.subscriptions_of(session, subscriber.id)
        chosen_tags = {slug for tags in mine.values() for slug in tags}
        return Preferences(
            email=subscriber.email,
            name=subscriber.name,
            status=subscriber.status,
            digests=[Choice(d.slug, d.name, d.id in mine) for d in self.digests(session)],
            tags=[Choice(t.slug, t.name, t.slug in chosen_tags) for t in storage.all_tags(session)],
            token=self.preferences_token(subscriber),
        )

    def mark(self, email: str, status: SubscriberStatus, detail: str, now: datetime) -> None:
        """Set a suppressing status on the address (stored even if nobody has it yet)."""
        mark(self.engine, email, status, detail, now)


def add(
    engine: sa.Engine,
    email: str,
    zone: tzinfo,
    name: str = "",
    digests: Iterable[str] = (),
    tags: Iterable[str] = (),
    now: datetime | None = None,
) -> Subscriber:
    """Add an active subscriber on the operator's word (no confirmation email). Refuses a
    suppressed address; an existing subscriber gets the new name and choices."""
    now = now or utcnow()
    address = normalize_email(email)
    record: dict[str, str | None] = {
        "email": address,
        "name": name,
        "digests": ";".join(digests),
        "tags": ";".join(tags),
    }
    report = bulk.import_rows(engine, [record], now, zone)
    if report.errors:
        error = report.errors[0]
        raise InvalidInputError(error.field, error.reason)
    if report.suppressed:
        with Session(engine) as session:
            reason = storage.suppressions_for(session, [address])[address].reason
        raise InvalidInputError("email", f"{address} is suppressed ({reason}); not added")
    return get_subscriber(engine, address)


def remove(engine: sa.Engine, email: str) -> None:
    """Forget a subscriber and their choices. A suppression of the address stays."""
    with Session(engine) as session:
        subscriber = storage.subscriber_by_email(session, normalize_email(email))
        if subscriber is None:
            raise NotFoundError("subscriber", email)
        storage.delete_subscriber(session, subscriber)
        session.commit()


def get_subscriber(engine: sa.Engine, email: str) -> Subscriber:
    with Session(engine) as session:
        subscriber = storage.subscriber_by_email(session, normalize_email(email))
        if subscriber is None:
            raise NotFoundError("subscriber", email)
        session.expunge(subscriber)
        return subscriber


# ---------------------------------------------------------------------- editors' views

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
    return base64.urlsafe_b64encode(f"after:{after}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The id a cursor continues after; InvalidInputError("cursor") for anything this
    list did not hand out."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, number = text.partition(":")
        if prefix != "after" or not number.isdigit() or len(number) > 18:
            raise ValueError(text)
        return int(number)
    except (ValueError, UnicodeError):
        raise InvalidInputError("cursor", "not a cursor this list handed out", cursor) from None


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


def _must_be_new(engine: sa.Engine, address: str) -> None:
    with Session(engine) as session:
        if storage.subscriber_by_email(session, address) is not None:
            raise DuplicateError("subscriber", address)
        held = storage.suppressions_for(session, [address]).get(address)
        if held is not None:
            raise InvalidInputError("email", f"{address} is suppressed ({held.reason})", address)


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
