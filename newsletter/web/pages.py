"""HTML pages readers see: article, tags, tag and author pages, the OPML list (the front
page, archive and search are in web.front)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from newsletter import articles
from newsletter.feeds.cache import FeedCache
from newsletter.feeds.specs import opml_document
from newsletter.models import utcnow
from newsletter.web import digests
from newsletter.web.templating import render

router = APIRouter()
PAGE_ITEMS = 30


@router.get("/healthz", include_in_schema=False)
async def healthz() -> Response:
    return JSONResponse({"status": "ok"})


@router.get("/articles/{slug}", response_class=HTMLResponse)
async def article_page(request: Request, slug: str) -> Response:
    article = await run_in_threadpool(
        articles.get_article, request.app.state.engine, slug, utcnow()
    )
    return render(request, "article.html", {"article": article})


@router.get("/tags", response_class=HTMLResponse)
async def tags_page(request: Request) -> Response:
    tags = await run_in_threadpool(articles.tags_with_counts, request.app.state.engine, utcnow())
    return render(request, "tags.html", {"tags": tags})


@router.get("/tags/{slug}", response_class=HTMLResponse)
async def tag_page(request: Request, slug: str) -> Response:
    listing = await run_in_threadpool(
        articles.tag_listing, request.app.state.engine, slug, PAGE_ITEMS, utcnow()
    )
    return render(request, "listing.html", {"listing": listing, "section": "tags"})


@router.get("/authors/{slug}", response_class=HTMLResponse)
async def author_page(request: Request, slug: str) -> Response:
    listing = await run_in_threadpool(
        articles.author_listing, request.app.state.engine, slug, PAGE_ITEMS, utcnow()
    )
    return render(request, "listing.html", {"listing": listing, "section": "authors"})


@router.get("/feeds.opml", include_in_schema=False)
async def feeds_opml(request: Request) -> Response:
    cache: FeedCache = request.app.state.feed_cache
    if cache.needs_refresh():
        await run_in_threadpool(cache.refresh)
    body = opml_document(cache.settings, cache.all_refs(), await digests.feed_outlines(request))
    return Response(body, media_type="text/x-opml; charset=utf-8")
