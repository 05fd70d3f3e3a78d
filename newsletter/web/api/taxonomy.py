"""/api/v1 routes for tags and authors: list a page at a time, read, create, change. A
change reaches the feeds showing the tag or author, as `define_authors_and_tags` does."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from newsletter import articles
from newsletter.errors import InvalidInputError
from newsletter.models import utcnow
from newsletter.web.api.articles import Limit
from newsletter.web.api.schemas import EXISTS, NOT_FOUND, UNREADABLE, Cursor, query_error

router = APIRouter(tags=["taxonomy"])


class TagIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=300)
    slug: str | None = Field(
        None, max_length=200, description="Made from the name if left out; never changes."
    )
    description: str | None = Field(None, max_length=5000)


class TagPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=300, description="May not be null.")
    description: str | None = Field(None, max_length=5000, description="null clears it.")


class TagOut(BaseModel):
    slug: str
    name: str
    description: str
    articles: int = Field(description="Published articles with this tag.")


class TagPage(BaseModel):
    items: list[TagOut]
    next_cursor: str | None


class AuthorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=300)
    slug: str | None = Field(
        None, max_length=200, description="Made from the name if left out; never changes."
    )
    bio: str | None = Field(None, max_length=5000)
    url: str | None = Field(None, max_length=2000, description="An absolute http(s) URL.")


class AuthorPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=300, description="May not be null.")
    bio: str | None = Field(None, max_length=5000, description="null clears it.")
    url: str | None = Field(None, max_length=2000, description="null clears it.")


class AuthorOut(BaseModel):
    slug: str
    name: str
    bio: str
    url: str | None
    articles: int = Field(description="Published articles by this author.")


class AuthorPage(BaseModel):
    items: list[AuthorOut]
    next_cursor: str | None


def _tag(t: articles.TagCount) -> TagOut:
    return TagOut(slug=t.slug, name=t.name, description=t.description, articles=t.count)


def _author(a: articles.AuthorCount) -> AuthorOut:
    return AuthorOut(slug=a.slug, name=a.name, bio=a.bio, url=a.url, articles=a.count)


def _context(request: Request) -> articles.ImportContext:
    return articles.ImportContext.from_settings(request.app.state.settings)


# ------------------------------------------------------------------------------- tags


@router.get("/tags", response_model=TagPage, status_code=200)
async def list_tags(request: Request, limit: Limit = 20, cursor: Cursor = None) -> TagPage:
    """Tags by name, a page at a time."""
    now: datetime = utcnow()
    try:
        page = await run_in_threadpool(
            articles.list_tags, request.app.state.engine, now, limit, cursor
        )
    except InvalidInputError as exc:
        raise query_error(exc) from None
    return TagPage(items=[_tag(t) for t in page.items], next_cursor=page.next_cursor)


@router.get("/tags/{slug}", response_model=TagOut, status_code=200, responses=NOT_FOUND)
async def get_tag(request: Request, slug: str) -> TagOut:
    return _tag(await run_in_threadpool(articles.get_tag, request.app.state.engine, slug, utcnow()))


@router.post("/tags", response_model=TagOut, status_code=201, responses={**EXISTS, **UNREADABLE})
async def create_tag(request: Request, response: Response, body: TagIn) -> TagOut:
    """Create a tag. 409 when its slug is taken."""
    fields = body.model_dump(exclude_none=True)
    tag = await run_in_threadpool(articles.create_tag, request.app.state.engine, fields, utcnow())
    response.headers["Location"] = f"/api/v1/tags/{quote(tag.slug)}"
    return _tag(tag)


@router.patch(
    "/tags/{slug}", response_model=TagOut, status_code=200, responses={**NOT_FOUND, **UNREADABLE}
)
async def update_tag(request: Request, slug: str, body: TagPatch) -> TagOut:
    """Rename a tag or change its description; its slug stays."""
    changes = body.model_dump(exclude_unset=True)
    tag = await run_in_threadpool(
        articles.update_tag, request.app.state.engine, slug, changes, utcnow()
    )
    return _tag(tag)


# ---------------------------------------------------------------------------- authors


@router.get("/authors", response_model=AuthorPage, status_code=200)
async def list_authors(request: Request, limit: Limit = 20, cursor: Cursor = None) -> AuthorPage:
    """Authors by name, a page at a time."""
    try:
        page = await run_in_threadpool(
            articles.list_authors, request.app.state.engine, utcnow(), limit, cursor
        )
    except InvalidInputError as exc:
        raise query_error(exc) from None
    return AuthorPage(items=[_author(a) for a in page.items], next_cursor=page.next_cursor)


@router.get("/authors/{slug}", response_model=AuthorOut, status_code=200, responses=NOT_FOUND)
async def get_author(request: Request, slug: str) -> AuthorOut:
    found = await run_in_threadpool(articles.get_author, request.app.state.engine, slug, utcnow())
    return _author(found)


@router.post(
    "/authors", response_model=AuthorOut, status_code=201, responses={**EXISTS, **UNREADABLE}
)
async def create_author(request: Request, response: Response, body: AuthorIn) -> AuthorOut:
    """Create an author. 409 when the slug is taken."""
    found = await run_in_threadpool(
        articles.create_author,
        request.app.state.engine,
        _context(request),
        body.model_dump(exclude_none=True),
        utcnow(),
    )
    response.headers["Location"] = f"/api/v1/authors/{quote(found.slug)}"
    return _author(found)


@router.patch(
    "/authors/{slug}",
    response_model=AuthorOut,
    status_code=200,
    responses={**NOT_FOUND, **UNREADABLE},
)
async def update_author(request: Request, slug: str, body: AuthorPatch) -> AuthorOut:
    """Change an author's name, bio or url; the slug stays."""
    found = await run_in_threadpool(
        articles.update_author,
        request.app.state.engine,
        _context(request),
        slug,
        body.model_dump(exclude_unset=True),
        utcnow(),
    )
    return _author(found)
