"""Use cases on articles: import (idempotent upsert), publish, unpublish, delete, list;
and for editors' tools: browse with filters a page at a time, create and edit one
article, and list, create and edit tags and authors."""

from __future__ import annotations

import base64
import json
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import sqlalchemy as sa
from sqlmodel import Session

from newsletter import storage
from newsletter.articles.validate import (
    FIELDS,
    ArticleInput,
    AuthorInput,
    ImportContext,
    Parsed,
    stable_guid,
    validate,
)
from newsletter.errors import (
    DuplicateError,
    InvalidInputError,
    NotFoundError,
    RecordError,
    SourceError,
)
from newsletter.feeds import invalidation
from newsletter.models import (
    Article,
    ArticleStatus,
    ArticleView,
    Author,
    AuthorView,
    Tag,
    TagView,
)
from newsletter.storage.retry import retry_on_busy, retrying
from newsletter.text import derive_summary, has_forbidden_chars, plain_text, slugify

if TYPE_CHECKING:
    from newsletter.articles.formats import Source

BATCH = 100  # records per write transaction: short locks, bounded memory on big imports
ATTEMPTS = 6  # tries of a batch that meets a busy database or a concurrent insert
BACKOFF = 0.05  # seconds before the second try, doubled for each further one (plus jitter)


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RecordError] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return len(self.errors)

    def add(self, other: ImportReport) -> None:
        self.created += other.created
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.errors += other.errors

    def summary(self) -> str:
        return (
            f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged, "
            f"{self.failed} failed"
        )


def import_articles(
    engine: sa.Engine,
    records: Iterable[Parsed],
    *,
    base_url: str,
    now: datetime,
    create_only: bool = False,
    progress: Callable[[int], None] | None = None,
    source: str = "",
    allow_takeover: bool = False,
) -> ImportReport:
    """Store every valid record; collect the errors of the others.

    Upsert by guid, else by slug: an unchanged record writes nothing, an edited one updates
    the article and its updated_at. With `create_only`, existing articles are left as they
    are (the demo loader). Good records are stored even when others in the same file fail.

    `source` (a feed's URL, "file:" and a path) is recorded on the articles created. Unless
    `allow_takeover`, a record that would change an article recorded with another source
    (or none) is refused with a RecordError on "guid": guids are public, and a feed must not
    overwrite the articles of another. An article with no recorded source takes the source
    of the import that next changes it.

    Records are parsed and validated (by iterating `records`) outside any transaction;
    each batch of `BATCH` is then written in one short transaction, tried again with a
    back-off when the database is busy (SQLite's "database is locked") or a concurrent
    import inserted the same tag or author first.
    """
    report = ImportReport()
    batch: list[ArticleInput] = []
    touched: set[str] = set()
    last_touch = time.monotonic()
    ownership = _Ownership(source, allow_takeover)

    def store(final: bool) -> None:
        nonlocal touched, last_touch
        # Feeds learn of a long import about once a second, not once a batch.
        stamp = final or time.monotonic() - last_touch >= 1.0
        result = _store_batch(
            engine, batch, base_url, now, create_only, ownership, touched if stamp else None
        )
        report.add(result.report)
        if stamp:
            touched, last_touch = set(), time.monotonic()
        else:
            touched |= result.touched
        if progress and batch:
            progress(len(batch))
        batch.clear()

    for record in records:  # parsing and validation happen here, with no transaction open
        if isinstance(record, RecordError):
            report.errors.append(record)
            if progress:
                progress(1)
            continue
        batch.append(record)
        if len(batch) >= BATCH:
            store(final=False)
    store(final=True)
    return report


@dataclass(frozen=True)
class _Ownership:
    """Which stored articles an import may change (see import_articles)."""

    source: str
    allow_takeover: bool

    def refusal(self, article: Article, where: str) -> RecordError | None:
        if self.allow_takeover or article.source == self.source:
            return None
        owner = (
            f"imported from {article.source[:200]}"
            if article.source
            else "whose source is not recorded (imported before sources were)"
        )
        return RecordError(
            where,
            "guid",
            f"{article.guid[:200]!r} belongs to an article {owner}; a feed may update only "
            "the articles it brought in itself (--update-any allows it)",
        )


@dataclass
class _BatchResult:
    report: ImportReport
    touched: set[str]


def _store_batch(
    engine: sa.Engine,
    batch: Sequence[ArticleInput],
    base_url: str,
    now: datetime,
    create_only: bool,
    ownership: _Ownership,
    stamp: set[str] | None,
) -> _BatchResult:
    """Write `batch` in one transaction, stamping the feeds it and `stamp` touched (when
    `stamp` is not None). A busy database or a lost race for a unique key rolls the batch
    back and tries it again, up to ATTEMPTS times; counts come from the try that committed."""
    for attempt in range(1, ATTEMPTS + 1):
        result = _BatchResult(ImportReport(), set())
        session = Session(engine)
        try:
            for record in batch:
                outcome = _upsert(session, record, base_url, now, create_only, ownership)
                if isinstance(outcome, RecordError):
                    result.report.errors.append(outcome)
                else:
                    name, keys = outcome
                    setattr(result.report, name, getattr(result.report, name) + 1)
                    result.touched |= keys
            if stamp is not None:
                invalidation.stamp(session, stamp | result.touched, now)
            session.commit()
            return result
        except (sa.exc.OperationalError, sa.exc.IntegrityError) as exc:
            session.rollback()
            if attempt == ATTEMPTS or not _worth_retrying(exc):
                raise
        finally:
            session.close()
        time.sleep(BACKOFF * 2 ** (attempt - 1) * (1 + random.random()))
    raise AssertionError("unreachable")  # pragma: no cover


def _worth_retrying(exc: sa.exc.DBAPIError) -> bool:
    """A failure another transaction caused, which a second try of the same batch can pass:
    SQLite busy or locked, a PostgreSQL deadlock or serialisation failure, or a unique key
    (a tag's, an author's slug) another import inserted between our look-up and our insert."""
    code = getattr(exc.orig, "sqlstate", None)  # psycopg
    if code in ("40001", "40P01", "55P03", "23505"):
        return True
    message = str(exc.orig).lower()
    if isinstance(exc, sa.exc.IntegrityError):
        return "unique" in message
    return "locked" in message or "busy" in message  # SQLITE_BUSY, SQLITE_LOCKED


@dataclass(frozen=True)
class SourceOutcome:
    """What importing one source gave: its report, or the error that made it unreadable."""

    name: str
    report: ImportReport | None
    error: SourceError | None = None


def import_locations(
    engine: sa.Engine,
    ctx: ImportContext,
    locations: Sequence[str],
    now: datetime,
    progress: Callable[[Source], Callable[[int], None] | None] | None = None,
    *,
    allow_private: bool = False,
    allow_takeover: bool = False,
) -> Iterator[SourceOutcome]:
    """Import every source at each location (files, folders, http(s) URLs of feeds), one
    outcome per source as it finishes. `progress(source)` may return a callback told of
    each record handled. A location or source that cannot be read is an outcome with its
    error; the others are still imported.

    Files are the operator's own choice and may update any article. A feed fetched from a
    URL may update only the articles it created itself (their source is its URL) unless
    `allow_takeover`; it may reach private, loopback and link-local addresses only with
    `allow_private` (newsletter.articles.sources)."""
    # the readers of feeds, Markdown and YAML and the HTTP client load here, when an
    # import runs, rather than in every process that stores an article (workers, web)
    from newsletter.articles.formats import read
    from newsletter.articles.sources import open_source

    for location in locations:
        try:
            sources = open_source(location, allow_private=allow_private)
        except SourceError as exc:
            yield SourceOutcome(location, None, exc)
            continue
        for source in sources:
            try:
                report = import_articles(
                    engine,
                    read(source, ctx),
                    base_url=ctx.base_url,
                    now=now,
                    progress=progress(source) if progress else None,
                    source=source.origin,
                    allow_takeover=allow_takeover or not source.remote,
                )
            except SourceError as exc:
                yield SourceOutcome(source.name, None, exc)
                continue
            yield SourceOutcome(source.name, report)


def define_authors_and_tags(
    engine: sa.Engine,
    authors: Iterable[dict[str, str]],
    tags: Iterable[dict[str, str]],
    now: datetime,
) -> None:
    """Create or update authors (slug, name, bio, url) and tags (slug, name, description);
    the feeds showing a changed one get a new version."""
    with Session(engine) as session:
        touched: set[str] = set()
        for a in authors:
            touched |= _save_author(
                session, AuthorInput(a["slug"], a["name"], a.get("bio"), a.get("url"))
            )
        for t in tags:
            touched |= _save_tag(session, t["slug"], t["name"], t.get("description", ""))
        invalidation.stamp(session, touched, now)
        session.commit()


def _upsert(
    session: Session,
    record: ArticleInput,
    base_url: str,
    now: datetime,
    create_only: bool,
    ownership: _Ownership,
) -> tuple[str, set[str]] | RecordError:
    """("created" | "updated" | "unchanged", the feeds it touched), or the error that
    refused the record."""
    where = record.where
    article = storage.article_by_guid(session, record.guid) if record.guid else None
    if article is None and not record.guid:
        # Without a guid the slug names the article, but a slug derived from a title names
        # only an article that was itself made from a guid-less record: another article
        # that happens to have that slug is not overwritten.
        by_slug = storage.article_by_slug(session, record.slug)
        if by_slug is not None and (
            record.slug_given or by_slug.guid == stable_guid(base_url, record.slug)
        ):
            article = by_slug
    if article is not None and (create_only or article.fingerprint == record.fingerprint):
        return "unchanged", set()
    if article is not None:
        refused = ownership.refusal(article, where)
        if refused is not None:
            return refused

    # A derived slug is fixed once the article exists: editing a title must not move its URL.
    slug = article.slug if article is not None and not record.slug_given else record.slug
    if storage.slug_taken(session, slug, article.id if article else None):
        if record.slug_given:
            return RecordError(where, "slug", f"{slug!r} already belongs to another article")
        free = _free_slug(session, slug, article.id if article else None)
        if free is None:
            return RecordError(where, "slug", f"no free variant of {record.slug!r}")
        slug = free

    created = article is None
    if article is None:
        article = Article(
            guid=record.guid or stable_guid(base_url, slug),
            slug=slug,
            title=record.title,
            created_at=now,
            source=ownership.source,
        )
        session.add(article)
    elif not article.source:
        article.source = ownership.source  # an article of unknown origin takes the first
    touched = _fill(session, article, record, slug, now, created=created)
    return ("created" if created else "updated"), touched


def _fill(
    session: Session,
    article: Article,
    record: ArticleInput,
    slug: str,
    now: datetime,
    *,
    created: bool,
    retag: bool = True,
) -> set[str]:
    """Write `record` onto `article` (in the session; new when `created`) and answer the
    feeds it was in before and is in after. Without `retag` its tags stay as they are."""
    touched = set() if created else invalidation.keys_of_article(session, article)
    article.slug = slug
    article.title = record.title
    article.summary = record.summary or ""
    article.body_html = record.body_html
    article.url = record.url
    article.image = record.image
    article.status = record.status
    if record.published_at is not None:
        article.published_at = record.published_at
    elif record.status == ArticleStatus.published and article.published_at is None:
        article.published_at = now
    article.updated_at = record.updated_at or (article.published_at if created else None) or now
    article.fingerprint = record.fingerprint
    if record.author is not None:
        a = record.author
        author, changed = storage.upsert_author(session, a.slug, a.name, a.bio, a.url)
        article.author_id = author.id
        if changed and author.id is not None:
            touched |= invalidation.keys_of_author(session, author.id)
    else:
        article.author_id = None
    if not article.summary:
        article.summary = derive_summary(record.body_html)
    session.flush()
    if retag:
        tags = storage.tags_for_slugs(session, {slugify(name): name for name in record.tags})
        storage.set_article_tags(session, article, tags)
    else:
        storage.sync_listing(session, article)
    return touched | invalidation.keys_of_article(session, article)


def _free_slug(session: Session, slug: str, except_id: int | None) -> str | None:
    for n in range(2, 1000):
        candidate = f"{slug}-{n}"
        if not storage.slug_taken(session, candidate, except_id):
            return candidate
    return None


@retry_on_busy()
def _set_status(engine: sa.Engine, slug: str, status: ArticleStatus, now: datetime) -> ArticleView:
    with Session(engine) as session:
        article = storage.article_by_slug(session, slug)
        if article is None:
            raise NotFoundError("article", slug)
        if article.status != status:
            touched = invalidation.keys_of_article(session, article)
            article.status = status
            if status == ArticleStatus.published and article.published_at is None:
                article.published_at = now
            article.updated_at = now
            session.flush()
            storage.sync_listing(session, article)
            invalidation.stamp(
                session, touched | invalidation.keys_of_article(session, article), now
            )
            session.commit()
        view = storage.article_view(session, slug)
        assert view is not None
        return view


def publish(engine: sa.Engine, slug: str, now: datetime) -> ArticleView:
    """Make the article public (keeping its publication date if it had one)."""
    return _set_status(engine, slug, ArticleStatus.published, now)


def unpublish(engine: sa.Engine, slug: str, now: datetime) -> ArticleView:
    """Turn the article back into a draft: it leaves pages and feeds, stays stored."""
    return _set_status(engine, slug, ArticleStatus.draft, now)


@retry_on_busy()
def delete(engine: sa.Engine, slug: str, now: datetime) -> None:
    with Session(engine) as session:
        article = storage.article_by_slug(session, slug)
        if article is None:
            raise NotFoundError("article", slug)
        invalidation.stamp(session, invalidation.keys_of_article(session, article), now)
        storage.delete_article(session, article)
        session.commit()


def list_articles(
    engine: sa.Engine, status: ArticleStatus | None = None, limit: int = 50
) -> list[ArticleView]:
    with Session(engine) as session:
        return storage.list_articles(session, status=status, limit=limit)


def get_article(engine: sa.Engine, slug: str, now: datetime) -> ArticleView:
    """A published article whose time has come; NotFoundError otherwise."""
    with Session(engine) as session:
        view = storage.article_view(session, slug)
    if (
        view is None
        or view.status != ArticleStatus.published
        or (view.published_at is not None and view.published_at > now)
    ):
        raise NotFoundError("article", slug)
    return view


def recent(engine: sa.Engine, limit: int, now: datetime) -> list[ArticleView]:
    with Session(engine) as session:
        return storage.recent_published(session, limit, now=now)


@dataclass(frozen=True)
class Listing:
    """A tag's or an author's page: who or what, and their newest articles."""

    kind: str  # "tag" | "author"
    slug: str
    name: str
    description: str
    articles: list[ArticleView]


def tag_listing(engine: sa.Engine, slug: str, limit: int, now: datetime) -> Listing:
    with Session(engine) as session:
        tag = storage.tag_by_slug(session, slug)
        if tag is None:
            raise NotFoundError("tag", slug)
        found = storage.recent_published(session, limit, tag_id=tag.id, now=now)
        return Listing("tag", tag.slug, tag.name, tag.description, found)


def author_listing(engine: sa.Engine, slug: str, limit: int, now: datetime) -> Listing:
    with Session(engine) as session:
        author = storage.author_by_slug(session, slug)
        if author is None:
            raise NotFoundError("author", slug)
        found = storage.recent_published(session, limit, author_id=author.id, now=now)
        return Listing("author", author.slug, author.name, author.bio, found)


@dataclass(frozen=True)
class TagCount:
    slug: str
    name: str
    description: str
    count: int


def tags_with_counts(engine: sa.Engine, now: datetime) -> list[TagCount]:
    """Every tag with its number of published articles, by name."""
    with Session(engine) as session:
        counts = storage.tag_counts(session, now)
        return [
            TagCount(t.slug, t.name, t.description, counts.get(t.id or 0, 0))
            for t in storage.all_tags(session)
        ]


# --------------------------------------------------------------- the editors' workspace
# The API and the admin pages list, create and edit through these; imports and the CLI
# go through the use cases above, and both write articles with `_fill`.

MAX_LIMIT = 100  # items of one page of a list
MAX_CURSOR = 600  # characters; every cursor given out is far shorter
WHERE = "request body"  # what a RecordError from the editors' tools says of its origin
NOT_EMPTY = "may not be empty; leave it out to keep the current value"
T = TypeVar("T")


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
    raw = json.dumps([text, ident], ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _read_cursor(cursor: str) -> tuple[str, int]:
    """The position a cursor from `_cursor` holds; InvalidInputError on "cursor" otherwise
    (also for text no database could be asked about)."""
    bad = InvalidInputError(
        "cursor", "is not a cursor this list gave out; leave it out to start at the first page"
    )
    if len(cursor) > MAX_CURSOR or not cursor.isascii():
        raise bad
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError:  # bad base64 (binascii.Error), bytes that are not UTF-8 or JSON
        raise bad from None
    if (
        not isinstance(key, list)
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


def _save_tag(session: Session, slug: str, name: str, description: str) -> set[str]:
    """Create or update a tag: the feeds showing it when a stored one changed."""
    tag, changed = storage.upsert_tag(session, slug, name, description)
    return invalidation.keys_of_tag(session, tag.id) if changed and tag.id is not None else set()


def _save_author(session: Session, a: AuthorInput) -> set[str]:
    """Create or update an author: the feeds showing them when a stored one changed."""
    author, changed = storage.upsert_author(session, a.slug, a.name, a.bio, a.url)
    if changed and author.id is not None:
        return invalidation.keys_of_author(session, author.id)
    return set()


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


def _tag_counts(session: Session, tags: Sequence[Tag], now: datetime) -> list[TagCount]:
    counts = storage.tag_counts(session, now, [t.id for t in tags if t.id is not None])
    return [TagCount(t.slug, t.name, t.description, counts.get(t.id or 0, 0)) for t in tags]


def list_tags(
    engine: sa.Engine, now: datetime, limit: int = 20, cursor: str | None = None
) -> Page[TagCount]:
    """Tags by name with their number of published articles, a page at a time."""
    _check_limit(limit)
    after = _read_cursor(cursor) if cursor else None
    with Session(engine) as session:
        rows = storage.tags_page(session, after, limit + 1)
        items = _tag_counts(session, rows[:limit], now)
    last = rows[limit - 1] if len(rows) > limit else None
    return Page(items, _cursor(last.name, last.id) if last and last.id else None)


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
    _check_limit(limit)
    after = _read_cursor(cursor) if cursor else None
    with Session(engine) as session:
        rows = storage.authors_page(session, after, limit + 1)
        items = _author_counts(session, rows[:limit], now)
    last = rows[limit - 1] if len(rows) > limit else None
    return Page(items, _cursor(last.name, last.id) if last and last.id else None)


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
