"""Use cases on subscribers: sign-up with double opt-in, confirmation, preferences,
unsubscribe, suppression. Web and CLI both go through `Subscribers` and the functions below.

Database work is synchronous (run it in a thread from async code); sending is async.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

import sqlalchemy as sa
from jinja2 import Environment
from sqlmodel import Session

from newsletter import articles, storage, tokens
from newsletter.config import Settings
from newsletter.errors import (
    DuplicateError,
    InvalidInputError,
    NotFoundError,
    PermanentFailure,
    RateLimited,
    TokenError,
)
from newsletter.mail import Composer, Letter, Mailer, render_bodies
from newsletter.models import (
    DEFAULT_DIGEST,
    SUPPRESSING,
    Digest,
    Subscriber,
    SubscriberStatus,
    utcnow,
)
from newsletter.storage import Choices
from newsletter.subscribers import bulk, links
from newsletter.subscribers.addresses import normalize_email
from newsletter.subscribers.eligibility import Purpose, may_mail
from newsletter.subscribers.ratelimit import RateLimiter
from newsletter.text import plain_text

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
        self, engine: sa.Engine, settings: Settings, mailer: Mailer, templates: Environment
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.mailer = mailer
        self.templates = templates
        self.composer = Composer(settings)
        limits = settings.subscribers
        self.by_ip = RateLimiter(limits.signups_per_ip_per_hour, 3600)
        self.by_address = RateLimiter(limits.signups_per_address_per_hour, 3600)
        self.confirmations = RateLimiter(limits.confirmations_per_hour, 3600)

    # ------------------------------------------------------------------ sign-up

    async def subscribe(
        self,
        email: str,
        name: str = "",
        digests: Iterable[str] = (),
        tags: Iterable[str] = (),
        client: str | None = None,
        now: datetime | None = None,
    ) -> None:
        """Sign `email` up. Whether the address was new, pending or active, the caller sees
        the same outcome; a confirmation email goes out when one is due."""
        now = now or utcnow()
        address = normalize_email(email)
        if client is not None and not self.by_ip.allow(client):
            raise RateLimited("too many sign-ups from your network; try again in an hour")
        if not self.by_address.allow(address):
            raise RateLimited("too many sign-ups for this address; try again in an hour")
        subscriber_id = await asyncio.to_thread(
            self._register_retrying, address, plain_text(name)[:300], list(digests), list(tags), now
        )
        if subscriber_id is not None and self.confirmations.allow(address):
            await self.send_confirmation(subscriber_id, now)

    def _register_retrying(
        self, email: str, name: str, digests: list[str], tags: list[str], now: datetime
    ) -> int | None:
        """_register, once more if a simultaneous sign-up of the same address (a double
        click) inserted the row first."""
        try:
            return self._register(email, name, digests, tags, now)
        except DuplicateError:
            return self._register(email, name, digests, tags, now)

    def _register(
        self, email: str, name: str, digests: list[str], tags: list[str], now: datetime
    ) -> int | None:
        """Store the sign-up; returns the subscriber id when a confirmation should be sent."""
        with Session(self.engine) as session:
            wanted = self._choices(session, digests, tags)
            subscriber = storage.subscriber_by_email(session, email)
            suppressed = storage.suppressions_for(session, [email]).get(email)
            status = subscriber.status if subscriber else None
            if not may_mail(
                Purpose.confirmation, status, suppressed.reason if suppressed else None
            ):
                return None  # bounced or complained: never mail it, say nothing
            if subscriber is not None and subscriber.status == SubscriberStatus.active:
                return None  # already subscribed: nothing changes
            if subscriber is None:
                subscriber = Subscriber(email=email, name=name, created_at=now, updated_at=now)
                storage.add_subscriber(session, subscriber)
            subscriber.status = SubscriberStatus.pending
            subscriber.name = name or subscriber.name
            subscriber.updated_at = now
            # While pending, every confirmation email carries the same link: whichever the
            # reader opens works (once).
            subscriber.confirm_nonce = subscriber.confirm_nonce or secrets.token_urlsafe(12)
            subscriber.link_key = subscriber.link_key or secrets.token_urlsafe(12)
            session.flush()
            assert subscriber.id is not None
            storage.set_subscriptions(session, subscriber.id, wanted)
            session.commit()
            return subscriber.id

    def _choices(self, session: Session, digests: list[str], tags: list[str]) -> Choices:
        """digest id -> tag slugs for what the reader picked; InvalidInputError names an
        unknown digest or tag. Without a choice, the default digest."""
        known = {d.slug: d for d in self.digests(session)}
        default = DEFAULT_DIGEST if DEFAULT_DIGEST in known else next(iter(known), None)
        picked = digests or ([default] if default else [])
        if not picked:
            raise InvalidInputError("digests", "no digest is on offer")
        unknown = [d for d in picked if d not in known]
        if unknown:
            raise InvalidInputError(
                "digests", f"no digest {unknown[0]!r}; choose from " + ", ".join(known), unknown[0]
            )
        tag_slugs = {t.slug for t in storage.all_tags(session)}
        bad = [t for t in tags if t not in tag_slugs]
        if bad:
            raise InvalidInputError("tags", f"no tag {bad[0]!r}", bad[0])
        narrowing = frozenset(tags)
        return {known[d].id or 0: narrowing for d in picked}

    def digests(self, session: Session) -> list[Digest]:
        """The digests on offer (migration 0004 creates the first)."""
        return storage.all_digests(session)

    async def send_confirmation(self, subscriber_id: int, now: datetime) -> None:
        letter = await asyncio.to_thread(self._confirmation_letter, subscriber_id, now)
        if letter is not None:
            await self.deliver(letter, now)

    def _confirmation_letter(self, subscriber_id: int, now: datetime) -> Letter | None:
        with Session(self.engine) as session:
            subscriber = storage.subscriber_by_id(session, subscriber_id)
            if subscriber is None or subscriber.confirm_nonce is None:
                return None
            expires = now + timedelta(hours=self.settings.subscribers.confirm_hours)
            link = self.link(
                "confirm",
                tokens.sign(
                    self.settings.secret,
                    "confirm",
                    subscriber_id,
                    subscriber.confirm_nonce,
                    expires,
                ),
            )
            subscriber.confirm_sent_at = now
            session.commit()
            return self.letter(
                subscriber,
                "confirm",
                f"Confirm your subscription to {self.settings.site.title}",
                {"confirm_url": link, "hours": self.settings.subscribers.confirm_hours},
            )

    # ------------------------------------------------------------------ links and letters

    def link(self, page: str, token: str) -> str:
        return links.page(self.settings, page, token)

    def preferences_token(self, subscriber: Subscriber) -> str:
        assert subscriber.id is not None
        return links.preferences_token(self.settings, subscriber.id, subscriber.link_key)

    def letter(
        self, subscriber: Subscriber, template: str, subject: str, context: dict[str, object]
    ) -> Letter:
        """A letter to `subscriber` from templates/email/<template>.{txt,html}, with the
        unsubscribe and preferences links every message carries (RFC 8058 headers too)."""
        assert subscriber.id is not None
        unsubscribe_url = links.unsubscribe_url(self.settings, subscriber.id, subscriber.link_key)
        context = {
            **context,
            "subscriber": subscriber,
            "unsubscribe_url": unsubscribe_url,
            "preferences_url": links.preferences_url(
                self.settings, subscriber.id, subscriber.link_key
            ),
            "site": self.settings.site,
            "base_url": self.settings.base_url,
        }
        text, html = render_bodies(self.templates, template, context)
        return Letter(
            to=subscriber.email,
            to_name=subscriber.name,
            subject=subject,
            text=text,
            html=html,
            headers=links.unsubscribe_headers(self.settings, subscriber.email, unsubscribe_url),
        )

    async def deliver(self, letter: Letter, now: datetime) -> bool:
        """Send one letter now; a permanent refusal suppresses the address (bounced)."""
        envelope = self.composer.compose(letter, now)
        try:
            await self.mailer.send(envelope)
        except PermanentFailure as exc:
            await asyncio.to_thread(self.mark, letter.to, SubscriberStatus.bounced, str(exc), now)
            return False
        return True

    # ------------------------------------------------------------------ confirm, leave, choose

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
            reason = suppressed.reason if suppressed else None
            if not may_mail(Purpose.confirmation, subscriber.status, reason):
                raise TokenError("used", "This address cannot be subscribed.")
            subscriber.status = SubscriberStatus.active
            subscriber.confirmed_at = now
            subscriber.updated_at = now
            subscriber.confirm_nonce = None
            storage.lift_suppression(session, subscriber.email)  # they asked to come back
            session.commit()
            return self._preferences(session, subscriber)

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


def suppress(engine: sa.Engine, email: str, reason: str, now: datetime | None = None) -> None:
    """Never mail `email` again (reason: unsubscribed, bounced or complained)."""
    if reason not in SUPPRESSING:
        raise InvalidInputError("reason", f"{reason!r} is not unsubscribed, bounced or complained")
    mark(engine, normalize_email(email), SubscriberStatus(reason), "suppressed by an operator", now)


def mark(
    engine: sa.Engine, email: str, status: SubscriberStatus, detail: str, now: datetime | None
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
        storage.suppress(session, email, status, detail, now)
        session.commit()


def get_subscriber(engine: sa.Engine, email: str) -> Subscriber:
    with Session(engine) as session:
        subscriber = storage.subscriber_by_email(session, normalize_email(email))
        if subscriber is None:
            raise NotFoundError("subscriber", email)
        session.expunge(subscriber)
        return subscriber
