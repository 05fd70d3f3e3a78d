"""Queries on authors and tags. Callers pass a Session and own the transaction."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from newsletter.models import Article, ArticleStatus, ArticleTag, Author, Tag
from newsletter.storage.articles import storable


def upsert_author(
    session: Session, slug: str, name: str, bio: str | None = None, url: str | None = None
) -> tuple[Author, bool]:
    """The author with `slug`, created or brought up to date (None leaves a field as it is),
    and whether a stored author changed (their feeds then need a new version)."""
    author = session.exec(select(Author).where(Author.slug == slug)).first()
    changed = False
    if author is None:
        author = Author(slug=slug, name=name, bio=bio or "", url=url)
        session.add(author)
    else:
        before = (author.name, author.bio, author.url)
        author.name = name
        if bio is not None:
            author.bio = bio
        if url is not None:
            author.url = url
        changed = before != (author.name, author.bio, author.url)
    session.flush()
    return author, changed


def tags_for_slugs(session: Session, names: Mapping[str, str]) -> list[Tag]:
    """Tags for `names` (slug -> name), in that order; missing ones are created with the
    name as given, existing ones keep theirs."""
    found = {t.slug: t for t in session.exec(select(Tag).where(col(Tag.slug).in_(list(names))))}
    for slug, name in names.items():
        if slug not in found:
            found[slug] = Tag(slug=slug, name=name)
            session.add(found[slug])
    session.flush()
    return [found[s] for s in names]


def upsert_tag(session: Session, slug: str, name: str, description: str) -> tuple[Tag, bool]:
    """The tag with `slug`, created or brought up to date, and whether a stored tag changed."""
    tag = session.exec(select(Tag).where(Tag.slug == slug)).first()
    changed = False
    if tag is None:
        tag = Tag(slug=slug, name=name, description=description)
        session.add(tag)
    elif (tag.name, tag.description) != (name, description):
        tag.name, tag.description = name, description
        changed = True
    session.flush()
    return tag, changed


def tag_by_slug(session: Session, slug: str) -> Tag | None:
    if not storable(slug):
        return None
    return session.exec(select(Tag).where(Tag.slug == slug)).first()


def tags_by_slugs(session: Session, slugs: list[str]) -> dict[str, Tag]:
    rows = session.exec(select(Tag).where(col(Tag.slug).in_(slugs)))
    return {t.slug: t for t in rows}


def author_by_slug(session: Session, slug: str) -> Author | None:
    if not storable(slug):
        return None
    return session.exec(select(Author).where(Author.slug == slug)).first()


def all_tags(session: Session) -> list[Tag]:
    return list(session.exec(select(Tag).order_by(col(Tag.name))))


def all_authors(session: Session) -> list[Author]:
    return list(session.exec(select(Author).order_by(col(Author.name))))


def tag_counts(
    session: Session, now: datetime, tag_ids: Collection[int] | None = None
) -> dict[int, int]:
    """Published (not scheduled) article count per tag id (of `tag_ids` only, if given)."""
    query = select(ArticleTag.tag_id, sa.func.count()).where(
        col(ArticleTag.listed_at).is_not(None), col(ArticleTag.listed_at) <= now
    )
    if tag_ids is not None:
        query = query.where(col(ArticleTag.tag_id).in_(list(tag_ids)))
    rows = session.exec(query.group_by(col(ArticleTag.tag_id)))
    return {tag_id: count for tag_id, count in rows}


def author_counts(session: Session, now: datetime, author_ids: Collection[int]) -> dict[int, int]:
    """Published (not scheduled) article count per author id of `author_ids`."""
    rows = session.exec(
        select(Article.author_id, sa.func.count())
        .where(
            col(Article.author_id).in_(list(author_ids)),
            Article.status == ArticleStatus.published,
            col(Article.published_at) <= now,
        )
        .group_by(col(Article.author_id))
    )
    return {author_id: count for author_id, count in rows if author_id is not None}


def tags_page(session: Session, after: tuple[str, int] | None, limit: int) -> list[Tag]:
    """At most `limit` tags by name then id, starting after (name, id) `after`."""
    query = select(Tag)
    if after is not None:
        name, tag_id = after
        query = query.where(
            sa.or_(col(Tag.name) > name, sa.and_(col(Tag.name) == name, col(Tag.id) > tag_id))
        )
    return list(session.exec(query.order_by(col(Tag.name), col(Tag.id)).limit(limit)))


def authors_page(session: Session, after: tuple[str, int] | None, limit: int) -> list[Author]:
    """At most `limit` authors by name then id, starting after (name, id) `after`."""
    query = select(Author)
    if after is not None:
        name, author_id = after
        query = query.where(
            sa.or_(
                col(Author.name) > name,
                sa.and_(col(Author.name) == name, col(Author.id) > author_id),
            )
        )
    return list(session.exec(query.order_by(col(Author.name), col(Author.id)).limit(limit)))
