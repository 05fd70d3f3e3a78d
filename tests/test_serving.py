"""`newsletter serve` as a newcomer runs it: with the config `newsletter init` writes and
another port, every link (pages, OPML, feeds, email) uses the port it serves on, and it says
so at start. HEAD works wherever GET does, unknown paths get the site's page (JSON under
/api/), the access log comes and goes with its flag and config key, a base URL other than
the requests' address is warned about once, and /feeds lists every feed."""

from __future__ import annotations

import asyncio
import email.policy
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Mapping
from datetime import timedelta
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import feedparser
import httpx
import lxml.html
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from starlette.testclient import TestClient

from newsletter import services
from newsletter.cli import main
from newsletter.config import Settings
from newsletter.web import create_app
from newsletter.web.origin import HostCheck, serving_base_url, with_base_url
from tests.digest_helpers import T0, Clock, deliver, firing_with_posts, post, reader
from tests.helpers import NOW, free_port, import_path, serving, write_jsonl

# the paths HEAD is checked on, besides an article's
PAGES = ("/", "/tags", "/feeds.opml", "/healthz", "/feeds")
ACCESS_LINE = re.compile(r'^\S+ - - \[[^]]+\] "(GET|HEAD) (\S+) HTTP/1\.1" (\d{3}) -$', re.M)


def _records(count: int = 3) -> list[dict[str, Any]]:
    return [
        {
            "guid": f"story-{i}",
            "slug": f"story-{i}",
            "title": f"Story {i} from Jakarta",
            "body": f"<p>Body {i}.</p>",
            "tags": ["Politics" if i % 2 else "Trade"],
            "author": {"name": "Dewi Lestari", "slug": "dewi"},
            "published_at": f"2026-11-{10 + i}T08:00:00+07:00",
        }
        for i in range(count)
    ]


def _site(tmp_path: Path, env: Mapping[str, str]) -> Path:
    """`newsletter init` and a few articles imported, as a newcomer would."""
    assert CliRunner().invoke(main, ["init", str(tmp_path)]).exit_code == 0
    config = tmp_path / "config.toml"
    records = write_jsonl(tmp_path / "posts.jsonl", _records())
    result = CliRunner().invoke(
        main, ["--config", str(config), "articles", "import", str(records)], env=dict(env)
    )
    assert result.exit_code == 0, result.output
    return config


def _log(config: Path, base: str) -> str:
    """What `serve` wrote so far (tests.helpers.serving keeps it beside the config)."""
    port = base.rpartition(":")[2]
    return (config.parent / f"serve-{port}.log").read_text()


def _outbox_message(folder: Path) -> EmailMessage:
    """The one message the outbox transport wrote, waiting for the sign-up worker."""
    deadline = time.monotonic() + 20
    while not (found := sorted(folder.glob("*.eml"))):
        assert time.monotonic() < deadline, "no message reached the outbox"
        time.sleep(0.1)
    [path] = found
    message = BytesParser(policy=email.policy.default).parsebytes(path.read_bytes())
    assert isinstance(message, EmailMessage)
    return message


# ----------------------------------------------------------------------- a real server


def test_serve_with_the_default_base_url_links_to_the_port_it_serves(
    tmp_path: Path, database_url: str
) -> None:
    env = {"NEWSLETTER_DATABASE__URL": database_url}
    config = _site(tmp_path, env)
    assert 'base_url = "http://127.0.0.1:8000"' in config.read_text()
    port = free_port()
    with serving(config, env, port) as base:
        assert f"links point at http://127.0.0.1:{port}/" in _log(config, base)

        opml = httpx.get(base + "/feeds.opml")
        assert opml.status_code == 200
        urls = [o.get("xmlUrl") for o in ElementTree.fromstring(opml.content).iter("outline")]
        assert f"{base}/feed.rss" in urls
        assert all(str(url).startswith(base + "/") for url in urls)
        tag_feed = next(str(url) for url in urls if "/tags/" in str(url))
        answer = httpx.get(tag_feed)
        assert answer.status_code == 200
        parsed = feedparser.parse(answer.content)
        assert not parsed.bozo, parsed.get("bozo_exception")
        assert parsed.entries
        assert all(entry.link.startswith(base + "/articles/") for entry in parsed.entries)

        signup = httpx.post(base + "/api/v1/subscribe", json={"email": "reader@example.org"})
        assert signup.status_code == 202
        message = _outbox_message(tmp_path / "outbox")
        assert message["To"] == "reader@example.org"
        for part in ("plain", "html"):
            body = message.get_body(preferencelist=(part,))
            assert body is not None
            links = re.findall(r"https?://[^\s\"'<>]+/confirm/[^\s\"'<>]+", body.get_content())
            assert links, part
            assert all(link.startswith(f"{base}/confirm/") for link in links), links
        # without --access-log or [server] access_log, no request is logged
        assert ACCESS_LINE.search(_log(config, base)) is None


def test_head_and_error_pages_over_http_with_an_access_log(
    tmp_path: Path, database_url: str
) -> None:
    env = {"NEWSLETTER_DATABASE__URL": database_url}
    config = _site(tmp_path, env)
    with serving(config, env, None, "--access-log") as base:
        for path in (*PAGES, "/articles/story-1"):
            got = httpx.get(base + path)
            head = httpx.head(base + path)
            assert got.status_code == head.status_code == 200, path
            assert head.content == b"", path
            assert head.headers["content-type"] == got.headers["content-type"], path
            assert head.headers["content-length"] == got.headers["content-length"], path

        missing = httpx.get(base + "/no/such/page")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "text/html; charset=utf-8"
        page = lxml.html.fromstring(missing.text)
        assert page.findtext(".//title").startswith("Page not found")
        assert page.xpath("//header//a[@href=$home]", home=base + "/")  # the site's layout
        assert {base + "/search", base + "/tags", base + "/feeds"} <= {
            *page.xpath("//a/@href"),
            *page.xpath("//form/@action"),
        }
        api = httpx.get(base + "/api/v1/nope")
        assert api.status_code == 404
        assert api.json() == {"detail": "Not Found"}

        logged = ACCESS_LINE.findall(_log(config, base))
        assert ("HEAD", "/feeds", "200") in logged
        assert ("GET", "/articles/story-1", "200") in logged
        assert ("GET", "/no/such/page", "404") in logged


def test_the_flag_overrides_the_config_key_and_a_wildcard_host_links_to_loopback(
    tmp_path: Path, database_url: str
) -> None:
    env = {"NEWSLETTER_DATABASE__URL": database_url, "NEWSLETTER_SERVER__ACCESS_LOG": "true"}
    config = _site(tmp_path, env)
    port = free_port()
    with serving(config, env, port, "--no-access-log", "--host", "0.0.0.0") as base:
        assert httpx.get(base + "/tags").status_code == 200
        log = _log(config, base)
        assert f"links point at http://127.0.0.1:{port}/" in log
        assert "[site] base_url" in log  # what to set for readers elsewhere
        assert ACCESS_LINE.search(log) is None
        opml = httpx.get(base + "/feeds.opml").text
        assert f'xmlUrl="http://127.0.0.1:{port}/feed.rss"' in opml


def test_a_configured_base_url_stays_and_other_addresses_are_warned_once(
    tmp_path: Path, database_url: str
) -> None:
    env = {
        "NEWSLETTER_DATABASE__URL": database_url,
        "NEWSLETTER_SITE__BASE_URL": "https://news.example.test",
        "NEWSLETTER_SERVER__ACCESS_LOG": "true",  # the config key alone turns it on
    }
    config = _site(tmp_path, env)
    with serving(config, env) as base:
        assert "links point at https://news.example.test/ ([site] base_url)" in _log(config, base)
        for path in ("/", "/tags", "/feeds.opml", "/feed.rss"):
            assert httpx.get(base + path).status_code == 200
        assert 'xmlUrl="https://news.example.test/feed.rss"' in httpx.get(base + "/feeds.opml").text
        log = _log(config, base)
        warnings = [line for line in log.splitlines() if "a request arrived at" in line]
        assert len(warnings) == 1, log
        assert base in warnings[0] and "https://news.example.test" in warnings[0]
        assert ("GET", "/tags", "200") in ACCESS_LINE.findall(log)


def test_port_0_links_to_the_port_the_system_chose(tmp_path: Path, database_url: str) -> None:
    env = {"NEWSLETTER_DATABASE__URL": database_url}
    config = _site(tmp_path, env)
    log_path = tmp_path / "serve-0.log"
    cmd = [sys.executable, "-m", "newsletter", "--config", str(config), "serve", "--port", "0"]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [*cmd, "--no-scheduler"], env={**os.environ, **env}, stdout=log, stderr=log
        )
    try:
        deadline = time.monotonic() + 30
        while not (
            said := re.search(r"serving on (http://127\.0\.0\.1:\d+);", log_path.read_text())
        ):
            assert time.monotonic() < deadline and proc.poll() is None, log_path.read_text()
            time.sleep(0.1)
        base = said.group(1)
        assert not base.endswith(":0")
        assert f"links point at {base}/" in log_path.read_text()
        while True:
            try:
                opml = httpx.get(base + "/feeds.opml")
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.1)
        assert f'xmlUrl="{base}/feed.rss"' in opml.text
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# ----------------------------------------------------------------------- the app alone


def test_base_url_follows_the_bind_address_only_while_it_is_the_default(
    settings: Settings,
) -> None:
    default = with_base_url(settings, "http://127.0.0.1:8000")
    assert serving_base_url(default, "127.0.0.1", 8251).url == "http://127.0.0.1:8251"
    assert serving_base_url(default, "localhost", 80).url == "http://localhost"
    wildcard = serving_base_url(default, "0.0.0.0", 8251)
    assert (wildcard.url, wildcard.wildcard) == ("http://127.0.0.1:8251", True)
    assert "[site] base_url" in wildcard.describe()
    assert serving_base_url(default, "::", 8251).url == "http://[::1]:8251"
    assert serving_base_url(default, "fe80::1", 8251).url == "http://[fe80::1]:8251"
    configured = serving_base_url(settings, "0.0.0.0", 8251)
    assert (configured.url, configured.derived) == ("http://news.test", False)
    assert with_base_url(settings, "http://news.test") is settings


def test_host_check_warns_once_and_ignores_probes(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        pass

    check = HostCheck(app, "https://news.example.test")

    def request(host: str, path: str = "/", scheme: str = "https", **more: str) -> None:
        headers = [(b"host", host.encode())] + [
            (k.replace("_", "-").encode(), v.encode()) for k, v in more.items()
        ]
        scope = {"type": "http", "path": path, "scheme": scheme, "headers": headers}
        asyncio.run(check(scope, None, None))  # type: ignore[arg-type]

    with caplog.at_level(logging.WARNING, logger="newsletter.web.origin"):
        request("news.example.test")
        request("NEWS.example.test:443")
        request("127.0.0.1:8000", x_forwarded_host="news.example.test")  # behind a proxy
        request("127.0.0.1:8000", path="/healthz")  # a monitoring probe
        assert caplog.records == []
        request("news.example.test", scheme="http")
        request("elsewhere.test")
    [warning] = caplog.records
    assert "http://news.example.test" in warning.getMessage()
    assert "https://news.example.test" in warning.getMessage()


def test_head_answers_as_get_does_on_every_kind_of_route(
    client: TestClient, engine: sa.Engine, settings: Settings
) -> None:
    import_path(engine, settings, write_jsonl(settings.root / "p.jsonl", _records()), NOW)
    paths = (
        *PAGES,
        "/articles/story-1",
        "/tags/politics",
        "/authors/dewi",
        "/subscribe",
        "/digests/digest",
        "/feed.rss",
        "/tags/politics/feed.atom",
        "/digests/digest/feed.json",
        "/no/such/page",
        "/articles/no-such-story",
        "/api/v1/nope",
    )
    for path in paths:
        got, head = client.get(path), client.head(path)
        assert head.status_code == got.status_code, path
        assert head.content == b"", path
        for name in ("content-type", "content-length"):
            assert head.headers.get(name) == got.headers.get(name), (path, name)


def test_errors_get_the_sites_page_and_json_under_api(client: TestClient) -> None:
    missing = client.get("/no/such/page")
    assert missing.status_code == 404
    assert "text/html" in missing.headers["content-type"]
    assert "Page not found" in missing.text
    assert '<meta name="robots" content="noindex">' in missing.text

    story = client.get("/articles/nothing-here")  # a use case's NotFoundError
    assert story.status_code == 404
    assert "Page not found" in story.text
    assert "no article &#39;nothing-here&#39;" in story.text

    refused = client.post("/tags")
    assert refused.status_code == 405
    assert refused.headers["allow"] == "GET"
    assert "text/html" in refused.headers["content-type"]
    assert 'href="http://news.test/feeds"' in refused.text

    assert client.get("/api/v1/nope").json() == {"detail": "Not Found"}
    api_refused = client.delete("/api/v1/subscribe")
    assert api_refused.status_code == 405
    assert api_refused.json() == {"detail": "Method Not Allowed"}
    unauthorised = client.get("/api/v1/articles")
    assert unauthorised.status_code == 401
    assert "detail" in unauthorised.json()
    # a bad link from an email keeps its own page
    assert "This link is not valid" in client.get("/confirm/not-a-token").text


def test_a_failure_is_a_500_page_without_details(settings: Settings, engine: sa.Engine) -> None:
    async def broken() -> None:
        raise RuntimeError("secret detail of the failure")

    app = create_app(settings, engine)
    fastapi_app = app.app  # type: ignore[attr-defined]
    fastapi_app.add_api_route("/broken", broken)
    fastapi_app.add_api_route("/api/v1/broken", broken)
    with TestClient(app, base_url=settings.base_url, raise_server_exceptions=False) as c:
        page = c.get("/broken")
        assert page.status_code == 500
        assert "text/html" in page.headers["content-type"]
        assert "Something went wrong" in page.text
        assert "secret detail" not in page.text and "RuntimeError" not in page.text
        api = c.get("/api/v1/broken")
        assert api.status_code == 500
        assert api.json() == {"detail": "Internal Server Error"}


def test_feeds_page_lists_every_feed_and_every_link_works(
    settings: Settings, engine: sa.Engine, svc: services.Services, clock: Clock
) -> None:
    reader(engine, settings, "ani@example.org")
    post(engine, settings, "rice-talks", T0 - timedelta(hours=2), ["politics"])
    deliver(svc, firing_with_posts(svc, settings, clock))
    with TestClient(create_app(settings, engine), base_url=settings.base_url) as c:
        answer = c.get("/feeds")
        assert answer.status_code == 200
        page = lxml.html.fromstring(answer.text)
        hrefs = page.xpath("//main//a/@href")
        expected = [
            "http://news.test/feed.rss",
            "http://news.test/feed.json",
            "http://news.test/tags/politics/feed.atom",
            "http://news.test/tags/trade/feed.rss",
            "http://news.test/digests/digest/feed.rss",
            "http://news.test/digests/digest/feed.json",
            "http://news.test/feeds.opml",
        ]
        for url in expected:
            assert url in hrefs, url
        assert page.xpath("//input[@id='main-feed']/@value") == ["http://news.test/feed.rss"]
        assert "Morning Ledger" in page.text_content()
        assert "feed reader" in page.text_content()
        for url in hrefs:
            if url.startswith("http://news.test/"):
                assert c.get(url).status_code == 200, url
