"""The bounce use cases: record reports (from the bounce mailbox or a provider's webhook)
once each, and suppress the addresses they condemn.

Who a report is about, most trustworthy first: the delivery its VERP address names (the
mac proves we wrote it); the delivery whose Message-ID it quotes (a digest's Message-ID
carries a mac too, and must equal what the ledger holds); else the address in the report,
when a subscriber has it. A report about nobody we know is counted and dropped (no
stranger's address is stored); one with a VERP address that does not verify is a forgery
and is dropped too.

What it does to the address:
- a hard bounce suppresses it as bounced, a complaint as complained, at once;
- a soft bounce suppresses it as bounced only when the subscriber's last `[bounces]
  soft_limit` sent deliveries all have a soft bounce recorded: a delivery in between that
  did not bounce (or whose bounce has not come yet) breaks the run. A soft bounce that
  matches no delivery is recorded and never counts.

The address is suppressed before the report is stored, so a crash in between leaves the
report unrecorded, and reading it again (the mailbox keeps it; a provider retries) does the
same thing again, which changes nothing the second time.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session

from newsletter import storage
from newsletter.bounces import mailbox
from newsletter.bounces.reports import Report, digest_message, parse
from newsletter.bounces.webhooks import Fetch, Webhooks, fetch_https
from newsletter.config import Settings
from newsletter.errors import ConfigError, DuplicateError, InvalidInputError, NewsletterError
from newsletter.models import Bounce, BounceKind, SubscriberStatus, utcnow
from newsletter.storage.retry import retry_on_busy
from newsletter.subscribers import mark, normalize_email

log = logging.getLogger(__name__)
POLL_LIMIT = 500  # messages read in one poll; the rest wait for the next
OpenMailbox = Callable[[str], contextlib.AbstractContextManager[mailbox.Mailbox]]


# Reports that come authenticated by the provider (a signature or credentials)
SIGNED_SOURCES = frozenset({"ses", "mailgun", "postmark", "sendgrid"})


@dataclass
class Outcome:
    """What recording some reports did."""

    recorded: int = 0
    duplicates: int = 0  # recorded before: nothing done again
    unmatched: int = 0  # about no delivery and no subscriber: dropped
    forged: int = 0  # a VERP address that did not verify: dropped
    suppressed: list[tuple[str, str]] = field(default_factory=list)  # (address, reason)

    def add(self, other: Outcome) -> None:
        self.recorded += other.recorded
        self.duplicates += other.duplicates
        self.unmatched += other.unmatched
        self.forged += other.forged
        self.suppressed += other.suppressed


@dataclass
class Polled(Outcome):
    """What a poll of the bounce mailbox did."""

    source: str = ""
    messages: int = 0  # read, and deleted once recorded
    not_reports: int = 0  # no DSN or complaint in them (auto-replies, spam): deleted too


@dataclass(frozen=True)
class _Target:
    delivery_id: int | None
    email: str
    suppress: SubscriberStatus | None
    detail: str


class Bounces:
    """Bounce handling for one process. `open_mailbox` and `fetch` are the network edges
    (tests pass their own)."""

    def __init__(
        self,
        engine: sa.Engine,
        settings: Settings,
        clock: Callable[[], datetime] = utcnow,
        fetch: Fetch = fetch_https,
        open_mailbox: OpenMailbox = mailbox.open_mailbox,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.clock = clock
        self.open_mailbox = open_mailbox
        self.webhooks = Webhooks(settings, fetch)

    # ------------------------------------------------------------------ recording

    def record(
        self, reports: Iterable[Report], source: str, now: datetime | None = None
    ) -> Outcome:
        """Store each report once (by its external_id) and apply it (see the module)."""
        now = now or self.clock()
        outcome = Outcome()
        for report in reports:
            if report.tampered:
                outcome.forged += 1
                log.warning("%s: a report with a forged VERP address was ignored", source)
                continue
            target = self._target(report, source)
            if isinstance(target, str):  # "duplicate"
                outcome.duplicates += 1
                continue
            if target is None:
                outcome.unmatched += 1
                continue
            if target.suppress is not None:
                mark(self.engine, target.email, target.suppress, target.detail, now)
                outcome.suppressed.append((target.email, target.suppress.value))
            stored = self._store(
                Bounce(
                    external_id=report.external_id,
                    delivery_id=target.delivery_id,
                    email=target.email,
                    kind=report.kind.value,
                    status=report.status,
                    diagnostic=report.diagnostic,
                    source=source,
                    received_at=now,
                )
            )
            if stored:
                outcome.recorded += 1
            else:
                outcome.duplicates += 1  # another process recorded it a moment ago
        return outcome

    @retry_on_busy()
    def _target(self, report: Report, source: str) -> _Target | str | None:
        """Whom the report is about and what to do: "duplicate" when it is recorded
        already, None when it is about nobody we know."""
        with Session(self.engine) as session:
            if storage.bounce_recorded(session, report.external_id):
                return "duplicate"
            delivery_id = report.delivery_id
            found = None
            if delivery_id is not None:
                found = storage.delivery_subscriber(session, delivery_id)
            pair = digest_message(report.message_id)
            if found is None and pair is not None and report.message_id is not None:
                delivery_id = storage.delivery_by_message(session, *pair, report.message_id)
                if delivery_id is not None:
                    found = storage.delivery_subscriber(session, delivery_id)
            if found is None and source not in SIGNED_SOURCES and self.settings.bounces.verp:
                # anyone can mail the bounce address a report naming any subscriber; with
                # VERP on, a real bounce of ours names its delivery, so a report that
                # names none is not trusted to suppress anyone (signed webhooks are)
                return None
            if found is None:
                delivery_id = None  # named a row deleted since, or none: go by the address
                try:
                    email = normalize_email(report.email)
                except InvalidInputError:
                    return None
                subscriber = storage.subscriber_by_email(session, email)
                if subscriber is None or subscriber.id is None:
                    return None
                found = (subscriber.id, subscriber.email)
            subscriber_id, email = found
            status = f" {report.status}" if report.status else ""
            if report.kind == BounceKind.hard:
                return _Target(
                    delivery_id,
                    email,
                    SubscriberStatus.bounced,
                    f"hard bounce{status} ({source})",
                )
            if report.kind == BounceKind.complaint:
                return _Target(
                    delivery_id, email, SubscriberStatus.complained, f"complaint ({source})"
                )
            limit = self.settings.bounces.soft_limit
            if delivery_id is not None and self._soft_run(
                session, subscriber_id, delivery_id, limit
            ):
                return _Target(
                    delivery_id,
                    email,
                    SubscriberStatus.bounced,
                    f"{limit} soft bounces in a row, the last{status} ({source})",
                )
            return _Target(delivery_id, email, None, "")

    @staticmethod
    def _soft_run(session: Session, subscriber_id: int, delivery_id: int, limit: int) -> bool:
        """Whether the subscriber's `limit` newest sent deliveries have all soft-bounced,
        counting `delivery_id` (whose report is not stored yet) as one that has."""
        latest = storage.latest_sent(session, subscriber_id, limit)
        if len(latest) < limit:
            return False
        bounced = storage.soft_bounced(session, latest) | {delivery_id}
        return set(latest) <= bounced

    @retry_on_busy()
    def _store(self, bounce: Bounce) -> bool:
        with Session(self.engine) as session:
            try:
                storage.add_bounce(session, bounce)
            except DuplicateError:
                return False
            session.commit()
            return True

    # ------------------------------------------------------------------ entry points

    def webhook(
        self,
        provider: str,
        body: bytes,
        headers: Mapping[str, str],
        now: datetime | None = None,
    ) -> Outcome:
        """Check a provider's request and record its reports. WebhookRefused when the
        provider is off or the request is not proven to come from it; InvalidInputError
        when the body cannot be read (nothing is recorded then)."""
        now = now or self.clock()
        reports = self.webhooks.reports(provider, body, headers, now)
        return self.record(reports, provider, now)

    def poll(self, now: datetime | None = None, limit: int = POLL_LIMIT) -> Polled:
        """Read up to `limit` messages of the bounce mailbox, record their reports and
        delete every message read (those without a report too: the mailbox exists for
        bounces, and whatever else lands there would be read again at every poll).
        ConfigError when [bounces] mailbox is empty or refuses the login, MailboxError
        when it cannot be reached; messages recorded before a failure are deleted."""
        url = self.settings.bounces.mailbox
        if not url:
            raise ConfigError("[bounces] mailbox is empty: there is no bounce mailbox to read")
        now = now or self.clock()
        polled = Polled()
        with self.open_mailbox(url) as box:
            polled.source = box.source
            done: list[str] = []
            try:
                for key, raw in box.messages(limit):
                    reports = parse(raw, self.settings.secret)
                    polled.messages += 1
                    polled.not_reports += not reports
                    polled.add(self.record(reports, box.source, now))
                    done.append(key)
            except BaseException:
                with contextlib.suppress(NewsletterError):
                    box.delete(done)
                raise
            box.delete(done)
        if polled.messages:
            log.info(
                "bounce mailbox: %d messages, %d reports recorded, %d addresses suppressed",
                polled.messages,
                polled.recorded,
                len(polled.suppressed),
            )
        return polled

    def recent(self, limit: int = 50, email: str | None = None) -> list[Bounce]:
        """The newest reports first (of one address when `email` is given)."""
        address = normalize_email(email) if email is not None else None
        with Session(self.engine) as session:
            return storage.recent_bounces(session, limit, address)
