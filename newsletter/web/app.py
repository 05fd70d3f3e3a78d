"""The ASGI application: routes over the services built by newsletter.services."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import sqlalchemy as sa
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp

from newsletter import services as composition
from newsletter.config import Settings
from newsletter.errors import NotFoundError, TokenError
from newsletter.feeds.cache import FeedCache
from newsletter.feeds.render import FORMATS
from newsletter.feeds.websub import Pinger
from newsletter.mail import Mailer
from newsletter.scheduler import DigestScheduler
from newsletter.web import digests, pages, subscriptions
from newsletter.web.feeds import FeedRoutes
from newsletter.web.templating import render

log = logging.getLogger(__name__)
POLL_SECONDS = 0.25  # how soon a change made by another process shows in feeds
LINK_TITLES = {"expired": "This link has expired", "used": "This link was already used"}


def create_app(
    settings: Settings,
    engine: sa.Engine | None = None,
    mailer: Mailer | None = None,
    run_scheduler: bool = False,
) -> ASGIApp:
    """The whole HTTP service. Opens (and migrates) the database unless `engine` is given;
    sends mail with the configured transport unless `mailer` is given; runs the digest
    scheduler and sender in the same process with `run_scheduler` (`newsletter serve`)."""
    services = composition.build(settings, engine, mailer)
    cache = services.feed_cache
    scheduler = (
        DigestScheduler(services.digests, settings.digests.sync_seconds, services.digests.clock)
        if run_scheduler
        else None
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(cache.refresh)
        task = asyncio.create_task(_watch(cache, services.pinger))
        if scheduler:
            await scheduler.start()
        try:
            yield
        finally:
            if scheduler:
                await scheduler.stop()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await services.aclose()

    app = FastAPI(
        title=settings.site.title,
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
        lifespan=lifespan,
    )
    app.state.services = services
    app.state.settings = settings
    app.state.engine = services.engine
    app.state.templates = services.templates
    app.state.subscribers = services.subscribers
    app.state.digests = services.digests
    app.state.feed_cache = cache
    app.state.pinger = services.pinger

    async def not_found(request: Request, exc: Exception) -> Response:
        return render(request, "error.html", {"message": str(exc), "status": 404}, status=404)

    async def bad_link(request: Request, exc: Exception) -> Response:
        """Every route taking a link from an email answers a bad one the same way."""
        assert isinstance(exc, TokenError)
        context: dict[str, object] = {
            "title": LINK_TITLES.get(exc.kind, "This link is not valid"),
            "message": str(exc),
        }
        return render(request, "message.html", context, status=400)

    app.add_exception_handler(NotFoundError, not_found)
    app.add_exception_handler(TokenError, bad_link)
    app.include_router(pages.router)
    app.include_router(subscriptions.router)
    app.include_router(digests.router)
    return FeedRoutes(app, cache, settings.feeds.max_age)


async def _watch(cache: FeedCache, pinger: Pinger | None) -> None:
    """Poll for changes made elsewhere; ping the WebSub hub for every feed that changed."""
    while True:
        try:
            changed = await run_in_threadpool(cache.refresh)
            changed |= cache.take_changes()
            if pinger and changed:
                pinger.ping(
                    cache.spec(ref).url(fmt) for ref in cache.refs_for(changed) for fmt in FORMATS
                )
        except Exception:  # keep watching: a database hiccup must not stop feed updates
            log.exception("feed refresh failed")
        await asyncio.sleep(POLL_SECONDS)
