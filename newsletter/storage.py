"""Every query the service runs. Callers pass a Session and own the transaction."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from newsletter.models import (
    Article,
    ArticleStatus,
    ArticleTag,
    ArticleView,
    Author,
    AuthorView,
    Digest,
    FeedVersion,
    Subscriber,
    Subscription,
    Suppression,
    Tag,
    TagView,
    utcnow,
)
from newsletter.text import slugify

# --------------------------------------------------------------------------- articles


def article_by_guid(session: Session, guid: str) -> Article | None:
    return session.exec(select(Article).where(Article.guid == guid)).first()


def article_by_slug(session: Session, slug: str) -> Article | None:
    return session.exec(select(Article).where(Article.slug == slug)).first()


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
    return _views(session, list(session.exec(query.offset(offset).limit(limit))))


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
        return _views(session, [by_id[i] for i in article_ids if i in by_id])
    query = select(Article).where(Article.status == ArticleStatus.published)
    if author_id is not None:
        query = query.where(Article.author_id == author_id)
    if now is not None:
        query = query.where(col(Article.published_at) <= now)
    query = query.order_by(col(Article.published_at).desc(), col(Article.id).desc()).limit(limit)
    return _views(session, list(session.exec(query)))


def _views(session: Session, articles: list[Article]) -> list[ArticleView]:
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
    return _views(session, [article])[0] if article else None


# --------------------------------------------------------------------------- authors and tags


def upsert_author(
    session: Session, slug: str, name: str, bio: str | None = None, url: str | None = None
) -> Author:
    """The author with `slug`, created or brought up to date; None leaves a field as it is.
    When a stored author changes, the feeds showing their articles get a new version."""
    author = session.exec(select(Author).where(Author.slug == slug)).first()
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
        if before != (author.name, author.bio, author.url):
            keys = {author_key(author.id or 0)} | feed_keys_of_articles(
                session, col(Article.author_id) == author.id
            )
            touch_feeds(session, keys, utcnow())
    session.flush()
    return author


def tags_for_names(session: Session, names: Iterable[str]) -> list[Tag]:
    """Tags for `names`, matched by slug (case and accents do not make a new tag);
    missing ones are created with the name as given."""
    by_slug = {slugify(n): n for n in names}
    found = {t.slug: t for t in session.exec(select(Tag).where(col(Tag.slug).in_(list(by_slug))))}
    for slug, name in by_slug.items():
        if slug not in found:
            found[slug] = Tag(slug=slug, name=name)
            session.add(found[slug])
    session.flush()
    return [found[s] for s in by_slug]


def upsert_tag(session: Session, slug: str, name: str, description: str) -> Tag:
    tag = session.exec(select(Tag).where(Tag.slug == slug)).first()
    if tag is None:
        tag = Tag(slug=slug, name=name, description=description)
        session.add(tag)
    elif (tag.name, tag.description) != (name, description):
        tag.name, tag.description = name, description
        tagged = select(ArticleTag.article_id).where(ArticleTag.tag_id == tag.id)
        keys = {tag_key(tag.id or 0)} | feed_keys_of_articles(session, col(Article.id).in_(tagged))
        touch_feeds(session, keys, utcnow())
    session.flush()
    return tag


def tag_by_slug(session: Session, slug: str) -> Tag | None:
    return session.exec(select(Tag).where(Tag.slug == slug)).first()


def author_by_slug(session: Session, slug: str) -> Author | None:
    return session.exec(select(Author).where(Author.slug == slug)).first()


def all_tags(session: Session) -> list[Tag]:
    return list(session.exec(select(Tag).order_by(col(Tag.name))))


def all_authors(session: Session) -> list[Author]:
    return list(session.exec(select(Author).order_by(col(Author.name))))


def tag_counts(session: Session, now: datetime) -> dict[int, int]:
    """Published (not scheduled) article count per tag id."""
    rows = session.exec(
        select(ArticleTag.tag_id, sa.func.count())
        .where(col(ArticleTag.listed_at).is_not(None), col(ArticleTag.listed_at) <= now)
        .group_by(col(ArticleTag.tag_id))
    )
    return {tag_id: count for tag_id, count in rows}


# --------------------------------------------------------------------------- feed versions

SITE_KEY = "site"
GLOBAL_KEY = "*"


def tag_key(tag_id: int) -> str:
    return f"tag:{tag_id}"


def author_key(author_id: int) -> str:
    return f"author:{author_id}"


def feed_keys(session: Session, article: Article) -> set[str]:
    """The feeds `article` appears in right now (none unless it is published)."""
    if article.status != ArticleStatus.published or article.id is None:
        return set()
    keys = {SITE_KEY} | {tag_key(t) for t in tag_ids_of(session, article.id)}
    if article.author_id is not None:
        keys.add(author_key(article.author_id))
    return keys


def feed_keys_of_articles(session: Session, where: sa.ColumnElement[bool]) -> set[str]:
    """Feeds of the published articles matching `where` (used when an author or tag changes)."""
    keys: set[str] = set()
    query = select(Article.id, Article.author_id).where(
        Article.status == ArticleStatus.published, where
    )
    ids = []
    for article_id, author_id in session.exec(query):
        ids.append(article_id)
        if author_id is not None:
            keys.add(author_key(author_id))
    if ids:
        keys.add(SITE_KEY)
        rows = session.exec(
            select(ArticleTag.tag_id).where(col(ArticleTag.article_id).in_(ids)).distinct()
        )
        keys |= {tag_key(t) for t in rows}
    return keys


_after_commit: list[weakref.WeakMethod[Callable[[], None]]] = []


def on_feeds_touched(callback: Callable[[], None]) -> None:
    """Call the bound method `callback` after each commit in this process that touched feed
    versions, so a cache in the same process can look at once instead of at its next poll.
    Held weakly: a cache that is gone is not kept alive by this list."""
    _after_commit[:] = [ref for ref in _after_commit if ref() is not None]
    _after_commit.append(weakref.WeakMethod(callback))


def _notify(_session: Session) -> None:
    for ref in _after_commit:
        callback = ref()
        if callback is not None:
            callback()


def touch_feeds(session: Session, keys: set[str], now: datetime) -> int:
    """Give every feed in `keys` a new content version (one number for the whole change).

    The counter is incremented in the database (UPDATE ... RETURNING), which also takes the
    write lock on SQLite, so two writers can never hand out the same number. A feed's
    changed_at (its Last-Modified) moves forward by at least a second per version: HTTP dates
    have whole seconds, and If-Modified-Since must never hide a change."""
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
    if not sa.event.contains(session, "after_commit", _notify):
        sa.event.listen(session, "after_commit", _notify, once=True)
    return int(version)


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
    first = session.exec(
        select(Article.published_at)
        .where(Article.status == ArticleStatus.published, col(Article.published_at) > after)
        .order_by(col(Article.published_at))
        .limit(1)
    ).first()
    return first


# --------------------------------------------------------------------------- subscribers


def subscriber_by_email(session: Session, email: str) -> Subscriber | None:
    return session.exec(select(Subscriber).where(Subscriber.email == email)).first()


def subscribers_by_emails(session: Session, emails: Iterable[str]) -> dict[str, Subscriber]:
    rows = session.exec(select(Subscriber).where(col(Subscriber.email).in_(list(emails))))
    return {s.email: s for s in rows}


def suppressions_for(session: Session, emails: Iterable[str]) -> dict[str, Suppression]:
    rows = session.exec(select(Suppression).where(col(Suppression.email).in_(list(emails))))
    return {s.email: s for s in rows}


def suppress(session: Session, email: str, reason: str, detail: str, now: datetime) -> None:
    """Record that `email` must not be mailed again. The first reason stays, except that a
    bounce or complaint replaces an unsubscribe: those are the ones no sign-up may undo."""
    row = session.get(Suppression, email)
    if row is None:
        session.add(Suppression(email=email, reason=reason, detail=detail, created_at=now))
    elif row.reason == "unsubscribed" and reason in ("bounced", "complained"):
        row.reason, row.detail, row.created_at = reason, detail, now
    session.flush()


def lift_suppression(session: Session, email: str) -> None:
    session.execute(sa.delete(Suppression).where(col(Suppression.email) == email))


def all_digests(session: Session) -> list[Digest]:
    return list(session.exec(select(Digest).order_by(col(Digest.id))))


def ensure_digest(session: Session, slug: str, name: str, description: str = "") -> Digest:
    digest = session.exec(select(Digest).where(Digest.slug == slug)).first()
    if digest is None:
        digest = Digest(slug=slug, name=name, description=description)
        session.add(digest)
        session.flush()
    return digest


def subscriptions_of(session: Session, subscriber_id: int) -> dict[int, str]:
    """digest id -> tag slugs (space separated; empty means all)."""
    rows = session.exec(select(Subscription).where(Subscription.subscriber_id == subscriber_id))
    return {row.digest_id: row.tags for row in rows}


def subscriptions_of_many(session: Session, ids: list[int]) -> dict[int, dict[int, str]]:
    """subscriber id -> (digest id -> tag slugs), for many subscribers in one query."""
    found: dict[int, dict[int, str]] = {}
    if ids:
        rows = session.exec(select(Subscription).where(col(Subscription.subscriber_id).in_(ids)))
        for row in rows:
            found.setdefault(row.subscriber_id, {})[row.digest_id] = row.tags
    return found


def subscriber_ids(session: Session, emails: list[str]) -> dict[str, int]:
    rows = session.exec(
        select(Subscriber.email, Subscriber.id).where(col(Subscriber.email).in_(emails))
    )
    return {email: subscriber_id for email, subscriber_id in rows if subscriber_id is not None}


def set_subscriptions(session: Session, subscriber_id: int, wanted: dict[int, str]) -> None:
    session.execute(sa.delete(Subscription).where(col(Subscription.subscriber_id) == subscriber_id))
    for digest_id, tags in wanted.items():
        session.add(Subscription(subscriber_id=subscriber_id, digest_id=digest_id, tags=tags))
    session.flush()


def subscribers(
    session: Session, status: str | None = None, batch: int = 1000
) -> Iterable[tuple[Subscriber, dict[int, str]]]:
    """Every subscriber with their subscriptions, by id, fetched `batch` at a time so an
    export of any size runs in constant memory."""
    last = 0
    while True:
        query = select(Subscriber).where(col(Subscriber.id) > last)
        if status is not None:
            query = query.where(Subscriber.status == status)
        page = list(session.exec(query.order_by(col(Subscriber.id)).limit(batch)))
        if not page:
            return
        ids = [s.id for s in page]
        subs: dict[int, dict[int, str]] = {}
        for row in session.exec(
            select(Subscription).where(col(Subscription.subscriber_id).in_(ids))
        ):
            subs.setdefault(row.subscriber_id, {})[row.digest_id] = row.tags
        for subscriber in page:
            yield subscriber, subs.get(subscriber.id or 0, {})
        last = page[-1].id or 0
        session.expunge_all()
