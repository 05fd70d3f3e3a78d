"""What surrounds an article on its page (recent posts, related stories, the stories
before and after it, its reading time, the digests that carry it) and what a site map
lists. Read-only use cases; every list leaves out drafts and articles scheduled later."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session

from newsletter import storage
from newsletter.articles.service import get_article
from newsletter.models import ArticleView
from newsletter.text import count_words, html_to_text

WORDS_PER_MINUTE = 230  # adults reading prose on a screen
RECENT_POSTS = 5
RELATED_STORIES = 4
SITEMAP_LIMIT = 50_000  # the most URLs one sitemaps.org file may list
NEWS_WINDOW = timedelta(days=2)  # what Google News reads from a news sitemap
NEWS_LIMIT = 1_000  # the most URLs one news sitemap may list


@dataclass(frozen=True)
class ArticlePage:
    """An article and everything its page shows around it."""

    article: ArticleView
    text: str  # the body as plain text
    words: int
    minutes: int  # reading time
    updated: datetime | None  # when it changed after publication (to the minute), else None
    recent: list[ArticleView]  # the newest published, this one left out
    related: list[ArticleView]  # sharing a tag, newest first, this one left out
    previous: ArticleView | None  # published just before (older)
    next: ArticleView | None  # published just after (newer)
    digests: list[str]  # slugs of the digests whose issues would carry it


def reading_minutes(text: str, per_minute: int = WORDS_PER_MINUTE) -> int:
    """Minutes to read plain `text`, rounded, and at least one."""
    return _minutes(count_words(text), per_minute)


def _minutes(words: int, per_minute: int = WORDS_PER_MINUTE) -> int:
    return max(1, round(words / per_minute))


def updated_after_publication(article: ArticleView) -> datetime | None:
    """The article's update time when it is a later minute than its publication time:
    import and publishing stamp both at once, so equal minutes mean "never updated"."""
    if article.published_at is None:
        return None
    if article.updated_at - article.published_at < timedelta(minutes=1):
        return None
    return article.updated_at


def article_page(
    engine: sa.Engine,
    slug: str,
    now: datetime,
    recent: int = RECENT_POSTS,
    related: int = RELATED_STORIES,
) -> ArticlePage:
    """The published article `slug` with its surroundings; NotFoundError when it is not
    published or its time has not come (the rule of get_article)."""
    article = get_article(engine, slug, now)
    text = html_to_text(article.body_html)
    words = count_words(text)
    with Session(engine) as session:
        row = storage.article_by_slug(session, slug)
        assert row is not None and row.id is not None  # get_article just found it
        tag_ids = storage.tag_ids_of(session, row.id)
        newest = storage.recent_published(session, recent + 1, now=now)
        previous, following = storage.published_neighbours(session, row, now)
        return ArticlePage(
            article=article,
            text=text,
            words=words,
            minutes=_minutes(words),
            updated=updated_after_publication(article),
            recent=[a for a in newest if a.slug != slug][:recent],
            related=storage.related_published(session, row.id, tag_ids, related, now),
            previous=previous,
            next=following,
            digests=_carrying(session, tag_ids),
        )


def _carrying(session: Session, tag_ids: Collection[int]) -> list[str]:
    """Slugs of the digests that would carry an article with `tag_ids`: those drawing from
    one of its tags, and those without tags (they carry everything)."""
    digests = storage.all_digests(session)
    drawn = storage.digest_tags(session, [d.id for d in digests if d.id is not None])
    return [
        d.slug
        for d in digests
        if d.id not in drawn or any(t.id in tag_ids for t in drawn[d.id or 0])
    ]


@dataclass(frozen=True)
class SiteMap:
    """What a sitemap lists: published articles (newest first) and, by slug, the tags and
    authors that have any, each with the date of their newest article."""

    articles: list[storage.PublishedEntry]
    tags: dict[str, datetime]
    authors: dict[str, datetime]

    @property
    def newest(self) -> datetime | None:
        return self.articles[0].published_at if self.articles else None


def site_map(engine: sa.Engine, now: datetime, limit: int = SITEMAP_LIMIT) -> SiteMap:
    with Session(engine) as session:
        return SiteMap(
            storage.published_entries(session, now, limit),
            storage.newest_by_tag(session, now),
            storage.newest_by_author(session, now),
        )


def news_map(engine: sa.Engine, now: datetime) -> list[storage.PublishedEntry]:
    """Articles published within NEWS_WINDOW before `now`, newest first (a news sitemap)."""
    with Session(engine) as session:
        return storage.published_entries(session, now, NEWS_LIMIT, since=now - NEWS_WINDOW)
