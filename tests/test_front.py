"""The front page (a lead story with its image, the latest with thumbnails, older stories by
cursor) and the archive by month in the site's time zone."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from starlette.testclient import TestClient

from newsletter import articles
from newsletter.config import Settings
from tests.helpers import NOW, context


def add(engine: sa.Engine, settings: Settings, *records: dict[str, object]) -> None:
    parsed = [articles.validate(r, f"test#{n}", context(settings)) for n, r in enumerate(records)]
    report = articles.import_articles(engine, parsed, base_url=settings.base_url, now=NOW)
    assert not report.errors, report.errors


def story(n: int, **fields: object) -> dict[str, object]:
    return {
        "guid": f"g{n}",
        "slug": f"story-{n}",
        "title": f"Story {n}",
        "summary": f"Summary {n}.",
        "author": {"name": "Dewi Lestari", "slug": "dewi"},
        "published_at": (NOW - timedelta(hours=n)).isoformat(),
        **fields,
    }


def slugs(html: str) -> list[str]:
    return re.findall(r'<h2><a href="http://news.test/articles/([^"]+)"', html)


def test_lead_is_the_newest_story_with_an_image_shown_with_alt_text(
    client: TestClient, engine: sa.Engine, settings: Settings
) -> None:
    add(
        engine,
        settings,
        story(1),
        story(2, title="Floods in Jakarta", image="https://img.test/floods.jpg"),
        story(3, image="https://img.test/three.jpg"),
    )
    page = client.get("/").text
    lead = page.split('<article class="lead">')[1].split("</article>")[0]
    assert '<img src="https://img.test/floods.jpg" alt="Floods in Jakarta"' in lead
    assert "Floods in Jakarta" in lead
    rest = page.split("</article>")[1]
    assert slugs(rest) == ["story-1", "story-3"]
    thumb = re.search(r'<img class="thumb" src="https://img.test/three.jpg"[^>]*>', rest)
    assert thumb and 'loading="lazy"' in thumb[0] and 'width="144" height="96"' in thumb[0]
    assert 'action="http://news.test/subscribe"' in page  # the sign-up box stays
    assert "/feed.rss" in page


def test_without_images_the_newest_story_leads(
    client: TestClient, engine: sa.Engine, settings: Settings
) -> None:
    add(engine, settings, story(1), story(2))
    page = client.get("/").text
    lead = page.split('<article class="lead">')[1].split("</article>")[0]
    assert "Story 1" in lead and "<img" not in lead


def test_empty_site_says_so(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "Nothing published yet." in page.text


def _follow(client: TestClient, html: str, rel: str) -> str | None:
    found = re.search(rf'<link rel="{rel}" href="([^"]+)"', html)
    return found[1].replace("&amp;", "&") if found else None


def test_older_stories_reach_the_oldest_without_gaps_or_repeats(
    client: TestClient, engine: sa.Engine, settings: Settings
) -> None:
    same = (NOW - timedelta(days=3)).isoformat()
    # 50 stories, a third sharing one publication time (told apart by id), one in the
    # future, one draft
    records = [story(n, published_at=same) if n % 3 == 0 else story(n) for n in range(1, 51)]
    records.append(story(99, published_at=(NOW + timedelta(days=365)).isoformat()))
    records.append(story(98, status="draft"))
    add(engine, settings, *records)
    html = client.get("/").text
    assert '<link rel="prev"' not in html
    seen = slugs(html)
    pages = [html]
    while (nxt := _follow(client, html, "next")) is not None:
        assert "?before=" in nxt
        html = client.get(nxt).text
        assert '<link rel="prev"' in html and "Newer stories" in html
        seen += slugs(html)
        pages.append(html)
    assert len(seen) == len(set(seen)) == 50
    assert "story-99" not in seen and "story-98" not in seen
    # the same link shows the same stories after a new one is published
    second = _follow(client, pages[0], "next")
    assert second is not None
    add(engine, settings, story(0, published_at=NOW.isoformat()))
    assert slugs(client.get(second).text) == slugs(pages[1])
    # and "newer" leads back, page by page, to the front
    html = pages[-1]
    while (prev := _follow(client, html, "prev")) is not None:
        html = client.get(prev).text
    assert slugs(html)[:2] == ["story-0", "story-1"]


def test_a_broken_cursor_is_a_missing_page(client: TestClient) -> None:
    for cursor in ("nonsense!", "MTp4", "x" * 500, "OTk5OTk5OTk5OTk5OTk5OTk5OjE"):
        answer = client.get("/", params={"before": cursor})
        assert answer.status_code == 404, cursor
        assert answer.headers["content-type"].startswith("text/html")


def test_archive_lists_months_in_the_site_time_zone(
    client: TestClient, engine: sa.Engine, settings: Settings
) -> None:
    # 31 October 20:00 UTC is 1 November 03:00 in Jakarta
    add(
        engine,
        settings,
        story(1, published_at=datetime(2026, 10, 31, 20, 0, tzinfo=UTC).isoformat()),
        story(2, published_at=datetime(2026, 10, 31, 16, 0, tzinfo=UTC).isoformat()),
        story(3, published_at=datetime(2026, 9, 2, 9, 0, tzinfo=UTC).isoformat()),
        story(4, published_at=datetime(2025, 1, 5, 9, 0, tzinfo=UTC).isoformat()),
        story(5, status="draft", published_at=datetime(2026, 8, 2, tzinfo=UTC).isoformat()),
    )
    years = articles.archive_months(engine, settings.site.tz, NOW)
    assert [(y.year, [(m.month, m.count) for m in y.months]) for y in years] == [
        (2026, [(11, 1), (10, 1), (9, 1)]),
        (2025, [(1, 1)]),
    ]
    page = client.get("/archive").text
    assert page.index("November 2026") < page.index("October 2026") < page.index("January 2025")
    assert 'href="http://news.test/archive/2026/11"' in page
    november = client.get("/archive/2026/11")
    assert november.status_code == 200 and slugs(november.text) == ["story-1"]
    assert 'href="http://news.test/archive/2026/10"' in november.text  # the month before
    october = client.get("/archive/2026/10").text
    assert slugs(october) == ["story-2"]


def test_month_pages_are_paginated(
    client: TestClient, engine: sa.Engine, settings: Settings
) -> None:
    add(engine, settings, *(story(n) for n in range(1, 41)))
    month = NOW.astimezone(settings.site.tz)
    path = f"/archive/{month.year:04d}/{month.month:02d}"
    html = client.get(path).text
    seen = slugs(html)
    while (nxt := _follow(client, html, "next")) is not None:
        assert nxt.startswith("http://news.test" + path + "?before=")
        html = client.get(nxt).text
        seen += slugs(html)
    assert seen == [f"story-{n}" for n in range(1, 41)]


def test_months_with_nothing_or_no_month_at_all_are_missing(
    client: TestClient, engine: sa.Engine, settings: Settings
) -> None:
    add(engine, settings, story(1))
    for path in (
        "/archive/2001/01",
        "/archive/2026/13",
        "/archive/2026/00",
        "/archive/26/11",
        "/archive/2026/1",
        "/archive/abcd/11",
        "/archive/0000/01",
        "/archive/9999/12",
    ):
        answer = client.get(path)
        assert answer.status_code == 404, path
        assert answer.headers["content-type"].startswith("text/html"), path
