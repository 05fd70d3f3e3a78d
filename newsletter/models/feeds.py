"""Feed content versions."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from newsletter.models.types import UTCDateTime


class FeedVersion(SQLModel, table=True):
    """The content version of one feed ("site", "tag:<id>", "author:<id>"), and the global
    counter under key "*". Every change takes the next number from "*" and stamps it on the
    feeds it touched, so readers poll one row to learn whether anything changed and then read
    only the rows with a higher version."""

    __tablename__ = "feed_version"

    key: str = Field(primary_key=True, max_length=100)
    version: int = Field(default=0, index=True)
    changed_at: datetime = Field(sa_type=UTCDateTime, nullable=False)


class FeedRendering(SQLModel, table=True):
    """The validators of one feed in one format: the digest of its bytes as last rendered,
    the feed version they were rendered at and their Last-Modified. The first process to
    render a version records it; every process reads it, so the same bytes get the same
    Last-Modified everywhere, and a new version with the same bytes keeps it."""

    __tablename__ = "feed_rendering"

    key: str = Field(primary_key=True, max_length=100)
    format: str = Field(primary_key=True, max_length=8)
    version: int
    digest: str = Field(max_length=40)  # sha1 of the body, hex
    modified_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
