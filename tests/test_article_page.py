"""An article's page as a news publication's: lead image, tags, author box, recent posts,
related stories, share links, reading time, updated date, previous and next, a sign-up box
for the digests that carry it, its feeds; and the metadata of public pages (Open Graph,
Twitter card, NewsArticle JSON-LD, canonical, description, favicon, `lang`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import lxml.html
import pytest
import sqlalchemy as sa
from sqlmodel import Session, select
from starlette.testclient import TestClient

from newsletter import articles
from newsletter.articles.related import reading_minutes
from newsletter.config import Settings
from newsletter.digests.definitions import DigestInput
from newsletter.models import Article
from newsletter.text import count_words, foreign_language, script_language
from tests.helpers import context

BASE = "http://news.test"
DEWI = {
    "name": "Dewi Lestari",
    "slug": "dewi",
    "bio": "A Jakarta-based news writer.",
    "url": "https://dewi.example.org/",
}
KOREAN_TITLE = "북한, 남한과의 관계를 두 적대 국가로 규정"
KOREAN_SUMMARY = "김정은 위원장은 통일 정책을 폐기하고 새로운 노선을 발표했다."
KOREAN_BODY = "<p>북한은 최고인민회의에서 헌법 개정을 논의했다. 남북 관계는 더욱 경색되었다.</p>"


@dataclass(frozen=True)
class Site:
    now: datetime
    engine: sa.Engine
    settings: Settings


def _words(n: int) -> str:
    return " ".join(f"word{i}" for i in range(n))


def stock(engine: sa.Engine, settings: Settings, now: datetime) -> None:
    """Eight articles around "main" (three days old), two of them not to be shown."""

    def at(delta: timedelta) -> str:
        return (now + delta).isoformat()

    day = timedelta(days=1)
    records: list[dict[str, Any]] = [
        {
            "slug": "old-korea",
            "title": "Old Korea story",
            "summary": "An older look at the peninsula.",
            "tags": ["North Korea", "South Korea"],
            "author": DEWI,
            "published_at": at(-5 * day),
        },
        {
            "slug": "korean",
            "title": KOREAN_TITLE,
            "summary": KOREAN_SUMMARY,
            "body": KOREAN_BODY,
            "tags": ["North Korea"],
            "published_at": at(-4 * day),
        },
        {
            "slug": "main",
            "title": "The End of Peace Talks?",
            "summary": "How rhetoric threatens relations with South Korea.",
            "body": f"<h2>Background</h2><p>{_words(918)}</p>",
            "image": "https://img.test/lead.jpg",
            "tags": ["North Korea", "Diplomacy"],
            "author": DEWI,
            "published_at": at(-3 * day),
            "updated_at": at(-1 * day),
        },
        {
            "slug": "draft-korea",
            "title": "Draft about Korea",
            "status": "draft",
            "tags": ["North Korea"],
            "published_at": at(-2.5 * day),
        },
        {
            "slug": "newer-korea",
            "title": "Newer Korea story",
            "summary": "What changed since.",
            "tags": ["North Korea"],
            "published_at": at(-2 * day),
        },
        {
            "slug": "trade-story",
            "title": "Trade story",
            "summary": "Tariffs and ports.",
            "tags": ["Trade"],
            "published_at": at(-1 * day),
        },
        {
            "slug": "newest",
            "title": "Newest story",
            "summary": "Just in.",
            "tags": ["Trade"],
            "published_at": at(-timedelta(hours=1)),
        },
        {
            "slug": "future-korea",
            "title": "Scheduled Korea story",
            "tags": ["North Korea"],
            "published_at": at(day),
        },
    ]
    for record in records:
        record.setdefault("guid", record["slug"])
        record.setdefault("body", f"<p>Body of {record['slug']}.</p>")
    ctx = context(settings)
    parsed = [articles.validate(r, f"test#{n}", ctx) for n, r in enumerate(records)]
    report = articles.import_articles(engine, parsed, base_url=settings.base_url, now=now)
    assert not report.errors, report.errors


@pytest.fixture
def site(client: TestClient, engine: sa.Engine, settings: Settings) -> Site:
    now = datetime.now(UTC)
    stock(engine, settings, now)
    digests = client.app.app.state.services.digests  # type: ignore[attr-defined]
    digests.create("korea", DigestInput(name="Korea Weekly", tags=("north-korea",)))
    digests.create("trade", DigestInput(name="Trade Brief", tags=("trade",)))
    return Site(now, engine, settings)


def _page(client: TestClient, path: str) -> Any:
    answer = client.get(path)
    assert answer.status_code == 200, answer.text
    return lxml.html.fromstring(answer.text)


def _titles(section: Any) -> list[str]:
    return [" ".join(h.text_content().split()) for h in section.xpath(".//ol/li/h3")]


def _section(doc: Any, heading: str) -> Any:
    (found,) = doc.xpath(f'//section[h2[normalize-space()="{heading}"]]')
    return found


# ------------------------------------------------------------------------------ the page


def test_lead_image_tags_byline_reading_time_and_update(client: TestClient, site: Site) -> None:
    doc = _page(client, "/articles/main")
    (h1,) = doc.xpath("//article//h1")
    assert h1.text_content() == "The End of Peace Talks?"
    (img,) = doc.xpath("//article//figure[@class='lead']/img")
    assert img.get("src") == "https://img.test/lead.jpg"
    assert img.get("alt") == "The End of Peace Talks?"
    header_tags = doc.xpath("//article/header/p[@class='tags']/a/@href")
    assert header_tags == [f"{BASE}/tags/diplomacy", f"{BASE}/tags/north-korea"]
    (byline,) = doc.xpath("//p[contains(@class, 'byline')]")
    assert byline.xpath("a/@href") == [f"{BASE}/authors/dewi"]
    # 920 words of body (a heading and 918 words) at 230 a minute
    assert byline.xpath("string(.//span[@class='reading-time'])") == "4 min read"
    (updated,) = byline.xpath(".//span[@class='updated']/time/@datetime")
    assert datetime.fromisoformat(updated) == (site.now - timedelta(days=1))
    assert "<h2>Background</h2>" in client.get("/articles/main").text


def test_no_updated_date_when_never_changed(client: TestClient, site: Site) -> None:
    doc = _page(client, "/articles/newer-korea")
    assert doc.xpath("//span[@class='updated']") == []
    assert doc.xpath("//figure") == []  # no image, no empty figure
    assert doc.xpath("string(//span[@class='reading-time'])") == "1 min read"


def test_author_box_has_bio_and_links(client: TestClient, site: Site) -> None:
    doc = _page(client, "/articles/main")
    box = _section(doc, "About the author")
    assert box.xpath("string(.//p[@class='name'])") == "Dewi Lestari"
    assert box.xpath("string(.//p[@class='bio'])") == "A Jakarta-based news writer."
    links = box.xpath(".//a/@href")
    assert f"{BASE}/authors/dewi" in links
    assert "https://dewi.example.org/" in links
    assert f"{BASE}/authors/dewi/feed.rss" in links


def test_recent_posts_have_excerpts_and_dates_newest_first(client: TestClient, site: Site) -> None:
    recent = _section(_page(client, "/articles/main"), "Recent Posts")
    assert _titles(recent) == [
        "Newest story",
        "Trade story",
        "Newer Korea story",
        KOREAN_TITLE,
        "Old Korea story",
    ]
    first = recent.xpath(".//ol/li")[0]
    assert first.xpath("string(.//p[@class='excerpt'])") == "Just in."
    (stamp,) = first.xpath(".//time/@datetime")
    assert datetime.fromisoformat(stamp) == (site.now - timedelta(hours=1))
    assert first.xpath(".//time")[0].text_content().strip()  # a date readers can read


def test_related_stories_share_a_tag_newest_first(client: TestClient, site: Site) -> None:
    related = _section(_page(client, "/articles/main"), "Related stories")
    # not the drafts, not the scheduled one, not itself, not the trade stories
    assert _titles(related) == ["Newer Korea story", KOREAN_TITLE, "Old Korea story"]
    assert related.xpath(".//ol/li[1]//a/@href") == [f"{BASE}/articles/newer-korea"]


def test_previous_and_next_follow_publication_order(client: TestClient, site: Site) -> None:
    doc = _page(client, "/articles/main")
    assert doc.xpath("//nav[@class='prevnext']/a[@rel='prev']/@href") == [f"{BASE}/articles/korean"]
    # the draft dated between them is skipped
    assert doc.xpath("//nav[@class='prevnext']/a[@rel='next']/@href") == [
        f"{BASE}/articles/newer-korea"
    ]
    newest = _page(client, "/articles/newest")
    assert newest.xpath("//nav[@class='prevnext']/a[@rel='next']") == []  # not the scheduled
    oldest = _page(client, "/articles/old-korea")
    assert oldest.xpath("//nav[@class='prevnext']/a[@rel='prev']") == []


def test_share_links_are_plain_links(client: TestClient, site: Site) -> None:
    doc = _page(client, "/articles/main")
    links = doc.xpath("//ul[contains(@class, 'share')]//a")
    assert len(links) >= 5
    hosts = set()
    for link in links:
        href = link.get("href")
        parts = urlsplit(href)
        if parts.scheme == "mailto":
            query = parse_qs(parts.query)
            assert query["subject"] == ["The End of Peace Talks?"]
            assert f"{BASE}/articles/main" in query["body"][0]
            continue
        assert parts.scheme == "https"
        hosts.add(parts.hostname)
        assert any(f"{BASE}/articles/main" in v[0] for v in parse_qs(parts.query).values())
    assert {"www.facebook.com", "x.com", "www.linkedin.com"} <= hosts
    assert "mailto" in {urlsplit(link.get("href")).scheme for link in links}
    # nothing from elsewhere runs or loads: no scripts but the JSON-LD, no images but ours
    assert [s.get("type") for s in doc.xpath("//script")] == ["application/ld+json"]
    assert doc.xpath("//img/@src") == ["https://img.test/lead.jpg"]
    assert doc.xpath("//iframe") == []


def test_signup_box_offers_the_digests_that_carry_the_story(client: TestClient, site: Site) -> None:
    doc = _page(client, "/articles/main")
    (form,) = doc.xpath("//aside[contains(@class, 'signup')]//form[contains(@class, 'subscribe')]")
    assert form.get("action") == f"{BASE}/subscribe"
    assert form.xpath(".//input[@name='csrf_token']/@value")[0]
    # the default digest carries everything, Korea Weekly draws from North Korea; not Trade
    assert sorted(form.xpath(".//input[@name='digests']/@value")) == ["digest", "korea"]
    assert sorted(form.xpath(".//input[@name='tags']/@value")) == ["diplomacy", "north-korea"]
    trade = _page(client, "/articles/trade-story")
    values = trade.xpath("//form[contains(@class, 'subscribe')]//input[@name='digests']/@value")
    assert sorted(values) == ["digest", "trade"]


def test_signup_from_the_article_page_is_accepted(client: TestClient, site: Site) -> None:
    doc = _page(client, "/articles/main")
    token = doc.xpath("//form[contains(@class, 'subscribe')]//input[@name='csrf_token']/@value")
    answer = client.post(
        "/subscribe",
        data={"csrf_token": token[0], "email": "reader@example.org", "digests": "korea"},
    )
    assert answer.status_code == 200
    assert "Check your inbox" in answer.text


def test_feed_links_in_the_head_and_on_the_page(client: TestClient, site: Site) -> None:
    doc = _page(client, "/articles/main")
    head = set(doc.xpath("//head/link[@rel='alternate']/@href"))
    feeds = {
        f"{BASE}/feed.rss",
        f"{BASE}/tags/north-korea/feed.rss",
        f"{BASE}/tags/diplomacy/feed.rss",
        f"{BASE}/authors/dewi/feed.rss",
    }
    assert feeds <= head
    assert f"{BASE}/feed.atom" in head and f"{BASE}/feed.json" in head
    visible = set(_section(doc, "Follow by feed").xpath(".//a/@href"))
    assert feeds | {f"{BASE}/feeds"} <= visible
    for href in head:
        assert client.get(href.removeprefix(BASE)).status_code == 200


def test_unknown_draft_and_scheduled_articles_are_not_found(client: TestClient, site: Site) -> None:
    for slug in ("draft-korea", "future-korea", "nothing"):
        assert client.get(f"/articles/{slug}").status_code == 404


# --------------------------------------------------------------------------- metadata


def _meta(doc: Any, key: str) -> list[str]:
    found: list[str] = doc.xpath(f"//head/meta[@property='{key}' or @name='{key}']/@content")
    return found


def test_open_graph_and_twitter_card_of_an_article(client: TestClient, site: Site) -> None:
    doc = _page(client, "/articles/main")
    assert doc.xpath("//head/title")[0].text == "The End of Peace Talks? · The Asia Ledger"
    assert _meta(doc, "description") == ["How rhetoric threatens relations with South Korea."]
    assert doc.xpath("//head/link[@rel='canonical']/@href") == [f"{BASE}/articles/main"]
    assert _meta(doc, "og:type") == ["article"]
    assert _meta(doc, "og:title") == ["The End of Peace Talks?"]
    assert _meta(doc, "og:description") == ["How rhetoric threatens relations with South Korea."]
    assert _meta(doc, "og:url") == [f"{BASE}/articles/main"]
    assert _meta(doc, "og:image") == ["https://img.test/lead.jpg"]
    assert _meta(doc, "og:site_name") == ["The Asia Ledger"]
    published = datetime.fromisoformat(_meta(doc, "article:published_time")[0])
    modified = datetime.fromisoformat(_meta(doc, "article:modified_time")[0])
    assert modified - published == timedelta(days=2)
    assert _meta(doc, "article:author") == [f"{BASE}/authors/dewi"]
    assert sorted(_meta(doc, "article:tag")) == ["Diplomacy", "North Korea"]
    assert _meta(doc, "twitter:card") == ["summary_large_image"]
    assert _meta(doc, "twitter:image") == ["https://img.test/lead.jpg"]
    plain = _page(client, "/articles/newer-korea")
    assert _meta(plain, "twitter:card") == ["summary"]
    assert _meta(plain, "og:image") == []


def test_news_article_json_ld(client: TestClient, site: Site) -> None:
    doc = _page(client, "/articles/main")
    (script,) = doc.xpath("//head/script[@type='application/ld+json']")
    data = json.loads(script.text)
    assert data["@context"] == "https://schema.org"
    assert data["@type"] == "NewsArticle"
    assert data["headline"] == "The End of Peace Talks?"
    published = datetime.fromisoformat(data["datePublished"])
    assert published == (site.now - timedelta(days=3))
    assert datetime.fromisoformat(data["dateModified"]) - published == timedelta(days=2)
    assert data["author"] == [
        {
            "@type": "Person",
            "name": "Dewi Lestari",
            "url": f"{BASE}/authors/dewi",
            "sameAs": "https://dewi.example.org/",
        }
    ]
    assert data["image"] == ["https://img.test/lead.jpg"]
    assert data["publisher"]["@type"] == "Organization"
    assert data["publisher"]["name"] == "The Asia Ledger"
    assert data["mainEntityOfPage"] == {"@type": "WebPage", "@id": f"{BASE}/articles/main"}


def test_a_title_cannot_break_out_of_the_json_ld(
    client: TestClient, site: Site, engine: sa.Engine
) -> None:
    hostile = 'Talks </script><script>alert("x")</script> & <!-- more'
    with Session(engine) as session:  # stored as is, past the import's own cleaning
        article = session.exec(select(Article).where(Article.slug == "main")).one()
        article.title = hostile
        session.add(article)
        session.commit()
    text = client.get("/articles/main").text
    assert "</script><script>" not in text
    doc = lxml.html.fromstring(text)
    assert [s.get("type") for s in doc.xpath("//script")] == ["application/ld+json"]
    data = json.loads(doc.xpath("//head/script")[0].text)
    assert data["headline"] == hostile
    assert doc.xpath("//article//h1")[0].text_content() == hostile


def test_every_public_page_has_metadata_and_a_favicon(client: TestClient, site: Site) -> None:
    for path in ("/", "/tags", "/tags/north-korea", "/authors/dewi", "/subscribe", "/feeds"):
        doc = _page(client, path)
        assert len(_meta(doc, "description")) == 1, path
        assert _meta(doc, "og:site_name") == ["The Asia Ledger"], path
        assert _meta(doc, "og:type") == ["website"], path
        assert len(doc.xpath("//head/link[@rel='canonical']")) == 1, path
        assert doc.xpath("//head/link[@rel='icon']/@href") == [f"{BASE}/favicon.svg"], path
        assert doc.xpath("//html/@lang") == ["en"], path
    tag = _page(client, "/tags/north-korea")
    assert doc.xpath("//head/link[@rel='canonical']/@href")
    assert tag.xpath("//head/link[@rel='canonical']/@href") == [f"{BASE}/tags/north-korea"]
    assert _meta(tag, "og:title") == ["North Korea"]
    # the menu's RSS item leads to the page about feeds
    assert tag.xpath("//header//nav//a[normalize-space()='RSS']/@href") == [f"{BASE}/feeds"]


def test_personal_pages_are_not_indexed(client: TestClient, site: Site) -> None:
    answer = client.get("/preferences/not-a-real-token")
    doc = lxml.html.fromstring(answer.text)
    assert doc.xpath("//head/meta[@name='robots']/@content") == ["noindex"]
    assert doc.xpath("//head/link[@rel='canonical']") == []
    assert _meta(doc, "og:url") == []


# ------------------------------------------------------------------------------ lang


def test_korean_article_carries_lang_on_its_text(client: TestClient, site: Site) -> None:
    doc = _page(client, "/articles/korean")
    assert doc.xpath("//html/@lang") == ["en"]
    assert doc.xpath("//article//h1/@lang") == ["ko"]
    assert doc.xpath("//article//p[@class='dek']/@lang") == ["ko"]
    assert doc.xpath("//article//div[@class='body']/@lang") == ["ko"]
    # an English page lists it with its language too
    recent = _section(_page(client, "/articles/main"), "Recent Posts")
    assert recent.xpath(f".//h3[normalize-space()='{KOREAN_TITLE}']/@lang") == ["ko"]
    english = _page(client, "/articles/main")
    assert english.xpath("//article//h1/@lang") == []
    assert english.xpath("//article//div[@class='body']/@lang") == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("북한은 최고인민회의에서 헌법 개정을 논의했다", "ko"),
        ("北韓(북한)은 통일 정책을 폐기했다", "ko"),  # Hanja in Korean text
        ("令和の米騒動が政治問題になった", "ja"),
        ("東京都知事選挙", "zh"),  # Han characters alone cannot tell Japanese
        ("长江的干旱与中国的水电困境", "zh"),
        ("'두 개의 적대적 국가': Unpacking Pyongyang's Two-State Doctrine", None),
        ("北京 Rethinks the Property Playbook as Local Finances Strain", None),
        ("Kim Jong Un's rhetoric", None),
        ("", None),
        ("2026 — 12:00", None),
    ],
)
def test_script_language(text: str, expected: str | None) -> None:
    assert script_language(text) == expected


def test_foreign_language_is_none_for_the_sites_own() -> None:
    assert foreign_language("북한의 정책", "en") == "ko"
    assert foreign_language("북한의 정책", "ko") is None
    assert foreign_language("长江的干旱", "zh-TW") is None
    assert foreign_language("Plain English", "en") is None


def test_reading_time_counts_words_and_cjk_characters() -> None:
    assert count_words("Hello, world — it is 4 pm.") == 6
    assert count_words("长江的干旱") == 5
    assert count_words("북한은 헌법을 논의했다") == 3  # Korean is written with spaces
    assert reading_minutes("") == 1
    assert reading_minutes(_words(230 * 4)) == 4
    assert reading_minutes(_words(230 * 4 + 100)) == 4
    assert reading_minutes("字" * 230 * 3) == 3
