"""Feed content versions: the global counter and one row per feed key, plus the queries
that find which feeds a change touches, and each feed's recorded validators per format
(feed_rendering). Keys are opaque here (newsletter.feeds names them). Callers pass a
Session and own the transaction."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from newsletter.errors import DuplicateError
from newsletter.models import Article, ArticleStatus, ArticleTag, FeedVersion
from newsletter.models.feeds import FeedRendering
from newsletter.storage.common import insert_unique

GLOBAL_KEY = "*"


def published_authors_and_tags(
    session: Session, *, author_id: int | None = None, tag_id: int | None = None
) -> tuple[bool, set[int], set[int]]:
    """For the published articles of an author or a tag: whether there are any, their
    author ids and their tag ids."""
    query = select(Article.id, Article.author_id).where(Article.status == ArticleStatus.published)
    if author_id is not None:
        query = query.where(Article.author_id == author_id)
    if tag_id is not None:
        tagged = select(ArticleTag.article_id).where(ArticleTag.tag_id == tag_id)
        query = query.where(col(Article.id).in_(tagged))
    ids: list[int] = []
    authors: set[int] = set()
    for article_id, article_author in session.exec(query):
        ids.append(article_id or 0)
        if article_author is not None:
            authors.add(article_author)
    tags: set[int] = set()
    if ids:
        rows = session.exec(
            select(ArticleTag.tag_id).where(col(ArticleTag.article_id).in_(ids)).distinct()
        )
        tags = set(rows)
    return bool(ids), authors, tags


def touch_feeds(session: Session, keys: Iterable[str], now: datetime) -> int:
    """Give every feed in `keys` a new content version (one number for the whole change);
    returns it (0 when `keys` is empty).

    The counter is incremented in the database (UPDATE ... RETURNING), which also takes the
    write lock on SQLite, so two writers can never hand out the same number. A feed's
    changed_at moves forward by at least a second per version: HTTP dates have whole
    seconds, and when the version's bytes differ, the feed's Last-Modified becomes at least
    this (feed_rendering, see newsletter.feeds.cache), so If-Modified-Since never hides a
    change."""
    keys = set(keys)
    if not keys:
        return 0
    stamp = now.replace(microsecond=0)
    version = session.execute(
        sa.update(FeedVersion)
        .where(col(FeedVersion.key) == GLOBAL_KEY)
        .values(version=col(FeedVersion.version) + 1, changed_at=stamp)
        .returning(col(FeedVersion.version))
    ).scalar_one()
    existing = {
        row.key: row
        for row in session.exec(select(FeedVersion).where(col(FeedVersion.key).in_(list(keys))))
    }
    for key in keys:
        row = existing.get(key)
        if row is None:
            row = FeedVersion(key=key, version=version, changed_at=stamp)
        else:
            row.version = version
            row.changed_at = max(stamp, row.changed_at + timedelta(seconds=1))
        session.add(row)
    session.flush()
    return int(version)


def current_version(session: Session, key: str) -> int:
    """The content version feed `key` has now (0: never stamped)."""
    row = session.get(FeedVersion, key)
    return row.version if row else 0


def rendering(session: Session, key: str, fmt: str) -> FeedRendering | None:
    """The validators recorded for feed `key` in format `fmt`, if any."""
    return session.get(FeedRendering, (key, fmt))


def record_rendering(
    session: Session,
    key: str,
    fmt: str,
    seen: tuple[int, str] | None,
    *,
    version: int,
    digest: str,
    modified_at: datetime,
) -> bool:
    """Record the validators of a rendering, compare-and-set: only if the row still holds
    `seen` (its version and digest as read; None: no row). False when another process
    changed it first (the caller reads it again and decides again); for an insert that
    lost, the transaction is rolled back."""
    if seen is None:
        row = FeedRendering(
            key=key, format=fmt, version=version, digest=digest, modified_at=modified_at
        )
        try:
            insert_unique(session, row, "feed rendering", f"{key}.{fmt}")
        except DuplicateError:
            return False
        return True
    seen_version, seen_digest = seen
    result = session.execute(
        sa.update(FeedRendering)
        .where(
            col(FeedRendering.key) == key,
            col(FeedRendering.format) == fmt,
            col(FeedRendering.version) == seen_version,
            col(FeedRendering.digest) == seen_digest,
        )
        .values(version=version, digest=digest, modified_at=modified_at)
        .execution_options(synchronize_session=False)
    )
    return getattr(result, "rowcount", 0) == 1


def global_version(session: Session) -> int:
    row = session.get(FeedVersion, GLOBAL_KEY)
    return row.version if row else 0


def versions_since(session: Session, version: int) -> list[FeedVersion]:
    return list(
        session.exec(
            select(FeedVersion).where(FeedVersion.version > version, FeedVersion.key != GLOBAL_KEY)
        )
    )


def next_scheduled(session: Session, after: datetime) -> datetime | None:
    """The earliest publication time after `after` among published articles (scheduled)."""
    return session.exec(
        select(Article.published_at)
        .where(Article.status == ArticleStatus.published, col(Article.published_at) > after)
        .order_by(col(Article.published_at))
        .limit(1)
    ).first()


def published_between(session: Session, start: datetime, end: datetime) -> list[Article]:
    """Published articles dated from `start` to `end` (scheduled ones whose time came)."""
    return list(
        session.exec(
            select(Article).where(
                Article.status == ArticleStatus.published,
                col(Article.published_at) >= start,
                col(Article.published_at) <= end,
            )
        )
    )
