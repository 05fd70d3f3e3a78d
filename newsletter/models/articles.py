"""Articles, their authors and tags, and the read models pages, feeds and digests use."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from urllib.parse import quote

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from newsletter.models.types import UTCDateTime, utcnow


class ArticleStatus(StrEnum):
    draft = "draft"
    published = "published"


class Author(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(max_length=200, unique=True)
    name: str = Field(max_length=300)
    bio: str = ""
    url: str | None = Field(default=None, max_length=2000)


class Tag(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(max_length=200, unique=True)
    name: str = Field(max_length=300)
    description: str = ""


class Article(SQLModel, table=True):
    __table_args__ = (
        # newest N published of the site: one range scan of this index
        sa.Index("ix_article_status_published", "status", "published_at", "id"),
        # newest N published of an author
        sa.Index("ix_article_author_status_published", "author_id", "status", "published_at", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    guid: str = Field(max_length=2000, unique=True)
    slug: str = Field(max_length=200, unique=True)
    title: str = Field(max_length=1000)
    summary: str = ""
    body_html: str = ""
    # None means "the article's page on this site" (computed from base_url and slug)
    url: str | None = Field(default=None, max_length=2000)
    image: str | None = Field(default=None, max_length=2000)
    author_id: int | None = Field(
        default=None, sa_column=sa.Column(sa.ForeignKey("author.id", ondelete="SET NULL"))
    )
    status: ArticleStatus = Field(
        default=ArticleStatus.draft, sa_column=sa.Column(sa.String(16), nullable=False)
    )
    published_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    # digest of the imported fields: re-importing an unchanged record writes nothing
    fingerprint: str = Field(default="", max_length=64)
    # where an imported article came from (a feed URL or a file); a feed or URL may update
    # only the articles it brought in itself (a guid is public: another feed may reuse it)
    source: str = Field(default="", max_length=2000)


class ArticleTag(SQLModel, table=True):
    """An article's tag. `listed_at` copies the article's published_at while it is published
    (NULL otherwise) so "newest N published of tag T" is one range scan of
    (tag_id, listed_at, article_id).
    """

    __tablename__ = "article_tag"
    __table_args__ = (sa.Index("ix_article_tag_tag_listed", "tag_id", "listed_at", "article_id"),)

    article_id: int = Field(
        sa_column=sa.Column(
            sa.ForeignKey("article.id", ondelete="CASCADE"), primary_key=True, nullable=False
        )
    )
    tag_id: int = Field(
        sa_column=sa.Column(
            sa.ForeignKey("tag.id", ondelete="CASCADE"), primary_key=True, nullable=False
        )
    )
    listed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


# ------------------------------------------------------------------ read models (not tables)


@dataclass(frozen=True)
class AuthorView:
    slug: str
    name: str
    bio: str = ""
    url: str | None = None


@dataclass(frozen=True)
class TagView:
    slug: str
    name: str


@dataclass(frozen=True)
class ArticleView:
    """An article with its author and tags, as pages, feeds and digests show it."""

    guid: str
    slug: str
    title: str
    summary: str
    body_html: str
    url: str | None
    image: str | None
    author: AuthorView | None
    tags: tuple[TagView, ...]
    status: ArticleStatus
    published_at: datetime | None
    updated_at: datetime

    def link(self, base_url: str) -> str:
        """The article's own URL when it came with one, else its page on this site."""
        return self.url or f"{base_url}/articles/{quote(self.slug)}"
