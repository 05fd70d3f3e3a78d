"""Application wiring: one place that builds the engine, caches, templates and routes."""

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

from newsletter.config import Settings
from newsletter.database import open_database
from newsletter.errors import NotFoundError
from newsletter.feed_cache import FeedCache
from newsletter.feeds import FORMATS
from newsletter.mailer import Mailer, make_mailer
from newsletter.resources import template_environment
from newsletter.subscribers import Subscribers
from newsletter.web import pages, subscriptions
from newsletter.web.feeds import FeedRoutes
from newsletter.web.templating import render
from newsletter.websub import Pinger

log = logging.getLogger(__name__)
POLL_SECONDS = 0.25  # how soon a change made by another process shows in feeds


def create_app(
    settings: Settings, engine: sa.Engine | None = None, mailer: Mailer | None = None
) -> ASGIApp:
    """The whole HTTP service. Opens (and migrates) the database unless `engine` is given;
    sends mail with the configured transport unless `mailer` is given."""
    engine = engine or open_database(settings.database_url)
    mailer = mailer or make_mailer(settings)
    templates = template_environment(settings)
    service = Subscribers(engine, settings, mailer, templates)
    cache = FeedCache(engine, settings)
    pinger = Pinger(settings.feeds.websub_hub) if settings.feeds.websub_hub else None

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(cache.refresh)
        await run_in_threadpool(service.offer_digests)  # creates the default digest once
        task = asyncio.create_task(_watch(cache, pinger))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if pinger:
                await pinger.close()
            await mailer.close()

    app = FastAPI(
        title=settings.site.title,
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.templates = templates
    app.state.subscribers = service
    app.state.feed_cache = cache
    app.state.pinger = pinger

    async def not_found(request: Request, exc: Exception) -> Response:
        return render(request, "error.html", {"message": str(exc), "status": 404}, status=404)

    app.add_exception_handler(NotFoundError, not_found)
    app.include_router(pages.router)
    app.include_router(subscriptions.router)
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
