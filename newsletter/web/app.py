"""The ASGI application: routes over the services built by newsletter.services."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp

from newsletter import services as composition
from newsletter.config import Settings
from newsletter.errors import NewsletterError, NotFoundError, TokenError
from newsletter.feeds.cache import FeedCache
from newsletter.feeds.render import FORMATS
from newsletter.feeds.websub import Pinger
from newsletter.mail import Mailer
from newsletter.scheduler import DigestScheduler
from newsletter.storage.retry import RETRY_AFTER, is_busy
from newsletter.web import (
    admin,
    api,
    digests,
    error_pages,
    front,
    metrics,
    pages,
    seo,
    subscriptions,
    webhooks,
)
from newsletter.web.admin.common import FormExpired, LoginRequired, login_redirect
from newsletter.web.admin.login import LoginLimits
from newsletter.web.api import errors as api_errors
from newsletter.web.feeds import FeedRoutes
from newsletter.web.head import HeadAsGet
from newsletter.web.limits import RequestLimits, validation_failed
from newsletter.web.templating import render

log = logging.getLogger(__name__)
POLL_SECONDS = 0.25  # how soon a change made by another process shows in feeds
LINK_TITLES = {"expired": "This link has expired", "used": "This link was already used"}


def create_app(
    settings: Settings,
    engine: sa.Engine | None = None,
    mailer: Mailer | None = None,
    run_scheduler: bool = False,
    run_worker: bool = True,
) -> ASGIApp:
    """The whole HTTP service. Opens (and migrates) the database unless `engine` is given;
    sends mail with the configured transport unless `mailer` is given; runs the digest
    scheduler in the same process with `run_scheduler` (`newsletter serve`), and with it a
    sender unless `run_worker` is False (runs are then left to `newsletter worker`)."""
    services = composition.build(settings, engine, mailer)
    cache = services.feed_cache
    scheduler = (
        DigestScheduler(
            services.digests,
            settings.digests.sync_seconds,
            services.digests.clock,
            bounces=services.bounces,
            send=run_worker,
        )
        if run_scheduler
        else None
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(cache.refresh)
        task = asyncio.create_task(_watch(cache, services.pinger))
        # sign-ups are answered at once and worked off here: confirmations leave from a queue
        signups = asyncio.create_task(services.subscribers.signups.run())
        if scheduler:
            await scheduler.start()
        try:
            yield
        finally:
            if scheduler:
                await scheduler.stop()
            task.cancel()
            signups.cancel()
            await asyncio.wait([signups], timeout=10)
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await services.aclose()

    app = FastAPI(
        title=settings.site.title,
        description="The editors' JSON API. Every route under /api/v1 but /api/v1/subscribe "
        "needs `Authorization: Bearer <token>` (`newsletter tokens create NAME --scope "
        "read|write`); read tokens may only GET.",
        version="1",
        docs_url="/api/v1/docs",
        openapi_url="/api/v1/openapi.json",
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
        assert isinstance(exc, NotFoundError)
        if api_errors.is_api(request):
            return api_errors.answer(request, exc)
        return error_pages.error_page(request, 404, f"Sorry, we found {exc}.")

    async def refused(request: Request, exc: Exception) -> Response:
        """A use case refused its input (or found a duplicate, or a rate limit) and no
        route caught it: JSON with the field under /api/, a page elsewhere."""
        assert isinstance(exc, NewsletterError)
        if api_errors.is_api(request):
            return api_errors.answer(request, exc)
        return render(request, "message.html", {"title": "Not done", "message": str(exc)}, 400)

    async def login_required(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LoginRequired)
        return login_redirect(exc.next_path)

    async def form_expired(request: Request, exc: Exception) -> Response:
        message = "The form expired or came from elsewhere; go back, reload and send it again."
        return render(request, "message.html", {"title": "Form expired", "message": message}, 403)

    async def bad_link(request: Request, exc: Exception) -> Response:
        """Every route taking a link from an email answers a bad one the same way."""
        assert isinstance(exc, TokenError)
        context: dict[str, object] = {
            "title": LINK_TITLES.get(exc.kind, "This link is not valid"),
            "message": str(exc),
        }
        return render(request, "message.html", context, status=400)

    # unknown paths, refused methods and failures: the site's page, JSON under /api/
    app.add_exception_handler(HTTPException, error_pages.http_error)
    app.add_exception_handler(Exception, error_pages.server_error)
    app.add_exception_handler(NotFoundError, not_found)
    app.add_exception_handler(TokenError, bad_link)
    app.add_exception_handler(NewsletterError, refused)
    app.add_exception_handler(LoginRequired, login_required)
    app.add_exception_handler(FormExpired, form_expired)
    # the database stayed busy through the use case's retries: 503, never a 500 (issue #9)
    app.add_exception_handler(sa.exc.OperationalError, database_busy)
    # a 422 names what is wrong, bounded, and never echoes the input (issue #9)
    app.add_exception_handler(RequestValidationError, validation_failed)
    # body and header caps (413, 431) in front of every route; feeds read no body
    app.add_middleware(RequestLimits)
    # HEAD wherever GET works: FastAPI's GET routes would answer it 405 (feeds, in front of
    # all this, answer HEAD themselves)
    app.add_middleware(HeadAsGet)
    # the OpenAPI schema documents the JSON API; pages, feeds and webhooks stay out of it
    app.include_router(front.router, include_in_schema=False)
    app.include_router(pages.router, include_in_schema=False)
    app.include_router(seo.router, include_in_schema=False)
    app.include_router(subscriptions.router)  # its pages say include_in_schema=False
    app.include_router(digests.router, include_in_schema=False)
    # POST /webhooks/{ses,mailgun,postmark,sendgrid}
    app.include_router(webhooks.router, include_in_schema=False)
    app.include_router(metrics.router)  # GET /metrics, for [metrics] allow only
    app.include_router(api.router)  # /api/v1: bearer tokens
    app.include_router(admin.router)  # /admin: editors' sessions
    app.state.login_limits = LoginLimits()
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


async def database_busy(request: Request, exc: Exception) -> Response:
    """503 with Retry-After when the database stayed busy (locked, a serialization failure
    or a deadlock) through every retry: nothing was stored, and the same request may work
    a moment later. JSON under /api/, a page elsewhere. Other database errors stay 500."""
    if not is_busy(exc):
        raise exc
    route = getattr(request.scope.get("route"), "path", "?")  # the template: no token logged
    log.warning("%s %s: database busy, answered 503", request.method, route)
    headers = {"Retry-After": str(RETRY_AFTER)}
    message = "We are busy right now. Please try again in a moment."
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": message}, status_code=503, headers=headers)
    response = render(request, "message.html", {"title": "Busy", "message": message}, 503)
    response.headers.update(headers)
    return response
