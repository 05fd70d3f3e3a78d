"""The site's feeds and one tag's feeds, byte for byte, for a fixed set of articles.

The articles are records of tests/data/hostile.jsonl (control characters, markup-like
titles, relative URLs, IRIs, Korean, Japanese and Chinese text, no author, a draft and an
article scheduled for 2099), imported through the use case and read back at a fixed `now`
the way the feed cache does. The expected bytes are under tests/golden/feeds/; to update
them after an intended change, see docs/golden-files.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from newsletter import articles, storage
from newsletter.config import DatabaseSettings, FeedsSettings, Settings, SiteSettings
from newsletter.feeds import invalidation
from newsletter.feeds.render import FORMATS, render
from newsletter.feeds.specs import FeedRef, feed_spec
from tests.golden import assert_golden
from tests.helpers import NOW, context

CORPUS = Path(__file__).parent / "data" / "hostile.jsonl"
# Records by guid (by title when they have none). Each one's tag names sort alike in every
# collation: PostgreSQL orders an item's tags by the database's collation, SQLite by code point.
PICKED = {
    "5f9c2b7e8a1d4c3b2a190f7e",  # control characters
    "post-17",  # entities and bare ampersands, an author with a URL
    "https://legacy.example.com/?p=123&preview=true",  # "]]>" and a URL guid with a query
    "http://news.test/articles/bold-move",  # markup in the title, a permalink guid
    "xss-1",  # a script in the title, summary and body
    "rtl-arabic",
    "Bare minimum: no guid, no summary, no body, no author, no tags",
    "future-1",  # scheduled for 2099: in no feed
    "url-idn",  # IRIs as url and image
    "https://例え.テスト/記事/1",  # an IRI guid, a relative image
    "korean-1",  # Korean, a relative link in the body
    "japanese-1",
    "chinese-1",
    "dangerous-body",  # dangerous and relative markup
    "entity-title-2",  # a title that is escaped markup
    "tabs-newlines",
    "draft-1",  # a draft: in no feed
    "invisible-1",
    "updated-later",
}
TAG = "world"


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Every setting a feed shows, spelt out, so a changed default cannot move the bytes."""
    return Settings(
        root=tmp_path,
        site=SiteSettings(
            title="The Asia Ledger",
            description="News & analysis on Asian affairs",
            base_url="http://news.test",
            language="en",
            timezone="Asia/Jakarta",
        ),
        database=DatabaseSettings(url=database_url),
        feeds=FeedsSettings(items=20, websub_hub="https://hub.example/"),
    )


@pytest.fixture
def imported(engine: sa.Engine, settings: Settings) -> None:
    lines = CORPUS.read_text(encoding="utf-8").split("\n")  # only "\n" ends a record
    records = [json.loads(line) for line in lines if line.strip()]
    picked = [r for r in records if r.get("guid", r["title"]) in PICKED]
    assert len(picked) == len(PICKED)
    inputs = [
        articles.validate(r, f"hostile.jsonl#{n}", context(settings))
        for n, r in enumerate(picked, 1)
    ]
    report = articles.import_articles(engine, inputs, base_url=settings.base_url, now=NOW)
    assert (report.created, report.errors) == (len(PICKED), [])


def _feed(engine: sa.Engine, settings: Settings, ref: FeedRef, fmt: str) -> bytes:
    """What FeedCache.render serves for `ref` at NOW."""
    with Session(engine) as session:
        found = storage.recent_published(session, settings.feeds.items, tag_id=ref.row_id, now=NOW)
    return render(feed_spec(settings, ref), fmt, found)


@pytest.mark.usefixtures("imported")
@pytest.mark.parametrize("fmt", FORMATS)
def test_site_feeds_match_golden_files(engine: sa.Engine, settings: Settings, fmt: str) -> None:
    site = FeedRef(invalidation.SITE_KEY, "site", "", "", "", None)
    feed = _feed(engine, settings, site, fmt)
    assert b"scheduled for 2099" not in feed and b"A draft" not in feed
    assert_golden(f"feeds/site.{fmt}", feed)


@pytest.mark.usefixtures("imported")
@pytest.mark.parametrize("fmt", FORMATS)
def test_tag_feeds_match_golden_files(engine: sa.Engine, settings: Settings, fmt: str) -> None:
    with Session(engine) as session:
        tag = storage.tag_by_slug(session, TAG)
    assert tag is not None and tag.id is not None
    ref = FeedRef(invalidation.tag_key(tag.id), "tag", tag.slug, tag.name, tag.description, tag.id)
    assert_golden(f"feeds/tag-{TAG}.{fmt}", _feed(engine, settings, ref, fmt))
