"""Use cases on subscribers: sign-up with double opt-in, confirmation, preferences,
unsubscribe, suppression, and what editors do to one address (add, remove). Web and CLI
both go through `Subscribers` and the functions below; the editors' directory (lists,
search, counts, adding a new address, suppressing) is in directory.py.

Database work is synchronous (run it in a thread from async code); sending is async.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any, NamedTuple

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
from newsletter.subscribers.addresses import AddressError, clean_name, normalize_email
from newsletter.subscribers.eligibility import Purpose, may_mail
from newsletter.subscribers.ratelimit import RateLimiter
from newsletter.subscribers.signups import Signups, resolve_choices
from newsletter.subscribers.suppressions import mark
from newsletter.subscribers.wording import (
    NAME_MOST,
    NAME_TOO_LONG,
    TOO_MANY_FOR_ADDRESS,
    TOO_MANY_FROM_NETWORK,
    status_words,
)

log = logging.getLogger(__name__)
# How long the "undo" button shown right after unsubscribing keeps working.
UNDO_WINDOW = timedelta(hours=1)
UNDO = "resubscribe"  # the purpose of undo tokens
# who may ask from their preferences page for a (new) confirmation email
COMING_BACK = frozenset({SubscriberStatus.pending, SubscriberStatus.unsubscribed})


class Offered(NamedTuple):
    """A digest as the sign-up form offers it. A tuple that starts (slug, name), as the
    form's offer always did; `frequency` is filled in by whoever words schedules."""

    slug: str
    name: str
    description: str = ""
    topics: tuple[str, ...] = ()  # tag names it draws from; none: every topic
    cron: str = ""
    timezone: str = "UTC"
    paused: bool = False
    frequency: str = ""


@dataclass(frozen=True)
class Choice:
    slug: str
    name: str
    chosen: bool
    description: str = ""


@dataclass(frozen=True)
class Preferences:
    email: str
    name: str
    status: str
    digests: list[Choice]
    tags: list[Choice]
    token: str
    status_text: str = ""  # where the subscription stands, in the reader's words
    suppression: str | None = None  # why the address is suppressed (None: it is not)
    may_return: bool = False  # not subscribed, and may ask for a confirmation email
    undo: str | None = None  # a token that undoes the unsubscribe just made, for a while


@dataclass(frozen=True)
class Unsubscribed:
    email: str
    # set when this request ended an active subscription: the token of its undo button
    undo: str | None


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
        try:
            address = normalize_email(email)
        except AddressError as exc:  # the reader typed it: tell them in their words
            raise InvalidInputError("email", exc.hint) from None
        cleaned = reader_name(name)
        if client is not None and not self.by_ip.allow(client):
            raise RateLimited(TOO_MANY_FROM_NETWORK)
        if not self.by_address.allow(address):
            raise RateLimited(TOO_MANY_FOR_ADDRESS)
        await asyncio.to_thread(
            self.signups.accept, address, cleaned, list(digests), list(tags), client or ""
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
            _activate(session, subscriber, now, "This address cannot be subscribed.")
            subscriber.confirmed_at = now
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

    def unsubscribe(self, token: str, now: datetime | None = None) -> Unsubscribed:
        """Unsubscribe at once (idempotent). When this ended an active subscription, the
        answer carries an undo token (see `undo`)."""
        now = now or utcnow()
        subscriber = self._by_link(token, "unsubscribe", now)
        undo = self._leave(subscriber, "unsubscribe link", now)
        return Unsubscribed(subscriber.email, undo)

    @retry_on_busy()
    def _leave(self, subscriber: Subscriber, detail: str, now: datetime) -> str | None:
        """Mark the subscriber unsubscribed; if they were active until now, a fresh nonce
        goes on their row (where confirmation nonces go: single use, cleared by any later
        suppression or confirmation) and is signed into a short-lived undo token."""
        was_active = subscriber.status == SubscriberStatus.active
        self.mark(subscriber.email, SubscriberStatus.unsubscribed, detail, now)
        if not was_active or subscriber.id is None:
            return None
        nonce = secrets.token_urlsafe(12)
        with Session(self.engine) as session:
            fresh = storage.subscriber_by_id(session, subscriber.id)
            if fresh is None or fresh.status != SubscriberStatus.unsubscribed:
                return None
            fresh.confirm_nonce = nonce
            session.commit()
        return tokens.sign(self.settings.secret, UNDO, subscriber.id, nonce, now + UNDO_WINDOW)

    @retry_on_busy()
    def undo(self, token: str, now: datetime | None = None) -> Preferences:
        """Undo an unsubscribe moments after it was made, with the token its page carried.

        The token reached only the browser that pressed "Unsubscribe" on a link mailed to
        the address, so pressing "Undo" is the reader confirming again, as a confirmation
        link would: it works once, within UNDO_WINDOW, only while the address is still
        unsubscribed by that unsubscribe, and never past a bounce, a complaint or an
        operator's word (the same `may_mail` rule as confirmations). TokenError otherwise."""
        now = now or utcnow()
        claims = tokens.verify(self.settings.secret, token, UNDO, now)
        with Session(self.engine) as session:
            subscriber = storage.subscriber_by_id(session, claims.subject)
            if subscriber is None:
                raise TokenError("tampered", "This link is not valid any more.")
            if (
                subscriber.confirm_nonce != claims.nonce
                or subscriber.status != SubscriberStatus.unsubscribed
            ):
                raise TokenError("used", "This undo button was already used or replaced.")
            _activate(session, subscriber, now, "This address cannot be subscribed again.")
            session.commit()
            return self._preferences(session, subscriber)

    async def come_back(self, token: str, client: str | None = None) -> str:
        """A reader who is not subscribed (or has not confirmed) asks, from their
        preferences link, to be subscribed: a sign-up of their address with the choices
        they had, confirmed by email like any other (rate limits included). Returns the
        address."""
        prefs = await asyncio.to_thread(self.preferences, token)
        await self.subscribe(
            prefs.email,
            prefs.name,
            [d.slug for d in prefs.digests if d.chosen],
            [t.slug for t in prefs.tags if t.chosen],
            client,
        )
        return prefs.email

    def preferences(self, token: str, now: datetime | None = None) -> Preferences:
        subscriber = self._by_link(token, "preferences", now or utcnow())
        with Session(self.engine) as session:
            fresh = storage.subscriber_by_id(session, subscriber.id or 0)
            assert fresh is not None
            return self._preferences(session, fresh)

    @retry_on_busy()
    def save_preferences(
        self,
        token: str,
        digests: list[str],
        tags: list[str],
        now: datetime | None = None,
        name: str | None = None,
    ) -> Preferences:
        """Replace the subscriber's digests and tags, and their name unless `name` is None
        (greetings use it). No digest at all means unsubscribing, which an active
        subscriber may undo for a while (the answer's `undo`). InvalidInputError names
        "name" (too long), "digests" or "tags"; nothing is stored then."""
        now = now or utcnow()
        cleaned = None if name is None else reader_name(name)
        subscriber = self._by_link(token, "preferences", now)
        with Session(self.engine) as session:
            wanted = self._choices(session, digests, tags) if digests else None
            fresh = storage.subscriber_by_id(session, subscriber.id or 0)
            assert fresh is not None and fresh.id is not None
            if cleaned is not None:
                fresh.name = cleaned
            if wanted is not None:
                storage.set_subscriptions(session, fresh.id, wanted)
            fresh.updated_at = now
            session.commit()
            if wanted is not None:
                return self._preferences(session, fresh)
        undo = self._leave(subscriber, "no digest chosen", now)
        return dataclasses.replace(self.preferences(token, now), undo=undo)

    def check_link(self, token: str, purpose: str) -> None:
        """TokenError unless `token` is a live link for `purpose`."""
        self._by_link(token, purpose, utcnow())

    def offer_digests(self) -> list[Offered]:
        """The digests on offer: what each contains (description, topics) and its schedule."""
        with Session(self.engine) as session:
            found = self.digests(session)
            topics = storage.digest_tags(session, [d.id for d in found if d.id is not None])
            return [
                Offered(
                    d.slug,
                    d.name,
                    d.description,
                    tuple(t.name for t in topics.get(d.id or 0, [])),
                    d.cron,
                    d.timezone,
                    d.paused,
                )
                for d in found
            ]

    def offer(self, now: datetime) -> dict[str, Any]:
        """What the sign-up form offers: the digests (`Offered`) and the tags with their
        post counts."""
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
        digests = [
            Choice(d.slug, d.name, d.id in mine, d.description) for d in self.digests(session)
        ]
        held = storage.suppressions_for(session, [subscriber.email]).get(subscriber.email)
        reason = held.reason if held else None
        by_operator = bool(held and held.by_operator)
        receiving = [d.name for d in digests if d.chosen]
        return Preferences(
            email=subscriber.email,
            name=subscriber.name,
            status=subscriber.status,
            digests=digests,
            tags=[Choice(t.slug, t.name, t.slug in chosen_tags) for t in storage.all_tags(session)],
            token=self.preferences_token(subscriber),
            status_text=status_words(subscriber.status, reason, by_operator, receiving),
            suppression=reason,
            may_return=subscriber.status in COMING_BACK
            and may_mail(Purpose.confirmation, subscriber.status, reason, by_operator=by_operator),
        )

    def mark(self, email: str, status: SubscriberStatus, detail: str, now: datetime) -> None:
        """Set a suppressing status on the address (stored even if nobody has it yet)."""
        mark(self.engine, email, status, detail, now)


def reader_name(raw: str) -> str:
    """A name a reader typed, cleaned (`clean_name`); InvalidInputError naming "name" when
    it is longer than we keep, rather than cutting it short unasked."""
    cleaned = clean_name(raw, NAME_MOST + 1)
    if len(cleaned) > NAME_MOST:
        raise InvalidInputError("name", NAME_TOO_LONG)
    return cleaned


def _activate(session: Session, subscriber: Subscriber, now: datetime, refusal: str) -> None:
    """Make the subscriber active on the reader's own word (a confirmation, an undo), when
    a confirmation may be mailed to the address (`may_mail`): their own unsubscribe is
    lifted with it; a bounce, a complaint or an operator's suppression refuses with
    TokenError("used", refusal). The nonce of the link used is spent."""
    suppressed = storage.suppressions_for(session, [subscriber.email]).get(subscriber.email)
    if not may_mail(
        Purpose.confirmation,
        subscriber.status,
        suppressed.reason if suppressed else None,
        by_operator=bool(suppressed and suppressed.by_operator),
    ):
        raise TokenError("used", refusal)
    subscriber.status = SubscriberStatus.active
    subscriber.updated_at = now
    subscriber.confirm_nonce = None
    if suppressed is not None:  # they unsubscribed once and asked to come back
        storage.lift_suppression(session, subscriber.email)


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


def _must_be_new(engine: sa.Engine, address: str) -> None:
    """What stands in the way of an editor's new address (`invite`, directory.add_new)."""
    with Session(engine) as session:
        if storage.subscriber_by_email(session, address) is not None:
            raise DuplicateError("subscriber", address)
        held = storage.suppressions_for(session, [address]).get(address)
        if held is not None:
            raise InvalidInputError("email", f"{address} is suppressed ({held.reason})", address)
