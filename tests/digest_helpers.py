"""What the digest tests share: a clock tests move, services wired to a real SMTP sink,
articles and subscribers made in a line."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import sqlalchemy as sa

from newsletter import articles, services, subscribers
from newsletter.config import DeliverySettings, Settings, SmtpSettings
from newsletter.digests import schedule
from newsletter.digests.definitions import DigestInput
from newsletter.mail import SmtpMailer


class Clock:
    """Now is `start` plus the real time elapsed since, plus what the test adds: retries
    and leases run on real time while schedules run on the time the test sets."""

    def __init__(self, start: datetime) -> None:
        self.start = start
        self.began = time.monotonic()

    def __call__(self) -> datetime:
        return self.start + timedelta(seconds=time.monotonic() - self.began)

    def set(self, moment: datetime) -> None:
        self.start, self.began = moment, time.monotonic()


def wired(
    settings: Settings, engine: sa.Engine, port: int, clock: Clock, **delivery: Any
) -> services.Services:
    """Services that send through the SMTP sink on `port`, with quick retries."""
    cfg = dataclasses.replace(
        settings,
        smtp=SmtpSettings(host="127.0.0.1", port=port, security="none", pool_size=4, timeout=5),
        delivery=DeliverySettings(
            **{"retry_base_seconds": 1, "max_attempts": 3, "lease_seconds": 5, **delivery}
        ),
    )
    mailer = SmtpMailer("127.0.0.1", port, "none", pool_size=4, timeout=5, rest_seconds=0.5)
    return services.build(cfg, engine, mailer, clock=clock)


def post(
    engine: sa.Engine, settings: Settings, slug: str, when: datetime, tags: list[str], **extra: Any
) -> None:
    record = {
        "guid": slug,
        "slug": slug,
        "title": extra.pop("title", slug.replace("-", " ").title()),
        "summary": f"Lead of {slug}.",
        "body": f"<p>Body of {slug}.</p>",
        "tags": tags,
        "author": {"name": "Budi Santoso", "slug": "budi"},
        "published_at": when.isoformat(),
        **extra,
    }
    ctx = articles.ImportContext.from_settings(settings)
    report = articles.import_articles(
        engine, [articles.validate(record, slug, ctx)], base_url=settings.base_url, now=when
    )
    assert not report.errors, report.errors


def reader(
    engine: sa.Engine,
    settings: Settings,
    email: str,
    tags: tuple[str, ...] = (),
    digests: tuple[str, ...] = ("digest",),
    name: str = "",
) -> None:
    subscribers.add(engine, email, settings.site.tz, name, digests, tags)


def mail_to(messages: list[EmailMessage], address: str) -> list[EmailMessage]:
    return [m for m in messages if m["To"].addresses[0].addr_spec == address]


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def html_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())


T0 = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)  # 07:00 in Asia/Jakarta
DAY = timedelta(days=1)


def daily_digest(svc: services.Services, **fields: object) -> None:
    """The default digest as the tests know it: daily at 07:00 in Jakarta."""
    svc.digests.edit(
        "digest",
        DigestInput(
            name="Morning Ledger",
            cron=schedule.daily("07:00"),
            timezone="Asia/Jakarta",
            **fields,  # type: ignore[arg-type]
        ),
    )


def firing_with_posts(svc: services.Services, settings: Settings, clock: Clock) -> int:
    """A post in the window and the run of the 07:00 firing, created by the scheduler's tick."""
    post(svc.engine, settings, "tariffs", T0 - timedelta(hours=1), ["trade"])
    clock.set(T0 + timedelta(seconds=1))
    [run_id] = svc.digests.tick()
    return run_id


def deliver(svc: services.Services, run_id: int) -> None:
    deliver_together(run_id, svc)


def deliver_together(run_id: int, *senders: services.Services) -> None:
    """Send the run with every one of `senders` at once (processes sharing a run)."""

    async def run() -> None:
        try:
            await asyncio.gather(*(s.digests.deliver(run_id) for s in senders))
        finally:
            for s in senders:
                await s.mailer.close()

    asyncio.run(run())
