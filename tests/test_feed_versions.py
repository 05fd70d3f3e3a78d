"""A feed's validators (ETag and Last-Modified) move together, only when its bytes change,
and every process gives the same bytes the same ones (issue #9, finding 17)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session
from starlette.testclient import TestClient

from newsletter import articles, storage
from newsletter.config import FeedsSettings, Settings
from newsletter.feeds.cache import FeedCache, Recorded, last_modified
from newsletter.storage import database
from newsletter.web import create_app
from tests.helpers import context

PAST = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
ITEMS = 3  # newest items in a feed
PATHS = [
    f"{feed}.{fmt}"
    for feed in ("/feed", "/tags/trade/feed", "/authors/mei/feed")
    for fmt in ("rss", "atom", "json")
]
Validators = dict[str, tuple[str, str]]  # path -> (ETag, Last-Modified)


def record(n: int, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "guid": f"story-{n}",
        "slug": f"story-{n}",
        "title": f"Story {n}",
        "body": f"<p>Body of story {n}.</p>",
        "published_at": (PAST + timedelta(hours=n)).isoformat(),
        "tags": ["Trade"],
        "author": {"name": "Mei", "slug": "mei"},
    }
    base.update(fields)
    return base


def store(engine: sa.Engine, settings: Settings, *records: dict[str, Any]) -> None:
    parsed = [articles.validate(r, f"test#{i}", context(settings)) for i, r in enumerate(records)]
    report = articles.import_articles(
        engine, parsed, base_url=settings.base_url, now=datetime.now(UTC)
    )
    assert not report.errors, report.errors


@pytest.fixture
def short(settings: Settings) -> Settings:
    return dataclasses.replace(settings, feeds=FeedsSettings(items=ITEMS))


@pytest.fixture
def stocked(short: Settings) -> Iterator[sa.Engine]:
    """Stories 1 to 5 on Trade by Mei: every feed shows 5, 4 and 3."""
    engine = database.open_database(short.database_url)
    store(engine, short, *(record(n) for n in range(1, 6)))
    yield engine
    engine.dispose()


@pytest.fixture
def client(short: Settings, stocked: sa.Engine) -> Iterator[TestClient]:
    with TestClient(create_app(short, stocked), base_url=short.base_url) as c:
        yield c


def validators(client: TestClient) -> Validators:
    found = {}
    for path in PATHS:
        response = client.get(path)
        assert response.status_code == 200
        found[path] = (response.headers["etag"], response.headers["last-modified"])
    return found


def another_process(settings: Settings, engine: sa.Engine) -> Validators:
    """What a web process started now (its own feed cache, nothing rendered) answers."""
    with TestClient(create_app(settings, engine), base_url=settings.base_url) as fresh:
        return validators(fresh)


def when(http_date: str) -> datetime:
    return parsedate_to_datetime(http_date)


def global_version(engine: sa.Engine) -> int:
    with Session(engine) as session:
        return storage.global_version(session)


def test_an_old_article_outside_the_newest_items_moves_neither_validator(
    client: TestClient, stocked: sa.Engine, short: Settings
) -> None:
    before = validators(client)
    version = global_version(stocked)

    # Story 0 is older than every story shown: the feeds get a new version, same bytes.
    store(stocked, short, record(0))
    assert global_version(stocked) > version
    assert validators(client) == before
    for path, (_etag, modified) in before.items():
        # a reader polling with If-Modified-Since alone is told nothing changed
        response = client.get(path, headers={"If-Modified-Since": modified})
        assert response.status_code == 304, path
    assert another_process(short, stocked) == before  # and every process says the same

    # editing, unpublishing and deleting it change nothing the feeds show either
    store(stocked, short, record(0, title="Story 0, revised"))
    articles.unpublish(stocked, "story-0", datetime.now(UTC))
    articles.publish(stocked, "story-0", datetime.now(UTC))
    articles.delete(stocked, "story-0", datetime.now(UTC))
    assert validators(client) == before
    assert another_process(short, stocked) == before


def test_a_change_inside_the_newest_items_moves_both(
    client: TestClient, stocked: sa.Engine, short: Settings
) -> None:
    before = validators(client)
    store(stocked, short, record(4, title="Story 4, revised"))
    after = validators(client)
    for path in PATHS:
        assert after[path][0] != before[path][0], path
        assert when(after[path][1]) > when(before[path][1]), path
        response = client.get(path, headers={"If-Modified-Since": before[path][1]})
        assert response.status_code == 200 and "Story 4, revised" in response.text
        again = client.get(path, headers={"If-Modified-Since": after[path][1]})
        assert again.status_code == 304
    assert another_process(short, stocked) == after


def test_unpublishing_the_newest_article_moves_both_forward(
    client: TestClient, stocked: sa.Engine, short: Settings
) -> None:
    # The newest date shown gets older (story 4 leads now): Last-Modified must not.
    before = validators(client)
    articles.unpublish(stocked, "story-5", datetime.now(UTC))
    after = validators(client)
    for path in PATHS:
        assert after[path][0] != before[path][0], path
        assert when(after[path][1]) > when(before[path][1]), path
        response = client.get(path, headers={"If-Modified-Since": before[path][1]})
        assert response.status_code == 200 and "Story 5" not in response.text
    assert another_process(short, stocked) == after

    # deleting the new newest one: the same, within the same second too
    articles.delete(stocked, "story-4", datetime.now(UTC))
    last = validators(client)
    for path in PATHS:
        assert last[path][0] != after[path][0], path
        assert when(last[path][1]) > when(after[path][1]), path
    assert another_process(short, stocked) == last


def test_processes_agree_whoever_renders_first(
    short: Settings, stocked: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = FeedCache(stocked, short), FeedCache(stocked, short)
    first.refresh()
    second.refresh()
    ref = first.ref("tag", "trade")
    assert ref is not None
    original = first.render(ref, "atom")
    assert second.render(ref, "atom").last_modified == original.last_modified

    # A change the feed shows. `first` read the articles just before it was committed and
    # records its rendering only after `second` rendered the new version: its older
    # rendering must not replace the newer one, or a process started later would
    # disagree with `second`.
    shown = first.articles(ref, datetime.now(UTC))
    store(stocked, short, record(6))
    second.refresh()
    newer = second.render(ref, "atom")
    monkeypatch.setattr(first, "articles", lambda *_: shown)
    stale = first.render(ref, "atom")
    assert stale.version < newer.version and stale.body == original.body
    monkeypatch.undo()
    for cache in (FeedCache(stocked, short), first):
        cache.refresh()
        assert cache.render(ref, "atom").last_modified == newer.last_modified
    assert when(newer.last_modified) > when(original.last_modified)


def test_the_rule_for_last_modified() -> None:
    t0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
    t5 = t0 + timedelta(minutes=5)
    seen = Recorded(version=7, digest="aaa", modified_at=t0)
    assert last_modified(None, "aaa", t5, stale=False) == (t5, True)  # first: its version
    assert last_modified(seen, "aaa", t5, stale=False) == (t0, False)  # as recorded
    assert last_modified(seen, "aaa", t5, stale=True) == (t0, False)
    assert last_modified(seen, "bbb", t5, stale=False) == (t5, True)  # other bytes
    assert last_modified(seen, "bbb", t5, stale=True) == (t5, False)  # not polled yet
    assert last_modified(None, "bbb", t5, stale=True) == (t5, False)
    # other bytes stamped no later than the recorded time still move forward, by a second
    earlier = t0 - timedelta(hours=1)
    assert last_modified(seen, "bbb", earlier, stale=False) == (t0 + timedelta(seconds=1), True)
