"""Articles -> feed bytes: RSS 2.0 and Atom 1.0 (feedgen) and JSON Feed 1.1. Pure: no I/O,
no clock; the same input always gives the same bytes (the static export relies on it).

feedgen 1.0.0 has faults this module works around:
- it raises on characters XML forbids: every string goes through text.xml_safe first;
- it drops every attribute but href of Atom entry links (lkiesow/python-feedgen#135): the
  entry extension below writes those links itself;
- naive datetimes raise: every datetime here is aware (models.UTCDateTime guarantees it);
- entries come out in the order they were added, prepended by default: we append, newest first;
- lastBuildDate/updated default to the wall clock: we set them from the content.
"""

from __future__ import annotations

import json
import mimetypes
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlsplit
from xml.sax.saxutils import escape, quoteattr

from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator
from lxml import etree

from newsletter.models import ArticleView
from newsletter.text import xml_safe

FORMATS = ("rss", "atom", "json")
CONTENT_TYPES = {
    "rss": "application/rss+xml; charset=utf-8",
    "atom": "application/atom+xml; charset=utf-8",
    "json": "application/feed+json; charset=utf-8",
}
ATOM_NS = "http://www.w3.org/2005/Atom"
MEDIA_NS = "http://search.yahoo.com/mrss/"
DC_NS = "http://purl.org/dc/elements/1.1/"
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
STYLESHEET = "feed.xsl"  # at the site's root, beside /feed.rss; see web/feeds.py
_GUID_NAMESPACE = uuid.UUID("6f1c3f6e-2d0b-5b8e-9a57-7c1d0e4e1a10")


@dataclass(frozen=True)
class FeedSpec:
    """What a feed is about; the articles come separately."""

    key: str  # "site", "tag:<id>" or "author:<id>"
    title: str
    description: str
    html_url: str  # the page the feed mirrors
    feed_path: str  # "/feed" or "/tags/<slug>/feed": the format's extension is appended
    base_url: str
    language: str
    site_title: str
    hub: str | None = None

    def url(self, fmt: str) -> str:
        return f"{self.base_url}{self.feed_path}.{fmt}"

    def stylesheet_href(self) -> str:
        """The browser stylesheet relative to the feed's own URL ("feed.xsl",
        "../../feed.xsl"): browsers apply XSLT from the feed's origin only, so a feed
        served from another host or under a path prefix (a CDN copy) still finds it."""
        return "../" * (self.feed_path.count("/") - 1) + STYLESHEET


_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=%-]+")


def atom_id(guid: str) -> str:
    """An Atom id for a guid: the guid itself when it already is an absolute URI (ASCII,
    nothing to escape), else a name-based UUID URN of it, so the id is stable forever
    (Ghost's hex ids, slugs, URLs with spaces)."""
    parts = urlsplit(guid)
    if _URI.fullmatch(guid) and (
        (parts.scheme in ("http", "https") and parts.netloc)
        or (parts.scheme in ("urn", "tag") and parts.path)
    ):
        return guid
    return f"urn:uuid:{uuid.uuid5(_GUID_NAMESPACE, guid)}"


def image_type(url: str) -> str:
    guessed, _ = mimetypes.guess_type(urlsplit(url).path)
    return guessed if guessed and guessed.startswith("image/") else "image/jpeg"


def feed_updated(articles: list[ArticleView], fallback: datetime = EPOCH) -> datetime:
    """The newest change among the items (deterministic, unlike the wall clock)."""
    stamps = [_updated(a) for a in articles]
    return max(stamps) if stamps else fallback


def _updated(article: ArticleView) -> datetime:
    published = article.published_at or article.updated_at
    return max(published, article.updated_at)


def render(
    spec: FeedSpec, fmt: str, articles: list[ArticleView], fallback: datetime = EPOCH
) -> bytes:
    """The feed in `fmt` ("rss", "atom" or "json"), items in the order given (newest first)."""
    if fmt == "json":
        return _render_json(spec, articles, fallback)
    if fmt not in ("rss", "atom"):
        raise ValueError(f"unknown feed format {fmt!r}")
    generator = _build(spec, fmt, articles, fallback)
    out: bytes = (
        generator.rss_str(pretty=False) if fmt == "rss" else generator.atom_str(pretty=False)
    )
    # The RSS Best Practices Profile (and the W3C validator with it) asks for "&" and "<" in
    # text to be written as hexadecimal references, so that readers never mistake escaped
    # text for markup. Same characters after parsing; applies to every element alike.
    out = out.replace(b"&amp;", b"&#x26;").replace(b"&lt;", b"&#x3C;")
    return _with_stylesheet(out, spec.stylesheet_href())


def _with_stylesheet(document: bytes, href: str) -> bytes:
    """`document` with an xml-stylesheet instruction after its XML declaration: a browser
    opening the feed shows it as a page; feed readers ignore processing instructions.
    (feedgen serializes the root element alone, so lxml cannot add it before the root.)"""
    declaration, _, rest = document.partition(b"\n")
    if not declaration.startswith(b"<?xml "):
        raise ValueError("feedgen output without an XML declaration")
    instruction = f'<?xml-stylesheet type="text/xsl" href={quoteattr(href)}?>'.encode()
    return declaration + b"\n" + instruction + b"\n" + rest


# ----------------------------------------------------------------------------- feedgen


class _FeedExtras(BaseExtension):  # type: ignore[misc]
    """Channel-level additions: namespaces, and the WebSub hub link feedgen cannot write in RSS."""

    def __init__(self) -> None:
        self.hub: str | None = None

    def extend_ns(self) -> dict[str, str]:
        return {"media": MEDIA_NS, "dc": DC_NS}  # feedgen declares atom itself

    def extend_rss(self, rss: Any) -> Any:
        if self.hub:
            channel = rss[0]
            link = etree.SubElement(channel, f"{{{ATOM_NS}}}link")
            link.attrib.update({"rel": "hub", "href": self.hub})
        return rss

    def extend_atom(self, feed: Any) -> Any:
        return feed


class _EntryExtras(BaseEntryExtension):  # type: ignore[misc]
    """Entry-level output feedgen gets wrong or lacks: Atom links with their attributes,
    dc:creator (RSS <author> must be an email address), media:content for the image, and
    the update time of RSS items (atom:updated, as the Atom entry's <updated>)."""

    def __init__(self) -> None:
        self.link: str = ""
        self.author: str | None = None
        self.image: str | None = None
        self.updated: datetime | None = None

    def _media(self, parent: Any) -> None:
        if self.image:
            media = etree.SubElement(parent, f"{{{MEDIA_NS}}}content")
            media.attrib.update(
                {"url": self.image, "medium": "image", "type": image_type(self.image)}
            )

    def extend_rss(self, item: Any) -> Any:
        if self.author:
            etree.SubElement(item, f"{{{DC_NS}}}creator").text = self.author
        self._media(item)
        if self.updated:
            # RSS 2.0 has no update time. Always written, equal to pubDate when the article
            # never changed, as Atom's required <updated> and JSON Feed's date_modified are
            # here: every format says the same, and readers comparing it see no change.
            etree.SubElement(item, f"{{{ATOM_NS}}}updated").text = self.updated.isoformat()
        return item

    def extend_atom(self, entry: Any) -> Any:
        title = entry.find("title")
        if title is not None and "<" in (title.text or ""):
            title.set("type", "html")
            title.text = escape(title.text)
        # feedgen writes Atom elements unqualified under a default namespace
        for old in entry.findall("link"):
            entry.remove(old)
        alternate = etree.SubElement(entry, "link")
        alternate.attrib.update({"rel": "alternate", "type": "text/html", "href": self.link})
        if self.image:
            enclosure = etree.SubElement(entry, "link")
            enclosure.attrib.update(
                {
                    "rel": "enclosure",
                    "type": image_type(self.image),
                    "href": self.image,
                    "length": "0",
                }
            )
        self._media(entry)
        return entry


def _build(
    spec: FeedSpec, fmt: str, articles: list[ArticleView], fallback: datetime
) -> FeedGenerator:
    fg = FeedGenerator()
    fg.register_extension("newsletter", _FeedExtras, _EntryExtras, atom=True, rss=True)
    fg.newsletter.hub = spec.hub
    self_url = spec.url(fmt)
    fg.id(self_url)
    fg.title(xml_safe(spec.title))
    fg.description(xml_safe(spec.description or spec.title))
    fg.subtitle(xml_safe(spec.description or spec.title))
    fg.language(spec.language)
    fg.generator("newsletter")
    fg.docs("https://www.rssboard.org/rss-specification")
    # Atom requires an author for entries without one; the publication stands in.
    fg.author({"name": xml_safe(spec.site_title)})
    if fmt == "atom":
        fg.link(href=spec.html_url, rel="alternate", type="text/html")
        fg.link(href=self_url, rel="self", type="application/atom+xml")
        if spec.hub:
            fg.link(href=spec.hub, rel="hub")
    else:
        fg.link(href=self_url, rel="self", type="application/rss+xml")
        fg.link(href=spec.html_url, rel="alternate")
    updated = feed_updated(articles, fallback)
    fg.updated(updated)
    fg.lastBuildDate(updated)

    for article in articles:
        link = article.link(spec.base_url)
        entry = fg.add_entry(order="append")
        title = xml_safe(article.title)
        # A title that reads like markup ("<script>" as words) is sent as escaped HTML, so no
        # reader mistakes it for tags; RSS titles are HTML-ish by convention.
        entry.title(escape(title) if fmt == "rss" and "<" in title else title)
        entry.link(href=link)
        if fmt == "atom":
            entry.id(atom_id(article.guid))
        else:
            entry.guid(xml_safe(article.guid), permalink=article.guid == link)
        summary = xml_safe(article.summary or article.title)  # readers want some text
        if fmt == "atom":
            entry.summary(summary)  # type="text"
        else:
            entry.description(escape(summary))  # RSS descriptions are HTML
        if article.body_html:
            entry.content(xml_safe(article.body_html), type="html" if fmt == "atom" else None)
        if article.published_at:
            entry.published(article.published_at)
            entry.pubDate(article.published_at)
        entry.updated(_updated(article))
        for tag in article.tags:
            entry.category(
                term=xml_safe(tag.name), scheme=f"{spec.base_url}/tags/", label=xml_safe(tag.name)
            )
        if article.author and fmt == "atom":
            author: dict[str, str] = {"name": xml_safe(article.author.name)}
            if article.author.url:
                author["uri"] = article.author.url
            entry.author(author)
        if article.image and fmt == "rss":
            entry.enclosure(article.image, "0", image_type(article.image))
        extras: _EntryExtras = entry.newsletter
        extras.link = link
        extras.author = xml_safe(article.author.name) if article.author else None
        extras.image = article.image
        extras.updated = _updated(article)
    return fg


# ----------------------------------------------------------------------------- JSON Feed


def _render_json(spec: FeedSpec, articles: list[ArticleView], fallback: datetime) -> bytes:
    feed: dict[str, Any] = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": spec.title,
        "home_page_url": spec.html_url,
        "feed_url": spec.url("json"),
        "description": spec.description or spec.title,
        "language": spec.language,
        "authors": [{"name": spec.site_title}],
    }
    if spec.hub:
        feed["hubs"] = [{"type": "WebSub", "url": spec.hub}]
    items = []
    for article in articles:
        item: dict[str, Any] = {
            "id": article.guid,
            "url": article.link(spec.base_url),
            "title": article.title,
            "content_html": article.body_html
            or f"<p>{escape(article.summary or article.title)}</p>",
        }
        if article.summary:
            item["summary"] = article.summary
        if article.image:
            item["image"] = article.image
        if article.published_at:
            item["date_published"] = _rfc3339(article.published_at)
        item["date_modified"] = _rfc3339(_updated(article))
        if article.author:
            person: dict[str, str] = {"name": article.author.name}
            if article.author.url:
                person["url"] = article.author.url
            item["authors"] = [person]
        if article.tags:
            item["tags"] = [t.name for t in article.tags]
        items.append(item)
    feed["items"] = items
    return json.dumps(feed, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def opml(title: str, outlines: list[tuple[str, str, str]], created: datetime = EPOCH) -> bytes:
    """An OPML 2.0 list of feeds: (title, feed URL, page URL) each; dateCreated is `created`
    in RFC 822 form, as OPML 2.0 asks (English names whatever the locale)."""
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<opml version="2.0">',
        f"<head><title>{escape(xml_safe(title))}</title>"
        f"<dateCreated>{format_datetime(created.astimezone(UTC), usegmt=True)}</dateCreated>"
        "</head>",
        "<body>",
    ]
    for name, xml_url, html_url in outlines:
        label = quoteattr(xml_safe(name))
        lines.append(
            f'<outline type="rss" text={label} title={label}'
            f" xmlUrl={quoteattr(xml_url)} htmlUrl={quoteattr(html_url)}/>"
        )
    lines += ["</body>", "</opml>", ""]
    return "\n".join(lines).encode("utf-8")
