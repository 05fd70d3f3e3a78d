"""/api/v1 routes for articles: list with filters a page at a time, read, create, change,
publish, unpublish, delete. Each route calls one use case of newsletter.articles, the
same ones the CLI and the admin pages call."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from newsletter import articles
from newsletter.errors import InvalidInputError
from newsletter.models import ArticleStatus, ArticleView, utcnow
from newsletter.web.api.schemas import EXISTS, NOT_FOUND, UNREADABLE, Cursor, query_error

router = APIRouter(tags=["articles"])


DATE_TIME: JsonDict = {"format": "date-time", "examples": ["2024-05-01T09:30:00+07:00"]}
Limit = Annotated[int, Query(ge=1, le=articles.MAX_LIMIT, description="Items per page.")]


# ------------------------------------------------------------------------------ bodies


class AuthorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=300, description="Shown as the byline.")
    slug: str | None = Field(None, max_length=200, description="Made from the name if left out.")
    bio: str | None = Field(None, max_length=5000)
    url: str | None = Field(None, max_length=2000, description="An absolute http(s) URL.")


class ArticleFields(BaseModel):
    """The fields of an import record (see `newsletter articles import`), checked the
    same way: plain-text title, sanitised HTML body, absolute URLs, ISO 8601 dates (one
    without an offset is in the site's time zone)."""

    model_config = ConfigDict(extra="forbid")

    slug: str | None = Field(
        None, max_length=200, description="Lowercase letters, digits, hyphens."
    )
    summary: str | None = Field(None, description="Plain text; made from the body if empty.")
    body: str | None = Field(None, description="HTML (sanitised); or give body_markdown.")
    body_markdown: str | None = Field(None, description="Markdown, instead of body.")
    author: str | AuthorIn | None = Field(None, description="A name, or an author object.")
    tags: list[Annotated[str, Field(max_length=200)]] | None = Field(
        None, max_length=100, description="Tag names; a new name creates the tag."
    )
    published_at: str | None = Field(None, json_schema_extra=DATE_TIME)
    updated_at: str | None = Field(None, json_schema_extra=DATE_TIME)
    url: str | None = Field(
        None, max_length=2000, description="The article's own URL, if it lives elsewhere."
    )
    image: str | None = Field(None, max_length=2000)
    status: ArticleStatus | None = Field(None, description="Default: published.")


class ArticleIn(ArticleFields):
    title: str = Field(max_length=1000)
    guid: str | None = Field(
        None, max_length=2000, description="Stable forever; made from the slug if left out."
    )


class ArticlePatch(ArticleFields):
    """Only the fields given change. null clears summary, body, url, image, author, tags."""

    title: str | None = Field(None, max_length=1000)


# ---------------------------------------------------------------------------- answers


class AuthorRef(BaseModel):
    slug: str
    name: str


class TagRef(BaseModel):
    slug: str
    name: str


class ArticleItem(BaseModel):
    guid: str
    slug: str
    title: str
    summary: str
    link: str = Field(description="Where readers find it: its own URL, else its page here.")
    url: str | None
    image: str | None
    author: AuthorRef | None
    tags: list[TagRef]
    status: ArticleStatus
    state: articles.ArticleState = Field(
        description="draft, published, or scheduled (published with a future date)."
    )
    published_at: datetime | None
    updated_at: datetime


class ArticleOut(ArticleItem):
    body_html: str


class ArticlePage(BaseModel):
    items: list[ArticleItem]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: last.")


def _fields(view: ArticleView, request: Request, now: datetime) -> dict[str, Any]:
    return {
        "guid": view.guid,
        "slug": view.slug,
        "title": view.title,
        "summary": view.summary,
        "link": view.link(request.app.state.settings.base_url),
        "url": view.url,
        "image": view.image,
        "author": AuthorRef(slug=view.author.slug, name=view.author.name) if view.author else None,
        "tags": [TagRef(slug=t.slug, name=t.name) for t in view.tags],
        "status": view.status,
        "state": articles.state_of(view, now),
        "published_at": view.published_at,
        "updated_at": view.updated_at,
    }


def _out(view: ArticleView, request: Request) -> ArticleOut:
    return ArticleOut(**_fields(view, request, utcnow()), body_html=view.body_html)


def _context(request: Request) -> articles.ImportContext:
    return articles.ImportContext.from_settings(request.app.state.settings)


def _record(body: BaseModel, *, patch: bool) -> dict[str, Any]:
    """The body as an import record: fields left out are absent; for a change, null stays
    (it clears the field), nested nulls go."""
    record = body.model_dump(exclude_unset=True)
    if isinstance(record.get("author"), dict):
        record["author"] = {k: v for k, v in record["author"].items() if v is not None}
    if not patch:
        record = {k: v for k, v in record.items() if v is not None}
    if isinstance(record.get("status"), ArticleStatus):
        record["status"] = record["status"].value
    return record


# ----------------------------------------------------------------------------- routes


@router.get("/articles", response_model=ArticlePage, status_code=200)
async def list_articles(
    request: Request,
    limit: Limit = 20,
    cursor: Cursor = None,
    status: Annotated[
        articles.ArticleState | None,
        Query(description="draft, published (and due), or scheduled (dated in the future)."),
    ] = None,
    tag: Annotated[str | None, Query(max_length=200, description="A tag's slug.")] = None,
    author: Annotated[str | None, Query(max_length=200, description="An author's slug.")] = None,
    q: Annotated[str, Query(max_length=200, description="Text in the title.")] = "",
) -> ArticlePage:
    """Articles of every status, newest first (by publication date, else creation date),
    a page at a time."""
    now = utcnow()
    try:
        page = await run_in_threadpool(
            lambda: articles.find_articles(
                request.app.state.engine,
                now,
                state=status,
                tag=tag,
                author=author,
                q=q,
                limit=limit,
                cursor=cursor,
            )
        )
    except InvalidInputError as exc:
        raise query_error(exc) from None
    items = [ArticleItem(**_fields(v, request, now)) for v in page.items]
    return ArticlePage(items=items, next_cursor=page.next_cursor)


@router.get("/articles/{slug}", response_model=ArticleOut, status_code=200, responses=NOT_FOUND)
async def get_article(request: Request, slug: str) -> ArticleOut:
    """One article, whatever its status."""
    view = await run_in_threadpool(articles.load_article, request.app.state.engine, slug)
    return _out(view, request)


@router.post(
    "/articles", response_model=ArticleOut, status_code=201, responses={**EXISTS, **UNREADABLE}
)
async def create_article(request: Request, response: Response, body: ArticleIn) -> ArticleOut:
    """Create one article from the fields of an import record. 409 when its slug (given)
    or guid belongs to another article; a slug made from the title moves to a free one."""
    caller = getattr(request.state, "caller", None)
    source = f"api:{caller.name}" if caller else "api:"
    view = await run_in_threadpool(
        articles.create_article,
        request.app.state.engine,
        _context(request),
        _record(body, patch=False),
        utcnow(),
        source,
    )
    response.headers["Location"] = f"/api/v1/articles/{quote(view.slug)}"
    return _out(view, request)


@router.patch(
    "/articles/{slug}",
    response_model=ArticleOut,
    status_code=200,
    responses={**NOT_FOUND, **EXISTS, **UNREADABLE},
)
async def update_article(request: Request, slug: str, body: ArticlePatch) -> ArticleOut:
    """Change the fields given, checked as an import checks them; the guid never changes."""
    view = await run_in_threadpool(
        articles.update_article,
        request.app.state.engine,
        _context(request),
        slug,
        _record(body, patch=True),
        utcnow(),
    )
    return _out(view, request)


@router.post(
    "/articles/{slug}/publish", response_model=ArticleOut, status_code=200, responses=NOT_FOUND
)
async def publish_article(request: Request, slug: str) -> ArticleOut:
    """Publish (keeping its date if it has one: a future date makes it scheduled)."""
    view = await run_in_threadpool(articles.publish, request.app.state.engine, slug, utcnow())
    return _out(view, request)


@router.post(
    "/articles/{slug}/unpublish", response_model=ArticleOut, status_code=200, responses=NOT_FOUND
)
async def unpublish_article(request: Request, slug: str) -> ArticleOut:
    """Make it a draft again: it leaves the site and the feeds."""
    view = await run_in_threadpool(articles.unpublish, request.app.state.engine, slug, utcnow())
    return _out(view, request)


@router.delete("/articles/{slug}", status_code=204, response_class=Response, responses=NOT_FOUND)
async def delete_article(request: Request, slug: str) -> Response:
    """Delete for good."""
    await run_in_threadpool(articles.delete, request.app.state.engine, slug, utcnow())
    return Response(status_code=204)
