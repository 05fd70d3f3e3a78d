"""The scheduler: APScheduler (3.x, memory job store, never shared between processes)
driving digests in this process, inside `newsletter serve` or alone as `newsletter scheduler`.

The database is the only truth. Every `[digests] sync_seconds` the jobs are derived anew
from the digest rows (one job per unpaused digest, at its next firing), so an edit, a pause
or a new digest takes effect within seconds without a restart. Every job, and the sync
itself, calls `Digests.tick`, which creates the runs that are due idempotently (unique on
digest and scheduled time): two schedulers, two web workers or a restart never make two
runs, and a firing missed while nothing ran is caught up at start (or recorded as missed).
APScheduler's misfire handling is not relied upon. Unfinished runs (composing, sending)
are taken up by a sender in this process, so a crash resumes without anyone asking.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime

from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from newsletter.bounces import Bounces
from newsletter.digests.service import Digests
from newsletter.errors import NewsletterError

log = logging.getLogger(__name__)
SYNC_JOB = "sync"
BOUNCES_JOB = "bounces"


class DigestScheduler:
    def __init__(
        self,
        digests: Digests,
        sync_seconds: int,
        clock: Callable[[], datetime],
        bounces: Bounces | None = None,
        send: bool = True,
    ) -> None:
        self.digests = digests
        self.bounces = bounces  # polls [bounces] mailbox every [bounces] poll_seconds
        self.clock = clock
        self.sync_seconds = sync_seconds
        self.scheduler = AsyncIOScheduler(
            jobstores={"default": MemoryJobStore()},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone="UTC",
        )
        self.senders: dict[int, asyncio.Task[object]] = {}
        self.send = send  # False: runs are created here and sent by `newsletter worker`

    async def start(self) -> None:
        """Start the jobs after a first sync (catch-up, resuming runs) done at once."""
        self.scheduler.start()
        await self.sync()
        self.scheduler.add_job(
            self.sync,
            IntervalTrigger(seconds=self.sync_seconds, timezone="UTC"),
            id=SYNC_JOB,
        )
        if self.bounces is not None:
            wanted = self.bounces.settings.bounces
            if wanted.mailbox and wanted.poll_seconds:
                self.scheduler.add_job(
                    self.poll_bounces,
                    IntervalTrigger(seconds=wanted.poll_seconds, timezone="UTC"),
                    id=BOUNCES_JOB,
                )

    async def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        for task in self.senders.values():
            task.cancel()
        for task in list(self.senders.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.senders.clear()

    def jobs(self) -> dict[str, datetime]:
        """Digest slug -> the time its job fires next."""
        return {
            job.id.removeprefix("digest:"): job.next_run_time
            for job in self.scheduler.get_jobs()
            if job.id.startswith("digest:")
        }

    async def sync(self) -> None:
        """Make the jobs match the digest rows, then do what is due."""
        try:
            views = await asyncio.to_thread(self.digests.all)
            wanted = {f"digest:{v.slug}": v.next_run for v in views if v.next_run is not None}
            for job in self.scheduler.get_jobs():
                if job.id.startswith("digest:") and job.id not in wanted:
                    job.remove()
            for job_id, when in wanted.items():
                job = self.scheduler.get_job(job_id)
                if job is None or job.next_run_time != when:
                    self.scheduler.add_job(
                        self.fire,
                        DateTrigger(run_date=when, timezone="UTC"),
                        id=job_id,
                        replace_existing=True,
                    )
            await self.fire()
        except Exception:  # keep scheduling: a database hiccup must not stop digests
            log.exception("digest scheduling failed")

    async def poll_bounces(self) -> None:
        """Read the bounce mailbox (blocking I/O: in a thread)."""
        assert self.bounces is not None
        # keep scheduling whatever happens: a mailbox down now may be up at the next poll
        try:
            await asyncio.to_thread(self.bounces.poll, self.clock())
        except NewsletterError as exc:  # named and explained: no traceback needed
            log.warning("the bounce mailbox was not read: %s", exc)
        except Exception:
            log.exception("polling the bounce mailbox failed")

    async def fire(self) -> list[int]:
        """Create the runs that are due and make sure every unfinished run has a sender."""
        created = await asyncio.to_thread(self.digests.tick, self.clock())
        if not self.send:
            return created
        for run_id in await asyncio.to_thread(self.digests.unfinished_runs):
            task = self.senders.get(run_id)
            if task is None or task.done():
                self.senders[run_id] = asyncio.create_task(self._send(run_id))
        return created

    async def _send(self, run_id: int) -> object:
        try:
            return await self.digests.deliver(run_id)
        except Exception:
            log.exception("sending run %s failed; it resumes at the next sync", run_id)
            return None

    async def drain(self) -> None:
        """Wait for the senders under way (tests, `newsletter scheduler --once`)."""
        while any(not t.done() for t in self.senders.values()):
            await asyncio.gather(*self.senders.values(), return_exceptions=True)


async def work(digests: Digests, stop: asyncio.Event, exit_when_idle: bool = False) -> int:
    """`newsletter worker`: send every unfinished run (composing or sending), one after
    the other, until `stop` is set (or, with `exit_when_idle`, until none is left).
    Any number of workers may run, on any number of machines, on PostgreSQL: they claim
    disjoint rows, and a run is finished by whichever worker sees its last row final.
    Returns the number of runs worked on."""
    worked = 0
    while not stop.is_set():
        try:
            runs = await asyncio.to_thread(digests.unfinished_runs)
        except Exception:  # a database hiccup: try again in a moment
            log.exception("could not look for runs to send")
            runs = []
        if not runs:
            if exit_when_idle:
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await stop.wait()
            continue
        for run_id in runs:
            if stop.is_set():
                break
            worked += 1
            try:
                await digests.deliver(run_id)
            except Exception:
                log.exception("sending run %s failed; it is taken up again", run_id)
                await asyncio.sleep(1.0)
    return worked
