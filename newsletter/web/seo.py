"""What search engines and browsers ask a site for besides its pages: /sitemap.xml,
/sitemap-news.xml (Google News), /robots.txt, the favicon; and the NewsArticle structured
data of article pages."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter
from lxml import etree
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from newsletter import articles
from newsletter.config import Settings
from newsletter.models import ArticleView, utcnow
from newsletter.resources import templates_dir
from newsletter.storage import PublishedEntry
from newsletter.text import script_language, xml_safe

router = APIRouter()
SITEMAP_NS = "http://www.sitemaps.org/schemas/sitemap/0.9"
NEWS_NS = "http://www.google.com/schemas/sitemap-news/0.9"
XML = "application/xml"
MAX_AGE = {"Cache-Control": "public, max-age=300"}
# personal links (tokens) and the editors' side are nobody's search result
DISALLOWED = ("/admin", "/api/", "/confirm/", "/unsubscribe/", "/preferences/", "/search")


@router.get("/sitemap.xml")
async def sitemap(request: Request) -> Response:
    """Every published article with its last change, the front page, the topics, and the
    tag and author pages that list anything (sitemaps.org 0.9, absolute URLs)."""
    found = await run_in_threadpool(articles.site_map, request.app.state.engine, utcnow())
    base = request.app.state.settings.base_url
    urlset = etree.Element(f"{{{SITEMAP_NS}}}urlset", nsmap={None: SITEMAP_NS})
    if found.newest is not None:
        _url(urlset, f"{base}/", found.newest)
        _url(urlset, f"{base}/tags", found.newest)
    for entry in found.articles:
        if (loc := own_page(entry, base)) is not None:
            _url(urlset, loc, max(entry.published_at, entry.updated_at))
    for slug, newest in sorted(found.tags.items()):
        _url(urlset, f"{base}/tags/{quote(slug)}", newest)
    for slug, newest in sorted(found.authors.items()):
        _url(urlset, f"{base}/authors/{quote(slug)}", newest)
    return _xml(urlset)


@router.get("/sitemap-news.xml")
async def news_sitemap(request: Request) -> Response:
    """The articles of the last two days as Google News reads them: publication name and
    language, publication date and title."""
    found = await run_in_threadpool(articles.news_map, request.app.state.engine, utcnow())
    settings: Settings = request.app.state.settings
    urlset = etree.Element(f"{{{SITEMAP_NS}}}urlset", nsmap={None: SITEMAP_NS, "news": NEWS_NS})
    for entry in found:
        if (loc := own_page(entry, settings.base_url)) is None:
            continue
        url = etree.SubElement(urlset, f"{{{SITEMAP_NS}}}url")
        etree.SubElement(url, f"{{{SITEMAP_NS}}}loc").text = loc
        news = etree.SubElement(url, f"{{{NEWS_NS}}}news")
        publication = etree.SubElement(news, f"{{{NEWS_NS}}}publication")
        etree.SubElement(publication, f"{{{NEWS_NS}}}name").text = xml_safe(settings.site.title)
        language = script_language(entry.title) or news_language(settings.site.language)
        etree.SubElement(publication, f"{{{NEWS_NS}}}language").text = language
        published = etree.SubElement(news, f"{{{NEWS_NS}}}publication_date")
        published.text = entry.published_at.isoformat(timespec="seconds")
        etree.SubElement(news, f"{{{NEWS_NS}}}title").text = xml_safe(entry.title)
    return _xml(urlset)


@router.get("/robots.txt")
async def robots(request: Request) -> Response:
    """Everything may be crawled but the editors' side, the API and personal links."""
    base = request.app.state.settings.base_url
    prefix = urlsplit(base).path.rstrip("/")  # a site served under a path keeps its rules
    lines = ["User-agent: *", "Allow: /", *(f"Disallow: {prefix}{path}" for path in DISALLOWED)]
    lines += ["", f"Sitemap: {base}/sitemap.xml", f"Sitemap: {base}/sitemap-news.xml", ""]
    return Response("\n".join(lines), media_type="text/plain", headers=MAX_AGE)


@router.get("/favicon.svg")
async def favicon() -> Response:
    headers = {"Cache-Control": "public, max-age=86400"}
    return Response(_favicon(), media_type="image/svg+xml", headers=headers)


@router.get("/favicon.ico")
async def favicon_ico(request: Request) -> Response:
    """Browsers and crawlers ask for /favicon.ico whatever a page says: the SVG answers."""
    return RedirectResponse(f"{request.app.state.settings.base_url}/favicon.svg", 301)


@cache
def _favicon() -> bytes:
    return (templates_dir() / "favicon.svg").read_bytes()


def own_page(entry: PublishedEntry, base_url: str) -> str | None:
    """The article's page on this site, or None when its canonical URL is elsewhere (an
    article imported with its own URL): a sitemap lists only the site's own pages."""
    page = f"{base_url}/articles/{quote(entry.slug)}"
    return page if entry.url in (None, page) else None


def news_language(code: str) -> str:
    """The site's language as Google News writes it: the primary subtag, but for the two
    Chinese scripts it tells apart (zh-cn, zh-tw)."""
    lowered = code.lower()
    return lowered if lowered in ("zh-cn", "zh-tw") else lowered.split("-")[0]


def _url(urlset: etree._Element, loc: str, lastmod: datetime) -> None:
    url = etree.SubElement(urlset, f"{{{SITEMAP_NS}}}url")
    etree.SubElement(url, f"{{{SITEMAP_NS}}}loc").text = loc
    etree.SubElement(url, f"{{{SITEMAP_NS}}}lastmod").text = lastmod.isoformat(timespec="seconds")


def _xml(root: etree._Element) -> Response:
    body = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return Response(body, media_type=XML, headers=MAX_AGE)


def news_article(article: ArticleView, url: str, settings: Settings, words: int) -> dict[str, Any]:
    """schema.org NewsArticle of an article page (the page writes it as JSON-LD)."""
    base = settings.base_url
    published = article.published_at or article.updated_at
    data: dict[str, Any] = {
        "@context": "https://schema.org",
        "@type": "NewsArticle",
        "headline": article.title,
        "description": article.summary,
        "url": url,
        "mainEntityOfPage": {"@type": "WebPage", "@id": url},
        "datePublished": published.isoformat(),
        "dateModified": max(published, article.updated_at).isoformat(),
        "inLanguage": script_language(article.title + " " + article.summary)
        or settings.site.language,
        "wordCount": words,
        "publisher": {"@type": "Organization", "name": settings.site.title, "url": f"{base}/"},
    }
    if article.image:
        data["image"] = [article.image]
    if article.author:
        author: dict[str, Any] = {
            "@type": "Person",
            "name": article.author.name,
            "url": f"{base}/authors/{quote(article.author.slug)}",
        }
        if article.author.url:
            author["sameAs"] = article.author.url
        data["author"] = [author]
    if article.tags:
        data["keywords"] = [t.name for t in article.tags]
    return data
