"""Sending a run through its ledger: claim rows with a lease, send each through the mail
transport, record each outcome right after its SMTP transaction.

A crash leaves at most the messages in flight (no more than the transport's pool) in
doubt; their rows return to the pool when the lease runs out, and a message sent again
carries the same Message-ID, derived from (run, subscriber).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session

from newsletter import storage
from newsletter.config import Settings
from newsletter.errors import DeliveryError
from newsletter.mail import Composer, Letter, Mailer
from newsletter.mail.policy import Decision, decide
from newsletter.models import DeliveryStatus, RunStatus, SubscriberStatus
from newsletter.storage import Recipient
from newsletter.storage.retry import retry_on_busy
from newsletter.subscribers import mark
from newsletter.subscribers.eligibility import Purpose, may_mail

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]
Build = Callable[[Recipient, str], Letter]  # (recipient, message id) -> letter


def message_id(settings: Settings, run_id: int, subscriber_id: int) -> str:
    """The Message-ID of a run's message to a subscriber: the same every time it is sent."""
    mac = hmac.new(settings.secret, f"{run_id}:{subscriber_id}".encode(), hashlib.sha256)
    domain = settings.mail.from_address.rpartition("@")[2] or "localhost"
    return f"<digest.{run_id}.{subscriber_id}.{mac.hexdigest()[:12]}@{domain}>"


@dataclass
class Progress:
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    skipped: int = 0
    suppressed: int = 0


class Sender:
    """One process's sender. Many may work on the same run: claims are disjoint."""

    def __init__(
        self,
        engine: sa.Engine,
        settings: Settings,
        mailer: Mailer,
        composer: Composer,
        clock: Clock,
        concurrency: int | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.mailer = mailer
        self.composer = composer
        self.clock = clock
        self.worker = f"w-{secrets.token_hex(6)}"
        self.concurrency = concurrency or settings.smtp.pool_size

    async def deliver(
        self, run_id: int, build: Build, on_progress: Callable[[Progress], None] | None = None
    ) -> Progress:
        """Send what is due of the run until nothing is left, the run stops being
        "sending" (paused, cancelled) or only deferred rows remain whose time has not
        come (then wait for them). Returns what this sender did.

        Stopped (SIGTERM, Ctrl-C: the task is cancelled), it gives its claimed rows back
        at once rather than when the lease runs out; a message cut short in its SMTP
        transaction may then go again, with the same Message-ID, as after a crash."""
        try:
            return await self._deliver(run_id, build, on_progress)
        except asyncio.CancelledError:
            try:
                await asyncio.to_thread(self._release, run_id)
            except Exception:  # the rows come back when their lease runs out
                log.exception("could not give back the rows of run %s", run_id)
            raise

    async def _deliver(
        self, run_id: int, build: Build, on_progress: Callable[[Progress], None] | None
    ) -> Progress:
        progress = Progress()
        settings = self.settings.delivery
        while True:
            now = self.clock()
            status, batch = await asyncio.to_thread(self._claim, run_id, now, settings.claim_batch)
            if status != RunStatus.sending:
                await asyncio.to_thread(self._release, run_id)
                return progress
            if not batch:
                pending, due = await asyncio.to_thread(self._pending, run_id)
                if pending == 0:
                    await asyncio.to_thread(self._finish, run_id)
                    return progress
                wait = 1.0 if due is None else (due - self.clock()).total_seconds()
                await asyncio.sleep(min(max(wait, 0.05), 1.0))
                continue
            for start in range(0, len(batch), self.concurrency):
                chunk = batch[start : start + self.concurrency]
                # The state of the chunk's subscribers and of the run, read right before
                # sending: an unsubscribe or a pause takes effect at once.
                status, fresh = await asyncio.to_thread(self._refresh, run_id, chunk)
                if status != RunStatus.sending:
                    await asyncio.to_thread(self._release, run_id)
                    return progress
                decisions = await asyncio.gather(*(self._one(run_id, r, build) for r in fresh))
                for decision in decisions:
                    self._count(progress, decision)
                if on_progress:
                    on_progress(progress)
                if any(d.pause_reason for d in decisions):
                    return progress
                if any(d.server_down for d in decisions):
                    # give back the rest of the batch too, or it would wait for the lease
                    await asyncio.to_thread(self._release, run_id)
                    await asyncio.sleep(min(settings.retry_base_seconds, 30))
                    break  # claim again: the rows given back wait until their time

    def _count(self, progress: Progress, decision: Decision) -> None:
        name = {
            DeliveryStatus.sent: "sent",
            DeliveryStatus.deferred: "deferred",
            DeliveryStatus.failed: "failed",
            DeliveryStatus.skipped: "skipped",
            DeliveryStatus.suppressed: "suppressed",
        }.get(decision.status)
        if name:
            setattr(progress, name, getattr(progress, name) + 1)

    async def _one(self, run_id: int, recipient: Recipient, build: Build) -> Decision:
        now = self.clock()
        if not may_mail(
            Purpose.digest, recipient.status, recipient.suppressed, recipient.subscribed
        ):
            suppressed = recipient.suppressed is not None or recipient.status in (
                SubscriberStatus.bounced,
                SubscriberStatus.complained,
            )
            status = DeliveryStatus.suppressed if suppressed else DeliveryStatus.skipped
            decision = Decision(
                status, recipient.attempts, error=f"not mailable: {recipient.status}"
            )
            await asyncio.to_thread(self._record, recipient, decision, None, now)
            return decision
        mid = message_id(self.settings, run_id, recipient.subscriber_id)
        outcome: DeliveryError | None = None
        try:
            envelope = self.composer.compose(build(recipient, mid), now)
            await self.mailer.send(envelope)
        except DeliveryError as exc:
            outcome = exc
        decision = decide(
            outcome,
            recipient.attempts,
            self.clock(),
            self.settings.delivery.retry_base_seconds,
            self.settings.delivery.max_attempts,
        )
        await asyncio.to_thread(self._record, recipient, decision, mid, self.clock())
        if decision.suppress:
            await asyncio.to_thread(
                mark, self.engine, recipient.email, SubscriberStatus.bounced, decision.error, now
            )
        if decision.pause_reason:
            log.error("run %s paused: %s", run_id, decision.pause_reason)
            await asyncio.to_thread(self._pause, run_id, decision.pause_reason)
        return decision

    # ------------------------------------------------------------------ database side

    @retry_on_busy()
    def _claim(self, run_id: int, now: datetime, limit: int) -> tuple[str, list[Recipient]]:
        lease = now + timedelta(seconds=self.settings.delivery.lease_seconds)
        with Session(self.engine) as session:
            run = storage.run_by_id(session, run_id)
            if run is None or run.status != RunStatus.sending:
                return (run.status if run else RunStatus.cancelled), []
            claimed = storage.claim(session, run_id, self.worker, now, lease, limit)
            session.commit()
            return run.status, claimed

    @retry_on_busy()
    def _refresh(self, run_id: int, chunk: list[Recipient]) -> tuple[str, list[Recipient]]:
        """The run's state, and the chunk's rows this sender still holds with their
        subscribers' state now. Holding a batch renews its lease: a slow server never lets
        another sender take rows this one is still working through."""
        lease = self.clock() + timedelta(seconds=self.settings.delivery.lease_seconds)
        with Session(self.engine) as session:
            run = storage.run_by_id(session, run_id)
            status = run.status if run else RunStatus.cancelled
            held = storage.renew(session, run_id, self.worker, lease)
            session.commit()
            claimed = [
                (r.delivery_id, r.subscriber_id, r.segment, r.attempts)
                for r in chunk
                if r.delivery_id in held
            ]
            return status, storage.recipients(session, run_id, claimed)

    @retry_on_busy()
    def _record(
        self, recipient: Recipient, decision: Decision, mid: str | None, now: datetime
    ) -> None:
        with Session(self.engine) as session:
            storage.record(
                session,
                recipient.delivery_id,
                self.worker,
                now,
                decision.status,
                attempts=decision.attempts,
                next_attempt_at=decision.next_attempt_at,
                last_error=decision.error,
                message_id=mid if decision.status == DeliveryStatus.sent else None,
            )
            session.commit()

    @retry_on_busy()
    def _pause(self, run_id: int, reason: str) -> None:
        with Session(self.engine) as session:
            storage.set_run_status(
                session, run_id, RunStatus.paused, reason, only_from=[RunStatus.sending]
            )
            storage.release(session, run_id, self.worker)
            session.commit()

    @retry_on_busy()
    def _release(self, run_id: int) -> None:
        with Session(self.engine) as session:
            storage.release(session, run_id, self.worker)
            session.commit()

    @retry_on_busy()
    def _pending(self, run_id: int) -> tuple[int, datetime | None]:
        with Session(self.engine) as session:
            return storage.pending_count(session, run_id), storage.next_due(session, run_id)

    @retry_on_busy()
    def _finish(self, run_id: int) -> None:
        with Session(self.engine) as session:
            storage.set_run_status(
                session,
                run_id,
                RunStatus.sent,
                finished_at=self.clock(),
                only_from=[RunStatus.sending],
            )
            session.commit()
