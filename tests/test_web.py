from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from starlette.testclient import TestClient

from newsletter import articles
from newsletter.config import Settings
from tests.helpers import NOW, context


def add(engine: sa.Engine, settings: Settings, *records: dict[str, object]) -> None:
    parsed = [articles.validate(r, f"test#{n}", context(settings)) for n, r in enumerate(records)]
    report = articles.import_articles(engine, parsed, base_url=settings.base_url, now=NOW)
    assert not report.errors


def test_healthz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_home_lists_recent_articles_with_author_and_local_date(
    client: TestClient, engine: sa.Engine, settings: Settings
) -> None:
    add(
        engine,
        settings,
        {
            "guid": "1",
            "slug": "late-night",
            "title": "Late night in Jakarta",
            "summary": "A lead.",
            "author": "Budi Santoso",
            # 20:30 UTC is 03:30 the next day in Jakarta
            "published_at": datetime(2026, 11, 1, 20, 30, tzinfo=UTC).isoformat(),
        },
        {"guid": "2", "slug": "draft-one", "title": "Not yet", "status": "draft"},
    )
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "Late night in Jakarta" in page.text
    assert "A lead." in page.text
    assert "Budi Santoso" in page.text
    assert "2 November 2026" in page.text
    assert 'href="http://news.test/articles/late-night"' in page.text
    assert "Not yet" not in page.text


def test_article_page_and_links_that_lead_somewhere(
    client: TestClient, engine: sa.Engine, settings: Settings
) -> None:
    add(
        engine,
        settings,
        {"guid": "1", "slug": "here", "title": "Here", "body": "<h2>Section</h2><p>Text</p>"},
        {"guid": "2", "slug": "there", "title": "There", "url": "https://elsewhere.test/there"},
    )
    home = client.get("/").text
    assert 'href="https://elsewhere.test/there"' in home
    page = client.get("/articles/here")
    assert page.status_code == 200
    assert "<h2>Section</h2>" in page.text
    assert '<link rel="canonical" href="http://news.test/articles/here">' in page.text


def test_unknown_or_draft_article_is_404(
    client: TestClient, engine: sa.Engine, settings: Settings
) -> None:
    add(engine, settings, {"guid": "d", "slug": "secret", "title": "Secret", "status": "draft"})
    assert client.get("/articles/secret").status_code == 404
    missing = client.get("/articles/nothing-here")
    assert missing.status_code == 404
    assert "no article &#39;nothing-here&#39;" in missing.text


def test_titles_are_escaped_in_pages(
    client: TestClient, engine: sa.Engine, settings: Settings
) -> None:
    title = "Fish &amp; Chips <em>now</em>: 1 < 2"
    add(engine, settings, {"guid": "x", "slug": "x", "title": title, "body": "b"})
    assert "Fish &amp; Chips now: 1 &lt; 2</a>" in client.get("/").text
