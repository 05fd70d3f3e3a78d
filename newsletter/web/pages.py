"""HTML pages readers see: article, tags, tag and author pages, the OPML list (the front
page, archive and search are in web.front)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from newsletter import articles
from newsletter.feeds.cache import FeedCache
from newsletter.feeds.specs import opml_document
from newsletter.models import utcnow
from newsletter.text import foreign_language
from newsletter.web import digests, seo
from newsletter.web.subscriptions import offer
from newsletter.web.templating import form_page, render

router = APIRouter()
PAGE_ITEMS = 30


@router.get("/healthz", include_in_schema=False)
async def healthz() -> Response:
    return JSONResponse({"status": "ok"})


@router.get("/articles/{slug}", response_class=HTMLResponse)
async def article_page(request: Request, slug: str) -> Response:
    page = await run_in_threadpool(articles.article_page, request.app.state.engine, slug, utcnow())
    article = page.article
    settings = request.app.state.settings
    url = article.link(settings.base_url)
    # the sign-up box offers the digests whose issues would carry this story, and its
    # topics as the optional narrowing
    signup = await offer(request)
    signup["digests"] = [d for d in signup["digests"] if d[0] in page.digests]
    topics = {t.slug for t in article.tags}
    signup["tags"] = [t for t in signup["tags"] if t.slug in topics]
    context = {
        **signup,
        "page": page,
        "article": article,
        "url": url,
        "structured_data": seo.news_article(article, url, settings, page.words),
        **_lang(request),
    }
    return form_page(request, "article.html", context)


@router.get("/tags", response_class=HTMLResponse)
async def tags_page(request: Request) -> Response:
    tags = await run_in_threadpool(articles.tags_with_counts, request.app.state.engine, utcnow())
    return render(request, "tags.html", {"tags": tags, **_lang(request)})


@router.get("/tags/{slug}", response_class=HTMLResponse)
async def tag_page(request: Request, slug: str) -> Response:
    listing = await run_in_threadpool(
        articles.tag_listing, request.app.state.engine, slug, PAGE_ITEMS, utcnow()
    )
    context = {"listing": listing, "section": "tags", **_lang(request)}
    return render(request, "listing.html", context)


@router.get("/authors/{slug}", response_class=HTMLResponse)
async def author_page(request: Request, slug: str) -> Response:
    listing = await run_in_threadpool(
        articles.author_listing, request.app.state.engine, slug, PAGE_ITEMS, utcnow()
    )
    context = {"listing": listing, "section": "authors", **_lang(request)}
    return render(request, "listing.html", context)


def _lang(request: Request) -> dict[str, Callable[[str], str | None]]:
    """`lang(text)`: the language a `lang` attribute should give an element holding `text`,
    when its script says it is not in the site's language (None otherwise)."""
    language = request.app.state.settings.site.language
    return {"lang": partial(foreign_language, site_language=language)}


@router.get("/feeds.opml", include_in_schema=False)
async def feeds_opml(request: Request) -> Response:
    cache: FeedCache = request.app.state.feed_cache
    if cache.needs_refresh():
        await run_in_threadpool(cache.refresh)
    body = opml_document(cache.settings, cache.all_refs(), await digests.feed_outlines(request))
    return Response(body, media_type="text/x-opml; charset=utf-8")


@router.get("/feeds", response_class=HTMLResponse)
async def feeds_page(request: Request) -> Response:
    """Feeds explained for readers new to them, and every feed of the site listed (what
    /feeds.opml lists, with each feed's three formats)."""
    from newsletter.web.feed_list import feed_list  # kept beside its one route

    cache: FeedCache = request.app.state.feed_cache
    if cache.needs_refresh():
        await run_in_threadpool(cache.refresh)
    found = feed_list(cache.settings, cache.all_refs(), await digests.feed_outlines(request))
    return render(request, "feeds.html", {"feeds": found, "feed_path": "/feed"})
