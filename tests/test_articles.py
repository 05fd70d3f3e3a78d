"""Importing articles from JSON, JSON Lines, Markdown and RSS/Atom feeds into the database.

Every test goes through `articles.open_source` + `articles.read` (via `helpers.import_path`)
and `articles.import_articles`, then looks at what was stored.
"""

from __future__ import annotations

import functools
import http.server
import json
import re
import shutil
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session, col, select

from newsletter import articles, storage
from newsletter.articles import list_articles
from newsletter.config import Settings
from newsletter.errors import RecordError, SourceError
from newsletter.models import Article, ArticleStatus, ArticleTag, ArticleView, Tag
from tests.helpers import NOW, context, import_path, write_jsonl

DATA = Path(__file__).parent / "data"
WORDPRESS = DATA / "wordpress-export.rss"
GHOST = DATA / "ghost.rss"
POST = DATA / "post.md"
LATER = NOW + timedelta(days=3)

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="en">
  <title>Straits Monitor</title>
  <link rel="alternate" type="text/html" href="https://straits.example.org/"/>
  <link rel="self" type="application/atom+xml" href="https://straits.example.org/feed.atom"/>
  <id>tag:straits.example.org,2024:feed</id>
  <updated>2024-06-03T11:40:00+08:00</updated>
  <entry>
    <title type="html">Singapore&amp;#8217;s port handles a record number of containers</title>
    <link rel="alternate" type="text/html"
          href="https://straits.example.org/2024/06/port-volumes-record"/>
    <id>tag:straits.example.org,2024:post-311</id>
    <published>2024-06-03T09:15:00+08:00</published>
    <updated>2024-06-03T11:40:00+08:00</updated>
    <author>
      <name>Lim Wei Ling</name>
      <uri>https://straits.example.org/authors/lim-wei-ling</uri>
    </author>
    <category term="singapore" label="Singapore"/>
    <category term="shipping" label="Shipping"/>
    <summary type="html">Container throughput at Singapore rose 8 per cent in May.</summary>
    <content type="html">&lt;p&gt;Container throughput at Singapore rose 8 per cent in
      May, as ships diverted from the Red Sea crowded into the strait.&lt;/p&gt;
      &lt;h2&gt;Queues at anchor&lt;/h2&gt;
      &lt;p&gt;See &lt;a href="../05/strait-congestion"&gt;last month's report&lt;/a&gt;
      on the queues.&lt;/p&gt;</content>
  </entry>
  <entry>
    <title>Malaysia and Indonesia step up joint patrols in the Malacca Strait</title>
    <link rel="alternate" type="text/html" href="/2024/06/malacca-patrols"/>
    <id>tag:straits.example.org,2024:post-309</id>
    <published>2024-06-01T07:00:00Z</published>
    <updated>2024-06-01T07:00:00Z</updated>
    <author><name>Ahmad Faizal</name></author>
    <category term="Maritime security"/>
    <content type="html">&lt;p&gt;Navies will share radar data.&lt;/p&gt;</content>
  </entry>
</feed>
"""


# ----------------------------------------------------------------------------- helpers


def _views(engine: sa.Engine) -> dict[str, ArticleView]:
    """Every stored article by guid."""
    return {a.guid: a for a in list_articles(engine, limit=1000)}


def _snapshot(engine: sa.Engine, guid: str) -> dict[str, Any]:
    """Everything stored about one article: its row, its tag rows and its view."""
    with Session(engine) as session:
        article = storage.article_by_guid(session, guid)
        assert article is not None, guid
        row = {a.key: getattr(article, a.key) for a in sa.inspect(Article).column_attrs}
        tag_rows = [
            (t.tag_id, t.listed_at)
            for t in session.exec(
                select(ArticleTag)
                .where(ArticleTag.article_id == article.id)
                .order_by(col(ArticleTag.tag_id))
            )
        ]
        view = storage.article_view(session, article.slug)
    return {"row": row, "tags": tag_rows, "view": view}


def _all_snapshots(engine: sa.Engine) -> dict[str, dict[str, Any]]:
    return {guid: _snapshot(engine, guid) for guid in _views(engine)}


def _tags(engine: sa.Engine) -> list[tuple[str, str]]:
    with Session(engine) as session:
        return [(t.slug, t.name) for t in session.exec(select(Tag).order_by(col(Tag.slug)))]


def _write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def _record(guid: str, title: str, **fields: Any) -> dict[str, Any]:
    return {
        "guid": guid,
        "title": title,
        "body": f"<p>{title}: reporting from the region.</p>",
        "published_at": "2024-05-01T09:30:00+07:00",
        **fields,
    }


@contextmanager
def _serve(directory: Path) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 serving `directory`; yields its base URL."""

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    handler = functools.partial(QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host}:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# ----------------------------------------------------------------------------- formats


def test_json_array_records_are_stored_with_their_fields(
    engine: sa.Engine, settings: Settings, tmp_path: Path
) -> None:
    path = _write_json(
        tmp_path / "articles.json",
        [
            {
                "guid": "ledger-2024-0501",
                "title": "Thailand's parliament passes the marriage equality bill",
                "slug": "thailand-marriage-equality",
                "summary": "The Senate vote makes Thailand the first in South-East Asia.",
                "body": "<p>The bill now goes to the king for royal assent.</p>",
                "author": {"name": "Ploy Chaiyaporn", "bio": "Bangkok correspondent"},
                "tags": ["Thailand", "Politics"],
                "published_at": "2024-06-18T14:00:00+07:00",
                "updated_at": "2024-06-18T16:30:00+07:00",
                "url": "https://ledger.example.com/2024/06/thailand-marriage-equality/",
                "image": "/images/bangkok-parliament.jpg",
            },
            {
                "guid": "ledger-2024-0502",
                "title": "Draft: Cambodia's new canal",
                "body_markdown": "The **Funan Techo** canal would link Phnom Penh to the sea.",
                "status": "draft",
            },
        ],
    )

    report = import_path(engine, settings, path)

    assert (report.created, report.updated, report.unchanged, report.errors) == (2, 0, 0, [])
    stored = _views(engine)
    bill = stored["ledger-2024-0501"]
    assert bill.slug == "thailand-marriage-equality"
    assert bill.title == "Thailand's parliament passes the marriage equality bill"
    assert bill.summary == "The Senate vote makes Thailand the first in South-East Asia."
    assert bill.body_html == "<p>The bill now goes to the king for royal assent.</p>"
    assert bill.author is not None
    assert (bill.author.slug, bill.author.name, bill.author.bio) == (
        "ploy-chaiyaporn",
        "Ploy Chaiyaporn",
        "Bangkok correspondent",
    )
    assert [t.name for t in bill.tags] == ["Politics", "Thailand"]
    assert bill.status == ArticleStatus.published
    assert bill.published_at == datetime(2024, 6, 18, 7, 0, tzinfo=UTC)
    assert bill.updated_at == datetime(2024, 6, 18, 9, 30, tzinfo=UTC)
    assert bill.url == "https://ledger.example.com/2024/06/thailand-marriage-equality/"
    assert bill.image == "https://ledger.example.com/images/bangkok-parliament.jpg"

    canal = stored["ledger-2024-0502"]
    assert canal.status == ArticleStatus.draft
    assert canal.published_at is None
    assert canal.body_html == (
        "<p>The <strong>Funan Techo</strong> canal would link Phnom Penh to the sea.</p>\n"
    )
    assert canal.updated_at == NOW  # no date of its own: the import time


def test_json_lines_records_are_stored_one_per_line(
    engine: sa.Engine, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "articles.jsonl"
    path.write_text(
        json.dumps(_record("jl-1", "Typhoon Ewiniar nears Luzon", tags="Philippines, Weather"))
        + "\n\n"  # blank lines are skipped
        + json.dumps(_record("jl-2", "Taiwan's chipmakers add capacity in Kumamoto"))
        + "\n",
        encoding="utf-8",
    )

    report = import_path(engine, settings, path)

    assert (report.created, report.errors) == (2, [])
    stored = _views(engine)
    assert stored["jl-1"].title == "Typhoon Ewiniar nears Luzon"
    assert stored["jl-1"].slug == "typhoon-ewiniar-nears-luzon"
    assert [t.name for t in stored["jl-1"].tags] == ["Philippines", "Weather"]
    assert stored["jl-2"].body_html == (
        "<p>Taiwan's chipmakers add capacity in Kumamoto: reporting from the region.</p>"
    )
    assert stored["jl-2"].published_at == datetime(2024, 5, 1, 2, 30, tzinfo=UTC)


def test_markdown_front_matter_gives_slug_author_tags_date_and_html_body(
    engine: sa.Engine, settings: Settings
) -> None:
    report = import_path(engine, settings, POST)

    assert (report.created, report.errors) == (1, [])
    [post] = list_articles(engine)
    assert post.slug == "vietnam-robusta-coffee-boom"
    assert post.guid == articles.stable_guid(settings.base_url, "vietnam-robusta-coffee-boom")
    assert post.title == "Vietnam's coffee growers bet on robusta as prices soar"
    assert post.summary.startswith("Drought in the Central Highlands has pushed robusta")
    assert post.author is not None
    assert post.author.slug == "tran-minh-duc"
    assert post.author.name == "Tran Minh Duc"
    assert post.author.bio == "Covers agriculture and commodities from Ho Chi Minh City."
    assert [t.slug for t in post.tags] == ["agriculture", "commodities", "vietnam"]
    assert post.published_at == datetime(2024, 5, 20, 1, 0, tzinfo=UTC)  # 08:00 +07:00
    assert post.url is None
    assert "<h2>A bitter few years</h2>" in post.body_html
    assert "<h2>What could go wrong</h2>" in post.body_html
    assert "<em>the envy of the district</em>" in post.body_html
    assert "Đắk Lắk" in post.body_html
    assert '<a href="http://news.test/articles/durian-rush">earlier report</a>' in post.body_html
    assert "<li>Volumes fell by a fifth.</li>" in post.body_html
    assert "---" not in post.body_html and "slug:" not in post.body_html


def test_wordpress_feed_maps_creator_categories_content_enclosure_and_guid(
    engine: sa.Engine, settings: Settings
) -> None:
    report = import_path(engine, settings, WORDPRESS)

    assert (report.created, report.updated, report.unchanged, report.errors) == (4, 0, 0, [])
    stored = _views(engine)
    assert set(stored) == {
        "https://ledger.example.com/?p=1182",
        "https://ledger.example.com/?p=1176",
        "https://ledger.example.com/?p=1169",
        "https://ledger.example.com/?p=1154",
    }
    rate = stored["https://ledger.example.com/?p=1182"]
    assert rate.title == "Bank Indonesia holds its policy rate as the rupiah steadies"
    assert rate.slug == "bank-indonesia-holds-rate"
    assert rate.url == "https://ledger.example.com/2024/05/14/bank-indonesia-holds-rate/"
    assert rate.author is not None
    assert (rate.author.slug, rate.author.name) == ("siti-rahmawati", "Siti Rahmawati")
    assert [t.name for t in rate.tags] == ["Central Banks", "Economy", "Indonesia"]
    assert rate.image == "https://ledger.example.com/wp-content/uploads/2024/05/bi-building.jpg"
    assert rate.published_at == datetime(2024, 5, 14, 2, 15, tzinfo=UTC)
    assert rate.status == ArticleStatus.published
    # content:encoded is the body, the description excerpt the summary
    assert "<h2>Currency first</h2>" in rate.body_html
    assert "<h3>What comes next</h3>" in rate.body_html
    assert "the central bank\u2019s hand" in rate.body_html
    assert rate.summary.startswith("Bank Indonesia kept its benchmark rate at 6.25 per cent")
    assert rate.summary.endswith("several […]")

    manila = stored["https://ledger.example.com/?p=1154"]
    assert manila.title == "Manila\u2019s new metro line opens its first stretch to passengers"
    assert manila.published_at == datetime(2024, 5, 10, 4, 30, tzinfo=UTC)
    assert [t.name for t in manila.tags] == ["Infrastructure", "Philippines"]


def test_wordpress_relative_urls_are_made_absolute_against_the_article_url(
    engine: sa.Engine, settings: Settings
) -> None:
    import_path(engine, settings, WORDPRESS)

    stored = _views(engine)
    rate = stored["https://ledger.example.com/?p=1182"].body_html
    assert '<a href="https://ledger.example.com/2024/05/other-post/">' in rate
    assert '<a href="https://ledger.example.com/2024/05/rupiah-explainer/">' in rate
    assert (
        'src="https://ledger.example.com/wp-content/uploads/2024/05/bi-building-1024x683.jpg"'
        in rate
    )
    mekong = stored["https://ledger.example.com/?p=1176"].body_html
    assert (
        'src="https://ledger.example.com/wp-content/uploads/2024/05/mekong-river-768x512.jpg"'
        in (mekong)
    )
    for article in stored.values():
        assert 'href="/' not in article.body_html
        assert 'src="/' not in article.body_html


def test_wordpress_scripts_and_event_handlers_are_removed(
    engine: sa.Engine, settings: Settings
) -> None:
    import_path(engine, settings, WORDPRESS)

    for article in _views(engine).values():
        body = article.body_html.lower()
        assert "<script" not in body
        assert "_ledgerstats" not in body  # the script's text goes too
        assert "onclick" not in body
        assert "onerror" not in body
        assert "trackclick" not in body
    rate = _views(engine)["https://ledger.example.com/?p=1182"].body_html
    assert "Our explainer on the rupiah\u2019s slide</a>" in rate  # the link itself stays


def test_ghost_feed_keeps_hex_guid_media_image_creator_and_korean_title(
    engine: sa.Engine, settings: Settings
) -> None:
    report = import_path(engine, settings, GHOST)

    assert (report.created, report.errors) == (3, [])
    stored = _views(engine)
    assert set(stored) == {
        "664d2f0e8a1b3c0001a7e5f2",
        "664c8b215d2e7f0001c3a9d4",
        "664a1c7f3b9d8e0001f0b6a1",
    }
    talks = stored["664d2f0e8a1b3c0001a7e5f2"]
    assert talks.title == "한반도 긴장 완화 위해 남북 군사회담 재개"
    assert talks.slug == "남북-군사회담-재개"
    assert talks.image == "https://seoul-desk.example.com/content/images/2024/05/panmunjom.jpg"
    assert talks.author is not None
    assert (talks.author.slug, talks.author.name) == ("kim-min-seo", "Kim Min-seo")
    assert {t.name for t in talks.tags} == {"North Korea", "한국어"}
    assert talks.published_at == datetime(2024, 5, 21, 22, 30, tzinfo=UTC)
    assert "<h2>회담의 배경</h2>" in talks.body_html
    assert talks.summary.startswith("남북한 군 당국이 6년 만에")

    rice = stored["664c8b215d2e7f0001c3a9d4"]
    assert rice.title == "Pyongyang's markets feel the pinch as rice prices climb"
    assert rice.slug == "pyongyang-rice-prices"
    assert rice.image == "https://seoul-desk.example.com/content/images/2024/05/sinuiju-market.jpg"
    assert rice.author is not None and rice.author.name == "Lee Hyun-woo"
    assert 'src="https://seoul-desk.example.com/content/images/2024/05/rice-chart.png"' in (
        rice.body_html
    )
    # two articles by the same creator share one author
    hotline = stored["664a1c7f3b9d8e0001f0b6a1"]
    assert hotline.author == talks.author


def test_atom_feed_gives_author_uri_labels_and_both_dates(
    engine: sa.Engine, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "straits.atom"
    path.write_text(ATOM, encoding="utf-8")

    report = import_path(engine, settings, path)

    assert (report.created, report.errors) == (2, [])
    stored = _views(engine)
    port = stored["tag:straits.example.org,2024:post-311"]
    assert port.title == "Singapore\u2019s port handles a record number of containers"
    assert port.url == "https://straits.example.org/2024/06/port-volumes-record"
    assert port.slug == "port-volumes-record"
    assert port.author is not None
    assert port.author.name == "Lim Wei Ling"
    assert port.author.url == "https://straits.example.org/authors/lim-wei-ling"
    assert [t.name for t in port.tags] == ["Shipping", "Singapore"]
    assert port.published_at == datetime(2024, 6, 3, 1, 15, tzinfo=UTC)
    assert port.updated_at == datetime(2024, 6, 3, 3, 40, tzinfo=UTC)
    assert port.summary == "Container throughput at Singapore rose 8 per cent in May."
    assert "<h2>Queues at anchor</h2>" in port.body_html
    assert '<a href="https://straits.example.org/2024/05/strait-congestion">' in port.body_html

    patrols = stored["tag:straits.example.org,2024:post-309"]
    # a relative entry link is resolved against the feed's own link
    assert patrols.url == "https://straits.example.org/2024/06/malacca-patrols"
    assert patrols.slug == "malacca-patrols"
    assert [t.name for t in patrols.tags] == ["Maritime security"]
    assert patrols.published_at == datetime(2024, 6, 1, 7, 0, tzinfo=UTC)


def test_feed_served_over_http_is_fetched_and_imported(
    engine: sa.Engine, settings: Settings, tmp_path: Path
) -> None:
    served = tmp_path / "www"
    (served / "feed").mkdir(parents=True)
    shutil.copyfile(WORDPRESS, served / "feed" / "index.xml")

    with _serve(served) as base:
        url = f"{base}/feed/index.xml"
        sources = articles.open_source(url, allow_private=True)
        assert [(s.name, s.kind) for s in sources] == [(url, "feed")]
        parsed = list(articles.read(sources[0], context(settings)))
        report = import_path(engine, settings, url, allow_private=True)
        with pytest.raises(SourceError, match="404"):
            articles.open_source(f"{base}/feed/missing.xml", allow_private=True)

    assert [p.where for p in parsed] == [f"{url}#entry {n}" for n in range(1, 5)]
    assert (report.created, report.errors) == (4, [])
    stored = _views(engine)
    rate = stored["https://ledger.example.com/?p=1182"]
    assert rate.url == "https://ledger.example.com/2024/05/14/bank-indonesia-holds-rate/"
    assert '<a href="https://ledger.example.com/2024/05/other-post/">' in rate.body_html
    assert rate.published_at == datetime(2024, 5, 14, 2, 15, tzinfo=UTC)


# ----------------------------------------------------------------------------- re-import


def _source_file(kind: str, tmp_path: Path) -> tuple[Path, int]:
    """A file of the given format and how many articles it holds."""
    if kind == "json":
        records = [_record("j-1", "Laos opens its high-speed rail to freight"), _record("j-2", "B")]
        return _write_json(tmp_path / "a.json", records), 2
    if kind == "jsonl":
        records = [_record(f"l-{n}", f"Sri Lanka debt talks, day {n}") for n in range(1, 4)]
        return write_jsonl(tmp_path / "a.jsonl", records), 3
    if kind == "atom":
        path = tmp_path / "a.atom"
        path.write_text(ATOM, encoding="utf-8")
        return path, 2
    return {"markdown": (POST, 1), "wordpress": (WORDPRESS, 4), "ghost": (GHOST, 3)}[kind]


@pytest.mark.parametrize("kind", ["json", "jsonl", "markdown", "wordpress", "ghost", "atom"])
def test_importing_the_same_file_twice_changes_nothing(
    engine: sa.Engine, settings: Settings, tmp_path: Path, kind: str
) -> None:
    path, count = _source_file(kind, tmp_path)
    first = import_path(engine, settings, path, now=NOW)
    assert (first.created, first.updated, first.unchanged, first.errors) == (count, 0, 0, [])
    before = _all_snapshots(engine)

    second = import_path(engine, settings, path, now=LATER)

    assert (second.created, second.updated, second.unchanged, second.errors) == (0, 0, count, [])
    after = _all_snapshots(engine)
    assert after == before
    assert {g: s["view"].updated_at for g, s in after.items()} == {
        g: s["view"].updated_at for g, s in before.items()
    }
    assert len(after) == count


def test_edited_record_updates_the_article_and_moves_updated_at_to_import_time(
    engine: sa.Engine, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "a.jsonl"
    write_jsonl(path, [_record("e-1", "Nepal's new cabinet"), _record("e-2", "Bhutan votes")])
    import_path(engine, settings, path, now=NOW)
    created = _views(engine)["e-1"]
    assert created.updated_at == datetime(2024, 5, 1, 2, 30, tzinfo=UTC)  # its publication
    untouched = _snapshot(engine, "e-2")

    write_jsonl(
        path,
        [
            _record(
                "e-1",
                "Nepal's new cabinet is sworn in",
                body="<p>The coalition holds a narrow majority.</p>",
            ),
            _record("e-2", "Bhutan votes"),
        ],
    )
    report = import_path(engine, settings, path, now=LATER)

    assert (report.created, report.updated, report.unchanged, report.errors) == (0, 1, 1, [])
    edited = _views(engine)["e-1"]
    assert edited.title == "Nepal's new cabinet is sworn in"
    assert edited.body_html == "<p>The coalition holds a narrow majority.</p>"
    assert edited.published_at == created.published_at
    assert edited.updated_at == LATER
    assert len(_views(engine)) == 2
    assert _snapshot(engine, "e-2") == untouched


def test_edited_record_with_its_own_updated_at_uses_that_date(
    engine: sa.Engine, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "a.json"
    _write_json(path, [_record("u-1", "Mongolia's herders brace for a dzud")])
    import_path(engine, settings, path, now=NOW)

    _write_json(
        path,
        [
            _record(
                "u-1",
                "Mongolia's herders brace for a second dzud",
                updated_at="2024-05-03T18:45:00+07:00",
            )
        ],
    )
    report = import_path(engine, settings, path, now=LATER)

    assert (report.updated, report.errors) == (1, [])
    article = _views(engine)["u-1"]
    assert article.title == "Mongolia's herders brace for a second dzud"
    assert article.updated_at == datetime(2024, 5, 3, 11, 45, tzinfo=UTC)


def test_edited_rss_item_moves_updated_at_to_import_time(
    engine: sa.Engine, settings: Settings, tmp_path: Path
) -> None:
    """RSS 2.0 items carry only a pubDate, no modification date: an edited item must be
    marked as updated at import time, like any record that gives no updated_at."""
    path = tmp_path / "feed.rss"
    shutil.copyfile(WORDPRESS, path)
    import_path(engine, settings, path, now=NOW)
    guid = "https://ledger.example.com/?p=1182"
    published = datetime(2024, 5, 14, 2, 15, tzinfo=UTC)
    assert _views(engine)[guid].updated_at == published

    path.write_text(
        WORDPRESS.read_text(encoding="utf-8").replace(
            "<title>Bank Indonesia holds its policy rate as the rupiah steadies</title>",
            "<title>Bank Indonesia holds its policy rate for a second month</title>",
        ),
        encoding="utf-8",
    )
    report = import_path(engine, settings, path, now=LATER)

    assert (report.created, report.updated, report.unchanged, report.errors) == (0, 1, 3, [])
    article = _views(engine)[guid]
    assert article.title == "Bank Indonesia holds its policy rate for a second month"
    assert article.published_at == published
    assert article.updated_at == LATER


def test_record_without_guid_is_matched_by_its_slug(
    engine: sa.Engine, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "a.jsonl"
    write_jsonl(path, [{"slug": "kashmir-polls", "title": "Kashmir votes", "body": "<p>A</p>"}])
    first = import_path(engine, settings, path, now=NOW)
    assert first.created == 1

    write_jsonl(
        path, [{"slug": "kashmir-polls", "title": "Kashmir votes in record numbers", "body": "B"}]
    )
    second = import_path(engine, settings, path, now=LATER)

    assert (second.created, second.updated, second.errors) == (0, 1, [])
    [article] = list_articles(engine)
    assert article.slug == "kashmir-polls"
    assert article.guid == articles.stable_guid(settings.base_url, "kashmir-polls")
    assert article.title == "Kashmir votes in record numbers"
    assert article.updated_at == LATER


def test_markdown_file_edited_and_imported_again_updates_the_same_article(
    engine: sa.Engine, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "post.md"
    shutil.copyfile(POST, path)
    import_path(engine, settings, path, now=NOW)

    path.write_text(
        POST.read_text(encoding="utf-8").replace("Volumes fell by a fifth.", "Volumes fell 20%."),
        encoding="utf-8",
    )
    report = import_path(engine, settings, path, now=LATER)

    assert (report.created, report.updated, report.errors) == (0, 1, [])
    [post] = list_articles(engine)
    assert "<li>Volumes fell 20%.</li>" in post.body_html
    assert post.updated_at == LATER


# ----------------------------------------------------------------------------- bad records

EXISTING = "ledger-existing"


def _missing_title(record: dict[str, Any]) -> str:
    del record["title"]
    return json.dumps(record)


def _bad_date(record: dict[str, Any]) -> str:
    return json.dumps({**record, "published_at": "14/05/2024 09:30"})


def _unknown_field(record: dict[str, Any]) -> str:
    return json.dumps({**record, "subtitle": "A field nobody asked for"})


def _huge_body(record: dict[str, Any]) -> str:
    paragraph = "<p>" + "Monsoon rains flooded the lower districts again. " * 100 + "</p>"
    body = paragraph * (5_000_000 // len(paragraph) + 1)
    assert len(body) > 5_000_000
    return json.dumps({**record, "body": body})


def _invalid_json(record: dict[str, Any]) -> str:
    return json.dumps(record)[:-1] + ', "tags": ["Burma",]}'


BAD = {
    "missing title": (_missing_title, "title", "missing or empty"),
    "bad date": (_bad_date, "published_at", "is not an ISO 8601 date"),
    "unknown field": (_unknown_field, "subtitle", "unknown field"),
    "5 MB body": (_huge_body, "body", "max_body_bytes"),
    "invalid JSON line": (_invalid_json, None, "not valid JSON"),
}


def _existing_article(engine: sa.Engine, settings: Settings, tmp_path: Path) -> dict[str, Any]:
    seed = _write_json(
        tmp_path / "seed.json",
        [
            _record(
                EXISTING,
                "Myanmar's junta extends the state of emergency",
                tags=["Myanmar"],
                author="Aung Kyaw",
                updated_at="2024-05-02T10:00:00+07:00",
            )
        ],
    )
    assert import_path(engine, settings, seed, now=NOW).created == 1
    return _snapshot(engine, EXISTING)


def _edit_of_existing() -> dict[str, Any]:
    return _record(
        EXISTING,
        "Myanmar's junta extends the emergency by six months",
        body="<p>Edited body that must not be stored.</p>",
        tags=["Myanmar", "Politics"],
        author="Somebody Else",
    )


@pytest.mark.parametrize("case", list(BAD))
def test_bad_jsonl_line_is_reported_by_file_line_and_field_and_the_rest_imported(
    engine: sa.Engine, settings: Settings, tmp_path: Path, case: str
) -> None:
    make_bad, field, reason = BAD[case]
    before = _existing_article(engine, settings, tmp_path)
    path = tmp_path / "batch.jsonl"
    path.write_text(
        json.dumps(_record("good-1", "Cambodia's garment exports recover"))
        + "\n"
        + make_bad(_edit_of_existing())
        + "\n"
        + json.dumps(_record("good-2", "Brunei signs an LNG deal with Japan"))
        + "\n",
        encoding="utf-8",
    )

    report = import_path(engine, settings, path, now=LATER)

    assert (report.created, report.updated, report.unchanged) == (2, 0, 0)
    [error] = report.errors
    assert isinstance(error, RecordError)
    assert error.where == f"{path}:2"
    assert error.field == field
    message = str(error)
    assert message.startswith(f"{path}:2: ")
    if field is not None:
        assert f": {field}: " in message
    assert reason in message
    stored = _views(engine)
    assert set(stored) == {EXISTING, "good-1", "good-2"}
    assert stored["good-2"].title == "Brunei signs an LNG deal with Japan"
    assert _snapshot(engine, EXISTING) == before


@pytest.mark.parametrize("case", [c for c in BAD if c != "invalid JSON line"])
def test_bad_json_array_record_is_reported_by_record_number_and_field(
    engine: sa.Engine, settings: Settings, tmp_path: Path, case: str
) -> None:
    make_bad, field, reason = BAD[case]
    before = _existing_article(engine, settings, tmp_path)
    path = tmp_path / "batch.json"
    path.write_text(
        "["
        + json.dumps(_record("good-1", "Cambodia's garment exports recover"))
        + ",\n"
        + json.dumps(_record("good-2", "Brunei signs an LNG deal with Japan"))
        + ",\n"
        + make_bad(_edit_of_existing())
        + "]",
        encoding="utf-8",
    )

    report = import_path(engine, settings, path, now=LATER)

    assert report.created == 2
    [error] = report.errors
    assert error.where == f"{path}#3"
    assert str(error).startswith(f"{path}#3: {field}: ")
    assert reason in str(error)
    assert set(_views(engine)) == {EXISTING, "good-1", "good-2"}
    assert _snapshot(engine, EXISTING) == before


def test_bad_feed_entry_is_reported_by_entry_number_and_the_rest_imported(
    engine: sa.Engine, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "straits.atom"
    path.write_text(
        ATOM.replace(
            "<title>Malaysia and Indonesia step up joint patrols in the Malacca Strait</title>",
            "<title></title>",
        ),
        encoding="utf-8",
    )

    report = import_path(engine, settings, path)

    assert report.created == 1
    [error] = report.errors
    assert str(error).startswith(f"{path}#entry 2: title: ")
    assert set(_views(engine)) == {"tag:straits.example.org,2024:post-311"}


def test_bad_markdown_front_matter_field_is_reported_with_file_and_line(
    engine: sa.Engine, settings: Settings, tmp_path: Path
) -> None:
    """RecordError.where is 'file:line' or 'file#record' (newsletter.errors)."""
    path = tmp_path / "post.md"
    path.write_text(
        POST.read_text(encoding="utf-8").replace("tags:", "subtitle: Extra\ntags:"),
        encoding="utf-8",
    )

    report = import_path(engine, settings, path)

    assert report.created == 0
    [error] = report.errors
    assert error.field == "subtitle"
    assert re.fullmatch(re.escape(str(path)) + r"(:\d+|#\d+)", error.where), error.where
    assert ": subtitle: " in str(error)


def test_control_characters_in_title_and_body_are_stripped_not_refused(
    engine: sa.Engine, settings: Settings, tmp_path: Path
) -> None:
    path = _write_json(
        tmp_path / "a.json",
        [
            {
                "guid": "ctl-1",
                "title": "Jakarta\x00 floods\x08 ease as\x0b rains\x1f stop\x7f",
                "body": "<p>Water\x0c levels\x01 fell\x0b overnight\x1b.</p>\n<p>Tab\tkept</p>",
                "summary": "Pumps\x02 worked\x85 overnight",
            }
        ],
    )

    report = import_path(engine, settings, path)

    assert (report.created, report.errors) == (1, [])
    article = _views(engine)["ctl-1"]
    assert article.title == "Jakarta floods ease as rains stop"
    assert article.body_html.startswith("<p>Water levels fell overnight.</p>")
    assert article.summary == "Pumps worked overnight"
    for text in (article.title, article.body_html, article.summary):
        assert not any(ord(c) < 32 and c not in "\t\n\r" for c in text), repr(text)
        assert not any(0x7F <= ord(c) <= 0x9F for c in text), repr(text)


def test_jsonl_record_containing_unicode_line_separators_stays_one_record(
    engine: sa.Engine, settings: Settings, tmp_path: Path
) -> None:
    """JSON Lines records are separated by \\n only. U+2028/U+2029 (common in text pasted
    from word processors), NEL (U+0085) and the other characters str.splitlines() treats as
    line breaks are legal unescaped inside a JSON string and must not split a record."""
    path = write_jsonl(  # the project's own helper writes these characters unescaped
        tmp_path / "a.jsonl",
        [
            _record(
                "sep-1",
                "Hong Kong\u2028 passes Article 23 law",
                body="<p>The law passed\u2029 unanimously.</p>",
                summary="Legislators\x85 voted 89 to 0",
            ),
            _record("sep-2", "Macau casinos report record takings"),
        ],
    )
    assert path.read_text(encoding="utf-8").count("\n") == 2

    report = import_path(engine, settings, path)

    assert [str(e) for e in report.errors] == []
    assert report.created == 2
    stored = _views(engine)
    assert stored["sep-1"].title == "Hong Kong passes Article 23 law"
    assert stored["sep-1"].summary == "Legislators voted 89 to 0"


def test_broken_html_is_repaired_into_well_formed_markup(
    engine: sa.Engine, settings: Settings, tmp_path: Path
) -> None:
    path = write_jsonl(
        tmp_path / "a.jsonl",
        [
            {
                "guid": "html-1",
                "title": "Talks in Manila",
                "body": (
                    "<p>Talks in <b>Manila <i>resumed on Monday<p>Second&nbsp;paragraph</b>"
                    "<div><span>an unclosed <a href='/talks'>link</i>"
                    "<ul><li>one<li>two</ul></table></p>"
                ),
            }
        ],
    )

    report = import_path(engine, settings, path)

    assert (report.created, report.errors) == (1, [])
    body = _views(engine)["html-1"].body_html
    root = ET.fromstring("<div>" + body.replace("&nbsp;", "\u00a0") + "</div>")  # well formed
    text = "".join(root.itertext())
    for words in ("Talks in", "Manila", "resumed on Monday", "paragraph", "an unclosed", "link"):
        assert words in text
    assert ["".join(li.itertext()) for li in root.iter("li")] == ["one", "two"]
    links = list(root.iter("a"))
    assert links
    assert {a.get("href") for a in links} == {"http://news.test/talks"}


# ----------------------------------------------------------------------------- tags and slugs


def test_tags_differing_only_in_case_or_accents_are_one_tag(
    engine: sa.Engine, settings: Settings, tmp_path: Path
) -> None:
    first = write_jsonl(
        tmp_path / "first.jsonl",
        [_record("t-1", "Hanoi and Seoul sign a trade deal", tags=["Korea", "Việt Nam", "korea"])],
    )
    import_path(engine, settings, first)
    second = write_jsonl(
        tmp_path / "second.jsonl",
        [
            _record("t-2", "K-pop tours return to Hanoi", tags=["KOREA", "viet nam"]),
            _record("t-3", "Busan film festival lineup", tags=["korea", "Cinéma"]),
        ],
    )
    report = import_path(engine, settings, second)

    assert (report.created, report.errors) == (2, [])
    assert _tags(engine) == [("cinema", "Cinéma"), ("korea", "Korea"), ("viet-nam", "Việt Nam")]
    stored = _views(engine)
    assert [t.slug for t in stored["t-1"].tags] == ["korea", "viet-nam"]
    assert [t.slug for t in stored["t-2"].tags] == ["korea", "viet-nam"]
    assert [t.slug for t in stored["t-3"].tags] == ["cinema", "korea"]


def test_explicit_slug_used_by_another_article_is_refused_naming_the_slug(
    engine: sa.Engine, settings: Settings, tmp_path: Path
) -> None:
    first = write_jsonl(
        tmp_path / "first.jsonl",
        [_record("s-1", "Floods in Jakarta", slug="jakarta-floods")],
    )
    import_path(engine, settings, first)
    before = _snapshot(engine, "s-1")

    second = write_jsonl(
        tmp_path / "second.jsonl",
        [
            _record("s-2", "More floods in Jakarta", slug="jakarta-floods"),
            _record("s-3", "Jakarta moves its capital", slug="nusantara"),
        ],
    )
    report = import_path(engine, settings, second, now=LATER)

    assert (report.created, report.updated) == (1, 0)
    [error] = report.errors
    assert error.where == f"{second}:1"
    assert error.field == "slug"
    assert "'jakarta-floods'" in str(error)
    assert str(error).startswith(f"{second}:1: slug: ")
    assert set(_views(engine)) == {"s-1", "s-3"}
    assert _snapshot(engine, "s-1") == before


def test_derived_slug_already_taken_gets_a_numbered_variant(
    engine: sa.Engine, settings: Settings, tmp_path: Path
) -> None:
    path = write_jsonl(
        tmp_path / "a.jsonl",
        [_record("d-1", "Election day in India"), _record("d-2", "Election day in India")],
    )

    report = import_path(engine, settings, path)

    assert (report.created, report.errors) == (2, [])
    stored = _views(engine)
    assert stored["d-1"].slug == "election-day-in-india"
    assert stored["d-2"].slug == "election-day-in-india-2"


# ----------------------------------------------------------------------------- dates


def _jsonl_with(value: str) -> Callable[[Path], Path]:
    def make(tmp_path: Path) -> Path:
        return write_jsonl(
            tmp_path / "a.jsonl", [_record("tz-1", "Bali by-election", published_at=value)]
        )

    return make


def _markdown_with(value: str) -> Callable[[Path], Path]:
    def make(tmp_path: Path) -> Path:
        path = tmp_path / "a.md"
        path.write_text(
            f"---\nguid: tz-1\ntitle: Bali by-election\npublished_at: {value}\n---\nText.\n",
            encoding="utf-8",
        )
        return path

    return make


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (_jsonl_with("2024-05-01T09:30:00"), datetime(2024, 5, 1, 2, 30, tzinfo=UTC)),
        (_jsonl_with("2024-05-01 09:30"), datetime(2024, 5, 1, 2, 30, tzinfo=UTC)),
        (_jsonl_with("2024-05-01"), datetime(2024, 4, 30, 17, 0, tzinfo=UTC)),
        (_markdown_with("2024-05-01 09:30:00"), datetime(2024, 5, 1, 2, 30, tzinfo=UTC)),
        (_markdown_with("2024-05-01"), datetime(2024, 4, 30, 17, 0, tzinfo=UTC)),
        # an explicit offset is kept, not replaced by the site's zone
        (_jsonl_with("2024-05-01T09:30:00+09:00"), datetime(2024, 5, 1, 0, 30, tzinfo=UTC)),
        (_jsonl_with("2024-05-01T09:30:00Z"), datetime(2024, 5, 1, 9, 30, tzinfo=UTC)),
    ],
    ids=[
        "jsonl-naive",
        "jsonl-space",
        "jsonl-date-only",
        "markdown-naive",
        "markdown-date-only",
        "jsonl-offset",
        "jsonl-z",
    ],
)
def test_naive_date_is_read_in_the_site_timezone(
    engine: sa.Engine,
    settings: Settings,
    tmp_path: Path,
    make: Callable[[Path], Path],
    expected: datetime,
) -> None:
    assert settings.site.timezone == "Asia/Jakarta"

    report = import_path(engine, settings, make(tmp_path))

    assert report.errors == []
    article = _views(engine)["tz-1"]
    assert article.published_at == expected
    with Session(engine) as session:
        row = session.exec(select(Article).where(Article.guid == "tz-1")).one()
        assert row.published_at == expected


@pytest.mark.parametrize(
    ("record", "field", "reason"),
    [
        ({"guid": "x", "title": "T" * 1001}, "title", "1001 characters, more than the 1000"),
        ({"guid": "g" * 2001, "title": "T"}, "guid", "more than the 2000 allowed"),
        (
            {"guid": "x", "title": "T", "url": "https://example.org/" + "a" * 2000},
            "url",
            "more than the 2000 allowed",
        ),
        ({"guid": "x", "title": "T", "author": "N" * 301}, "author.name", "more than the 300"),
        (
            {"guid": "x", "title": "T", "published_at": "0001-01-01T00:00:00+01:00"},
            "published_at",
            "outside the years",
        ),
        (
            {"guid": "x", "title": "T", "updated_at": "9999-12-31T23:59:59-05:00"},
            "updated_at",
            "outside the years",
        ),
    ],
)
def test_values_too_long_or_dates_out_of_range_are_refused_alike_on_every_database(
    engine: sa.Engine,
    settings: Settings,
    tmp_path: Path,
    record: dict[str, object],
    field: str,
    reason: str,
) -> None:
    path = tmp_path / "posts.jsonl"
    path.write_text(json.dumps(record) + "\n" + json.dumps({"guid": "ok", "title": "Fine"}) + "\n")
    report = import_path(engine, settings, path)
    assert report.created == 1
    [error] = report.errors
    assert (error.where, error.field) == (f"{path}:1", field)
    assert reason in error.reason


def test_front_matter_with_a_numeric_key_is_a_clear_error(
    engine: sa.Engine, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "odd.md"
    path.write_text("---\ntitle: Odd\n2024: yes\n---\nBody\n")
    report = import_path(engine, settings, path)
    [error] = report.errors
    assert error.field == "2024"
    assert error.where == f"{path}:3"
