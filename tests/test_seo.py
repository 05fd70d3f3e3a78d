"""What search engines and browsers ask for: /sitemap.xml (sitemaps.org 0.9), the Google
News sitemap of the last two days, /robots.txt and the favicon."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from lxml import etree
from starlette.testclient import TestClient

from newsletter import articles
from newsletter.config import Settings
from tests.helpers import context
from tests.test_article_page import BASE, KOREAN_TITLE, Site, stock

SM = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
NEWS = "{http://www.google.com/schemas/sitemap-news/0.9}"
# W3C Datetime as sitemaps.org allows it: a date, or a time with seconds and an offset
W3C_DATETIME = re.compile(r"^\d{4}-\d\d-\d\d(T\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z))?$")
PUBLISHED = ["old-korea", "korean", "main", "newer-korea", "trade-story", "newest"]


@pytest.fixture
def site(client: TestClient, engine: sa.Engine, settings: Settings) -> Site:
    now = datetime.now(UTC)
    stock(engine, settings, now)
    elsewhere = {
        "guid": "syndicated",
        "slug": "syndicated",
        "title": "Published elsewhere",
        "url": "https://elsewhere.test/story",
        "body": "<p>b</p>",
        "published_at": (now - timedelta(hours=3)).isoformat(),
    }
    parsed = [articles.validate(elsewhere, "test#x", context(settings))]
    assert not articles.import_articles(engine, parsed, base_url=BASE, now=now).errors
    return Site(now, engine, settings)


def _xml(client: TestClient, path: str) -> etree._Element:
    answer = client.get(path)
    assert answer.status_code == 200
    assert answer.headers["content-type"].split(";")[0] == "application/xml"
    root = etree.fromstring(answer.content)
    assert root.tag == f"{SM}urlset"
    return root


def test_sitemap_lists_published_pages_with_their_last_change(
    client: TestClient, site: Site
) -> None:
    root = _xml(client, "/sitemap.xml")
    entries: dict[str, str] = {}
    for url in root:
        assert url.tag == f"{SM}url"
        # sitemaps.org 0.9: <loc> first, then the optional elements, nothing else
        assert [child.tag for child in url] == [f"{SM}loc", f"{SM}lastmod"]
        loc, lastmod = (child.text or "" for child in url)
        assert loc.startswith(BASE + "/") and len(loc) < 2048
        assert W3C_DATETIME.match(lastmod), lastmod
        assert loc not in entries
        entries[loc] = lastmod
    expected = {
        f"{BASE}/",
        f"{BASE}/tags",
        *(f"{BASE}/articles/{slug}" for slug in PUBLISHED),
        f"{BASE}/tags/north-korea",
        f"{BASE}/tags/south-korea",
        f"{BASE}/tags/diplomacy",
        f"{BASE}/tags/trade",
        f"{BASE}/authors/dewi",
    }
    # not the draft, the scheduled story, nor the one whose page is elsewhere
    assert set(entries) == expected
    main = datetime.fromisoformat(entries[f"{BASE}/articles/main"])
    assert abs(main - (site.now - timedelta(days=1))) < timedelta(seconds=1)  # its update
    front = datetime.fromisoformat(entries[f"{BASE}/"])
    assert abs(front - (site.now - timedelta(hours=1))) < timedelta(seconds=1)  # the newest


def test_news_sitemap_lists_the_last_two_days(client: TestClient, site: Site) -> None:
    root = _xml(client, "/sitemap-news.xml")
    found: dict[str, etree._Element] = {}
    for url in root:
        (loc,) = url.findall(f"{SM}loc")
        (news,) = url.findall(f"{NEWS}news")
        found[loc.text or ""] = news
    # newer-korea, dated two days before the fixture's clock, is older than that by now
    assert set(found) == {f"{BASE}/articles/newest", f"{BASE}/articles/trade-story"}
    news = found[f"{BASE}/articles/newest"]
    assert news.findtext(f"{NEWS}publication/{NEWS}name") == "The Asia Ledger"
    assert news.findtext(f"{NEWS}publication/{NEWS}language") == "en"
    assert news.findtext(f"{NEWS}title") == "Newest story"
    published = datetime.fromisoformat(news.findtext(f"{NEWS}publication_date") or "")
    assert abs(published - (site.now - timedelta(hours=1))) < timedelta(seconds=1)
    children = [child.tag for child in news]
    assert children == [f"{NEWS}publication", f"{NEWS}publication_date", f"{NEWS}title"]


def test_news_sitemap_says_the_language_of_a_korean_story(
    client: TestClient, engine: sa.Engine, settings: Settings
) -> None:
    now = datetime.now(UTC)
    record = {
        "guid": "k",
        "slug": "k",
        "title": KOREAN_TITLE,
        "body": "<p>본문</p>",
        "published_at": (now - timedelta(hours=2)).isoformat(),
    }
    parsed = [articles.validate(record, "test#k", context(settings))]
    assert not articles.import_articles(engine, parsed, base_url=BASE, now=now).errors
    root = _xml(client, "/sitemap-news.xml")
    assert root.findtext(f"{SM}url/{NEWS}news/{NEWS}publication/{NEWS}language") == "ko"
    assert root.findtext(f"{SM}url/{NEWS}news/{NEWS}title") == KOREAN_TITLE


def test_empty_site_has_empty_sitemaps(client: TestClient) -> None:
    assert len(_xml(client, "/sitemap.xml")) == 0
    assert len(_xml(client, "/sitemap-news.xml")) == 0


def test_robots_txt_allows_all_but_the_editors_side(client: TestClient) -> None:
    answer = client.get("/robots.txt")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    lines = answer.text.splitlines()
    assert lines[0] == "User-agent: *"
    assert "Allow: /" in lines
    assert "Disallow: /admin" in lines
    assert "Disallow: /api/" in lines
    assert "Disallow: /preferences/" in lines
    assert f"Sitemap: {BASE}/sitemap.xml" in lines
    assert f"Sitemap: {BASE}/sitemap-news.xml" in lines


def test_favicon_is_an_svg_and_favicon_ico_leads_to_it(client: TestClient) -> None:
    answer = client.get("/favicon.svg")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "image/svg+xml"
    assert etree.fromstring(answer.content).tag == "{http://www.w3.org/2000/svg}svg"
    ico = client.get("/favicon.ico", follow_redirects=False)
    assert ico.status_code == 301
    assert ico.headers["location"] == f"{BASE}/favicon.svg"


@pytest.mark.parametrize(
    "path", ["/sitemap.xml", "/sitemap-news.xml", "/robots.txt", "/favicon.svg"]
)
def test_head_answers_like_get(client: TestClient, path: str) -> None:
    get = client.get(path)
    head = client.head(path)
    assert head.status_code == 200
    assert head.headers["content-type"] == get.headers["content-type"]
    assert head.content == b""
