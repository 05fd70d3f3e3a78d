"""HTML pages readers see: home, article, health check."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from newsletter import articles
from newsletter.web.templating import render

router = APIRouter()
HOME_ITEMS = 30


@router.get("/healthz", include_in_schema=False)
async def healthz() -> Response:
    return JSONResponse({"status": "ok"})


@router.get("/", response_class=HTMLResponse)
async def home(request: Request) -> Response:
    recent = await run_in_threadpool(articles.recent, request.app.state.engine, HOME_ITEMS)
    return render(request, "home.html", {"articles": recent})


@router.get("/articles/{slug}", response_class=HTMLResponse)
async def article_page(request: Request, slug: str) -> Response:
    article = await run_in_threadpool(articles.get_article, request.app.state.engine, slug)
    return render(request, "article.html", {"article": article})
