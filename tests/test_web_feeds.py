"""Feeds as feed readers and proxies meet them: over HTTP, conditional GET, invalidation,
discovery, static export and WebSub pings."""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import json
import re
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urljoin

import feedparser
import httpx
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from lxml import etree
from starlette.testclient import TestClient

from newsletter import articles, storage
from newsletter.cli import main
from newsletter.config import FeedsSettings, Settings
from newsletter.feeds import export
from newsletter.feeds.websub import Pinger, PingStats
from newsletter.web import create_app
from tests.helpers import context, serving

PAST = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
FEEDS = [
    "/feed.rss",
    "/feed.atom",
    "/feed.json",
    "/tags/north-korea/feed.rss",
    "/tags/north-korea/feed.atom",
    "/tags/north-korea/feed.json",
    "/tags/trade/feed.rss",
    "/tags/trade/feed.atom",
    "/tags/trade/feed.json",
    "/authors/budi/feed.rss",
    "/authors/budi/feed.atom",
    "/authors/budi/feed.json",
    "/authors/mei/feed.rss",
    "/authors/mei/feed.atom",
    "/authors/mei/feed.json",
]


def record(n: int, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "guid": f"story-{n}",
        "slug": f"story-{n}",
        "title": f"Story {n}",
        "summary": f"Lead of story {n}.",
        "body": f"<p>Body of story {n}.</p>",
        "published_at": (PAST + timedelta(hours=n)).isoformat(),
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
def stocked(engine: sa.Engine, settings: Settings) -> sa.Engine:
    store(
        engine,
        settings,
        record(1, tags=["North Korea"], author={"name": "Budi", "slug": "budi"}),
        record(2, tags=["Trade"], author={"name": "Mei", "slug": "mei"}),
        record(3, tags=["North Korea", "Trade"], author={"name": "Budi", "slug": "budi"}),
    )
    return engine


def etags(client: TestClient) -> dict[str, str]:
    return {path: client.get(path).headers["etag"] for path in FEEDS}


# ----------------------------------------------------------------------------- over HTTP


def test_feed_readers_read_every_format_over_http(tmp_path: Path, database_url: str) -> None:
    assert CliRunner().invoke(main, ["init", str(tmp_path)]).exit_code == 0
    env = {"NEWSLETTER_DATABASE__URL": database_url}
    cfg = ["--config", str(tmp_path / "config.toml")]
    assert CliRunner().invoke(main, [*cfg, "demo"], env=env).exit_code == 0
    with serving(tmp_path / "config.toml", env) as base:
        for path in ("/feed", "/tags/kim-jong-un/feed", "/authors/rizky-pratama/feed"):
            for fmt in ("rss", "atom"):
                parsed = feedparser.parse(f"{base}{path}.{fmt}")
                assert parsed.bozo == 0, parsed.get("bozo_exception")
                assert parsed.status == 200
                assert parsed.entries
                for entry in parsed.entries:
                    assert entry.id
                    # the default base_url: links use the address serve is bound to
                    assert entry.link.startswith(f"{base}/articles/")
                    assert entry.published_parsed and entry.updated_parsed
                    assert entry.author
                    assert entry.tags
                again = feedparser.parse(
                    f"{base}{path}.{fmt}", etag=parsed.etag, modified=parsed.modified
                )
                assert again.status == 304
            document = httpx.get(f"{base}{path}.json").json()
            assert document["version"] == "https://jsonfeed.org/version/1.1"
            assert all(item["id"] and item["content_html"] for item in document["items"])
        site = feedparser.parse(f"{base}/feed.atom")
        assert len(site.entries) == 20  # [feeds] items default
        times = [e.published_parsed for e in site.entries]
        assert times == sorted(times, reverse=True)
        kim = feedparser.parse(f"{base}/tags/kim-jong-un/feed.rss")
        assert any("Kim Jong Un's Rhetoric" in e.title for e in kim.entries)
        assert all(any(t.term == "Kim Jong Un" for t in e.tags) for e in kim.entries)


def test_change_made_by_another_process_shows_without_a_restart(
    tmp_path: Path, database_url: str
) -> None:
    assert CliRunner().invoke(main, ["init", str(tmp_path)]).exit_code == 0
    env = {"NEWSLETTER_DATABASE__URL": database_url}
    cfg = ["--config", str(tmp_path / "config.toml")]
    assert CliRunner().invoke(main, [*cfg, "demo"], env=env).exit_code == 0
    slug = "the-end-of-peace-talks-how-kim-jong-uns-rhetoric-threatens-relations-with-south-korea"
    with serving(tmp_path / "config.toml", env) as base:  # one server process throughout
        url = f"{base}/tags/kim-jong-un/feed.atom"
        before = httpx.get(url)
        assert slug in before.text
        assert (
            CliRunner().invoke(main, [*cfg, "articles", "unpublish", slug], env=env).exit_code == 0
        )
        # the server polls for changes a few times a second; the deadline only stops a hang
        deadline = time.monotonic() + 30
        while slug in (after := httpx.get(url)).text:
            assert time.monotonic() < deadline, "the server never saw the change"
            time.sleep(0.05)
        assert after.status_code == 200
        assert after.headers["etag"] != before.headers["etag"]
        parsed = feedparser.parse(after.content)
        assert parsed.bozo == 0, parsed.get("bozo_exception")
        assert parsed.entries and all(slug not in entry.link for entry in parsed.entries)
        stale = httpx.get(url, headers={"If-None-Match": before.headers["etag"]})
        assert stale.status_code == 200  # a reader holding the old version gets the new one
        assert slug not in stale.text


# ----------------------------------------------------------------------------- HTTP semantics


def test_content_types_cache_headers_and_links(client: TestClient, stocked: sa.Engine) -> None:
    types = {
        "rss": "application/rss+xml; charset=utf-8",
        "atom": "application/atom+xml; charset=utf-8",
        "json": "application/feed+json; charset=utf-8",
    }
    for path in FEEDS:
        response = client.get(path)
        assert response.status_code == 200
        assert response.headers["content-type"] == types[path.rsplit(".", 1)[1]]
        assert response.headers["cache-control"] == "public, max-age=300"
        assert response.headers["etag"].startswith('W/"')
        assert response.headers["last-modified"].endswith(" GMT")
        assert response.headers["link"] == f'<http://news.test{path}>; rel="self"'
        assert "Accept-Encoding" in response.headers["vary"]


def test_conditional_get_round_trip(
    client: TestClient, stocked: sa.Engine, settings: Settings
) -> None:
    first = client.get("/tags/trade/feed.rss")
    assert first.status_code == 200
    etag, modified = first.headers["etag"], first.headers["last-modified"]

    by_etag = client.get("/tags/trade/feed.rss", headers={"If-None-Match": etag})
    assert by_etag.status_code == 304
    assert by_etag.content == b""
    assert by_etag.headers["etag"] == etag

    later = format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
    assert (
        client.get("/tags/trade/feed.rss", headers={"If-Modified-Since": modified}).status_code
        == 304
    )
    assert (
        client.get("/tags/trade/feed.rss", headers={"If-Modified-Since": later}).status_code == 304
    )
    earlier = "Mon, 01 Jan 2001 00:00:00 GMT"
    assert (
        client.get("/tags/trade/feed.rss", headers={"If-Modified-Since": earlier}).status_code
        == 200
    )
    # If-None-Match wins over If-Modified-Since when both are sent
    both = {"If-None-Match": 'W/"other"', "If-Modified-Since": later}
    assert client.get("/tags/trade/feed.rss", headers=both).status_code == 200

    articles.publish(stocked, "story-2", datetime.now(UTC))  # already published: no change
    assert client.get("/tags/trade/feed.rss", headers={"If-None-Match": etag}).status_code == 304

    store(stocked, settings, record(4, tags=["Trade"]))
    after = client.get("/tags/trade/feed.rss", headers={"If-None-Match": etag})
    assert after.status_code == 200
    assert after.headers["etag"] != etag
    assert "Story 4" in after.text


def test_head_gzip_and_unknown_feeds(client: TestClient, stocked: sa.Engine) -> None:
    full = client.get("/feed.atom", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in full.headers
    head = client.head("/feed.atom", headers={"Accept-Encoding": "identity"})
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(len(full.content))
    assert head.headers["etag"] == full.headers["etag"]

    zipped = client.get("/feed.atom", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.content == full.content  # the client decompressed it
    raw = httpx.Client(transport=client._transport, base_url="http://news.test")  # type: ignore[attr-defined]
    with raw.stream("GET", "/feed.atom", headers={"Accept-Encoding": "gzip"}) as response:
        assert gzip.decompress(b"".join(response.iter_raw())) == full.content
    refused = client.get("/feed.atom", headers={"Accept-Encoding": "gzip;q=0"})
    assert "content-encoding" not in refused.headers

    assert client.get("/tags/no-such-tag/feed.rss").status_code == 404
    assert client.get("/authors/nobody/feed.json").status_code == 404
    assert client.post("/feed.rss").status_code == 405


def test_a_change_touches_exactly_the_feeds_it_concerns(
    client: TestClient, stocked: sa.Engine, settings: Settings
) -> None:
    before = etags(client)
    cache = client.app.cache  # type: ignore[attr-defined]
    entries_before = dict(cache._entries)

    # edit story 2 (Trade, Mei): site, Trade and Mei feeds change, North Korea and Budi do not
    store(
        stocked,
        settings,
        record(2, title="Story 2, revised", tags=["Trade"], author={"name": "Mei", "slug": "mei"}),
    )
    after = etags(client)
    changed = {path for path in FEEDS if before[path] != after[path]}
    assert changed == {
        p for p in FEEDS if p.startswith(("/feed.", "/tags/trade/", "/authors/mei/"))
    }
    for key_fmt, entry in entries_before.items():
        if key_fmt[0] in ("tag:1", "author:1"):  # North Korea and Budi were not rendered again
            assert cache._entries[key_fmt] is entry

    # retag story 1 from North Korea to Trade: both tags' feeds change, Mei's does not
    before = after
    store(
        stocked,
        settings,
        record(1, tags=["Trade"], author={"name": "Budi", "slug": "budi"}),
    )
    after = etags(client)
    changed = {path for path in FEEDS if before[path] != after[path]}
    assert changed == {
        p
        for p in FEEDS
        if p.startswith(("/feed.", "/tags/trade/", "/tags/north-korea/", "/authors/budi/"))
    }

    # unpublish and delete remove the article from its feeds at the next request
    articles.unpublish(stocked, "story-3", datetime.now(UTC))
    assert "Story 3" not in client.get("/tags/north-korea/feed.atom").text
    articles.publish(stocked, "story-3", datetime.now(UTC))
    assert "Story 3" in client.get("/tags/north-korea/feed.atom").text
    articles.delete(stocked, "story-3", datetime.now(UTC))
    assert "Story 3" not in client.get("/authors/budi/feed.json").text


def test_a_change_stays_pending_while_another_thread_is_still_reading(
    client: TestClient, stocked: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The feed poller may be half-way through a refresh when a request arrives: a change
    this process committed must count as pending until a refresh that read after it ends,
    or the request would take the old versions for current and serve a stale feed."""
    cache = client.app.cache  # type: ignore[attr-defined]
    cache.refresh()
    articles.unpublish(stocked, "story-3", datetime.now(UTC))
    assert cache.needs_refresh()
    reading, go_on = threading.Event(), threading.Event()
    real = storage.global_version

    def slow_read(session: Any) -> int:
        reading.set()
        assert go_on.wait(10)
        return real(session)

    monkeypatch.setattr(storage, "global_version", slow_read)
    poller = threading.Thread(target=cache.refresh)
    poller.start()
    try:
        assert reading.wait(10)
        assert cache.needs_refresh()  # the poller's read has not finished
    finally:
        go_on.set()
        poller.join(10)
    assert not cache.needs_refresh()
    assert "Story 3" not in client.get("/tags/north-korea/feed.atom").text


def test_scheduled_article_joins_its_feeds_when_its_time_comes(
    client: TestClient, stocked: sa.Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [datetime.now(UTC)]  # what the web process takes for now
    monkeypatch.setattr("newsletter.feeds.cache.utcnow", lambda: clock[0])
    monkeypatch.setattr("newsletter.web.pages.utcnow", lambda: clock[0])
    due = clock[0] + timedelta(hours=1)
    store(stocked, settings, record(9, tags=["Trade"], published_at=due.isoformat()))
    assert "Story 9" not in client.get("/tags/trade/feed.rss").text
    assert client.get("/articles/story-9").status_code == 404
    clock[0] = due
    wait_for(lambda: "Story 9" in client.get("/tags/trade/feed.rss").text)  # at the next poll
    assert client.get("/articles/story-9").status_code == 200


# ----------------------------------------------------------------------------- discovery


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.alternates: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "link" and found.get("rel") == "alternate":
            self.alternates.append(found)


def alternates(html: str) -> dict[str | None, str | None]:
    parser = _Links()
    parser.feed(html)
    return {link["type"]: link["href"] for link in parser.alternates}


def test_pages_announce_their_feeds(client: TestClient, stocked: sa.Engine) -> None:
    expected = {
        "/": "http://news.test/feed",
        "/tags/north-korea": "http://news.test/tags/north-korea/feed",
        "/authors/budi": "http://news.test/authors/budi/feed",
    }
    for page, feed in expected.items():
        found = alternates(client.get(page).text)
        assert found == {
            "application/rss+xml": feed + ".rss",
            "application/atom+xml": feed + ".atom",
            "application/feed+json": feed + ".json",
        }
        for href in found.values():
            assert href is not None
            assert client.get(href.removeprefix("http://news.test")).status_code == 200
    assert client.get("/tags/nowhere").status_code == 404
    assert client.get("/authors/nobody").status_code == 404


def test_tags_page_lists_counts_and_feed_links(client: TestClient, stocked: sa.Engine) -> None:
    page = client.get("/tags").text
    assert "North Korea" in page and "2 posts" in page
    assert 'href="http://news.test/tags/trade/feed.rss"' in page


def test_opml_lists_every_feed(client: TestClient, stocked: sa.Engine) -> None:
    response = client.get("/feeds.opml")
    assert response.headers["content-type"].startswith("text/x-opml")
    outlines = ET.fromstring(response.content).findall("./body/outline")
    urls = {o.get("xmlUrl") for o in outlines}
    assert urls == {
        "http://news.test/feed.rss",
        "http://news.test/tags/north-korea/feed.rss",
        "http://news.test/tags/trade/feed.rss",
        "http://news.test/authors/budi/feed.rss",
        "http://news.test/authors/mei/feed.rss",
    }
    for url in urls:
        assert url is not None
        assert client.get(url.removeprefix("http://news.test")).status_code == 200


# ----------------------------------------------------------------------------- static export


def test_static_export_rewrites_only_what_changed(
    client: TestClient, stocked: sa.Engine, settings: Settings, tmp_path: Path
) -> None:
    out = tmp_path / "public"
    first = export.build(stocked, settings, out, datetime.now(UTC))
    assert first.written == 17 and first.unchanged == 0  # 5 feeds x 3 formats + OPML, feed.xsl
    for path in FEEDS:
        assert (out / path.lstrip("/")).read_bytes() == client.get(path).content
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}

    second = export.build(stocked, settings, out, datetime.now(UTC))
    assert (second.written, second.unchanged) == (0, 17)
    assert stamps == {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}

    store(stocked, settings, record(5, tags=["Trade"], author={"name": "Mei", "slug": "mei"}))
    third = export.build(stocked, settings, out, datetime.now(UTC))
    assert third.written == 10  # site, Trade and Mei in three formats each, and the OPML date


def test_feeds_build_command(tmp_path: Path, database_url: str) -> None:
    assert CliRunner().invoke(main, ["init", str(tmp_path)]).exit_code == 0
    env = {"NEWSLETTER_DATABASE__URL": database_url}
    cfg = ["--config", str(tmp_path / "config.toml")]
    assert CliRunner().invoke(main, [*cfg, "demo"], env=env).exit_code == 0
    out = str(tmp_path / "out")
    first = CliRunner().invoke(main, [*cfg, "feeds", "build", out], env=env)
    assert first.exit_code == 0, first.output
    assert "unchanged" in first.output
    second = CliRunner().invoke(main, [*cfg, "feeds", "build", out], env=env)
    assert " 0 written" in second.output
    assert json.loads((tmp_path / "out" / "tags" / "kim-jong-un" / "feed.json").read_text())


# ----------------------------------------------------------------------------- WebSub


class Hub:
    """A local WebSub hub that records publish pings. Mode "slow" holds every ping until the
    test sets `release`; mode "failing" answers the first two pings 503."""

    def __init__(self, mode: str = "up") -> None:
        self.mode = mode
        self.pings: list[str] = []  # topics of the pings answered 204
        self.modes: set[str] = set()  # hub.mode of every request
        self.statuses: list[int] = []  # the answer to every request, in order
        self.held = threading.Event()  # set when mode "slow" holds a ping
        self.holding = 0  # pings mode "slow" holds at the moment
        self.release = threading.Event()
        self.lock = threading.Lock()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                form = parse_qs(self.rfile.read(length).decode())
                if hub.mode == "slow":
                    with hub.lock:
                        hub.holding += 1
                    hub.held.set()
                    hub.release.wait(60)  # the test releases it; the timeout only stops a hang
                    with hub.lock:
                        hub.holding -= 1
                with hub.lock:
                    status = 503 if hub.mode == "failing" and len(hub.statuses) < 2 else 204
                    hub.statuses.append(status)
                    hub.modes.update(form.get("hub.mode", ["(none)"]))
                    if status == 204:
                        hub.pings.extend(form["hub.url"])
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Hub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class Backoff:
    """Stands in for asyncio.sleep in the Pinger: notes each back-off delay, waits none."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0)


def use_pinger(app: Any, pinger: Pinger) -> Pinger:
    """Have `app` (before it starts) ping through `pinger` instead of the one it built."""
    app.app.state.services.pinger = app.app.state.pinger = pinger
    return pinger


class Hubbed(NamedTuple):
    client: TestClient
    hub: Hub
    pinger: Pinger
    backoff: Backoff


@pytest.fixture
def hub_app(
    settings: Settings, stocked: sa.Engine, request: pytest.FixtureRequest
) -> Iterator[Hubbed]:
    with Hub(request.param) as hub:
        hubbed = dataclasses.replace(settings, feeds=FeedsSettings(websub_hub=hub.url))
        app = create_app(hubbed, stocked)
        backoff = Backoff()
        # a long timeout: a held ping must not time out while the test holds it
        pinger = use_pinger(
            app, Pinger(hub.url, first_delay=0.1, timeout=60.0, sleep=backoff.sleep)
        )
        with TestClient(app, base_url=settings.base_url) as client:
            yield Hubbed(client, hub, pinger, backoff)


def wait_for(condition: Any, seconds: float = 30) -> None:
    """Poll until `condition()`; the deadline only stops a hang, it is no performance figure."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def topics(*paths: str) -> list[str]:
    return [f"http://news.test{path}.{fmt}" for path in paths for fmt in ("rss", "atom", "json")]


STORY_2_FEEDS = topics("/feed", "/tags/trade/feed", "/authors/mei/feed")


@pytest.mark.parametrize("hub_app", ["up"], indirect=True)
def test_publish_pings_the_hub_for_every_changed_feed(hub_app: Hubbed) -> None:
    client, hub, pinger, _ = hub_app
    assert client.get("/feed.rss").headers["link"].endswith("<" + hub.url + '>; rel="hub"')
    assert f'<atom:link rel="hub" href="{hub.url}"/>' in client.get("/feed.rss").text
    articles.unpublish(client.app.app.state.engine, "story-2", datetime.now(UTC))  # type: ignore[attr-defined]
    wait_for(lambda: pinger.stats.delivered >= len(STORY_2_FEEDS))
    assert sorted(hub.pings) == sorted(STORY_2_FEEDS)  # each changed feed once, no other
    assert hub.modes == {"publish"}
    assert pinger.stats == PingStats(delivered=9, failed_attempts=0, given_up=0)


@pytest.mark.parametrize("hub_app", ["slow"], indirect=True)
def test_slow_hub_does_not_slow_publishing(hub_app: Hubbed) -> None:
    client, hub, pinger, _ = hub_app
    engine = client.app.app.state.engine  # type: ignore[attr-defined]
    articles.unpublish(engine, "story-2", datetime.now(UTC))
    assert hub.held.wait(30), "no ping reached the hub"  # the timeout only stops a hang
    # The hub now holds the pings for that change and answers nothing until released:
    # publishing and reading the updated feed complete all the same.
    articles.publish(engine, "story-2", datetime.now(UTC))
    assert "Story 2" in client.get("/feed.atom").text
    assert client.get("/healthz").status_code == 200
    # and the web process noticed the second change and pinged for it, the first still held
    wait_for(lambda: hub.holding == 2 * len(STORY_2_FEEDS))
    assert hub.statuses == [] and pinger.stats.delivered == 0  # the hub answered nothing yet
    hub.release.set()
    wait_for(lambda: pinger.stats.delivered >= 2 * len(STORY_2_FEEDS))
    assert sorted(hub.pings) == sorted(STORY_2_FEEDS * 2)  # both changes, once each
    assert pinger.stats == PingStats(delivered=18, failed_attempts=0, given_up=0)


@pytest.mark.parametrize("hub_app", ["failing"], indirect=True)
def test_failing_hub_does_not_fail_publishing_and_gets_the_pings_on_retry(
    hub_app: Hubbed,
) -> None:
    client, hub, pinger, backoff = hub_app
    engine = client.app.app.state.engine  # type: ignore[attr-defined]
    articles.unpublish(engine, "story-2", datetime.now(UTC))
    assert "Story 2" not in client.get("/feed.atom").text
    wait_for(lambda: pinger.stats.delivered >= len(STORY_2_FEEDS))
    assert hub.statuses.count(503) == 2 and hub.statuses.count(204) == 9
    assert sorted(hub.pings) == sorted(STORY_2_FEEDS)  # the two refused pings came again
    assert pinger.stats == PingStats(delivered=9, failed_attempts=2, given_up=0)
    assert backoff.delays == [0.1, 0.1]  # each refused ping waited the first delay once
    assert client.get("/healthz").status_code == 200


def test_down_hub_does_not_fail_publishing(settings: Settings, stocked: sa.Engine) -> None:
    with Hub() as hub:
        url = hub.url  # closed on leaving: every ping is refused
    hubbed = dataclasses.replace(settings, feeds=FeedsSettings(websub_hub=url))
    app = create_app(hubbed, stocked)
    backoff = Backoff()
    pinger = use_pinger(app, Pinger(url, attempts=3, first_delay=1.0, sleep=backoff.sleep))
    with TestClient(app, base_url=settings.base_url) as client:
        articles.unpublish(stocked, "story-2", datetime.now(UTC))
        assert "Story 2" not in client.get("/feed.atom").text
        # every ping ends by returning False, so none raised
        wait_for(lambda: pinger.stats.given_up >= len(STORY_2_FEEDS))
        assert pinger.stats == PingStats(delivered=0, failed_attempts=3 * 9, given_up=9)
        # three attempts each, the back-off doubling in between
        assert sorted(backoff.delays) == [1.0] * 9 + [2.0] * 9
        # still serving, and publishing still works, after giving up
        assert client.get("/healthz").status_code == 200
        articles.publish(stocked, "story-2", datetime.now(UTC))
        assert "Story 2" in client.get("/feed.atom").text
        assert client.portal is not None  # the app's event loop, running the pings
        assert client.portal.call(pinger._ping, STORY_2_FEEDS[0]) is False  # gives up cleanly


def test_cached_feed_requests_run_no_query(settings: Settings, stocked: sa.Engine) -> None:
    app = create_app(settings, stocked)
    app.cache.refresh()  # type: ignore[attr-defined]  # what the lifespan does at start
    client = TestClient(app, base_url=settings.base_url)  # no lifespan: no background polling
    for path in FEEDS:
        assert client.get(path).status_code == 200  # first request renders
    statements: list[str] = []
    sa.event.listen(stocked, "before_cursor_execute", lambda *a: statements.append(a[2]))
    for _ in range(5):
        for path in FEEDS:
            assert client.get(path).status_code == 200
    assert statements == []
    client.close()


def test_if_modified_since_never_hides_a_change_made_in_the_same_second(
    client: TestClient, stocked: sa.Engine, settings: Settings
) -> None:
    first = client.get("/tags/trade/feed.atom")
    store(stocked, settings, record(6, tags=["Trade"]))
    second = client.get(
        "/tags/trade/feed.atom", headers={"If-Modified-Since": first.headers["last-modified"]}
    )
    assert second.status_code == 200
    assert "Story 6" in second.text
    assert second.headers["last-modified"] != first.headers["last-modified"]
    again = client.get(
        "/tags/trade/feed.atom", headers={"If-Modified-Since": second.headers["last-modified"]}
    )
    assert again.status_code == 304


# ----------------------------------------------------------------------------- browser view

# what Chromium sends when it opens a URL, and what feedparser sends
BROWSER_ACCEPT = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
    "image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7"
)
READER_ACCEPT = (
    "application/atom+xml,application/rdf+xml,application/rss+xml,application/x-netcdf,"
    "application/xml;q=0.9,text/xml;q=0.2,*/*;q=0.1"
)
STYLESHEET_PI = re.compile(
    rb'^<\?xml [^\n]*\?>\n<\?xml-stylesheet type="text/xsl" href="([^"]+)"\?>\n<'
)


def test_feed_xsl_is_served_with_its_type_and_caching_headers(
    client: TestClient, stocked: sa.Engine
) -> None:
    response = client.get("/feed.xsl")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/xsl; charset=utf-8"
    assert response.headers["cache-control"] == "public, max-age=3600"
    assert response.headers["x-content-type-options"] == "nosniff"
    etag = response.headers["etag"]
    assert etag.startswith('W/"')
    etree.XSLT(etree.fromstring(response.content))  # a stylesheet lxml accepts

    again = client.get("/feed.xsl", headers={"If-None-Match": etag})
    assert (again.status_code, again.content) == (304, b"")
    assert again.headers["etag"] == etag
    head = client.head("/feed.xsl", headers={"Accept-Encoding": "identity"})
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(response.content))
    zipped = client.get("/feed.xsl", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.content == response.content
    assert client.post("/feed.xsl").status_code == 405


def test_rss_and_atom_name_the_stylesheet_and_json_does_not(
    client: TestClient, stocked: sa.Engine
) -> None:
    for path in FEEDS:
        body = client.get(path).content
        if path.endswith(".json"):
            assert b"xml-stylesheet" not in json.dumps(json.loads(body)).encode()
            continue
        match = STYLESHEET_PI.match(body)
        assert match, path
        # relative to the feed: the same origin (browsers insist) wherever the feed is served
        href = match.group(1).decode()
        assert urljoin(f"http://news.test{path}", href) == "http://news.test/feed.xsl", path
        # strict parsers and feed readers read past the instruction
        etree.fromstring(body, etree.XMLParser(recover=False, resolve_entities=False))
        parsed = feedparser.parse(body)
        assert parsed.bozo == 0 and parsed.entries, path


def test_a_browser_gets_the_same_feed_as_xml_and_readers_the_feed_type(
    client: TestClient, stocked: sa.Engine
) -> None:
    feed_types = {
        "rss": "application/rss+xml; charset=utf-8",
        "atom": "application/atom+xml; charset=utf-8",
        "json": "application/feed+json; charset=utf-8",
    }
    for path in FEEDS:
        fmt = path.rsplit(".", 1)[1]
        reader = client.get(path, headers={"Accept": READER_ACCEPT})
        anything = client.get(path, headers={"Accept": "*/*"})
        browser = client.get(path, headers={"Accept": BROWSER_ACCEPT})
        assert reader.headers["content-type"] == feed_types[fmt], path
        assert anything.headers["content-type"] == feed_types[fmt], path
        assert reader.content == anything.content == browser.content, path
        if fmt == "json":  # JSON Feed is unchanged: no browser view
            assert browser.headers["content-type"] == feed_types[fmt]
            assert browser.headers["etag"] == reader.headers["etag"]
            continue
        assert browser.headers["content-type"] == "application/xml; charset=utf-8", path
        assert "Accept" in [v.strip() for v in reader.headers["vary"].split(",")], path
        assert browser.headers["etag"] != reader.headers["etag"]  # two representations
        for response, accept in ((browser, BROWSER_ACCEPT), (reader, READER_ACCEPT)):
            etag = response.headers["etag"]
            revalidated = client.get(path, headers={"Accept": accept, "If-None-Match": etag})
            assert revalidated.status_code == 304
            assert revalidated.headers["etag"] == etag


def test_the_stylesheet_shows_served_feeds_as_pages(client: TestClient, stocked: sa.Engine) -> None:
    transform = etree.XSLT(etree.fromstring(client.get("/feed.xsl").content))
    for path in ("/feed.rss", "/tags/trade/feed.atom", "/authors/budi/feed.rss"):
        parsed = feedparser.parse(client.get(path).content)
        page = str(transform(etree.fromstring(client.get(path).content)))
        document = etree.HTML(page)
        assert document.get("lang") == "en"
        assert document.findtext(".//h1") == parsed.feed.title
        assert document.findtext(".//code") == f"http://news.test{path}"
        links = document.findall(".//ol[@class='posts']/li/h3/a")
        assert [(a.text, a.get("href")) for a in links] == [
            (entry.title, entry.link) for entry in parsed.entries
        ]
        assert document.find(".//a[@class='name']").get("href") == "http://news.test/"  # type: ignore[union-attr]


def test_static_export_writes_the_stylesheet_where_the_feeds_find_it(
    client: TestClient, stocked: sa.Engine, settings: Settings, tmp_path: Path
) -> None:
    out = tmp_path / "public"
    export.build(stocked, settings, out, datetime.now(UTC))
    assert (out / "feed.xsl").read_bytes() == client.get("/feed.xsl").content
    for feed in ("feed.rss", "tags/trade/feed.atom", "authors/mei/feed.rss"):
        match = STYLESHEET_PI.match((out / feed).read_bytes())
        assert match, feed
        assert ((out / feed).parent / match.group(1).decode()).resolve() == out / "feed.xsl"
    again = export.build(stocked, settings, out, datetime.now(UTC))
    assert again.written == 0


# ----------------------------------------------------------------------------- OPML date


def _opml_created(client: TestClient) -> datetime:
    text = ET.fromstring(client.get("/feeds.opml").content).findtext("head/dateCreated")
    assert text is not None and re.fullmatch(
        r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
        r" \d{4} \d\d:\d\d:\d\d GMT",
        text,
    ), text
    return parsedate_to_datetime(text)


def test_opml_date_created_is_the_newest_feed_change(
    client: TestClient, stocked: sa.Engine, settings: Settings
) -> None:
    with stocked.connect() as conn:
        newest = conn.execute(
            sa.text("SELECT max(changed_at) FROM feed_version WHERE key != '*'")
        ).scalar_one()
    newest = newest if isinstance(newest, datetime) else datetime.fromisoformat(newest)
    created = _opml_created(client)
    assert created == newest.replace(tzinfo=UTC, microsecond=0)
    assert created > datetime(2000, 1, 2, tzinfo=UTC)

    later = datetime.now(UTC) + timedelta(seconds=5)
    parsed = [articles.validate(record(9, tags=["Trade"]), "test#9", context(settings))]
    articles.import_articles(stocked, parsed, base_url=settings.base_url, now=later)
    assert _opml_created(client) == later.replace(microsecond=0)
