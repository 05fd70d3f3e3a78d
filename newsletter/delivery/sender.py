"""Sending a run through its ledger, fast and without losing track.

A worker claims rows in batches with a lease (PostgreSQL: FOR UPDATE SKIP LOCKED, so any
number of workers on any number of machines take disjoint rows), checks each chunk's
subscribers right before their messages are built (an unsubscribe or a pause takes effect
within one chunk), builds each message by filling its recipient's parts into the
segment's prebuilt bytes, signs it off the event loop, and sends it over the mailer's
connections, as many at once as it has. Outcomes are written in batches: at least every
FLUSH_SECONDS and at most `[delivery] result_batch` rows at a time, so a crash leaves at
most that many sent messages unrecorded; their rows return when the lease runs out and go
again with the same Message-ID, derived from (run, subscriber).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import hmac
import logging
import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session

from newsletter import metrics, storage
from newsletter.config import Settings
from newsletter.delivery.exclusive import one_sender
from newsletter.errors import DeliveryError
from newsletter.mail import Composer, Envelope, Mailer, verp
from newsletter.mail.policy import Decision, decide
from newsletter.mail.prepared import Filled
from newsletter.models import DeliveryStatus, RunStatus, SubscriberStatus
from newsletter.storage import Outcome, Recipient
from newsletter.storage.retry import retry_on_busy
from newsletter.subscribers import mark
from newsletter.subscribers.eligibility import Purpose, may_mail

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]
Build = Callable[[Recipient, str], Filled]  # (recipient, message id) -> unsigned message
FLUSH_SECONDS = 0.2


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

    def add(self, status: DeliveryStatus) -> None:
        name = status.value
        if hasattr(self, name):
            setattr(self, name, getattr(self, name) + 1)


@dataclass(frozen=True)
class Result:
    recipient: Recipient
    decision: Decision
    message_id: str | None
    relay: str | None


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
        connections = getattr(mailer, "connections", None)
        self.concurrency: int = concurrency or connections or settings.smtp.pool_size
        # RSA signing in OpenSSL releases the GIL: one thread signs while the loop sends
        self._signing = concurrent.futures.ThreadPoolExecutor(1, "dkim")

    async def deliver(
        self,
        run_id: int,
        build: Build,
        on_progress: Callable[[Progress], None] | None = None,
        digest: str = "",
    ) -> Progress:
        """Send what is due of the run until nothing is left, the run stops being
        "sending" (paused, cancelled) or only deferred rows remain whose time has not
        come (then wait for them). Returns what this sender did.

        Stopped (SIGTERM, Ctrl-C: the task is cancelled), it records what it sent and
        gives its claimed rows back at once rather than when the lease runs out."""

        def waiting() -> None:
            log.warning(
                "SQLite: one sender at a time; run %s waits until the sender working "
                "on this database is done (use PostgreSQL for several workers)",
                run_id,
            )

        async with one_sender(self.settings.database_url, waiting):
            return await _Run(self, run_id, build, on_progress, digest).go()

    # ------------------------------------------------------------------ database side

    @retry_on_busy()
    def _claim(self, run_id: int, now: datetime, limit: int) -> tuple[str, list[Recipient]]:
        lease = now + timedelta(seconds=self.settings.delivery.lease_seconds)
        with Session(self.engine) as session:
            run = storage.run_by_id(session, run_id)
            if run is None or run.status != RunStatus.sending:
                return (run.status if run else RunStatus.cancelled), []
            status = run.status
            claimed, taken_over = storage.claim(session, run_id, self.worker, now, lease, limit)
            session.commit()
        if taken_over:
            metrics.lease_expired(taken_over)
            log.warning("run %s: taking over %s rows whose lease ran out", run_id, taken_over)
        return status, claimed

    @retry_on_busy()
    def _refresh(self, run_id: int, chunk: list[Recipient]) -> tuple[str, list[Recipient]]:
        """The run's state, and those of the chunk's rows this sender still holds (its
        lease renewed) with their subscribers' state now: a row another sender took
        over after a lease ran out is left to it."""
        lease = self.clock() + timedelta(seconds=self.settings.delivery.lease_seconds)
        with Session(self.engine) as session:
            run = storage.run_by_id(session, run_id)
            status = run.status if run else RunStatus.cancelled
            held = storage.renew(
                session, run_id, self.worker, lease, [r.delivery_id for r in chunk]
            )
            session.commit()
            claimed = [
                (r.delivery_id, r.subscriber_id, r.segment, r.attempts)
                for r in chunk
                if r.delivery_id in held
            ]
            return status, storage.recipients(session, run_id, claimed)

    @retry_on_busy()
    def _record(self, run_id: int, results: list[Result]) -> str:
        """Write a batch of outcomes, suppress what bounced, pause on a policy refusal;
        returns the run's status."""
        now = self.clock()
        outcomes = [
            Outcome(
                r.recipient.delivery_id,
                r.decision.status,
                r.decision.attempts,
                r.decision.next_attempt_at,
                r.decision.error or None,
                r.message_id if r.decision.status == DeliveryStatus.sent else None,
                r.relay,
            )
            for r in results
        ]
        pause = next((r.decision.pause_reason for r in results if r.decision.pause_reason), None)
        with Session(self.engine) as session:
            storage.record_many(session, self.worker, now, outcomes)
            if pause:
                log.error("run %s paused: %s", run_id, pause)
                storage.set_run_status(
                    session, run_id, RunStatus.paused, pause, only_from=[RunStatus.sending]
                )
            run = storage.run_by_id(session, run_id)
            session.commit()
            status = run.status if run else RunStatus.cancelled
        for r in results:
            if r.decision.suppress:
                mark(
                    self.engine, r.recipient.email, SubscriberStatus.bounced, r.decision.error, now
                )
        return status

    @retry_on_busy()
    def _renew(self, run_id: int) -> None:
        lease = self.clock() + timedelta(seconds=self.settings.delivery.lease_seconds)
        with Session(self.engine) as session:
            storage.renew(session, run_id, self.worker, lease)
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


class _Run:
    """One `deliver` call: a claimer feeding a queue, connection tasks sending from it,
    a recorder writing their outcomes in batches."""

    def __init__(
        self,
        sender: Sender,
        run_id: int,
        build: Build,
        on_progress: Callable[[Progress], None] | None,
        digest: str,
    ) -> None:
        self.s = sender
        self.run_id = run_id
        self.build = build
        self.on_progress = on_progress
        self.digest = digest
        self.progress = Progress()
        self.queue: asyncio.Queue[Recipient | None] = asyncio.Queue(sender.concurrency)
        self.results: list[Result] = []
        self.stopped = asyncio.Event()  # paused, cancelled or stopping
        self.flushed = asyncio.Event()
        self.flush_lock = asyncio.Lock()
        delivery = sender.settings.delivery
        self.batch = delivery.result_batch
        self.renew_every = max(delivery.lease_seconds / 3, FLUSH_SECONDS)
        self.signer = sender.composer.signer
        bounces = sender.settings.bounces
        self.return_path = sender.settings.return_path
        self.verp = bounces.verp
        self.hold_until = 0.0  # loop time before which no message is queued
        self.closing = False

    async def go(self) -> Progress:
        loop = asyncio.get_running_loop()
        workers = [asyncio.create_task(self._send_loop()) for _ in range(self.s.concurrency)]
        recorder = asyncio.create_task(self._recorder(loop.time()))
        try:
            await self._feed()
        finally:
            for _ in workers:
                await _put_anyway(self.queue, None)
            # a cancel (SIGTERM) cancels the feed; let messages in flight end, then record
            done = await asyncio.gather(*workers, return_exceptions=True)
            # the recorder ends after one more flush; cancelling it could drop a batch
            # taken off `results` but not yet written
            self.closing = True
            self.flushed.set()
            with contextlib.suppress(Exception):
                await asyncio.shield(recorder)
            await asyncio.shield(self._flush())
            await asyncio.shield(asyncio.to_thread(self.s._release, self.run_id))
            for outcome in done:
                if isinstance(outcome, Exception):
                    log.error("a sending task of run %s failed: %r", self.run_id, outcome)
        return self.progress

    async def _feed(self) -> None:
        s = self.s
        settings = s.settings.delivery
        chunk_size = max(self.batch, s.concurrency)
        while not self.stopped.is_set():
            status, batch = await asyncio.to_thread(
                s._claim, self.run_id, s.clock(), settings.claim_batch
            )
            if status != RunStatus.sending:
                return
            if not batch:
                await self.queue.join()  # what is in flight is sent and, below, recorded
                await self._flush()
                pending, due = await asyncio.to_thread(s._pending, self.run_id)
                if pending == 0:
                    await asyncio.to_thread(s._finish, self.run_id)
                    return
                wait = 1.0 if due is None else (due - s.clock()).total_seconds()
                await asyncio.sleep(min(max(wait, 0.05), 1.0))
                continue
            for start in range(0, len(batch), chunk_size):
                # the subscribers' and the run's state right before their messages are
                # built: an unsubscribe or a pause takes effect within a chunk
                status, fresh = await asyncio.to_thread(
                    s._refresh, self.run_id, batch[start : start + chunk_size]
                )
                if status != RunStatus.sending or self.stopped.is_set():
                    self.stopped.set()
                    return
                for recipient in fresh:
                    await self._hold()
                    await self.queue.put(recipient)

    async def _hold(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.stopped.is_set() and self.hold_until > loop.time():
            await asyncio.sleep(min(self.hold_until - loop.time(), 0.5))

    async def _send_loop(self) -> None:
        while True:
            recipient = await self.queue.get()
            try:
                if recipient is None:
                    return
                if self.stopped.is_set():
                    continue  # left claimed: released when the run stops
                self._add(await self._one(recipient))
            finally:
                self.queue.task_done()

    async def _one(self, recipient: Recipient) -> Result:
        s = self.s
        if not may_mail(
            Purpose.digest, recipient.status, recipient.suppressed, recipient.subscribed
        ):
            suppressed = recipient.suppressed is not None or recipient.status in (
                SubscriberStatus.bounced,
                SubscriberStatus.complained,
            )
            status = DeliveryStatus.suppressed if suppressed else DeliveryStatus.skipped
            error = f"not mailable: {recipient.status}"
            return Result(recipient, Decision(status, recipient.attempts, error=error), None, None)
        mid = message_id(s.settings, self.run_id, recipient.subscriber_id)
        mail_from = (
            verp.encode(s.settings.secret, self.return_path, recipient.delivery_id)
            if self.verp
            else self.return_path
        )
        outcome: DeliveryError | None = None
        relay: str | None = None
        try:
            filled = self.build(recipient, mid)
            if self.signer is None:
                data = filled.data(None)
            else:
                loop = asyncio.get_running_loop()
                data = await loop.run_in_executor(s._signing, filled.data, self.signer)
            relay = await s.mailer.send(Envelope(mail_from, recipient.email, data, mid))
        except DeliveryError as exc:
            outcome = exc
        settings = s.settings.delivery
        decision = decide(
            outcome,
            recipient.attempts,
            s.clock(),
            settings.retry_base_seconds,
            settings.max_attempts,
        )
        if decision.pause_reason:
            self.stopped.set()  # nobody else is mailed on a refusal of our own
        if decision.server_down:
            # no relay answers: hold the feed until one may be tried again, rather than
            # turning every claimed row into a failed attempt
            ready_in = getattr(s.mailer, "ready_in", lambda: 1.0)()
            self.hold_until = asyncio.get_running_loop().time() + max(ready_in, 0.2)
        return Result(recipient, decision, mid, relay)

    def _add(self, result: Result) -> None:
        self.results.append(result)
        self.progress.add(result.decision.status)
        if result.decision.pause_reason or len(self.results) >= self.batch:
            self.flushed.set()  # wake the recorder now

    async def _recorder(self, started: float) -> None:
        loop = asyncio.get_running_loop()
        renewed = started
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(FLUSH_SECONDS):
                    await self.flushed.wait()
            self.flushed.clear()
            await self._flush()
            if self.closing:
                return
            if loop.time() - renewed >= self.renew_every:
                await asyncio.to_thread(self.s._renew, self.run_id)
                renewed = loop.time()

    async def _flush(self) -> None:
        async with self.flush_lock:
            while self.results:
                batch, self.results = self.results[: self.batch], self.results[self.batch :]
                status = await asyncio.to_thread(self.s._record, self.run_id, batch)
                for name, n in Counter(r.decision.status.value for r in batch).items():
                    metrics.delivered(self.digest, name, n)
                if status != RunStatus.sending:
                    self.stopped.set()
            if self.on_progress:
                self.on_progress(self.progress)


async def _put_anyway(queue: asyncio.Queue[Recipient | None], item: None) -> None:
    """Queue `item` even when the queue is full of work nobody will take (stopping)."""
    while True:
        try:
            queue.put_nowait(item)
            return
        except asyncio.QueueFull:
            with contextlib.suppress(asyncio.QueueEmpty):
                queue.get_nowait()
                queue.task_done()
