"""Digest delivery against SMTP servers that misbehave on purpose: greylisting, bounces, a
blocklisting, connections cut in the middle of a message, a server that stops answering, a
server that restarts in the middle of a run, and two weighted relays, one of which goes
away. Answers are staged with aiosmtpd handlers; connection-level faults with the small
server of tests/faulty_smtp.py. Runs go through `svc.digests.deliver` as in production,
and what the servers accepted is read back with the `email` package.

Every wait is on an event or a condition with a generous deadline (a hang guard, not a
performance requirement); no assertion depends on how fast anything is.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import gc
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from datetime import timedelta
from email.message import EmailMessage
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from sqlmodel import Session

from newsletter import services, storage
from newsletter.config import DeliverySettings, RelaySettings, Settings
from newsletter.delivery.sender import Progress
from newsletter.digests import schedule
from newsletter.digests.definitions import DigestInput
from newsletter.mail import Mailer, RelayMailer, SmtpMailer
from newsletter.models import Delivery, DeliveryStatus, RunStatus, SubscriberStatus
from tests.conftest import SmtpSink
from tests.digest_helpers import T0, Clock, post, reader, wired
from tests.faulty_smtp import FaultySmtp
from tests.helpers import free_port

DEADLINE = 40.0  # seconds: a hang guard for one wait or one run
T = TypeVar("T")


# ----------------------------------------------------------------------------- helpers


@pytest.fixture
def clock() -> Clock:
    return Clock(T0 - timedelta(hours=12))


@pytest.fixture
def faulty() -> Iterator[FaultySmtp]:
    server = FaultySmtp(free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Serving:
    """An aiosmtpd server for `handler` on a free port, which a test may stop mid-run."""

    def __init__(self, handler: SmtpSink) -> None:
        self.port = free_port()
        self.controller = Controller(handler, hostname="127.0.0.1", port=self.port)
        self.running = False

    def start(self) -> None:
        self.controller.start()
        self.running = True

    def stop(self) -> None:
        if self.running:
            self.running = False
            self.controller.stop()


@contextlib.contextmanager
def serving(*handlers: SmtpSink) -> Iterator[list[Serving]]:
    servers = [Serving(h) for h in handlers]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()


def with_mailer(
    settings: Settings, engine: sa.Engine, mailer: Mailer, clock: Clock, **delivery: Any
) -> services.Services:
    """Services sending through `mailer` (as `wired` does for one sink), quick retries."""
    cfg = dataclasses.replace(
        settings,
        delivery=DeliverySettings(
            **{"retry_base_seconds": 1, "max_attempts": 3, "lease_seconds": 5, **delivery}
        ),
    )
    return services.build(cfg, engine, mailer, clock=clock)


def run_for(svc: services.Services, settings: Settings, clock: Clock, emails: list[str]) -> int:
    """A daily digest with one post, `emails` subscribed to it, and its run due now."""
    svc.digests.edit(
        "digest",
        DigestInput(name="Morning Ledger", cron=schedule.daily("07:00"), timezone="Asia/Jakarta"),
    )
    for address in emails:
        reader(svc.engine, settings, address)
    post(svc.engine, settings, "tariffs", T0 - timedelta(hours=1), ["trade"])
    clock.set(T0 + timedelta(seconds=1))
    [run_id] = svc.digests.tick()
    return run_id


Scenario = Callable[["asyncio.Task[Progress]"], Awaitable[None]]


def deliver(svc: services.Services, run_id: int, during: Scenario | None = None) -> None:
    """Deliver the run through the service; `during` acts on the servers meanwhile."""

    async def main() -> None:
        task = asyncio.create_task(svc.digests.deliver(run_id))
        try:
            if during is not None:
                await during(task)
            try:
                await asyncio.wait_for(task, DEADLINE)
            except TimeoutError:
                raise AssertionError(f"run {run_id} did not end within {DEADLINE} s") from None
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await svc.mailer.close()

    asyncio.run(main())
    # The SMTP client leaves the replies it no longer awaits (after a dropped connection or
    # a timeout) as futures holding an exception nobody retrieves. Collected here, they log
    # their errors now; collected later, inside pytest's ast.parse of a failing test's
    # source, their logged tracebacks (which parse too on Python 3.11) make pytest fail
    # with "SystemError: AST constructor recursion depth mismatch" instead of reporting.
    gc.collect()


async def until(what: str, condition: Callable[[], bool], task: asyncio.Task[Progress]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while not condition():
        if task.done():
            task.result()  # what the run raised, if it did
            raise AssertionError(f"the run ended before {what}")
        if loop.time() > deadline:
            raise AssertionError(f"no {what} within {DEADLINE} s")
        await asyncio.sleep(0.02)


def eventually(what: str, condition: Callable[[], bool]) -> None:
    """For what a server's thread sees a moment after the run ends."""
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {DEADLINE} s"
        time.sleep(0.02)


def rows(svc: services.Services, run_id: int) -> dict[str, Delivery]:
    """The run's ledger by the subscriber's address."""
    with Session(svc.engine) as session:
        found = storage.ledger(session, run_id)
        emails = {s.id: s.email for s, _ in storage.subscribers(session) if s.id is not None}
    return {emails[r.subscriber_id]: r for r in found}


def subscriber_statuses(svc: services.Services) -> dict[str, str]:
    with Session(svc.engine) as session:
        return {s.email: s.status for s, _ in storage.subscribers(session)}


def suppressions(svc: services.Services, emails: Iterable[str]) -> dict[str, str]:
    with Session(svc.engine) as session:
        return {e: s.reason for e, s in storage.suppressions_for(session, list(emails)).items()}


def addressee(message: EmailMessage) -> str:
    return str(message["To"].addresses[0].addr_spec)


def by_addressee(messages: Iterable[EmailMessage]) -> dict[str, list[EmailMessage]]:
    found: dict[str, list[EmailMessage]] = {}
    for message in messages:
        found.setdefault(addressee(message), []).append(message)
    return found


def assert_same_message_ids(
    received: dict[str, list[EmailMessage]], ledger: dict[str, Delivery]
) -> None:
    """Each copy a recipient got carries the one Message-ID the ledger recorded."""
    for address, copies in received.items():
        ids = {str(m["Message-ID"]) for m in copies}
        assert ids == {ledger[address].message_id}, (address, ids)


def emails_of(count: int, prefix: str = "r") -> list[str]:
    return [f"{prefix}{n:02}@example.org" for n in range(count)]


# ----------------------------------------------------------------------------- answers


class Greylisting(SmtpSink):
    """451 4.7.1 to the first RCPT of each address in `greylisted`; notes when RCPTs came."""

    def __init__(self, greylisted: set[str]) -> None:
        super().__init__()
        self.greylisted = greylisted
        self.rcpt_at: dict[str, list[float]] = {}

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        times = self.rcpt_at.setdefault(address, [])
        times.append(time.monotonic())
        if address in self.greylisted and len(times) == 1:
            return "451 4.7.1 Greylisted, please try again later"
        answer = await super().handle_RCPT(server, session, envelope, address, options)  # type: ignore[no-untyped-call]
        return str(answer)


def test_greylisted_recipients_are_delivered_on_a_later_try(
    settings: Settings, engine: sa.Engine, clock: Clock
) -> None:
    emails = emails_of(40)
    greylisted = set(emails[::10])
    sink = Greylisting(greylisted)
    with serving(sink) as [server]:
        svc = wired(settings, engine, server.port, clock, retry_base_seconds=1)
        run_id = run_for(svc, settings, clock, emails)
        deliver(svc, run_id)
    ledger = rows(svc, run_id)
    assert {e: r.status for e, r in ledger.items()} == dict.fromkeys(emails, "sent")
    assert {e: r.attempts for e, r in ledger.items()} == {
        e: 2 if e in greylisted else 1 for e in emails
    }
    assert all("4.7.1" in ledger[e].last_error for e in greylisted)
    received = by_addressee(sink.messages)
    assert sorted(received) == emails
    assert all(len(copies) == 1 for copies in received.values())
    assert_same_message_ids(received, ledger)
    for address in emails:
        tries = sink.rcpt_at[address]
        assert len(tries) == (2 if address in greylisted else 1), address
        if address in greylisted:  # the retry waited for its back-off (1 s), however slow
            assert tries[1] - tries[0] >= 0.9, (address, tries)
    assert svc.digests.run(run_id).status == RunStatus.sent


def test_unknown_mailboxes_fail_and_are_suppressed_and_the_rest_is_sent(
    settings: Settings, engine: sa.Engine, clock: Clock
) -> None:
    # SmtpSink answers 550 5.1.1 to any address containing "bounce"
    emails = [f"r{n:02}{'-bounce' if n % 5 == 2 else ''}@example.org" for n in range(20)]
    bounced = {e for e in emails if "bounce" in e}
    good = [e for e in emails if e not in bounced]
    sink = SmtpSink()
    with serving(sink) as [server]:
        svc = wired(settings, engine, server.port, clock)
        run_id = run_for(svc, settings, clock, emails)
        deliver(svc, run_id)
        ledger = rows(svc, run_id)
        assert {e: r.status for e, r in ledger.items()} == {
            e: "failed" if e in bounced else "sent" for e in emails
        }
        assert all(ledger[e].attempts == 1 and "5.1.1" in ledger[e].last_error for e in bounced)
        assert all(sink.tries[e] == 1 for e in bounced)  # a permanent answer is not retried
        assert suppressions(svc, emails) == dict.fromkeys(bounced, "bounced")
        people = subscriber_statuses(svc)
        assert {e: people[e] for e in emails} == {
            e: SubscriberStatus.bounced if e in bounced else SubscriberStatus.active for e in emails
        }
        received = by_addressee(sink.messages)
        assert sorted(received) == good
        assert all(len(copies) == 1 for copies in received.values())
        assert svc.digests.run(run_id).counts == {"sent": 16, "failed": 4}

        # the next issue goes to the others only
        post(svc.engine, settings, "summit", T0 + timedelta(hours=2), ["trade"])
        clock.set(T0 + timedelta(days=1, seconds=1))
        [second] = svc.digests.tick()
        deliver(svc, second)
    second_ids = {r.message_id for r in rows(svc, second).values() if r.message_id}
    again = [m for m in sink.messages if m["Message-ID"] in second_ids]
    assert sorted(addressee(m) for m in again) == good


class Blocklisted(SmtpSink):
    """554 5.7.1 to every recipient (stage "rcpt") or every message (stage "data"); once
    `stage` is None it takes everything."""

    def __init__(self, stage: str | None) -> None:
        super().__init__()
        self.stage = stage

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.stage == "rcpt":
            self.tries[address] = self.tries.get(address, 0) + 1
            return "554 5.7.1 Service unavailable; client host blocked using a blocklist"
        answer = await super().handle_RCPT(server, session, envelope, address, options)  # type: ignore[no-untyped-call]
        return str(answer)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.stage == "data":
            return "554 5.7.1 Message refused by local policy"
        answer = await super().handle_DATA(server, session, envelope)  # type: ignore[no-untyped-call]
        return str(answer)


@pytest.mark.parametrize("stage", ["rcpt", "data"])
def test_a_blocklisting_pauses_the_run_at_once_and_fails_nobody(
    settings: Settings, engine: sa.Engine, clock: Clock, stage: str
) -> None:
    emails = emails_of(40)
    sink = Blocklisted(stage)
    with serving(sink) as [server]:
        svc = wired(settings, engine, server.port, clock)
        run_id = run_for(svc, settings, clock, emails)
        deliver(svc, run_id)
        run = svc.digests.run(run_id)
        assert run.status == RunStatus.paused and "5.7.1" in run.reason
        ledger = rows(svc, run_id)
        assert {e: (r.status, r.attempts) for e, r in ledger.items()} == dict.fromkeys(
            emails, (DeliveryStatus.queued, 0)
        )
        tried = sum(sink.tries.values())
        # every connection of the pool (4) may have had a message under way; none began after
        assert 1 <= tried <= 4, sink.tries
        # each refusal is on record
        assert sum("5.7.1" in r.last_error for r in ledger.values()) == tried
        assert sink.messages == []
        assert suppressions(svc, emails) == {}
        people = subscriber_statuses(svc)
        assert {people[e] for e in emails} == {SubscriberStatus.active}

        # the block is lifted and the run resumed: everyone gets it, once
        sink.stage = None
        svc.digests.resume_run(run_id)
        deliver(svc, run_id)
    assert svc.digests.run(run_id).counts == {"sent": 40}
    received = by_addressee(sink.messages)
    assert sorted(received) == emails
    assert all(len(copies) == 1 for copies in received.values())


class BusyPool(concurrent.futures.ThreadPoolExecutor):
    """A thread pool with other work (0.2 s) ahead of every job, as a loaded pool has."""

    def submit(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[T]:
        super().submit(time.sleep, 0.2)
        return super().submit(fn, *args, **kwargs)


class StopsMidFlight(SmtpSink):
    """r00 is refused at once with 554 5.7.1, which pauses the run; the three messages under
    way with it end a second later: r02 and r03 are taken (250), then r01 is refused. Once
    `blocking` is False it takes everything at once."""

    def __init__(self) -> None:
        super().__init__()
        self.blocking = True

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.blocking and address.startswith(("r00", "r01")):
            self.tries[address] = self.tries.get(address, 0) + 1
            if address.startswith("r01"):
                await asyncio.sleep(1.1)
            return "554 5.7.1 Client host blocked using a blocklist"
        answer = await super().handle_RCPT(server, session, envelope, address, options)  # type: ignore[no-untyped-call]
        return str(answer)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.blocking:
            await asyncio.sleep(1.0)
        answer = await super().handle_DATA(server, session, envelope)  # type: ignore[no-untyped-call]
        return str(answer)


class LostOutcome(AssertionError):
    """What the server took is not on record (a batch taken off for writing, dropped when
    the run stopped)."""


def test_outcomes_of_messages_under_way_when_a_run_stops_are_recorded(
    settings: Settings, engine: sa.Engine, clock: Clock
) -> None:
    emails = emails_of(40)
    sink = StopsMidFlight()
    with serving(sink) as [server]:
        svc = wired(settings, engine, server.port, clock)
        run_id = run_for(svc, settings, clock, emails)

        async def on_a_busy_pool() -> None:
            asyncio.get_running_loop().set_default_executor(BusyPool(1))
            try:
                await asyncio.wait_for(svc.digests.deliver(run_id), DEADLINE)
            finally:
                await svc.mailer.close()

        asyncio.run(on_a_busy_pool())
        assert svc.digests.run(run_id).status == RunStatus.paused
        taken = sorted(addressee(m) for m in sink.messages)
        assert taken == ["r02@example.org", "r03@example.org"]
        ledger = rows(svc, run_id)
        assert sink.tries == dict.fromkeys(emails[:4], 1)  # the four under way, nobody else
        on_record = {e: (r.status, r.last_error) for e, r in ledger.items() if r.last_error}
        sent = [e for e, r in ledger.items() if r.status == DeliveryStatus.sent]
        if sent != taken or len(on_record) != 2:
            raise LostOutcome(f"taken: {taken}; sent on record: {sent}; errors: {on_record}")

        sink.blocking = False
        svc.digests.resume_run(run_id)
        deliver(svc, run_id)
    received = by_addressee(sink.messages)
    assert {e: len(copies) for e, copies in received.items()} == dict.fromkeys(emails, 1)


# ----------------------------------------------------------------------------- connections


def test_connections_cut_in_the_middle_of_data_are_retried_with_the_same_message_id(
    settings: Settings, engine: sa.Engine, clock: Clock, faulty: FaultySmtp
) -> None:
    emails = emails_of(24)
    cut = set(emails[1::6])  # the server reads part of the message, then hangs up
    dropped = set(emails[4::6])  # it keeps the whole message, then hangs up before the 250
    faulty.cut = lambda address, tries: address in cut and tries == 1
    faulty.drop = lambda address, tries: address in dropped and tries == 1
    svc = wired(settings, engine, faulty.port, clock)
    run_id = run_for(svc, settings, clock, emails)
    deliver(svc, run_id)

    ledger = rows(svc, run_id)
    assert {e: r.status for e, r in ledger.items()} == dict.fromkeys(emails, "sent")
    # a connection that went away is no answer: it costs the row no attempt
    assert {r.attempts for r in ledger.values()} == {1}
    assert all(ledger[e].last_error for e in cut | dropped)
    assert svc.digests.run(run_id).status == RunStatus.sent
    assert faulty.pipelined > 0  # MAIL, RCPT and DATA came in one packet

    accepted = faulty.messages()
    assert all(addressee(a.message) == a.recipient for a in accepted)
    received = by_addressee(a.message for a in accepted)
    assert sorted(received) == emails
    assert {e: len(copies) for e, copies in received.items()} == {
        e: 2 if e in dropped else 1 for e in emails
    }
    assert_same_message_ids(received, ledger)
    # what the server saw of a cut message names the Message-ID its later copy carries
    assert sorted(faulty.cuts) == sorted((e, ledger[e].message_id) for e in cut)
    assert sorted(faulty.dropped) == sorted(dropped)


def test_a_server_that_stops_answering_is_given_up_on_and_used_again_when_back(
    settings: Settings, engine: sa.Engine, clock: Clock, faulty: FaultySmtp
) -> None:
    emails = emails_of(30)
    silent_from: list[int] = []  # sessions opened before the silence

    def go_silent(_address: str) -> None:  # on the server's thread, as a message is kept
        if len(faulty.accepted) == 6 and not faulty.silent:
            faulty.silent = True
            silent_from.append(faulty.sessions)

    faulty.on_message = go_silent
    mailer = SmtpMailer(
        "127.0.0.1", faulty.port, "none", pool_size=4, timeout=1, failures=5, rest_seconds=0.3
    )
    svc = with_mailer(settings, engine, mailer, clock)
    run_id = run_for(svc, settings, clock, emails)
    back: list[int] = []  # messages kept before the server came back

    async def during(task: asyncio.Task[Progress]) -> None:
        # the sender times out on sessions that stopped answering and closes them ...
        await until("hung session closed", lambda: faulty.closed_hung("mid-session") > 0, task)
        # ... and on new connections that never get a greeting
        await until(
            "ungreeted connection closed", lambda: faulty.closed_hung("ungreeted") > 0, task
        )
        back.append(faulty.count("accepted"))
        faulty.silent = False

    deliver(svc, run_id, during)

    ledger = rows(svc, run_id)
    assert {e: r.status for e, r in ledger.items()} == dict.fromkeys(emails, "sent")
    assert {r.attempts for r in ledger.values()} == {1}  # no answer costs no attempt
    assert suppressions(svc, emails) == {}
    assert {subscriber_statuses(svc)[e] for e in emails} == {SubscriberStatus.active}
    accepted = faulty.messages()
    assert back[0] == 6  # nothing was kept while the server was silent
    received = by_addressee(a.message for a in accepted)
    assert sorted(received) == emails
    assert_same_message_ids(received, ledger)
    # the pool was refilled: what went after the silence went over new connections ...
    after = accepted[back[0] :]
    assert after and any(a.session > silent_from[0] for a in after)
    # ... and every connection that stopped answering was closed by the sender
    eventually("hung sessions closed", lambda: faulty.hung == faulty.hung_closed)


def test_a_server_restarting_mid_run_loses_nobody(
    settings: Settings, engine: sa.Engine, clock: Clock, faulty: FaultySmtp
) -> None:
    emails = emails_of(40)
    faulty.crash_after = 10  # it dies as the 10th message is in, before answering it
    svc = wired(settings, engine, faulty.port, clock)
    run_id = run_for(svc, settings, clock, emails)

    def met_closed_port() -> bool:
        return any("cannot connect" in r.last_error for r in svc.digests.ledger(run_id))

    async def during(task: asyncio.Task[Progress]) -> None:
        await until("crash", faulty.crashed.is_set, task)
        await until("attempt on the closed port", met_closed_port, task)
        await asyncio.to_thread(faulty.stop)
        faulty.crash_after = None
        await asyncio.to_thread(faulty.start)  # the same port, a moment later

    deliver(svc, run_id, during)

    ledger = rows(svc, run_id)
    assert {e: r.status for e, r in ledger.items()} == dict.fromkeys(emails, "sent")
    assert {r.attempts for r in ledger.values()} == {1}
    assert svc.digests.run(run_id).status == RunStatus.sent
    accepted = faulty.messages()
    received = by_addressee(a.message for a in accepted)
    assert sorted(received) == emails  # everyone at least once
    assert_same_message_ids(received, ledger)
    unanswered = accepted[9].recipient  # kept, but the answer died with the server
    assert len(received[unanswered]) == 2
    assert ledger[unanswered].last_error  # its first try is on record as no answer


# ----------------------------------------------------------------------------- relays


def two_relays(heavy: int, light: int, timeout: int = 5) -> RelayMailer:
    def relay(name: str, port: int, weight: int) -> RelaySettings:
        return RelaySettings(
            name=name,
            host="127.0.0.1",
            port=port,
            security="none",
            pool_size=4,
            timeout=timeout,
            weight=weight,
        )

    return RelayMailer(
        [relay("heavy", heavy, 3), relay("light", light, 1)], failures=2, rest_seconds=60
    )


def test_two_relays_share_a_run_by_weight(
    settings: Settings, engine: sa.Engine, clock: Clock
) -> None:
    emails = emails_of(40)
    heavy, light = SmtpSink(), SmtpSink()
    with serving(heavy, light) as [heavy_server, light_server]:
        svc = with_mailer(settings, engine, two_relays(heavy_server.port, light_server.port), clock)
        run_id = run_for(svc, settings, clock, emails)
        deliver(svc, run_id)
    ledger = rows(svc, run_id)
    assert {e: r.status for e, r in ledger.items()} == dict.fromkeys(emails, "sent")
    via = {"heavy": by_addressee(heavy.messages), "light": by_addressee(light.messages)}
    assert sorted([*via["heavy"], *via["light"]]) == emails  # each once, on one relay
    assert 24 <= len(via["heavy"]) <= 36, {k: len(v) for k, v in via.items()}  # 3:1 is 30
    for address, row in ledger.items():
        assert address in via[str(row.relay)], (address, row.relay)


class Stalling(SmtpSink):
    """Takes `limit` messages, then holds every further one until the server is stopped."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.stalled = threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if len(self.messages) >= self.limit:
            self.stalled.set()
            await asyncio.sleep(3600)  # cancelled when the server stops
        answer = await super().handle_DATA(server, session, envelope)  # type: ignore[no-untyped-call]
        return str(answer)


def test_when_a_relay_goes_away_mid_run_the_other_takes_the_rest(
    settings: Settings, engine: sa.Engine, clock: Clock
) -> None:
    emails = emails_of(40)
    heavy, light = Stalling(limit=8), SmtpSink()
    with serving(heavy, light) as [heavy_server, light_server]:
        mailer = two_relays(heavy_server.port, light_server.port, timeout=2)
        svc = with_mailer(settings, engine, mailer, clock)
        run_id = run_for(svc, settings, clock, emails)

        async def during(task: asyncio.Task[Progress]) -> None:
            await until("the heavy relay stalling", heavy.stalled.is_set, task)
            await asyncio.to_thread(heavy_server.stop)

        deliver(svc, run_id, during)
    ledger = rows(svc, run_id)
    assert {e: r.status for e, r in ledger.items()} == dict.fromkeys(emails, "sent")
    # the relay's failure was the relay's: each message went on through the other at once,
    # in the same try (no row waited for a retry, none has an error on record)
    assert {(r.attempts, r.last_error) for r in ledger.values()} == {(1, "")}
    assert len(heavy.messages) == 8
    received = by_addressee([*heavy.messages, *light.messages])
    assert sorted(received) == emails  # everyone at least once
    assert_same_message_ids(received, ledger)
    assert len(light.messages) >= 32  # far beyond its share of 1 in 4
    assert sum(r.relay == "light" for r in ledger.values()) >= 32
