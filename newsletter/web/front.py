"""The front page, the archive by month and search: what readers browse."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from newsletter import articles
from newsletter.errors import InvalidInputError
from newsletter.models import utcnow
from newsletter.web.subscriptions import offer
from newsletter.web.templating import form_page, render

router = APIRouter()


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, before: str = "", after: str = "") -> Response:
    front = await run_in_threadpool(
        articles.front_page, request.app.state.engine, utcnow(), before=before, after=after
    )
    context = {
        "lead": front.lead,
        "page": front.page,
        "articles": front.page.stories,
        "paging_path": "/",
        "feed_path": "/feed",
        **await offer(request),
    }
    return form_page(request, "home.html", context)


@router.get("/archive", response_class=HTMLResponse)
async def archive(request: Request) -> Response:
    tz = request.app.state.settings.site.tz
    years = await run_in_threadpool(articles.archive_months, request.app.state.engine, tz, utcnow())
    return render(request, "archive.html", {"years": years, "feed_path": "/feed"})


@router.get("/archive/{year}/{month}", response_class=HTMLResponse)
async def archive_month(
    request: Request, year: str, month: str, before: str = "", after: str = ""
) -> Response:
    tz = request.app.state.settings.site.tz
    found = await run_in_threadpool(
        articles.month_page,
        request.app.state.engine,
        tz,
        year,
        month,
        utcnow(),
        before=before,
        after=after,
    )
    context = {
        "found": found,
        "page": found.page,
        "articles": found.page.stories,
        "paging_path": found.month.path,
        "feed_path": "/feed",
    }
    return render(request, "archive_month.html", context)


@router.get("/search", response_class=HTMLResponse)
async def search(request: Request, q: str = "", before: str = "") -> Response:
    try:
        results = await run_in_threadpool(
            articles.search, request.app.state.engine, q, utcnow(), before=before
        )
    except InvalidInputError as exc:
        refused: dict[str, object] = {"text": q[:200], "problem": exc.reason, "results": None}
        return render(request, "search.html", refused, status=422)
    context: dict[str, object] = {
        "text": results.text,
        "problem": None,
        "results": results,
        "page": results.page,
        "articles": results.page.stories,
    }
    return render(request, "search.html", context)
