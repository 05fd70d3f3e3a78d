"""The editors' tools on articles, for the JSON API and the admin pages: browse with
filters a page at a time, create and edit one article, and list, create and edit tags and
authors. Imports and the CLI go through service.py; both write articles with its `_fill`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlmodel import Session

from newsletter import cursors, storage
from newsletter.articles.service import TagCount, _fill, _free_slug, _save_author, _save_tag
from newsletter.articles.validate import (
    FIELDS,
    ArticleInput,
    AuthorInput,
    ImportContext,
    stable_guid,
    validate,
)
from newsletter.errors import DuplicateError, InvalidInputError, NotFoundError, RecordError
from newsletter.feeds import invalidation
from newsletter.models import Article, ArticleStatus, ArticleView, Author, AuthorView, Tag, TagView
from newsletter.storage.retry import retry_on_busy, retrying
from newsletter.text import derive_summary, has_forbidden_chars, plain_text, slugify

MAX_LIMIT = 100  # items of one page of a list
MAX_CURSOR = 600  # characters; every cursor given out is far shorter
WHERE = "request body"  # what a RecordError from the editors' tools says of its origin
NOT_EMPTY = "may not be empty; leave it out to keep the current value"
T = TypeVar("T")
Named = TypeVar("Named", Tag, Author)  # what a page by name lists
Counted = TypeVar("Counted")


class ArticleState(StrEnum):
    """What an editor sees of an article: published and dated in the future is scheduled."""

    draft = "draft"
    published = "published"
    scheduled = "scheduled"


def state_of(view: ArticleView, now: datetime) -> ArticleState:
    if view.status != ArticleStatus.published:
        return ArticleState.draft
    if view.published_at is not None and view.published_at > now:
        return ArticleState.scheduled
    return ArticleState.published


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list and the cursor of the next one (None on the last page)."""

    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True)
class AuthorCount:
    slug: str
    name: str
    bio: str
    url: str | None
    count: int


def _cursor(text: str, ident: int) -> str:
    """An opaque cursor for the position after (text, ident) of a list's order."""
    return cursors.encode(text, ident)


def _read_cursor(cursor: str) -> tuple[str, int]:
    """The position a cursor from `_cursor` holds; InvalidInputError on "cursor" otherwise
    (also for text no database could be asked about)."""
    bad = InvalidInputError(
        "cursor", "is not a cursor this list gave out; leave it out to start at the first page"
    )
    key = cursors.decode(cursor, MAX_CURSOR)
    if (
        key is None
        or len(key) != 2
        or not isinstance(key[0], str)
        or not storage.storable(key[0])
        or type(key[1]) is not int
        or not 0 < key[1] < 2**63
    ):
        raise bad
    return key[0], key[1]


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInputError("limit", f"must be between 1 and {MAX_LIMIT}")


def find_articles(
    engine: sa.Engine,
    now: datetime,
    *,
    state: ArticleState | None = None,
    tag: str | None = None,
    author: str | None = None,
    q: str = "",
    limit: int = 20,
    cursor: str | None = None,
) -> Page[ArticleView]:
    """Articles of any status matching every filter given (tag and author by slug, `q` in
    the title), newest first by publication date (creation date for one never published),
    then by id. `cursor` continues where the page that gave it ended. An unknown tag or
    author matches nothing. InvalidInputError on "cursor", "limit" or "q"."""
    _check_limit(limit)
    before: tuple[datetime, int] | None = None
    if cursor:
        text, ident = _read_cursor(cursor)
        try:
            at = datetime.fromisoformat(text)
        except ValueError:
            at = None
        if at is None or at.tzinfo is None:
            raise InvalidInputError("cursor", "is not a cursor of the article list")
        before = (at, ident)
    q = q.strip()
    if has_forbidden_chars(q) or len(q) > 200:
        raise InvalidInputError("q", "must be at most 200 characters, without control characters")
    filters: dict[str, Any] = {}
    if state == ArticleState.draft:
        filters["status"] = ArticleStatus.draft
    elif state == ArticleState.published:
        filters.update(status=ArticleStatus.published, due_by=now)
    elif state == ArticleState.scheduled:
        filters.update(status=ArticleStatus.published, scheduled_after=now)
    with Session(engine) as session:
        if tag:
            found_tag = storage.tag_by_slug(session, tag)
            if found_tag is None:
                return Page([], None)
            filters["tag_id"] = found_tag.id
        if author:
            found_author = storage.author_by_slug(session, author)
            if found_author is None:
                return Page([], None)
            filters["author_id"] = found_author.id
        rows = storage.find_articles(
            session, limit=limit + 1, title_contains=q, before=before, **filters
        )
        items = storage.views(session, rows[:limit])
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        assert last.id is not None
        next_cursor = _cursor((last.published_at or last.created_at).isoformat(), last.id)
    return Page(items, next_cursor)


def load_article(engine: sa.Engine, slug: str) -> ArticleView:
    """The article `slug` whatever its status (editors see drafts); NotFoundError."""
    with Session(engine) as session:
        view = storage.article_view(session, slug)
    if view is None:
        raise NotFoundError("article", slug)
    return view


def create_article(
    engine: sa.Engine,
    ctx: ImportContext,
    record: Mapping[str, Any],
    now: datetime,
    source: str = "",
) -> ArticleView:
    """Store one new article from a record with the fields and checks of an import.

    Raises RecordError (an InvalidInputError naming the field) for a bad record and
    DuplicateError when its slug or guid belongs to an article already; a slug derived
    from the title or URL moves to a free variant instead, as imports do. The feeds it
    appears in get a new version. `source` is recorded as the article's origin."""
    parsed = validate(record, WHERE, ctx)
    for attempt in (1, 2, 3):
        try:
            return retrying(lambda: _create(engine, ctx.base_url, parsed, now, source))
        except sa.exc.IntegrityError:
            # another writer stored the same slug or guid (or a new tag) between our look-up
            # and our insert: the next try finds it and says which
            if attempt == 3:
                raise DuplicateError("article", parsed.slug) from None
    raise AssertionError("unreachable")  # pragma: no cover


def _create(
    engine: sa.Engine, base_url: str, parsed: ArticleInput, now: datetime, source: str
) -> ArticleView:
    with Session(engine) as session:
        if parsed.guid and storage.article_by_guid(session, parsed.guid):
            raise DuplicateError("article with guid", parsed.guid[:200])
        slug = parsed.slug
        if storage.slug_taken(session, slug, None):
            if parsed.slug_given:
                raise DuplicateError("article", slug)
            free = _free_slug(session, slug, None)
            if free is None:
                raise InvalidInputError("slug", f"no free variant of {slug!r}; give a slug")
            slug = free
        guid = parsed.guid or stable_guid(base_url, slug)
        if storage.article_by_guid(session, guid):
            raise DuplicateError("article with guid", guid)
        article = Article(guid=guid, slug=slug, title=parsed.title, created_at=now, source=source)
        session.add(article)
        touched = _fill(session, article, parsed, slug, now, created=True)
        invalidation.stamp(session, touched, now)
        session.commit()
        view = storage.article_view(session, slug)
    assert view is not None
    return view


def update_article(
    engine: sa.Engine,
    ctx: ImportContext,
    slug: str,
    changes: Mapping[str, Any],
    now: datetime,
) -> ArticleView:
    """Change the fields in `changes` of the article `slug` (any record field but guid,
    which never changes), checked as an import checks them; the others stay as they are.
    None clears an optional field (summary, body, url, image, author, tags); title, slug,
    status and the dates cannot be cleared. Nothing is written, and updated_at does not
    move, when nothing changes; otherwise the feeds it was and is in get a new version.

    The article's import fingerprint is kept: an unchanged source record imported again
    leaves the editor's changes alone, a changed one brings its own version.
    Raises NotFoundError, DuplicateError (the new slug is taken), InvalidInputError."""
    unknown = sorted(str(k) for k in set(changes) - FIELDS)
    if unknown:
        raise InvalidInputError(unknown[0], "unknown field")
    if "guid" in changes:
        raise InvalidInputError("guid", "an article's guid never changes")
    for name in ("title", "slug", "status", "published_at", "updated_at"):
        if name in changes and changes[name] in (None, ""):
            raise InvalidInputError(name, NOT_EMPTY)
    return retrying(lambda: _update(engine, ctx, slug, changes, now))


def _update(
    engine: sa.Engine, ctx: ImportContext, slug: str, changes: Mapping[str, Any], now: datetime
) -> ArticleView:
    with Session(engine) as session:
        article = storage.article_by_slug(session, slug)
        view = storage.article_view(session, slug)
        if article is None or view is None:
            raise NotFoundError("article", slug)
        # the record validated holds what the changes need to be judged (the title is
        # required, the URL resolves relative links); only the changed fields are taken
        record: dict[str, Any] = {"title": article.title, "url": article.url}
        for name, value in changes.items():
            if value is None:
                record.pop(name, None)
            else:
                record[name] = value
        parsed = validate(record, WHERE, ctx)
        current = ArticleInput(
            guid=article.guid,
            slug=article.slug,
            slug_given=True,
            title=article.title,
            summary=article.summary or None,
            body_html=article.body_html,
            url=article.url,
            image=article.image,
            author=AuthorInput(
                view.author.slug, view.author.name, view.author.bio or None, view.author.url
            )
            if view.author
            else None,
            tags=(),
            published_at=article.published_at,
            updated_at=None,
            status=ArticleStatus(article.status),
            fingerprint=article.fingerprint,
            where=WHERE,
        )
        picked: dict[str, Any] = {}
        for name in changes:
            field_name = "body_html" if name in ("body", "body_markdown") else name
            picked[field_name] = getattr(parsed, field_name)
        body_changed = "body" in changes or "body_markdown" in changes
        if (
            body_changed
            and "summary" not in changes
            and article.summary == derive_summary(article.body_html)
        ):
            picked["summary"] = None  # a summary made from the old body is made again
        wanted = replace(current, **picked)
        if "slug" in changes and storage.slug_taken(session, wanted.slug, article.id):
            raise DuplicateError("article", wanted.slug)
        before = _snapshot(session, article, "updated_at" in changes)
        touched = _fill(
            session, article, wanted, wanted.slug, now, created=False, retag="tags" in changes
        )
        if _snapshot(session, article, "updated_at" in changes) == before:
            session.rollback()  # nothing changed: updated_at and the feeds stay as they were
        else:
            invalidation.stamp(session, touched, now)
            session.commit()
        found = storage.article_view(session, wanted.slug)
    assert found is not None
    return found


def _snapshot(session: Session, article: Article, with_updated: bool) -> tuple[object, ...]:
    assert article.id is not None
    return (
        article.slug,
        article.title,
        article.summary,
        article.body_html,
        article.url,
        article.image,
        article.status,
        article.published_at,
        article.author_id,
        frozenset(storage.tag_ids_of(session, article.id)),
        article.updated_at if with_updated else None,
    )


def filter_choices(engine: sa.Engine) -> tuple[list[TagView], list[AuthorView]]:
    """Every tag and author by name, for the filters of an editor's list."""
    with Session(engine) as session:
        tags = [TagView(t.slug, t.name) for t in storage.all_tags(session)]
        authors = [AuthorView(a.slug, a.name, a.bio, a.url) for a in storage.all_authors(session)]
    return tags, authors


# ------------------------------------------------------------------------ tags and authors


def _text_field(raw: Mapping[str, Any], name: str, most: int) -> str | None:
    value = raw.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInputError(name, f"expected text, got {type(value).__name__}")
    value = plain_text(value)
    if len(value) > most:
        raise InvalidInputError(name, f"{len(value)} characters, more than the {most} allowed")
    return value


def _slug_field(raw: Mapping[str, Any], derived_from: str) -> str:
    value = raw.get("slug")
    if value is None or value == "":
        slug = slugify(derived_from)
        if not slug:
            raise InvalidInputError("slug", "cannot be made from the name; give one")
        return slug
    if not isinstance(value, str):
        raise InvalidInputError("slug", f"expected text, got {type(value).__name__}")
    if len(value) > 200 or slugify(value) != value:
        raise InvalidInputError(
            "slug", "is not a slug (lowercase letters, digits, hyphens; at most 200)"
        )
    return value


def _by_name(
    engine: sa.Engine,
    rows_after: Callable[[Session, tuple[str, int] | None, int], Sequence[Named]],
    counted: Callable[[Session, Sequence[Named], datetime], list[Counted]],
    now: datetime,
    limit: int,
    cursor: str | None,
) -> Page[Counted]:
    """One page of tags or authors in (name, id) order, each with its number of articles."""
    _check_limit(limit)
    after = _read_cursor(cursor) if cursor else None
    with Session(engine) as session:
        rows = rows_after(session, after, limit + 1)
        items = counted(session, rows[:limit], now)
    last = rows[limit - 1] if len(rows) > limit else None
    return Page(items, _cursor(last.name, last.id) if last and last.id else None)


def _tag_counts(session: Session, tags: Sequence[Tag], now: datetime) -> list[TagCount]:
    counts = storage.tag_counts(session, now, [t.id for t in tags if t.id is not None])
    return [TagCount(t.slug, t.name, t.description, counts.get(t.id or 0, 0)) for t in tags]


def list_tags(
    engine: sa.Engine, now: datetime, limit: int = 20, cursor: str | None = None
) -> Page[TagCount]:
    """Tags by name with their number of published articles, a page at a time."""
    return _by_name(engine, storage.tags_page, _tag_counts, now, limit, cursor)


def get_tag(engine: sa.Engine, slug: str, now: datetime) -> TagCount:
    with Session(engine) as session:
        tag = storage.tag_by_slug(session, slug)
        if tag is None:
            raise NotFoundError("tag", slug)
        return _tag_counts(session, [tag], now)[0]


def create_tag(engine: sa.Engine, fields: Mapping[str, Any], now: datetime) -> TagCount:
    """A new tag from name, description and slug (made from the name when not given).
    Raises InvalidInputError naming the field, DuplicateError when the slug is taken."""
    name = _text_field(fields, "name", 300)
    if not name:
        raise InvalidInputError("name", "missing or empty")
    description = _text_field(fields, "description", 5000) or ""
    slug = _slug_field(fields, name)

    @retry_on_busy()
    def work() -> TagCount:
        with Session(engine) as session:
            if storage.tag_by_slug(session, slug) is not None:
                raise DuplicateError("tag", slug)
            invalidation.stamp(session, _save_tag(session, slug, name, description), now)
            session.commit()
        return get_tag(engine, slug, now)

    try:
        return work()
    except sa.exc.IntegrityError:  # created by another request in between
        raise DuplicateError("tag", slug) from None


def update_tag(engine: sa.Engine, slug: str, changes: Mapping[str, Any], now: datetime) -> TagCount:
    """Change a tag's name and/or description (its slug, in feed and page URLs, stays).
    The feeds showing it get a new version when it changed."""
    unknown = sorted(str(k) for k in set(changes) - {"name", "description"})
    if unknown:
        raise InvalidInputError(unknown[0], "unknown field; a tag has name and description")
    name = _text_field(changes, "name", 300)
    if "name" in changes and not name:
        raise InvalidInputError("name", NOT_EMPTY)
    description = _text_field(changes, "description", 5000)

    @retry_on_busy()
    def work() -> None:
        with Session(engine) as session:
            tag = storage.tag_by_slug(session, slug)
            if tag is None:
                raise NotFoundError("tag", slug)
            touched = _save_tag(
                session,
                tag.slug,
                name or tag.name,
                tag.description if "description" not in changes else description or "",
            )
            invalidation.stamp(session, touched, now)
            session.commit()

    work()
    return get_tag(engine, slug, now)


def _author_input(fields: Mapping[str, Any], ctx: ImportContext) -> AuthorInput:
    """An author's fields checked as an article record's author is (one set of rules);
    errors name the author's own field ("slug", not "author.slug")."""
    try:
        author = validate({"title": "-", "author": dict(fields)}, WHERE, ctx).author
    except RecordError as exc:
        name = exc.field or "name"
        name = "name" if name == "author" else name.removeprefix("author.")
        raise InvalidInputError(name, exc.reason) from None
    if author is None:
        raise InvalidInputError("name", "missing or empty")
    if author.bio and len(author.bio) > 5000:
        raise InvalidInputError("bio", f"{len(author.bio)} characters, more than 5000 allowed")
    return author


def _author_counts(session: Session, authors: Sequence[Author], now: datetime) -> list[AuthorCount]:
    counts = storage.author_counts(session, now, [a.id for a in authors if a.id is not None])
    return [AuthorCount(a.slug, a.name, a.bio, a.url, counts.get(a.id or 0, 0)) for a in authors]


def list_authors(
    engine: sa.Engine, now: datetime, limit: int = 20, cursor: str | None = None
) -> Page[AuthorCount]:
    """Authors by name with their number of published articles, a page at a time."""
    return _by_name(engine, storage.authors_page, _author_counts, now, limit, cursor)


def get_author(engine: sa.Engine, slug: str, now: datetime) -> AuthorCount:
    with Session(engine) as session:
        author = storage.author_by_slug(session, slug)
        if author is None:
            raise NotFoundError("author", slug)
        return _author_counts(session, [author], now)[0]


def create_author(
    engine: sa.Engine, ctx: ImportContext, fields: Mapping[str, Any], now: datetime
) -> AuthorCount:
    """A new author from name, slug (made from the name when not given), bio and url,
    checked as an imported article's author. Raises InvalidInputError naming the field,
    DuplicateError when the slug is taken."""
    if fields.get("name") in (None, ""):
        raise InvalidInputError("name", "missing or empty")
    author = _author_input(fields, ctx)

    @retry_on_busy()
    def work() -> None:
        with Session(engine) as session:
            if storage.author_by_slug(session, author.slug) is not None:
                raise DuplicateError("author", author.slug)
            invalidation.stamp(session, _save_author(session, author), now)
            session.commit()

    try:
        work()
    except sa.exc.IntegrityError:  # created by another request in between
        raise DuplicateError("author", author.slug) from None
    return get_author(engine, author.slug, now)


def update_author(
    engine: sa.Engine,
    ctx: ImportContext,
    slug: str,
    changes: Mapping[str, Any],
    now: datetime,
) -> AuthorCount:
    """Change an author's name, bio and/or url (None clears bio and url; the slug stays).
    The feeds showing them get a new version when something changed."""
    unknown = sorted(str(k) for k in set(changes) - {"name", "bio", "url"})
    if unknown:
        raise InvalidInputError(unknown[0], "unknown field; an author has name, bio and url")
    if "name" in changes and changes["name"] in (None, ""):
        raise InvalidInputError("name", NOT_EMPTY)

    @retry_on_busy()
    def work() -> None:
        with Session(engine) as session:
            author = storage.author_by_slug(session, slug)
            if author is None:
                raise NotFoundError("author", slug)
            given = {k: v for k, v in changes.items() if v is not None}
            checked = _author_input({"name": author.name, **given}, ctx)
            wanted = (
                checked.name if "name" in changes else author.name,
                (checked.bio or "") if "bio" in changes else author.bio,
                checked.url if "url" in changes else author.url,
            )
            if wanted != (author.name, author.bio, author.url) and author.id is not None:
                author.name, author.bio, author.url = wanted
                session.flush()
                invalidation.stamp(session, invalidation.keys_of_author(session, author.id), now)
                session.commit()

    work()
    return get_author(engine, slug, now)
