"""Use cases on articles: import (idempotent upsert), publish, unpublish, delete, list.
The editors' tools (browse a page at a time, create and edit one article, tags and authors)
are in editing.py and write through the helpers here."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlmodel import Session

from newsletter import storage
from newsletter.articles.validate import (
    ArticleInput,
    AuthorInput,
    ImportContext,
    Parsed,
    stable_guid,
)
from newsletter.errors import NotFoundError, RecordError, SourceError
from newsletter.feeds import invalidation
from newsletter.models import Article, ArticleStatus, ArticleView
from newsletter.storage.retry import retry_on_busy
from newsletter.text import derive_summary, slugify

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


# ------------------------------------------------- tags and authors (also for editing.py)


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
