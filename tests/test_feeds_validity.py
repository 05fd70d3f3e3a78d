"""Every served feed stays valid whatever the articles contain.

tests/data/hostile.jsonl holds articles built to break feeds: control characters, entities
and bare ampersands, "]]>", markup in titles, right-to-left and CJK text, emoji sequences,
dangerous and relative markup in bodies, odd guids and URLs, tags differing only in case or
accents, a draft and an article scheduled for 2099. A generated article with a 1 MB body joins
them. The feeds of the site, of every tag and of every author are read back with feedparser
and json, and, when it is installed, with the W3C feed validator (see `_feedvalidator`).

Feeds leave out articles published after the wall clock, so the corpus dates lie in
October-November 2026, the future one in 2099.
"""

from __future__ import annotations

import calendar
import dataclasses
import html
import importlib
import io
import json
import os
import re
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import ModuleType
from urllib.parse import unquote, urlsplit

import feedparser
import pytest
import sqlalchemy as sa
from lxml import etree
from starlette.testclient import TestClient

from newsletter import articles
from newsletter.config import FeedsSettings, Settings
from newsletter.feeds.render import atom_id
from newsletter.models import ArticleStatus, utcnow
from newsletter.text import slugify
from newsletter.web import create_app
from tests.helpers import NOW, context

CORPUS = Path(__file__).parent / "data" / "hostile.jsonl"
FUTURE_GUID = "future-1"
BIG_GUID = "one-megabyte-body"
CONTENT_TYPES = {
    "rss": "application/rss+xml; charset=utf-8",
    "atom": "application/atom+xml; charset=utf-8",
    "json": "application/feed+json; charset=utf-8",
}
ATOM = "{http://www.w3.org/2005/Atom}"


# ----------------------------------------------------------------------------- the corpus


def _big_record() -> dict[str, object]:
    """An article whose HTML body is about 1 MB, with the same kinds of hostile text.

    Long paragraphs: the W3C validator's time grows with the square of the number of
    character references ("<" in an escaped body is one): 1 MB of short paragraphs, some
    80 000 references, takes it 40 s per feed."""
    paragraph = (
        "<p>Paragraph {n}: AT&amp;T, Fish &amp; Chips, 1 &lt; 2, ]]&gt;, "
        '<a href="/articles/{n}">relative {n}</a> <b>bold</b>&nbsp;text. {filler}</p>\n'
    )
    filler = (
        "Lorem ipsum dolor sit amet, caf\u00e9 \u0627\u0644\u0639\u0631\u0628\u064a\u0629 "
        "\u200f\u05e2\u05d1\u05e8\u05d9\u05ea\u200f \ud55c\uad6d\uc5b4 \u65e5\u672c\u8a9e "
        "\U0001f469\u200d\U0001f469\u200d\U0001f467 \U0001f1ee\U0001f1e9. "
    ) * 100
    parts: list[str] = []
    size = 0
    while size < 1_000_000:
        parts.append(paragraph.format(n=len(parts) + 1, filler=filler))
        size += len(parts[-1].encode("utf-8"))
    return {
        "guid": BIG_GUID,
        "title": "A one-megabyte body",
        "body": "".join(parts),
        "author": "Budi Santoso",
        "tags": ["Long reads"],
        "published_at": "2026-11-19T20:00:00-08:00",
    }


def _records() -> list[dict[str, object]]:
    # Only "\n" ends a record, as in the importer: U+2028 and friends may sit in a line.
    lines = CORPUS.read_text(encoding="utf-8").split("\n")
    return [json.loads(line) for line in lines if line.strip()]


@dataclass(frozen=True)
class Corpus:
    inputs: list[articles.ArticleInput]  # every record, validated, in import order
    guids: dict[str, articles.ArticleInput]  # stored guid -> record
    visible: list[str]  # guids of the published articles whose time has come, newest first
    hidden: set[str]  # guids of the draft and the scheduled article
    author_names: dict[str, str]  # author slug -> name as stored (the last import wins)

    def newest(self, limit: int, tag: str | None = None, author: str | None = None) -> list[str]:
        """The guids a feed of `limit` items should list, newest first."""
        found = [
            guid
            for guid in self.visible
            if (tag is None or tag in {slugify(t) for t in self.guids[guid].tags})
            and (author is None or (self.guids[guid].author or _NOBODY).slug == author)
        ]
        return found[:limit]


_NOBODY = articles.AuthorInput(slug="", name="")


@pytest.fixture
def corpus(engine: sa.Engine, settings: Settings) -> Corpus:
    ctx = context(settings)
    records = [*_records(), _big_record()]
    inputs = [articles.validate(r, f"hostile.jsonl#{n}", ctx) for n, r in enumerate(records, 1)]
    report = articles.import_articles(engine, inputs, base_url=settings.base_url, now=NOW)
    assert report.errors == []
    assert report.created == len(inputs)

    guids = {i.guid or articles.stable_guid(settings.base_url, i.slug): i for i in inputs}
    assert len(guids) == len(inputs)
    now = utcnow()
    shown = [
        (i.published_at, guid)
        for guid, i in guids.items()
        if i.status == ArticleStatus.published and i.published_at and i.published_at <= now
    ]
    visible = [guid for _, guid in sorted(shown, reverse=True)]
    hidden = set(guids) - set(visible)
    assert hidden == {FUTURE_GUID, "draft-1"}, f"corpus dates are not in the past at {now}"
    author_names = {i.author.slug: i.author.name for i in inputs if i.author}
    return Corpus(inputs, guids, visible, hidden, author_names)


@pytest.fixture
def big_client(settings: Settings, engine: sa.Engine) -> Iterator[TestClient]:
    """The app with room for the whole corpus in every feed."""
    roomy = dataclasses.replace(settings, feeds=FeedsSettings(items=100))
    with TestClient(create_app(roomy, engine), base_url=roomy.base_url) as c:
        yield c


# ----------------------------------------------------------------------------- helpers


@dataclass(frozen=True)
class Feed:
    kind: str  # site | tag | author
    slug: str
    url: str  # absolute, without the format's extension


def _feeds(client: TestClient) -> list[Feed]:
    """Every feed the service announces, from its OPML list."""
    response = client.get("/feeds.opml")
    assert response.status_code == 200
    found = []
    for outline in etree.fromstring(response.content).iter("outline"):
        rss_url = outline.get("xmlUrl")
        assert rss_url is not None and rss_url.endswith("/feed.rss"), rss_url
        url = rss_url.removesuffix(".rss")
        parts = urlsplit(url).path.split("/")
        if parts == ["", "feed"]:
            found.append(Feed("site", "", url))
        else:
            assert parts[1] in ("tags", "authors") and parts[3] == "feed", url
            slug = unquote(parts[2])
            found.append(Feed("tag" if parts[1] == "tags" else "author", slug, url))
    return found


def _expected_feeds(corpus: Corpus) -> set[tuple[str, str]]:
    tags = {("tag", slugify(t)) for i in corpus.inputs for t in i.tags}
    authors = {("author", slug) for slug in corpus.author_names}
    return {("site", ""), *tags, *authors}


def _get(client: TestClient, feed: Feed, fmt: str) -> bytes:
    response = client.get(f"{feed.url}.{fmt}")
    assert response.status_code == 200, (feed, fmt, response.text[:300])
    assert response.headers["content-type"] == CONTENT_TYPES[fmt], (feed, fmt)
    return response.content


def _timestamp(parsed: object) -> int:
    assert parsed is not None
    return calendar.timegm(parsed)  # type: ignore[arg-type]


def _same_text(shown: str, title: str, html_allowed: bool) -> bool:
    """Whether a feed shows `title` exactly: the text itself, not escaped twice, no markup
    lost ("AT&T", "]]>", "<script>" as text). Where the element may be HTML (an Atom title of
    type html; an RSS title, which RSS leaves undefined), the HTML-escaped text is fine too."""
    if shown == title:
        return True
    return html_allowed and "<" not in shown and html.unescape(shown) == title


_URL_ATTRIBUTE = re.compile(r"""\s(?:href|src)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""", re.I)
_HANDLER = re.compile(r"<[^>]*\son[a-z]+\s*=", re.I)
_UNSAFE_TAGS = re.compile(r"<(script|style|iframe|object|embed|form|base|meta|link)\b", re.I)


def _assert_safe_html(fragment: str, where: str) -> None:
    """No scripts, styles, frames or event handlers; every link and image URL absolute."""
    assert not _UNSAFE_TAGS.search(fragment), (where, _UNSAFE_TAGS.findall(fragment))
    assert not _HANDLER.search(fragment), where
    for match in _URL_ATTRIBUTE.finditer(fragment):
        url = html.unescape(next(g for g in match.groups() if g is not None))
        parts = urlsplit(url)
        web = parts.scheme in ("http", "https") and parts.netloc
        assert web or parts.scheme in ("mailto", "tel"), (where, url)


def _updated(record: articles.ArticleInput) -> datetime:
    assert record.published_at is not None
    return max(record.published_at, record.updated_at or record.published_at)


# ----------------------------------------------------------------------------- tests


def test_every_tag_and_author_has_a_feed(client: TestClient, corpus: Corpus) -> None:
    announced = {(f.kind, f.slug) for f in _feeds(client)}
    assert announced == _expected_feeds(corpus)
    # "Korea", "korea", "KOREA" are one tag, and so are "Café", "Cafe", "café", "CAFÉ"
    for slug in ("korea", "cafe"):
        data = json.loads(
            _get(client, Feed("tag", slug, f"http://news.test/tags/{slug}/feed"), "json")
        )
        assert [item["id"] for item in data["items"]] == ["korea-3", "korea-2", "korea-1"]


@pytest.mark.parametrize("fmt", ["rss", "atom"])
def test_feeds_parse_without_errors(
    client: TestClient, corpus: Corpus, settings: Settings, fmt: str
) -> None:
    limit = settings.feeds.items
    for feed in _feeds(client):
        body = _get(client, feed, fmt)
        parsed = feedparser.parse(body)
        where = f"{feed.url}.{fmt}"
        assert parsed.bozo == 0, f"{where}: {parsed.get('bozo_exception')!r}"
        assert parsed.version == ("rss20" if fmt == "rss" else "atom10"), where
        assert parsed.feed.get("title"), where

        ids = [entry.get("id") for entry in parsed.entries]
        expected = corpus.newest(
            limit,
            tag=feed.slug if feed.kind == "tag" else None,
            author=feed.slug if feed.kind == "author" else None,
        )
        wanted = expected if fmt == "rss" else [atom_id(g) for g in expected]
        assert ids == wanted, where
        for hidden in corpus.hidden:
            assert hidden.encode() not in body and atom_id(hidden) not in ids, (where, hidden)

        for entry, guid in zip(parsed.entries, expected, strict=True):
            record = corpus.guids[guid]
            what = f"{where} {guid!r}"
            link = entry.get("link", "")
            parts = urlsplit(link)
            assert parts.scheme in ("http", "https") and parts.netloc, (what, link)
            if record.url:
                assert link == record.url, what
            assert record.published_at is not None
            published = _timestamp(entry.get("published_parsed"))
            assert published == record.published_at.timestamp(), what
            if fmt == "atom":
                assert "updated_parsed" in entry, what
                assert _timestamp(entry.updated_parsed) == _updated(record).timestamp(), what
            else:  # RSS items carry atom:updated, which feedparser reads as updated
                assert entry.get("updated_parsed") is not None, what
            if record.author:
                assert entry.get("author") == corpus.author_names[record.author.slug], what
            elif fmt == "rss":
                assert "author" not in entry, what
            terms = {slugify(t.term) for t in entry.get("tags", [])}
            assert terms == {slugify(t) for t in record.tags}, what
            if feed.kind == "tag":
                assert feed.slug in terms, what


def test_json_feeds(client: TestClient, corpus: Corpus) -> None:
    for feed in _feeds(client):
        data = json.loads(_get(client, feed, "json"))
        where = f"{feed.url}.json"
        assert data["version"] == "https://jsonfeed.org/version/1.1", where
        assert data["feed_url"] == where
        ids = [item["id"] for item in data["items"]]
        assert not set(ids) & corpus.hidden, where
        for item in data["items"]:
            record = corpus.guids[item["id"]]
            for key in ("id", "url", "title", "content_html", "date_published"):
                assert isinstance(item.get(key), str) and item[key], (where, item["id"], key)
            assert item["title"] == record.title
            assert record.published_at is not None
            published = datetime.fromisoformat(item["date_published"])
            assert published == record.published_at, (where, item["id"])
            assert urlsplit(item["url"]).scheme in ("http", "https")
            _assert_safe_html(item["content_html"], f"{where} {item['id']!r}")
            if record.author:
                assert item["authors"][0]["name"] == corpus.author_names[record.author.slug]
            assert {slugify(t) for t in item.get("tags", [])} == {slugify(t) for t in record.tags}


def test_site_feeds_list_every_published_article(big_client: TestClient, corpus: Corpus) -> None:
    site = Feed("site", "", "http://news.test/feed")
    expected = corpus.visible
    assert len(expected) == len(corpus.inputs) - 2

    rss = etree.fromstring(_get(big_client, site, "rss"))
    items = rss.findall("channel/item")
    assert [i.findtext("guid") for i in items] == expected
    links = [i.findtext("link") for i in items]
    assert len(set(links)) == len(links)  # identical titles, distinct pages
    for item in items:
        title = corpus.guids[item.findtext("guid") or ""].title
        assert _same_text(item.findtext("title") or "", title, html_allowed=True)

    atom = etree.fromstring(_get(big_client, site, "atom"))
    entries = atom.findall(f"{ATOM}entry")
    assert [e.findtext(f"{ATOM}id") for e in entries] == [atom_id(g) for g in expected]
    by_id = {atom_id(g): corpus.guids[g] for g in expected}
    for entry in entries:
        title = by_id[entry.findtext(f"{ATOM}id") or ""].title
        element = entry.find(f"{ATOM}title")
        assert element is not None
        html_typed = element.get("type") == "html"
        assert element.get("type") in (None, "text", "html")
        assert _same_text(element.text or "", title, html_allowed=html_typed)
    updated = [e.findtext(f"{ATOM}updated") for e in entries]
    assert len(set(updated)) == len(updated)  # "Two entries with the same atom:updated"

    data = json.loads(_get(big_client, site, "json"))
    assert [item["id"] for item in data["items"]] == expected
    big = next(item for item in data["items"] if item["id"] == BIG_GUID)
    assert len(big["content_html"].encode()) > 1_000_000


def _feedvalidator() -> ModuleType:
    """The W3C feed validator (https://github.com/w3c/feedvalidator), when its src folder is
    named by $FEEDVALIDATOR or sits at /tmp/fv/src; it needs html5lib."""
    for folder in (os.environ.get("FEEDVALIDATOR", ""), "/tmp/fv/src"):
        if folder and (Path(folder) / "feedvalidator").is_dir():
            if folder not in sys.path:
                sys.path.append(folder)  # last: its demo.py and tests/ shadow nothing
            break
    try:
        importlib.import_module("html5lib")
        with warnings.catch_warnings():  # old code: invalid escapes and the like
            warnings.simplefilter("ignore")
            validator = importlib.import_module("feedvalidator")
            importlib.import_module("feedvalidator.compatibility")
            importlib.import_module("feedvalidator.formatter.text_plain")
    except ImportError:
        pytest.skip("W3C feed validator not installed: see README")
    return validator


def test_w3c_feed_validator(big_client: TestClient, corpus: Corpus) -> None:
    feedvalidator = _feedvalidator()
    formatter = sys.modules["feedvalidator.formatter.text_plain"].Formatter
    problems = []
    for feed in _feeds(big_client):
        for fmt in ("rss", "atom"):
            response = big_client.get(f"{feed.url}.{fmt}")
            assert response.status_code == 200
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = feedvalidator.validateStream(
                    io.BytesIO(response.content),
                    firstOccurrenceOnly=1,
                    contentType=response.headers["content-type"],
                    base=f"{feed.url}.{fmt}",
                )
            events = feedvalidator.compatibility.AA(result["loggedEvents"])
            if events:
                lines = [
                    f"{text}  [{type(event).__name__} in {event.params.get('parent')}/"
                    f"{event.params.get('element')}: {str(event.params.get('value', ''))[:100]!r}]"
                    for text, event in zip(formatter(events), events, strict=True)
                ]
                problems.append(f"{feed.url}.{fmt}:\n" + "\n".join(lines))
    assert not problems, "\n\n".join(problems)


def test_rss_items_carry_their_update_time(client: TestClient, corpus: Corpus) -> None:
    """Each RSS item says when it last changed (atom:updated, as the Atom entry does), even
    when that is its publication time; feedparser reads it as the entry's `updated`."""
    for feed in _feeds(client):
        rss = _get(client, feed, "rss")
        atom = feedparser.parse(_get(client, feed, "atom"))
        parsed = feedparser.parse(rss)
        items = etree.fromstring(rss, etree.XMLParser(recover=False)).findall("channel/item")
        assert len(items) == len(parsed.entries) == len(atom.entries), feed
        for item, entry, atom_entry in zip(items, parsed.entries, atom.entries, strict=True):
            what = f"{feed.url}.rss {entry.id!r}"
            assert len(item.findall(f"{ATOM}updated")) == 1, what
            record = corpus.guids[entry.id]
            assert _timestamp(entry.get("updated_parsed")) == _updated(record).timestamp(), what
            assert entry.updated == atom_entry.updated, what  # the same text in both formats
            assert _timestamp(entry.published_parsed) <= _timestamp(entry.updated_parsed), what
