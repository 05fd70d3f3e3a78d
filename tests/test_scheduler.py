"""The scheduler process: jobs derived from the digest rows (memory job store), following
edits, pauses and new digests at the next sync, and runs resumed by a sender."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from newsletter.config import Settings
from newsletter.digests import schedule
from newsletter.digests.definitions import DigestInput
from newsletter.models import RunStatus
from newsletter.scheduler import DigestScheduler
from tests.conftest import SmtpSink
from tests.digest_helpers import T0, Clock, mail_to, post, reader, wired


def test_jobs_follow_edits_pauses_and_new_digests_without_a_restart(
    settings: Settings, engine: sa.Engine, smtp_sink: tuple[SmtpSink, int]
) -> None:
    clock = Clock(datetime.now(UTC))  # APScheduler's jobs wait on the real clock
    svc = wired(settings, engine, smtp_sink[1], clock)
    svc.digests.edit("digest", DigestInput(cron=schedule.daily("07:00"), timezone="Asia/Jakarta"))

    async def scenario() -> None:
        scheduler = DigestScheduler(svc.digests, 3600, clock)
        await scheduler.start()
        try:
            assert scheduler.jobs() == {"digest": svc.digests.get("digest").next_run}
            svc.digests.edit("digest", DigestInput(cron=schedule.daily("18:15")))
            svc.digests.create(
                "weekly", DigestInput(name="Weekly", cron=schedule.weekly("mon", "06:00"))
            )
            await scheduler.sync()
            jobs = scheduler.jobs()
            local = jobs["digest"].astimezone(schedule.zone("Asia/Jakarta"))
            assert (local.hour, local.minute) == (18, 15)
            assert jobs["weekly"] == svc.digests.get("weekly").next_run
            svc.digests.pause("digest")
            await scheduler.sync()
            assert set(scheduler.jobs()) == {"weekly"}
        finally:
            await scheduler.stop()

    asyncio.run(scenario())


def test_a_firing_makes_a_run_that_a_sender_in_the_process_delivers(
    settings: Settings, engine: sa.Engine, smtp_sink: tuple[SmtpSink, int]
) -> None:
    sink, port = smtp_sink
    clock = Clock(T0 - timedelta(hours=6))
    svc = wired(settings, engine, port, clock)
    svc.digests.edit("digest", DigestInput(cron=schedule.daily("06:30"), timezone="UTC"))
    reader(engine, settings, "ayu@example.org")
    post(engine, settings, "overnight", T0 + timedelta(hours=2), ["trade"])

    async def scenario() -> None:
        scheduler = DigestScheduler(svc.digests, 3600, clock)
        try:
            clock.set(T0 + timedelta(hours=6, minutes=30, seconds=1))  # the firing has come
            created = await scheduler.fire()
            assert len(created) == 1
            await scheduler.drain()
            assert svc.digests.run(created[0]).status == RunStatus.sent
            assert await scheduler.fire() == []  # nothing more is due
        finally:
            await scheduler.stop()
            await svc.mailer.close()

    asyncio.run(scenario())
    assert len(mail_to(sink.messages, "ayu@example.org")) == 1


def test_an_unfinished_run_is_taken_up_by_the_next_scheduler(
    settings: Settings, engine: sa.Engine, smtp_sink: tuple[SmtpSink, int]
) -> None:
    sink, port = smtp_sink
    clock = Clock(T0)
    svc = wired(settings, engine, port, clock)
    for n in range(5):
        reader(engine, settings, f"r{n}@example.org")
    post(engine, settings, "news", T0 - timedelta(hours=1), ["trade"])
    run = svc.digests.send_now("digest")  # composed, ledger written, nobody mailed yet
    assert run.status == RunStatus.sending and run.counts == {"queued": 5}

    async def scenario() -> None:
        scheduler = DigestScheduler(svc.digests, 3600, clock)
        try:
            await scheduler.fire()
            await scheduler.drain()
        finally:
            await scheduler.stop()
            await svc.mailer.close()

    asyncio.run(scenario())
    assert svc.digests.run(run.id).counts == {"sent": 5}
    assert len(sink.messages) == 5
