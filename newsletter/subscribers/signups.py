"""Sign-ups and their confirmation emails, through queues.

A sign-up is stored as a request and answered at once: every address costs the same work
and gets the same answer, whether it is new, pending, subscribed or suppressed, and whether
the mail server is up. A worker (in the web process and in the scheduler) turns requests
into subscribers and queues a confirmation when one is due; confirmations leave through
the same claim, lease and SMTP-answer policy as digests, so a mail outage delays them and
loses none. Only confirmations actually sent count against `confirmations_per_hour`, and
one client may use at most all but one of them, so a stranger cannot use them all up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta

import sqlalchemy as sa
from jinja2 import Environment
from sqlmodel import Session

from newsletter import storage, tokens
from newsletter.config import Settings
from newsletter.errors import DeliveryError, DuplicateError, InvalidInputError, NewsletterError
from newsletter.mail import Composer, Letter, Mailer, render_bodies
from newsletter.mail.policy import decide
from newsletter.models import (
    DEFAULT_DIGEST,
    DeliveryStatus,
    Outbound,
    SignupRequest,
    Subscriber,
    SubscriberStatus,
)
from newsletter.storage import Choices
from newsletter.storage.retry import retry_on_busy
from newsletter.subscribers import links
from newsletter.subscribers.eligibility import Purpose, may_mail
from newsletter.subscribers.suppressions import mark

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]
BATCH = 50
LEASE = timedelta(minutes=2)
HOUR = timedelta(hours=1)


def resolve_choices(session: Session, digests: list[str], tags: list[str]) -> Choices:
    """digest id -> tag slugs for what a reader picked; InvalidInputError names an unknown
    digest or tag. Without a choice, the default digest."""
    known = {d.slug: d for d in storage.all_digests(session)}
    default = DEFAULT_DIGEST if DEFAULT_DIGEST in known else next(iter(known), None)
    picked = digests or ([default] if default else [])
    if not picked:
        raise InvalidInputError("digests", "no digest is on offer")
    unknown = [d for d in picked if d not in known]
    if unknown:
        raise InvalidInputError(
            "digests", f"no digest {unknown[0]!r:.80}; choose from " + ", ".join(known), unknown[0]
        )
    tag_slugs = {t.slug for t in storage.all_tags(session)}
    bad = [t for t in tags if t not in tag_slugs]
    if bad:
        raise InvalidInputError("tags", f"no tag {bad[0]!r:.80}", bad[0])
    return {known[d].id or 0: frozenset(tags) for d in picked}


class Signups:
    def __init__(
        self,
        engine: sa.Engine,
        settings: Settings,
        mailer: Mailer,
        templates: Environment,
        clock: Clock,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.mailer = mailer
        self.templates = templates
        self.clock = clock
        self.composer = Composer(settings)
        self.worker = f"s-{secrets.token_hex(6)}"
        self._wake = asyncio.Event()
        self._busy: asyncio.Lock | None = None  # made in the event loop that drains

    # ------------------------------------------------------------------ accepting

    @retry_on_busy()
    def accept(
        self, email: str, name: str, digests: list[str], tags: list[str], client: str
    ) -> None:
        """Check the choices (InvalidInputError) and store the request: the same work for
        every address."""
        now = self.clock()
        with Session(self.engine) as session:
            resolve_choices(session, digests, tags)
            request = SignupRequest(
                email=email,
                name=name,
                digests=" ".join(digests),
                tags=" ".join(sorted(set(tags))),
                client=client[:64],
                created_at=now,
            )
            storage.add_signup_request(session, request)
            session.commit()

    def nudge(self) -> None:
        """Wake the worker: a request or a message waits."""
        self._wake.set()

    # ------------------------------------------------------------------ the worker

    async def run(self, idle_seconds: float = 1.0) -> None:
        """Work the queues until cancelled: at once when nudged, else every `idle_seconds`."""
        while True:
            try:
                await self.drain()
            except Exception:  # keep working: a database or mail hiccup must not stop it
                log.exception("sign-up queue failed; trying again")
            self._wake.clear()
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
            # cancellation that comes as the wait ends, and the worker would never stop
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(idle_seconds):
                    await self._wake.wait()

    async def drain(self) -> int:
        """Process every waiting sign-up and send every due confirmation; returns how many
        things were done. Drains in one process take turns, so a drain that returns has
        seen everything queued before it was called."""
        if self._busy is None:
            self._busy = asyncio.Lock()
        async with self._busy:
            return await self._drain()

    async def _drain(self) -> int:
        done = 0
        while True:
            handled = await asyncio.to_thread(self.process)
            sent = await self.send_due()
            done += handled + sent
            if not handled and not sent:
                return done

    def process(self) -> int:
        """Turn waiting sign-up requests into subscribers and queued confirmations."""
        now = self.clock()
        requests = self._claim_requests(now)
        for request in requests:
            try:
                self._register_retrying(request, now)
            except InvalidInputError as exc:  # a digest or tag deleted since it arrived
                log.warning("sign-up %s dropped: %s", request.id, exc)
            except Exception:  # the database stayed busy: give it back for the next round
                log.exception("sign-up %s not processed yet; it is tried again", request.id)
                self._release(request)
                continue
            self._processed(request, now)
        return len(requests)

    @retry_on_busy()
    def _claim_requests(self, now: datetime) -> list[SignupRequest]:
        with Session(self.engine, expire_on_commit=False) as session:
            requests = storage.claim_signup_requests(session, now, now + LEASE, BATCH)
            session.commit()
            return requests

    @retry_on_busy()
    def _processed(self, request: SignupRequest, now: datetime) -> None:
        with Session(self.engine) as session:
            storage.signup_processed(session, request.id or 0, now)
            session.commit()

    @retry_on_busy()
    def _release(self, request: SignupRequest) -> None:
        with Session(self.engine) as session:
            storage.release_signup_request(session, request.id or 0)
            session.commit()

    def _register_retrying(self, request: SignupRequest, now: datetime) -> None:
        """_register, once more if a simultaneous sign-up of the same address inserted the
        subscriber first."""
        try:
            self._register(request, now)
        except DuplicateError:
            self._register(request, now)

    @retry_on_busy()
    def _register(self, request: SignupRequest, now: datetime) -> None:
        with Session(self.engine) as session:
            wanted = resolve_choices(session, request.digests.split(), request.tags.split())
            email = request.email
            subscriber = storage.subscriber_by_email(session, email)
            suppressed = storage.suppressions_for(session, [email]).get(email)
            if not may_mail(
                Purpose.confirmation,
                subscriber.status if subscriber else None,
                suppressed.reason if suppressed else None,
                by_operator=bool(suppressed and suppressed.by_operator),
            ):
                return  # never mail it; the answer was the same anyway
            if subscriber is not None and subscriber.status == SubscriberStatus.active:
                return  # already subscribed: nothing changes
            if subscriber is None:
                subscriber = Subscriber(
                    email=email, name=request.name, created_at=now, updated_at=now
                )
                storage.add_subscriber(session, subscriber)
            subscriber.status = SubscriberStatus.pending
            subscriber.name = request.name or subscriber.name
            subscriber.updated_at = now
            # While pending, every confirmation carries the same link: whichever the
            # reader opens works (once).
            subscriber.confirm_nonce = subscriber.confirm_nonce or secrets.token_urlsafe(12)
            subscriber.link_key = subscriber.link_key or secrets.token_urlsafe(12)
            session.flush()
            assert subscriber.id is not None
            storage.set_subscriptions(session, subscriber.id, wanted)
            if self._confirmation_due(session, subscriber.id, email, request.client, now):
                storage.add_outbound(
                    session,
                    Outbound(
                        subscriber_id=subscriber.id,
                        email=email,
                        client=request.client,
                        created_at=now,
                    ),
                )
            session.commit()

    def _confirmation_due(
        self, session: Session, subscriber_id: int, email: str, client: str, now: datetime
    ) -> bool:
        limit = self.settings.subscribers.confirmations_per_hour
        if storage.confirmation_pending(session, subscriber_id):
            return False  # one is on its way already
        if storage.confirmations_since(session, email, now - HOUR) >= limit:
            return False
        # one client may ask for all but one of the hour's confirmations to an address
        per_client = max(1, limit - 1)
        return not (
            client and storage.confirmations_since(session, email, now - HOUR, client) >= per_client
        )

    # ------------------------------------------------------------------ sending

    async def send_due(self) -> int:
        """Send the confirmations that are due; returns how many were tried."""
        now = self.clock()
        claimed = await asyncio.to_thread(self._claim, now)
        for message in claimed:
            try:
                await self._send(message)
            except Exception:  # the lease returns it to the queue; the others go on
                log.exception("confirmation %s not sent; it is tried again", message.id)
        return len(claimed)

    @retry_on_busy()
    def _claim(self, now: datetime) -> list[Outbound]:
        with Session(self.engine) as session:
            found = storage.claim_outbound(session, self.worker, now, now + LEASE, BATCH)
            session.commit()
            return found

    async def _send(self, message: Outbound) -> None:
        now = self.clock()
        letter = await asyncio.to_thread(self.confirmation_letter, message.subscriber_id, now)
        if letter is None:  # confirmed, suppressed or removed since: nothing to send
            await asyncio.to_thread(
                self._record, message, DeliveryStatus.skipped, message.attempts, None, "not due"
            )
            return
        outcome: DeliveryError | None = None
        try:
            envelope = self.composer.compose(letter, now)
            await self.mailer.send(envelope)
        except DeliveryError as exc:
            outcome = exc
        except (NewsletterError, ValueError, UnicodeError) as exc:  # cannot be composed
            log.error("confirmation %s cannot be composed: %s", message.id, exc)
            await asyncio.to_thread(
                self._record, message, DeliveryStatus.failed, message.attempts + 1, None, str(exc)
            )
            return
        delivery = self.settings.delivery
        decision = decide(
            outcome,
            message.attempts,
            self.clock(),
            delivery.retry_base_seconds,
            delivery.max_attempts,
        )
        status, next_at = decision.status, decision.next_attempt_at
        if decision.pause_reason:  # our server is refused: wait and retry, suppress nobody
            status = DeliveryStatus.deferred
            next_at = self.clock() + timedelta(seconds=delivery.retry_base_seconds)
        sent_id = letter.message_id if status == DeliveryStatus.sent else None
        await asyncio.to_thread(
            self._record, message, status, decision.attempts, next_at, decision.error, sent_id
        )
        if decision.suppress:
            await asyncio.to_thread(
                mark, self.engine, message.email, SubscriberStatus.bounced, decision.error, now
            )

    @retry_on_busy()
    def _record(
        self,
        message: Outbound,
        status: DeliveryStatus,
        attempts: int,
        next_at: datetime | None,
        error: str,
        sent_id: str | None = None,
    ) -> None:
        with Session(self.engine) as session:
            storage.record_outbound(
                session,
                message.id or 0,
                self.worker,
                status,
                attempts=attempts,
                next_attempt_at=next_at,
                last_error=error,
                sent_id=sent_id,
                sent_at=self.clock() if status == DeliveryStatus.sent else None,
            )
            session.commit()

    @retry_on_busy()
    def confirmation_letter(self, subscriber_id: int, now: datetime) -> Letter | None:
        """The confirmation email for a pending subscriber, or None when none is due. A
        stranger may have typed the address: the email greets nobody by name and echoes
        nothing they wrote."""
        with Session(self.engine) as session:
            subscriber = storage.subscriber_by_id(session, subscriber_id)
            if (
                subscriber is None
                or subscriber.id is None
                or subscriber.confirm_nonce is None
                or subscriber.status != SubscriberStatus.pending
            ):
                return None
            hours = self.settings.subscribers.confirm_hours
            token = tokens.sign(
                self.settings.secret,
                "confirm",
                subscriber.id,
                subscriber.confirm_nonce,
                now + timedelta(hours=hours),
            )
            subscriber.confirm_sent_at = now
            session.commit()
            unsubscribe = links.unsubscribe_url(self.settings, subscriber.id, subscriber.link_key)
            context = {
                "confirm_url": links.page(self.settings, "confirm", token),
                "hours": hours,
                "email": subscriber.email,
                "unsubscribe_url": unsubscribe,
                "preferences_url": links.preferences_url(
                    self.settings, subscriber.id, subscriber.link_key
                ),
                "site": self.settings.site,
                "base_url": self.settings.base_url,
                "postal_address": self.settings.mail.postal_address,
            }
            text, html = render_bodies(self.templates, "confirm", context)
            domain = self.settings.mail.from_address.rpartition("@")[2] or "localhost"
            return Letter(
                to=subscriber.email,
                to_name="",
                subject=f"Confirm your subscription to {self.settings.site.title}",
                text=text,
                html=html,
                headers=links.unsubscribe_headers(self.settings, subscriber.email, unsubscribe),
                message_id=f"<confirm.{subscriber.id}.{secrets.token_hex(8)}@{domain}>",
            )
