"""Tables (SQLModel). Every datetime is stored as UTC and comes back timezone-aware."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlmodel import Field, SQLModel


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Stores aware datetimes as naive UTC (same on SQLite and PostgreSQL); returns aware UTC.

    A naive datetime is refused: guessing its zone is how feeds end up with wrong dates.
    """

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware one")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]


def utcnow() -> datetime:
    return datetime.now(UTC)


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


class FeedVersion(SQLModel, table=True):
    """The content version of one feed ("site", "tag:<id>", "author:<id>"), and the global
    counter under key "*". Every change takes the next number from "*" and stamps it on the
    feeds it touched, so readers poll one row to learn whether anything changed and then read
    only the rows with a higher version."""

    __tablename__ = "feed_version"

    key: str = Field(primary_key=True, max_length=100)
    version: int = Field(default=0, index=True)
    changed_at: datetime = Field(sa_type=UTCDateTime, nullable=False)


# ------------------------------------------------------------------ subscribers


class SubscriberStatus(StrEnum):
    pending = "pending"
    active = "active"
    unsubscribed = "unsubscribed"
    bounced = "bounced"
    complained = "complained"


SUPPRESSING = frozenset(
    {SubscriberStatus.unsubscribed, SubscriberStatus.bounced, SubscriberStatus.complained}
)


class Digest(SQLModel, table=True):
    """A newsletter readers can choose (its schedule and template come with the digests)."""

    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(max_length=200, unique=True)
    name: str = Field(max_length=300)
    description: str = ""


class Subscriber(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=254, unique=True)  # normalised: see subscribers.normalize_email
    name: str = Field(default="", max_length=300)
    status: str = Field(default=SubscriberStatus.pending, max_length=16, index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    confirmed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # set while a confirmation link is outstanding; cleared when used, so a link works once
    confirm_nonce: str | None = Field(default=None, max_length=64)
    confirm_sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # part of every preferences and unsubscribe link; changing it revokes them all
    link_key: str = Field(default="", max_length=64)


class Subscription(SQLModel, table=True):
    """A subscriber receives a digest, optionally only for some tags."""

    subscriber_id: int = Field(
        sa_column=sa.Column(
            sa.ForeignKey("subscriber.id", ondelete="CASCADE"), primary_key=True, nullable=False
        )
    )
    digest_id: int = Field(
        sa_column=sa.Column(
            sa.ForeignKey("digest.id", ondelete="CASCADE"), primary_key=True, nullable=False
        )
    )
    tags: str = ""  # tag slugs separated by spaces; empty means every tag of the digest


class Suppression(SQLModel, table=True):
    """An address never to be mailed again, whatever else says so (imports included)."""

    email: str = Field(primary_key=True, max_length=254)
    reason: str = Field(max_length=16)  # unsubscribed | bounced | complained
    detail: str = ""
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
