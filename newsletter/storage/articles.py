"""Queries on articles and their tags. Callers pass a Session and own the transaction."""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from newsletter.models import (
    Article,
    ArticleStatus,
    ArticleTag,
    ArticleView,
    Author,
    AuthorView,
    Tag,
    TagView,
)


def article_by_guid(session: Session, guid: str) -> Article | None:
    return session.exec(select(Article).where(Article.guid == guid)).first()


def article_by_slug(session: Session, slug: str) -> Article | None:
    if not storable(slug):
        return None
    return session.exec(select(Article).where(Article.slug == slug)).first()


def storable(key: str) -> bool:
    """Whether `key` can be sent to either database at all: PostgreSQL refuses NUL in text
    and no driver encodes a lone surrogate. No stored slug has either, so a key with one
    names nothing; asking would be an error instead of "not found"."""
    if "\x00" in key:
        return False
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def slug_taken(session: Session, slug: str, except_id: int | None) -> bool:
    query = select(Article.id).where(Article.slug == slug)
    if except_id is not None:
        query = query.where(Article.id != except_id)
    return session.exec(query).first() is not None


def tag_ids_of(session: Session, article_id: int) -> set[int]:
    rows = session.exec(select(ArticleTag.tag_id).where(ArticleTag.article_id == article_id))
    return set(rows)


def set_article_tags(session: Session, article: Article, tags: Sequence[Tag]) -> None:
    """Make `tags` the article's tags, keeping the listing column in step."""
    assert article.id is not None
    wanted = {t.id for t in tags if t.id is not None}
    current = tag_ids_of(session, article.id)
    if current - wanted:
        session.execute(
            sa.delete(ArticleTag).where(
                col(ArticleTag.article_id) == article.id,
                col(ArticleTag.tag_id).in_(current - wanted),
            )
        )
    for tag_id in wanted - current:
        session.add(ArticleTag(article_id=article.id, tag_id=tag_id))
    session.flush()
    sync_listing(session, article)


def sync_listing(session: Session, article: Article) -> None:
    """Copy the article's published state into article_tag.listed_at (NULL when not listed)."""
    listed = article.published_at if article.status == ArticleStatus.published else None
    session.execute(
        sa.update(ArticleTag)
        .where(col(ArticleTag.article_id) == article.id)
        .values(listed_at=listed)
    )


def delete_article(session: Session, article: Article) -> None:
    session.execute(sa.delete(ArticleTag).where(col(ArticleTag.article_id) == article.id))
    session.delete(article)


def list_articles(
    session: Session, status: ArticleStatus | None = None, limit: int = 50, offset: int = 0
) -> list[ArticleView]:
    """Articles newest first (drafts without a date last), any status unless one is given."""
    query = select(Article)
    if status is not None:
        query = query.where(Article.status == status)
    query = query.order_by(
        col(Article.published_at).is_(None),
        col(Article.published_at).desc(),
        col(Article.id).desc(),
    )
    return views(session, list(session.exec(query.offset(offset).limit(limit))))


def editors_order() -> sa.ColumnElement[datetime]:
    """What editors' lists sort on, newest first: the publication date, or for an article
    never published the day it was created (a new draft shows at the top, not the end)."""
    return sa.func.coalesce(col(Article.published_at), col(Article.created_at))


def find_articles(
    session: Session,
    *,
    limit: int,
    status: ArticleStatus | None = None,
    due_by: datetime | None = None,
    scheduled_after: datetime | None = None,
    tag_id: int | None = None,
    author_id: int | None = None,
    title_contains: str = "",
    before: tuple[datetime, int] | None = None,
) -> list[Article]:
    """At most `limit` articles matching every filter given, ordered by `editors_order()`
    then id, both descending; `before` (an order value and an id) starts after that article,
    so pages follow one another without gaps or repeats. `due_by` keeps those published at
    or before it, `scheduled_after` those dated after it; `title_contains` matches text in
    the title, case-insensitively for ASCII letters on SQLite."""
    when = editors_order()
    query = select(Article)
    if status is not None:
        query = query.where(Article.status == status)
    if due_by is not None:
        query = query.where(col(Article.published_at) <= due_by)
    if scheduled_after is not None:
        query = query.where(col(Article.published_at) > scheduled_after)
    if tag_id is not None:
        tagged = select(ArticleTag.article_id).where(ArticleTag.tag_id == tag_id)
        query = query.where(col(Article.id).in_(tagged))
    if author_id is not None:
        query = query.where(Article.author_id == author_id)
    if title_contains:
        escaped = re.sub(r"([\\%_])", r"\\\1", title_contains)
        query = query.where(col(Article.title).ilike(f"%{escaped}%", escape="\\"))
    if before is not None:
        at, article_id = before
        query = query.where(sa.or_(when < at, sa.and_(when == at, col(Article.id) < article_id)))
    query = query.order_by(when.desc(), col(Article.id).desc()).limit(limit)
    return list(session.exec(query))


def recent_published(
    session: Session,
    limit: int,
    *,
    tag_id: int | None = None,
    author_id: int | None = None,
    now: datetime | None = None,
) -> list[ArticleView]:
    """The newest `limit` published articles of the site, a tag or an author, leaving out
    those scheduled after `now`: each one range scan of an index (ix_article_tag_tag_listed,
    ix_article_author_status_published, ix_article_status_published)."""
    if tag_id is not None:
        ids = select(ArticleTag.article_id).where(
            ArticleTag.tag_id == tag_id, col(ArticleTag.listed_at).is_not(None)
        )
        if now is not None:
            ids = ids.where(col(ArticleTag.listed_at) <= now)
        ids = ids.order_by(col(ArticleTag.listed_at).desc(), col(ArticleTag.article_id).desc())
        article_ids = list(session.exec(ids.limit(limit)))
        by_id = {
            a.id: a for a in session.exec(select(Article).where(col(Article.id).in_(article_ids)))
        }
        return views(session, [by_id[i] for i in article_ids if i in by_id])
    query = select(Article).where(Article.status == ArticleStatus.published)
    if author_id is not None:
        query = query.where(Article.author_id == author_id)
    if now is not None:
        query = query.where(col(Article.published_at) <= now)
    query = query.order_by(col(Article.published_at).desc(), col(Article.id).desc()).limit(limit)
    return views(session, list(session.exec(query)))


def views(session: Session, articles: list[Article]) -> list[ArticleView]:
    """Attach authors and tags with two queries for the whole list."""
    if not articles:
        return []
    ids = [a.id for a in articles]
    author_ids = {a.author_id for a in articles if a.author_id is not None}
    authors = {
        a.id: AuthorView(slug=a.slug, name=a.name, bio=a.bio, url=a.url)
        for a in session.exec(select(Author).where(col(Author.id).in_(author_ids)))
    }
    tags: dict[int, list[TagView]] = {}
    rows = session.exec(
        select(ArticleTag.article_id, Tag.slug, Tag.name)
        .join(Tag, col(Tag.id) == ArticleTag.tag_id)
        .where(col(ArticleTag.article_id).in_(ids))
        .order_by(col(Tag.name))
    )
    for article_id, slug, name in rows:
        tags.setdefault(article_id, []).append(TagView(slug=slug, name=name))
    return [
        ArticleView(
            guid=a.guid,
            slug=a.slug,
            title=a.title,
            summary=a.summary,
            body_html=a.body_html,
            url=a.url,
            image=a.image,
            author=authors.get(a.author_id) if a.author_id is not None else None,
            tags=tuple(tags.get(a.id or 0, ())),
            status=ArticleStatus(a.status),
            published_at=a.published_at,
            updated_at=a.updated_at,
        )
        for a in articles
    ]


def article_view(session: Session, slug: str) -> ArticleView | None:
    article = article_by_slug(session, slug)
    return views(session, [article])[0] if article else None


# ------------------------------------------------ around an article, and the site's map


def related_published(
    session: Session, article_id: int, tag_ids: Collection[int], limit: int, now: datetime
) -> list[ArticleView]:
    """The newest `limit` published articles (none scheduled after `now`) sharing a tag of
    `tag_ids`, article `article_id` left out, newest first: one range scan of
    ix_article_tag_tag_listed per tag rather than a grouping of every tagged article."""
    found: dict[int, datetime] = {}
    for tag_id in sorted(tag_ids):
        rows = session.exec(
            select(ArticleTag.article_id, ArticleTag.listed_at)
            .where(
                ArticleTag.tag_id == tag_id,
                col(ArticleTag.listed_at).is_not(None),
                col(ArticleTag.listed_at) <= now,
                ArticleTag.article_id != article_id,
            )
            .order_by(col(ArticleTag.listed_at).desc(), col(ArticleTag.article_id).desc())
            .limit(limit)
        )
        for other, listed_at in rows:
            if listed_at is not None:
                found[other] = listed_at
    chosen = sorted(found, key=lambda i: (found[i], i), reverse=True)[:limit]
    by_id = {a.id: a for a in session.exec(select(Article).where(col(Article.id).in_(chosen)))}
    return views(session, [by_id[i] for i in chosen if i in by_id])


def published_neighbours(
    session: Session, article: Article, now: datetime
) -> tuple[ArticleView | None, ArticleView | None]:
    """The published articles just before (older) and just after (newer, not scheduled
    after `now`) `article` in publication order, (published_at, id); None at either end."""
    at, article_id = article.published_at, article.id
    if at is None or article_id is None:
        return None, None
    published = select(Article).where(Article.status == ArticleStatus.published)
    when, key = col(Article.published_at), col(Article.id)
    older = session.exec(
        published.where(sa.or_(when < at, sa.and_(when == at, key < article_id)))
        .order_by(when.desc(), key.desc())
        .limit(1)
    ).first()
    newer = session.exec(
        published.where(sa.or_(when > at, sa.and_(when == at, key > article_id)), when <= now)
        .order_by(when, key)
        .limit(1)
    ).first()
    return (
        views(session, [older])[0] if older else None,
        views(session, [newer])[0] if newer else None,
    )


@dataclass(frozen=True)
class PublishedEntry:
    """A published article as a site map lists it: no body, author or tags."""

    slug: str
    url: str | None
    title: str
    published_at: datetime
    updated_at: datetime


def published_entries(
    session: Session, now: datetime, limit: int, since: datetime | None = None
) -> list[PublishedEntry]:
    """At most `limit` published articles dated by `now` (and from `since`, if given),
    newest first, read without their bodies."""
    columns = (Article.slug, Article.url, Article.title, Article.published_at, Article.updated_at)
    query = sa.select(*(col(c) for c in columns)).where(
        col(Article.status) == ArticleStatus.published, col(Article.published_at) <= now
    )
    if since is not None:
        query = query.where(col(Article.published_at) >= since)
    query = query.order_by(col(Article.published_at).desc(), col(Article.id).desc()).limit(limit)
    return [
        PublishedEntry(slug, url, title, published_at, updated_at)
        for slug, url, title, published_at, updated_at in session.execute(query)
        if published_at is not None
    ]


def newest_by_tag(session: Session, now: datetime) -> dict[str, datetime]:
    """Tag slug -> the date of its newest published article (tags without one left out)."""
    newest = sa.func.max(ArticleTag.listed_at)
    rows = session.exec(
        select(Tag.slug, newest)
        .join(Tag, col(Tag.id) == ArticleTag.tag_id)
        .where(col(ArticleTag.listed_at).is_not(None), col(ArticleTag.listed_at) <= now)
        .group_by(col(Tag.slug))
    )
    return {slug: at for slug, at in rows if at is not None}


def newest_by_author(session: Session, now: datetime) -> dict[str, datetime]:
    """Author slug -> the date of their newest published article (others left out)."""
    newest = sa.func.max(Article.published_at)
    rows = session.exec(
        select(Author.slug, newest)
        .join(Author, col(Author.id) == Article.author_id)
        .where(Article.status == ArticleStatus.published, col(Article.published_at) <= now)
        .group_by(col(Author.slug))
    )
    return {slug: at for slug, at in rows if at is not None}
