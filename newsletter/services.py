"""The composition root: the one place that builds the engine, the mailer, the templates,
the feed cache and the use-case objects, for the web app, the CLI and (next) the scheduler
and delivery workers. Entry points ask for a `Services` and call use cases on it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from jinja2 import Environment, FileSystemLoader, select_autoescape

from newsletter.access import Access
from newsletter.bounces import Bounces
from newsletter.config import Settings
from newsletter.delivery.throttle import SharedThrottle
from newsletter.digests.service import Digests
from newsletter.feeds.cache import FeedCache
from newsletter.feeds.websub import Pinger
from newsletter.mail import Composer, Mailer, RelayMailer, make_mailer
from newsletter.models import utcnow
from newsletter.resources import templates_dir
from newsletter.storage.database import create_engine, open_database
from newsletter.subscribers import Subscribers


def template_environment(settings: Settings) -> Environment:
    """Jinja2 for pages and emails: .html autoescaped, .txt not; dates in the site's zone."""
    env = Environment(
        loader=FileSystemLoader(templates_dir()),
        autoescape=select_autoescape(["html", "xml"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    tz = settings.site.tz

    def localdate(value: datetime | None, fmt: str = "%-d %B %Y") -> str:
        """A UTC datetime shown in the publication's time zone."""
        return value.astimezone(tz).strftime(fmt) if value else ""

    def zoned(value: datetime | None, zone: str, fmt: str = "%a %-d %b %Y, %H:%M %Z") -> str:
        """A UTC datetime shown in `zone` (a digest's own time zone)."""
        return value.astimezone(ZoneInfo(zone)).strftime(fmt) if value else ""

    env.filters["localdate"] = localdate
    env.filters["zoned"] = zoned
    env.globals["site"] = settings.site
    env.globals["base_url"] = settings.base_url
    return env


@dataclass
class Services:
    """Everything a process needs, built once at its start."""

    settings: Settings
    engine: sa.Engine
    mailer: Mailer
    templates: Environment
    subscribers: Subscribers
    digests: Digests
    bounces: Bounces
    access: Access
    feed_cache: FeedCache
    pinger: Pinger | None

    async def aclose(self) -> None:
        """Close what holds connections open (SMTP, the hub client)."""
        if self.pinger:
            await self.pinger.close()
        await self.mailer.close()


def build(
    settings: Settings,
    engine: sa.Engine | None = None,
    mailer: Mailer | None = None,
    migrate: bool = True,
    clock: Callable[[], datetime] = utcnow,
) -> Services:
    """Services for `settings`. Opens the database (migrated to the newest schema unless
    `migrate` is False) unless `engine` is given; sends mail with the configured transport
    unless `mailer` is given; tells time by `clock` (tests pass their own)."""
    mime = Composer(settings)  # checks the DKIM key before anything is opened
    if engine is None:
        engine = (
            open_database(settings.database_url)
            if migrate
            else create_engine(settings.database_url)
        )
    mailer = mailer or make_mailer(settings)
    if isinstance(mailer, RelayMailer) and mailer.throttle is None:
        throttle = SharedThrottle(engine, settings.relays, clock)
        if throttle.active:
            mailer.throttle = throttle
    templates = template_environment(settings)
    return Services(
        settings=settings,
        engine=engine,
        mailer=mailer,
        templates=templates,
        subscribers=Subscribers(engine, settings, mailer, templates, clock),
        digests=Digests(engine, settings, templates, mailer, mime, clock),
        bounces=Bounces(engine, settings, clock),
        access=Access(engine, settings, clock),
        feed_cache=FeedCache(engine, settings),
        pinger=Pinger(settings.feeds.websub_hub) if settings.feeds.websub_hub else None,
    )
