"""/admin/articles: every article in a table, filtered by tag, author and status, a page
at a time, with a Publish or Unpublish button per row (plain forms, POST then 303)."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from newsletter import articles
from newsletter.errors import InvalidInputError, NotFoundError
from newsletter.models import utcnow
from newsletter.web.admin.common import checked_form, page, redirect, services

router = APIRouter()
PAGE_SIZE = 25
FILTERS = ("tag", "author", "status")


def _filters(request: Request) -> dict[str, str]:
    """The filters of this request that are set, as the page's links carry them."""
    found = {name: request.query_params.get(name, "").strip() for name in FILTERS}
    return {name: value[:200] for name, value in found.items() if value}


def _list_path(filters: dict[str, str], cursor: str | None = None) -> str:
    query = {**filters, **({"cursor": cursor} if cursor else {})}
    return "/admin/articles" + (f"?{urlencode(query)}" if query else "")


@router.get("/articles")
async def articles_page(request: Request) -> Response:
    filters = _filters(request)
    cursor = request.query_params.get("cursor") or None
    try:
        state = articles.ArticleState(filters["status"]) if "status" in filters else None
    except ValueError:
        return redirect(_list_path({k: v for k, v in filters.items() if k != "status"}))
    engine = services(request).engine
    now = utcnow()
    try:
        found = await run_in_threadpool(
            lambda: articles.find_articles(
                engine,
                now,
                state=state,
                tag=filters.get("tag"),
                author=filters.get("author"),
                limit=PAGE_SIZE,
                cursor=cursor,
            )
        )
    except InvalidInputError:
        return redirect(_list_path(filters), "That page link is out of date; here is the newest.")
    tags, authors = await run_in_threadpool(articles.filter_choices, engine)
    rows = [(view, articles.state_of(view, now)) for view in found.items]
    context = {
        "rows": rows,
        "tags": tags,
        "authors": authors,
        "states": list(articles.ArticleState),
        "filters": filters,
        "here": _list_path(filters, cursor),
        "first_page": _list_path(filters) if cursor else None,
        "older": _list_path(filters, found.next_cursor) if found.next_cursor else None,
    }
    return page(request, "admin/articles.html", context)


def _back(value: str) -> str:
    """Only the list itself: a form must not send the editor elsewhere."""
    if value.startswith("/admin/articles") and "\\" not in value and "//" not in value:
        return value
    return "/admin/articles"


@router.post("/articles/{slug}/publish")
async def publish(request: Request, slug: str) -> Response:
    return await _set_status(request, slug, publish=True)


@router.post("/articles/{slug}/unpublish")
async def unpublish(request: Request, slug: str) -> Response:
    return await _set_status(request, slug, publish=False)


async def _set_status(request: Request, slug: str, *, publish: bool) -> Response:
    form = await checked_form(request)
    back = _back(str(form.get("back") or ""))
    use_case = articles.publish if publish else articles.unpublish
    try:
        view = await run_in_threadpool(use_case, services(request).engine, slug, utcnow())
    except NotFoundError:
        return redirect(back, f"There is no article {slug[:200]!r} any more.")
    state = articles.state_of(view, utcnow())
    done = {"draft": "is a draft again", "scheduled": "is scheduled"}.get(state, "is published")
    return redirect(back, f"“{view.title[:200]}” {done}.")
