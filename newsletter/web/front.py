"""The front page (and, next, the archive and search)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from newsletter import articles
from newsletter.models import utcnow
from newsletter.web.subscriptions import offer
from newsletter.web.templating import form_page

router = APIRouter()
PAGE_ITEMS = 30


@router.get("/", response_class=HTMLResponse)
async def home(request: Request) -> Response:
    recent = await run_in_threadpool(
        articles.recent, request.app.state.engine, PAGE_ITEMS, utcnow()
    )
    context = {"articles": recent, "feed_path": "/feed", **await offer(request)}
    return form_page(request, "home.html", context)
