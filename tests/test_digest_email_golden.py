"""The digest email, byte for byte: an issue of three posts (one with an image, one with a
Korean title, one without an author) composed by newsletter.digests.compose.Composer with
the real templates and CSS inliner, personalised for a fixed recipient. The expected bytes
are under tests/golden/digest/; to update them after an intended change, see
docs/golden-files.md.

Besides the golden comparison, the HTML is parsed and checked for what mail clients need
(absolute links and images, image alt and width, a hidden preheader, no scripts or forms,
style sheets only for phone widths and dark mode, small footer text) and the text version
for URLs on lines of their own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from newsletter.config import MailSettings, Settings, SiteSettings
from newsletter.digests.compose import MARKERS, Composer, DigestInfo, Issue, Post, personalise
from newsletter.mail import Composer as MimeComposer
from newsletter.models import DEFAULT_SUBJECT, ArticleStatus, ArticleView, AuthorView, TagView
from newsletter.services import template_environment
from tests.golden import assert_golden

POSTAL_ADDRESS = "Jl. Sudirman 1, Jakarta 10220, Indonesia"
ISSUE_DATE = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)  # 07:00 on 20 November in Jakarta
RUN_ID = 7
NAME = "Siti Rahma"
EMAIL = "siti.rahma@example.com"
UNSUBSCRIBE_URL = "http://news.test/unsubscribe/golden-unsubscribe-token"
PREFERENCES_URL = "http://news.test/preferences/golden-preferences-token"

DIGEST = DigestInfo(
    slug="asia-morning",
    name="Asia Morning",
    description="The day's news from across Asia, every morning at seven.",
    timezone="Asia/Jakarta",
)


def _article(
    slug: str,
    title: str,
    summary: str,
    published_at: datetime,
    *,
    url: str | None = None,
    image: str | None = None,
    author: AuthorView | None = None,
    tags: tuple[TagView, ...] = (),
) -> ArticleView:
    return ArticleView(
        guid=f"urn:golden:{slug}",
        slug=slug,
        title=title,
        summary=summary,
        body_html=f"<p>{summary}</p>",
        url=url,
        image=image,
        author=author,
        tags=tags,
        status=ArticleStatus.published,
        published_at=published_at,
        updated_at=published_at,
    )


POSTS = (
    Post(
        101,
        _article(
            "jakarta-mrt-phase-two",
            "Jakarta's second MRT line opens ahead of schedule",
            "The north–south extension to Kota carries its first passengers three months "
            "early, and fares stay at 14,000 rupiah.",
            datetime(2026, 11, 19, 9, 30, tzinfo=UTC),
            image="https://cdn.news.test/images/2026/11/mrt-kota-platform.jpg",
            author=AuthorView(slug="dewi-lestari", name="Dewi Lestari"),
            tags=(TagView("indonesia", "Indonesia"), TagView("transport", "Transport")),
        ),
    ),
    Post(
        102,
        _article(
            "seoul-housing-plan",
            "서울시, 청년 주택 5만 호 공급 계획 발표",
            "서울시는 2030년까지 역세권 청년 주택 5만 호를 공급하겠다고 밝혔다. "
            "임대료는 시세의 70% 이하로 책정된다.",
            datetime(2026, 11, 19, 3, 0, tzinfo=UTC),
            # The article's own URL: long, with a query string to escape in the HTML.
            url="https://www.news.test/world/korea/2026/11/19/seoul-youth-housing-plan"
            "?utm_source=digest&utm_medium=email&utm_campaign=asia-morning",
            author=AuthorView(slug="kim-min-su", name="김민수"),
            tags=(TagView("korea", "Korea"),),
        ),
    ),
    Post(
        103,
        _article(
            "rupiah-ringgit-week",
            "Rupiah & ringgit: what <changed> this week",
            "Both currencies gained after inflation came in < 3% for the second month.",
            datetime(2026, 11, 18, 23, 45, tzinfo=UTC),  # 19 November in Jakarta
            tags=(TagView("markets", "Markets"),),
        ),
    ),
)


def _settings(tmp_path: Path, postal_address: str = POSTAL_ADDRESS) -> Settings:
    return Settings(
        root=tmp_path,
        site=SiteSettings(base_url="http://news.test", timezone="Asia/Jakarta"),
        mail=MailSettings(postal_address=postal_address),
    )


def _composer(settings: Settings) -> Composer:
    return Composer(
        templates=template_environment(settings),
        template="digest",
        subject=DEFAULT_SUBJECT,
        base_url=settings.base_url,
        site_title=settings.site.title,
        postal_address=settings.mail.postal_address,
        inline=MimeComposer(settings).inline,
    )


def _issue(settings: Settings) -> Issue:
    view_url = f"{settings.base_url}/digests/{DIGEST.slug}/{RUN_ID}"
    return Issue(DIGEST, RUN_ID, ISSUE_DATE, POSTS, view_url)


def _render(settings: Settings) -> tuple[str, str]:
    """(text, html) of the issue as the fixed recipient receives it."""
    bodies = _composer(settings).bodies(_issue(settings), POSTS)
    return personalise(bodies, NAME, EMAIL, UNSUBSCRIBE_URL, PREFERENCES_URL)


@pytest.fixture
def rendered(tmp_path: Path) -> tuple[str, str]:
    return _render(_settings(tmp_path))


def test_digest_text_matches_golden_file(rendered: tuple[str, str]) -> None:
    assert_golden("digest/digest.txt", rendered[0].encode("utf-8"))


def test_digest_html_with_inlined_css_matches_golden_file(rendered: tuple[str, str]) -> None:
    assert_golden("digest/digest.html", rendered[1].encode("utf-8"))


def test_digest_subject(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    bodies = _composer(settings).bodies(_issue(settings), POSTS)
    assert bodies.subject == "Asia Morning: 20 November 2026"


# ---------------------------------------------------------------------------- the HTML


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    parent: Element | None
    text: str = ""  # all the text inside, nested elements' too

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    @property
    def style(self) -> dict[str, str]:
        """The style attribute as {property: value}."""
        pairs = (d.partition(":") for d in self.attrs.get("style", "").split(";"))
        return {k.strip().lower(): v.strip() for k, _, v in pairs if k.strip()}


class Document(HTMLParser):
    """Every start tag with its attributes, its parent and the text inside it, and every
    text node outside <head>."""

    VOID = frozenset({"meta", "img", "br", "hr", "link", "input"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self.texts: list[str] = []
        self._open: list[Element] = []
        self._in_head = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        parent = self._open[-1] if self._open else None
        element = Element(tag, {k: v or "" for k, v in attrs}, parent)
        self.elements.append(element)
        self._in_head = self._in_head or tag == "head"
        if tag not in self.VOID:
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        self._in_head = self._in_head and tag != "head"
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i].tag == tag:
                del self._open[i:]
                break

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element.text += data
        if not self._in_head:
            self.texts.append(data)

    def all(self, tag: str) -> list[Element]:
        return [e for e in self.elements if e.tag == tag]


def _parse(markup: str) -> Document:
    document = Document()
    document.feed(markup)
    document.close()
    return document


def _is_absolute_http(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in {"http", "https"} and bool(parts.netloc)


def test_links_and_images_are_absolute(rendered: tuple[str, str]) -> None:
    document = _parse(rendered[1])
    hrefs = [a.attrs.get("href", "") for a in document.all("a")]
    sources = [img.attrs.get("src", "") for img in document.all("img")]
    assert hrefs and sources
    assert [u for u in hrefs + sources if not _is_absolute_http(u)] == []
    # The query string of the Korean post's URL is escaped in the markup and intact in href.
    assert POSTS[1].article.url in hrefs
    assert "&amp;utm_medium=email" in rendered[1]


def test_images_have_alt_width_and_fluid_style(rendered: tuple[str, str]) -> None:
    images = _parse(rendered[1]).all("img")
    assert [img.attrs["src"] for img in images] == [POSTS[0].article.image]
    for img in images:
        assert img.attrs.get("alt") == POSTS[0].article.title
        assert img.attrs.get("width") == "552"
        assert img.style.get("max-width") == "100%"
        assert img.style.get("height") == "auto"
        assert img.style.get("display") == "block"


def test_layout_is_a_600px_table_without_scripts_or_forms(
    rendered: tuple[str, str],
) -> None:
    markup = rendered[1]
    document = _parse(markup)
    for tag in ("script", "form", "input", "iframe", "link"):
        assert document.all(tag) == [], tag
    # what stays in <style> is only what inline styles cannot say: phone widths, dark mode
    for sheet in document.all("style"):
        assert sheet.text.strip().startswith("@media"), sheet.text[:80]
    assert "javascript:" not in markup.lower()
    tables = document.all("table")
    assert tables and all(t.attrs.get("role") == "presentation" for t in tables)
    container = next(t for t in tables if "container" in t.classes)
    assert container.attrs.get("width") == "600"
    assert container.style.get("max-width") == "600px"
    assert container.style.get("width") == "100%"
    html_element = document.all("html")[0]
    assert html_element.attrs.get("lang") == "en"
    assert any(m.attrs.get("charset", "").lower() == "utf-8" for m in document.all("meta"))


def test_preheader_is_first_and_hidden(rendered: tuple[str, str]) -> None:
    document = _parse(rendered[1])
    body = [e for e in document.elements if e.tag not in {"html", "head", "meta", "title", "style"}]
    preheader = body[1]  # the first element inside <body>
    assert body[0].tag == "body"
    expected = " · ".join(p.article.title for p in POSTS)[:140]
    assert preheader.text.startswith(expected)
    assert preheader.style.get("display") == "none"
    assert preheader.style.get("mso-hide") == "all"


def test_heading_greeting_and_view_in_browser(rendered: tuple[str, str]) -> None:
    document = _parse(rendered[1])
    assert [h.text for h in document.all("h1")] == ["Asia Morning"]
    assert any(p.text == "20 November 2026" for p in document.all("p"))
    assert [a.attrs["href"] for a in document.all("a") if a.text == "View in your browser"] == [
        "http://news.test/digests/asia-morning/7"
    ]
    greeting = next(p for p in document.all("p") if "greeting" in p.classes)
    assert greeting.text.startswith("Hello Siti Rahma, here are the 3 new stories")


def test_posts_show_title_link_author_date_summary_and_tags(rendered: tuple[str, str]) -> None:
    document = _parse(rendered[1])
    titles = [
        (a.text, a.attrs["href"])
        for a in document.all("a")
        if a.parent is not None and a.parent.tag == "h2"
    ]
    assert titles == [
        (
            "Jakarta's second MRT line opens ahead of schedule",
            "http://news.test/articles/jakarta-mrt-phase-two",
        ),
        ("서울시, 청년 주택 5만 호 공급 계획 발표", POSTS[1].article.url),
        (
            "Rupiah & ringgit: what <changed> this week",
            "http://news.test/articles/rupiah-ringgit-week",
        ),
    ]
    meta = [p.text for p in document.all("p") if "meta" in p.classes]
    assert meta == [
        "Dewi Lestari · 19 November 2026",
        "김민수 · 19 November 2026",
        "19 November 2026",
    ]
    summaries = [p.text for p in document.all("p") if "summary" in p.classes]
    assert summaries == [p.article.summary for p in POSTS]
    tags = [p.text for p in document.all("p") if "tags" in p.classes]
    assert tags == ["Indonesia · Transport", "Korea", "Markets"]


def test_footer_links_address_and_small_text(rendered: tuple[str, str]) -> None:
    document = _parse(rendered[1])
    links = {a.text: a.attrs["href"] for a in document.all("a")}
    assert links["Unsubscribe"] == UNSUBSCRIBE_URL
    assert links["Change what you receive"] == PREFERENCES_URL
    assert links["The Asia Ledger"] == "http://news.test/"
    fine = [p for p in document.all("p") if "fine" in p.classes]
    assert fine[0].text == f"You receive Asia Morning at {EMAIL}."
    assert any(p.text == POSTAL_ADDRESS for p in fine)
    # The generic `p` rule (16px) must not win over the footer's size once inlined.
    assert {p.style.get("font-size") for p in fine} == {"12px"}


def test_no_raw_urls_or_markers_in_the_html_text(rendered: tuple[str, str]) -> None:
    text = " ".join(_parse(rendered[1]).texts)
    assert re.search(r"https?://|www\.", text) is None
    for marker in MARKERS:
        assert marker not in rendered[1]


# ---------------------------------------------------------------------------- the text


def test_text_version(rendered: tuple[str, str]) -> None:
    text = rendered[0]
    lines = text.splitlines()
    assert lines[:2] == ["Asia Morning", "20 November 2026"]
    assert "View in your browser:" in lines
    assert "http://news.test/digests/asia-morning/7" in lines
    assert "Hello Siti Rahma, here are the 3 new stories from The Asia Ledger." in lines
    for post in POSTS:
        assert post.article.link("http://news.test") in lines, post.article.slug
        assert post.article.title in lines
    assert "Rupiah & ringgit: what <changed> this week" in lines  # not escaped
    assert UNSUBSCRIBE_URL in lines
    assert PREFERENCES_URL in lines
    assert POSTAL_ADDRESS in lines
    assert f"You receive Asia Morning at {EMAIL}." in lines
    for marker in MARKERS:
        assert marker not in text


def test_without_postal_address_the_line_is_left_out(tmp_path: Path) -> None:
    text, markup = _render(_settings(tmp_path, postal_address=""))
    fine = [p.text for p in _parse(markup).all("p") if "fine" in p.classes]
    assert fine == [
        f"You receive Asia Morning at {EMAIL}.",
        "Change what you receive \xa0·\xa0 Unsubscribe",
        "The Asia Ledger",
    ]
    footer = text.split("\n--\n", 1)[1]
    assert "\n\n\n" not in footer
    assert POSTAL_ADDRESS not in text


def test_an_issue_without_posts_still_renders(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    bodies = _composer(settings).bodies(_issue(settings), ())
    text, markup = personalise(bodies, "", EMAIL, UNSUBSCRIBE_URL, PREFERENCES_URL)
    assert "Hello, there is nothing new from The Asia Ledger this time." in text.splitlines()
    assert _parse(markup).all("h2") == []
    assert "Unsubscribe" in markup
