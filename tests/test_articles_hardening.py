"""Hostile imports (issue #9): what a URL, a file or another feed may cost and change.

Fetching: a size cap counted after decompression, one deadline for the whole fetch, no
private or loopback addresses (every redirect hop checked). Parsing: no YAML aliases, error
messages that never format a whole huge value, a hostile line costing only itself. Sources:
a feed fetched from a URL updates only its own articles. URLs are percent-encoded as a
browser would, not refused. Imports survive concurrent writers.
"""

from __future__ import annotations

import gzip
import http.server
import json
import socket
import sqlite3
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from sqlmodel import Session, col, select

from newsletter import articles, storage
from newsletter.articles import sources
from newsletter.articles.validate import bounded_repr
from newsletter.cli import main
from newsletter.config import Settings
from newsletter.errors import RecordError, SourceError
from newsletter.models import Article, Author
from tests.helpers import NOW, context, import_path, write_jsonl

# ----------------------------------------------------------------------------- helpers

Route = Callable[[http.server.BaseHTTPRequestHandler], tuple[int, dict[str, str], bytes]]


class _Site:
    """An HTTP server on a loopback address answering from `routes` (path -> answer)."""

    def __init__(self, host: str, routes: dict[str, Route]) -> None:
        self.routes = routes
        self.requests: list[str] = []
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.requests.append(self.path)
                route = site.routes.get(self.path)
                status, headers, body = route(self) if route else (404, {}, b"not found")
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer((host, 0), Handler)
        self.base = f"http://{host}:{self.server.server_address[1]}"

    def __enter__(self) -> _Site:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _answer(body: bytes, **headers: str) -> Route:
    return lambda _handler: (200, {"Content-Type": "application/rss+xml", **headers}, body)


def _redirect(location: str) -> Route:
    return lambda _handler: (302, {"Location": location}, b"")


def _rss(*items: tuple[str, str], pad: int = 0) -> bytes:
    """An RSS feed of (guid, title) items; `pad` spaces of filler before the items."""
    entries = "".join(
        f"<item><guid>{guid}</guid><title>{title}</title>"
        f"<link>https://ledger.example.com/{guid}</link>"
        f"<description>&lt;p&gt;{title}: the report.&lt;/p&gt;</description>"
        "<pubDate>Tue, 14 May 2024 02:15:00 +0000</pubDate></item>"
        for guid, title in items
    )
    head = (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        "<title>Ledger</title><link>https://ledger.example.com/</link>"
    )
    return head.encode() + b" " * pad + f"{entries}</channel></rss>".encode()


def _import(
    engine: sa.Engine, settings: Settings, location: str, **options: bool
) -> articles.ImportReport:
    total = articles.ImportReport()
    for outcome in articles.import_locations(engine, context(settings), [location], NOW, **options):
        if outcome.error is not None:
            raise outcome.error
        assert outcome.report is not None
        total.add(outcome.report)
    return total


def _article(engine: sa.Engine, guid: str) -> Article:
    with Session(engine) as session:
        article = storage.article_by_guid(session, guid)
        assert article is not None, guid
        session.expunge(article)
        return article


def _cli(site: Path, database_url: str, *args: str) -> Result:
    env = {"NEWSLETTER_DATABASE__URL": database_url}
    return CliRunner().invoke(main, ["--config", str(site / "config.toml"), *args], env=env)


@pytest.fixture
def site(tmp_path: Path, database_url: str) -> Path:
    result = _cli(tmp_path, database_url, "init", str(tmp_path))
    assert result.exit_code == 0, result.output
    return tmp_path


# ----------------------------------------------------------------------------- fetching


def test_gzip_bomb_stops_at_the_size_limit_counted_after_decompression() -> None:
    # 60 MB of feed in about 60 kB of gzip, and the same wrapped twice (gzip of gzip)
    feed = _rss(("bomb-1", "Bomb"), pad=60_000_000)
    once = gzip.compress(feed, 9)
    twice = gzip.compress(once, 9)
    assert len(once) < 100_000 and len(feed) > 50 * 2**20  # sources.MAX_FEED_BYTES
    routes = {
        "/once.xml": _answer(once, **{"Content-Encoding": "gzip"}),
        "/twice.xml": _answer(twice, **{"Content-Encoding": "gzip, gzip"}),
        "/small.xml": _answer(
            gzip.compress(_rss(("ok-1", "Fine"))), **{"Content-Encoding": "gzip"}
        ),
    }
    with _Site("127.0.0.1", routes) as server:
        for path in ("/once.xml", "/twice.xml"):
            with pytest.raises(SourceError, match=r"larger than 50 MiB \(decompressed\)"):
                articles.open_source(server.base + path, allow_private=True)
        [source] = articles.open_source(server.base + "/small.xml", allow_private=True)
    assert b"<guid>ok-1</guid>" in source.data


def test_deflate_bodies_are_read_and_capped_too() -> None:
    feed = _rss(("d-1", "Deflated"))
    wrapped = zlib.compress(feed)
    raw = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    bare = raw.compress(feed) + raw.flush()
    routes = {
        "/zlib.xml": _answer(wrapped, **{"Content-Encoding": "deflate"}),
        "/raw.xml": _answer(bare, **{"Content-Encoding": "deflate"}),
        "/br.xml": _answer(b"\x00\x01", **{"Content-Encoding": "br"}),
    }
    with _Site("127.0.0.1", routes) as server:
        for path in ("/zlib.xml", "/raw.xml"):
            [source] = articles.open_source(server.base + path, allow_private=True)
            assert source.data == feed
        with pytest.raises(SourceError, match="larger than"):
            articles.open_source(server.base + "/zlib.xml", allow_private=True, max_bytes=100)
        with pytest.raises(SourceError, match="unsupported encoding 'br'"):
            articles.open_source(server.base + "/br.xml", allow_private=True)


@contextmanager
def _dripping_server(phase: str) -> Iterator[str]:
    """A server that answers one byte every 0.1 s, in the headers or in the body, for up
    to 8 s: every read is quick, only the whole answer is slow."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n"
            if phase == "body":
                conn.sendall(head + b"Content-Length: 100000\r\n\r\n")
            else:
                conn.sendall(head[:17])
            deadline = time.monotonic() + 8
            while not stop.is_set() and time.monotonic() < deadline:
                try:
                    conn.sendall(b" " if phase == "body" else b"X")
                except OSError:
                    return
                time.sleep(0.1)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/feed.xml"
    finally:
        stop.set()
        listener.close()
        thread.join(timeout=10)


@pytest.mark.parametrize("phase", ["headers", "body"])
def test_a_server_sending_a_byte_at_a_time_is_cut_off_at_the_overall_deadline(
    phase: str,
) -> None:
    with _dripping_server(phase) as url:
        started = time.monotonic()
        with pytest.raises(SourceError, match=r"no complete answer within 1\.5 s"):
            articles.open_source(url, 1.5, allow_private=True)
        elapsed = time.monotonic() - started
    assert 1.4 < elapsed < 3.0


def test_urls_reaching_loopback_or_private_addresses_are_refused_unless_allowed(
    engine: sa.Engine, settings: Settings
) -> None:
    with _Site("127.0.0.1", {"/feed.xml": _answer(_rss(("p-1", "Private")))}) as server:
        port = server.server.server_address[1]
        for url in (f"{server.base}/feed.xml", f"http://localhost:{port}/feed.xml"):
            with pytest.raises(SourceError, match="is a loopback address") as raised:
                articles.open_source(url)
            assert "--allow-private-hosts" in str(raised.value)
        assert server.requests == []  # nothing was sent to the internal server
        with pytest.raises(SourceError, match="loopback"):
            _import(engine, settings, f"{server.base}/feed.xml")

        [source] = articles.open_source(f"{server.base}/feed.xml", allow_private=True)
        report = _import(engine, settings, f"{server.base}/feed.xml", allow_private=True)
    assert source.remote and source.origin == f"{server.base}/feed.xml"
    assert (report.created, report.errors) == (1, [])


@pytest.mark.parametrize(
    ("address", "refused"),
    [
        ("127.0.0.1", True),
        ("10.0.0.8", True),
        ("172.16.4.1", True),
        ("192.168.0.10", True),
        ("169.254.169.254", True),  # cloud metadata
        ("100.64.0.1", True),  # carrier-grade NAT
        ("0.0.0.0", True),
        ("224.0.0.1", True),
        ("240.0.0.1", True),
        ("::1", True),
        ("fe80::1", True),
        ("fd12:3456::1", True),
        ("::ffff:127.0.0.1", True),
        ("64:ff9b::a00:1", True),  # NAT64 of 10.0.0.1
        ("93.184.216.34", False),
        ("2606:4700:4700::1111", False),
    ],
)
def test_which_addresses_are_refused(address: str, refused: bool) -> None:
    assert (sources._refused_address(address) is not None) == refused


def test_a_redirect_to_an_internal_host_is_refused_at_that_hop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 127.0.0.1 plays a public server, 127.0.0.2 an internal one
    monkeypatch.setattr(
        sources,
        "_refused_address",
        lambda ip: "is internal" if ip == "127.0.0.2" else None,
        raising=False,
    )
    with _Site("127.0.0.2", {"/secret.xml": _answer(_rss(("s-1", "Secret")))}) as internal:
        routes = {"/feed.xml": _redirect(f"{internal.base}/secret.xml")}
        with _Site("127.0.0.1", routes) as public:
            with pytest.raises(SourceError, match=r"127\.0\.0\.2 is internal"):
                articles.open_source(f"{public.base}/feed.xml")
            assert public.requests == ["/feed.xml"]
        assert internal.requests == []


def test_redirects_are_followed_at_most_five_times() -> None:
    routes: dict[str, Route] = {f"/r{n}": _redirect(f"/r{n + 1}") for n in range(20)}
    routes["/r5"] = _answer(_rss(("r-1", "Redirected")))
    with _Site("127.0.0.1", routes) as server:
        [source] = articles.open_source(f"{server.base}/r0", allow_private=True)
        assert b"r-1" in source.data
        server.requests.clear()
        with pytest.raises(SourceError, match="more than 5 redirects"):
            articles.open_source(f"{server.base}/r6", allow_private=True)  # r6 .. r11
        assert len(server.requests) == 6
        routes["/file"] = _redirect("file:///etc/passwd")
        with pytest.raises(SourceError, match="not an http"):
            articles.open_source(f"{server.base}/file", allow_private=True)


def test_cli_import_refuses_private_urls_without_allow_private_hosts(
    site: Path, database_url: str
) -> None:
    with _Site("127.0.0.1", {"/feed.xml": _answer(_rss(("c-1", "Cli")))}) as server:
        url = f"{server.base}/feed.xml"
        refused = _cli(site, database_url, "articles", "import", url)
        allowed = _cli(site, database_url, "articles", "import", "--allow-private-hosts", url)
    assert refused.exit_code == 1
    assert "is a loopback address" in refused.output
    assert allowed.exit_code == 0, allowed.output
    assert f"{url}: 1 created" in allowed.output


# ----------------------------------------------------------------------------- parsing


def _laughs(levels: int) -> str:
    """YAML front matter whose aliases expand to 9**levels strings (9 levels: 371 bytes,
    387 million strings)."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for n in range(1, levels):
        lines.append(f"a{n}: &a{n} [" + ",".join([f"*a{n - 1}"] * 9) + "]")
    return "---\n" + "\n".join(lines) + f"\ntitle: *a{levels - 1}\n---\nBody\n"


@pytest.mark.parametrize("levels", [3, 9], ids=["small", "billion"])
def test_yaml_aliases_in_front_matter_are_refused_and_the_folder_still_imported(
    engine: sa.Engine, settings: Settings, tmp_path: Path, levels: int
) -> None:
    posts = tmp_path / "posts"
    posts.mkdir()
    (posts / "a-laughs.md").write_text(_laughs(levels))
    (posts / "b-good.md").write_text("---\nguid: good-1\ntitle: Good\n---\nText.\n")

    started = time.monotonic()
    report = import_path(engine, settings, posts)

    assert time.monotonic() - started < 5
    assert report.created == 1
    [error] = report.errors
    assert error.where == f"{posts / 'a-laughs.md'}:2"
    assert "anchors and aliases" in error.reason
    assert len(str(error)) < 600


class _Leaf:
    """A value whose repr is counted: formatting a whole structure calls it for every leaf."""

    calls = 0

    def __repr__(self) -> str:
        _Leaf.calls += 1
        return "leaf"


def test_error_messages_format_only_a_bounded_part_of_a_huge_value(settings: Settings) -> None:
    leaf = _Leaf()
    value: Any = [leaf] * 9
    for _ in range(3):
        value = [value] * 9  # 9**4 leaves through shared references, as YAML aliases make
    _Leaf.calls = 0
    with pytest.raises(RecordError) as raised:
        articles.validate({"title": value}, "x.md", context(settings))
    assert _Leaf.calls <= 20
    assert raised.value.field == "title"
    assert len(raised.value.reason) < 120

    huge: Any = ["lol"] * 9
    for _ in range(8):
        huge = [huge] * 9  # 9**9 strings
    started = time.monotonic()
    for record in ({"title": huge}, {"title": "T", "tags": "x", "status": huge}, huge):
        with pytest.raises(RecordError):
            articles.validate(record, "x.md", context(settings))  # type: ignore[arg-type]
    assert time.monotonic() - started < 1
    assert bounded_repr("x" * 10_000_000).endswith("'…")
    assert len(bounded_repr(10**4000)) < 70


def test_a_hostile_jsonl_line_is_its_own_record_error_and_the_lines_around_it_import(
    engine: sa.Engine, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "posts.jsonl"
    deep = "[" * 100_000 + "]" * 100_000
    lines = [
        json.dumps({"guid": "j-1", "title": "Before"}),
        deep,
        '{"guid": "j-x", "title": ' + deep + "}",
        '{"guid": "j-y", "title": "Big", "summary": ' + "7" * 5000 + "}",
        json.dumps({"guid": "j-2", "title": "After"}),
    ]
    path.write_text("\n".join(lines) + "\n")

    report = import_path(engine, settings, path)

    assert report.created == 2
    assert [e.where for e in report.errors] == [f"{path}:2", f"{path}:3", f"{path}:4"]
    assert "nested too deeply" in report.errors[0].reason
    assert "nested too deeply" in report.errors[1].reason
    assert "not readable JSON" in report.errors[2].reason
    assert {a.guid for a in articles.list_articles(engine)} == {"j-1", "j-2"}


def test_a_json_file_nested_too_deeply_is_a_clear_source_error(
    engine: sa.Engine, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "posts.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(SourceError, match="nested too deeply"):
        import_path(engine, settings, path)


def test_front_matter_nested_too_deeply_or_with_a_huge_number_is_a_record_error(
    engine: sa.Engine, settings: Settings, tmp_path: Path
) -> None:
    posts = tmp_path / "posts"
    posts.mkdir()
    (posts / "deep.md").write_text("---\ntitle: " + "[" * 50_000 + "\n---\nx\n")
    (posts / "number.md").write_text("---\ntitle: T\nsummary: " + "9" * 5000 + "\n---\nx\n")
    (posts / "ok.md").write_text("---\nguid: ok\ntitle: Fine\n---\nText.\n")

    report = import_path(engine, settings, posts)

    assert report.created == 1
    assert sorted(e.where.rsplit("/", 1)[-1] for e in report.errors) == [
        "deep.md:1",
        "number.md:1",
    ]


# ----------------------------------------------------------------------------- sources


def test_a_feed_from_another_url_cannot_take_over_an_article_by_its_guid(
    engine: sa.Engine, settings: Settings
) -> None:
    routes = {
        "/ours.xml": _answer(_rss(("shared-guid", "Our report"))),
        "/ours-edited.xml": _answer(_rss(("shared-guid", "Our report, corrected"))),
        "/theirs.xml": _answer(_rss(("shared-guid", "Hijacked"), ("their-1", "Theirs"))),
    }
    with _Site("127.0.0.1", routes) as server:
        ours, theirs = f"{server.base}/ours.xml", f"{server.base}/theirs.xml"
        assert _import(engine, settings, ours, allow_private=True).created == 1
        before = _article(engine, "shared-guid")

        report = _import(engine, settings, theirs, allow_private=True)

        assert report.created == 1  # its own item still comes in
        [error] = report.errors
        assert (error.where, error.field) == (f"{theirs}#entry 1", "guid")
        assert ours in error.reason and "--update-any" in error.reason
        after = _article(engine, "shared-guid")
        assert (after.title, after.body_html, after.url) == (
            before.title,
            before.body_html,
            before.url,
        )
        assert after.source == ours

        # the feed it came from still updates it
        routes["/ours.xml"] = routes["/ours-edited.xml"]
        assert _import(engine, settings, ours, allow_private=True).updated == 1
        assert _article(engine, "shared-guid").title == "Our report, corrected"

        # told to, another feed may update it; the article keeps its source
        report = _import(engine, settings, theirs, allow_private=True, allow_takeover=True)
        assert (report.updated, report.errors) == (1, [])
        taken = _article(engine, "shared-guid")
        assert (taken.title, taken.source) == ("Hijacked", ours)


def test_files_may_update_any_article_and_urls_not_those_of_files(
    engine: sa.Engine, settings: Settings, tmp_path: Path
) -> None:
    first, second = tmp_path / "2024" / "export.xml", tmp_path / "2025" / "export.xml"
    first.parent.mkdir()
    second.parent.mkdir()
    first.write_bytes(_rss(("wp-1", "From the export")))
    second.write_bytes(_rss(("wp-1", "From a later export"), ("url-1", "Edited by hand")))
    with _Site("127.0.0.1", {"/feed.xml": _answer(_rss(("url-1", "From the feed")))}) as s:
        url = f"{s.base}/feed.xml"
        assert _import(engine, settings, str(first)).created == 1
        assert _import(engine, settings, url, allow_private=True).created == 1
        assert _article(engine, "wp-1").source == f"file:{first.resolve()}"

        # the same export from another folder, and a file editing the feed's article
        report = _import(engine, settings, str(second))
        assert (report.updated, report.errors) == (2, [])
        assert _article(engine, "url-1").source == url

        # a feed at a URL may not change what a file brought in
        (tmp_path / "www").mkdir()
        s.routes["/other.xml"] = _answer(_rss(("wp-1", "Hijacked")))
        report = _import(engine, settings, f"{s.base}/other.xml", allow_private=True)
    [error] = report.errors
    assert error.field == "guid" and f"file:{first.resolve()}" in error.reason
    assert _article(engine, "wp-1").title == "From a later export"


def test_an_article_without_a_recorded_source_needs_update_any_and_then_belongs_to_the_feed(
    engine: sa.Engine, settings: Settings
) -> None:
    ctx = context(settings)
    old = articles.validate({"guid": "old-1", "title": "Before sources"}, "old#1", ctx)
    articles.import_articles(engine, [old], base_url=settings.base_url, now=NOW)
    assert _article(engine, "old-1").source == ""
    routes = {"/feed.xml": _answer(_rss(("old-1", "Edited")))}
    with _Site("127.0.0.1", routes) as server:
        url = f"{server.base}/feed.xml"
        [error] = _import(engine, settings, url, allow_private=True).errors
        assert "not recorded" in error.reason
        assert _import(engine, settings, url, allow_private=True, allow_takeover=True).updated
        assert _article(engine, "old-1").source == url
        routes["/feed.xml"] = _answer(_rss(("old-1", "Edited again")))
        report = _import(engine, settings, url, allow_private=True)
    assert (report.updated, report.errors) == (1, [])


def test_cli_update_any_lets_a_feed_update_another_sources_article(
    site: Path, database_url: str
) -> None:
    routes = {
        "/a.xml": _answer(_rss(("g-1", "Original"))),
        "/b.xml": _answer(_rss(("g-1", "Replaced"))),
    }
    with _Site("127.0.0.1", routes) as server:
        a, b = f"{server.base}/a.xml", f"{server.base}/b.xml"
        flags = ["articles", "import", "--allow-private-hosts"]
        assert _cli(site, database_url, *flags, a).exit_code == 0
        refused = _cli(site, database_url, *flags, b)
        allowed = _cli(site, database_url, *flags, "--update-any", b)
    assert refused.exit_code == 1
    assert f"{b}#entry 1: guid: 'g-1' belongs to an article imported from {a}" in refused.output
    assert allowed.exit_code == 0, allowed.output
    assert f"{b}: 0 created, 1 updated" in allowed.output


# ----------------------------------------------------------------------------- URLs


def test_urls_are_percent_encoded_as_browsers_do_and_only_non_urls_refused(
    engine: sa.Engine, settings: Settings, tmp_path: Path
) -> None:
    good = [
        {
            "guid": "u-1",
            "title": "Photo with a space",
            "url": "https://ledger.example.com/2024/05/a story/",
            "image": "https://cdn.example.com/uploads/2024/05/photo one.jpg",
        },
        {
            "guid": "u-2",
            "title": "Relative and non-ASCII",
            "url": "https://bücher.example/über uns?q=a b|c",
            "image": "/images/Seoul skyline\t2024.jpg",
        },
        {
            "guid": "u-3",
            "title": "Already encoded",
            "image": "https://cdn.example.com/a%20b.png",
            "author": {"name": "Ayu", "url": "https://ayu.example.org/about me"},
        },
    ]
    bad = [
        ("image", "javascript:alert(1)"),
        ("image", "http://"),
        ("image", "https://exa mple.com/x.jpg"),
        ("image", "https://cdn.example.com/\x01.jpg"),
        ("url", "ftp://files.example.com/a.txt"),
        ("url", "https://example.com:port/"),
    ]
    records = good + [
        {"guid": f"bad-{n}", "title": "Bad", name: value} for n, (name, value) in enumerate(bad)
    ]
    path = write_jsonl(tmp_path / "posts.jsonl", records)

    report = import_path(engine, settings, path)

    assert report.created == 3
    assert [(e.where, e.field) for e in report.errors] == [
        (f"{path}:{n}", name) for n, (name, _) in enumerate(bad, start=4)
    ]
    stored = {a.guid: a for a in articles.list_articles(engine)}
    assert stored["u-1"].url == "https://ledger.example.com/2024/05/a%20story/"
    assert stored["u-1"].image == "https://cdn.example.com/uploads/2024/05/photo%20one.jpg"
    assert stored["u-2"].url == "https://xn--bcher-kva.example/%C3%BCber%20uns?q=a%20b%7Cc"
    assert stored["u-2"].image == "https://xn--bcher-kva.example/images/Seoul%20skyline2024.jpg"
    assert stored["u-3"].image == "https://cdn.example.com/a%20b.png"
    assert stored["u-3"].author is not None
    assert stored["u-3"].author.url == "https://ayu.example.org/about%20me"


def test_feed_enclosure_with_a_space_is_imported(
    engine: sa.Engine, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "export.rss"
    path.write_text(
        '<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>'
        "<link>https://ledger.example.com/</link><item><guid>e-1</guid><title>Floods</title>"
        "<link>https://ledger.example.com/floods/</link><description>x</description>"
        '<enclosure url="https://ledger.example.com/wp-content/uploads/flood photo.jpg" '
        'type="image/jpeg" length="1"/></item></channel></rss>'
    )
    report = import_path(engine, settings, path)
    assert (report.created, report.errors) == (1, [])
    [article] = articles.list_articles(engine)
    assert article.image == "https://ledger.example.com/wp-content/uploads/flood%20photo.jpg"


# ----------------------------------------------------------------------------- concurrency


def _records(prefix: str, count: int) -> list[dict[str, Any]]:
    return [
        {
            "guid": f"{prefix}-{n}",
            "title": f"{prefix} report {n}",
            "body": "<p>" + "Reporting from the region. " * 40 + "</p>",
            "tags": ["Korea", "Japan", f"Topic {n % 15}"],
            "author": {"name": f"Writer {n % 4}", "slug": f"writer-{n % 4}"},
            "published_at": "2024-05-01T09:30:00+07:00",
        }
        for n in range(count)
    ]


def test_records_are_parsed_outside_the_write_transaction(
    engine: sa.Engine, settings: Settings
) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's single write lock; PostgreSQL locks rows")
    path = sa.make_url(settings.database_url).database
    assert path
    probe = sqlite3.connect(path, timeout=0, isolation_level=None)
    ctx = context(settings)
    probes = 0

    def records() -> Iterator[articles.Parsed]:
        nonlocal probes
        for n, raw in enumerate(_records("p", 250), start=1):
            # while a record is parsed, the database takes another writer at once
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("COMMIT")
            probes += 1
            yield articles.validate(raw, f"p#{n}", ctx)

    try:
        report = articles.import_articles(engine, records(), base_url=settings.base_url, now=NOW)
    finally:
        probe.close()
    assert (report.created, report.errors, probes) == (250, [], 250)


def test_two_imports_and_other_writers_at_once_store_everything(
    engine: sa.Engine, settings: Settings, tmp_path: Path
) -> None:
    files = [write_jsonl(tmp_path / f"{p}.jsonl", _records(p, 250)) for p in ("a", "b")]
    failures: list[BaseException] = []
    reports: dict[str, articles.ImportReport] = {}
    hog_holds = threading.Event()
    writes_done: list[int] = []

    def hog() -> None:
        # another process holding the write lock longer than SQLite's busy timeout (5 s)
        path = sa.make_url(settings.database_url).database
        assert path
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        hog_holds.set()
        time.sleep(5.5)
        conn.execute("COMMIT")
        conn.close()

    def importer(path: Path) -> None:
        try:
            reports[path.stem] = import_path(engine, settings, path)
        except BaseException as exc:  # reported by the assertion below
            failures.append(exc)

    def writer() -> None:
        # sign-ups and edits elsewhere: a small write every 50 ms, each until it is stored
        for n in range(60):
            while True:
                try:
                    articles.define_authors_and_tags(
                        engine, [{"slug": f"other-{n}", "name": f"Other {n}"}], [], NOW
                    )
                    break
                except sa.exc.OperationalError:
                    time.sleep(0.05)
            writes_done.append(n)
            time.sleep(0.05)

    threads = []
    if engine.dialect.name == "sqlite":
        threads.append(threading.Thread(target=hog))
        threads[0].start()
        assert hog_holds.wait(10)
    threads += [threading.Thread(target=importer, args=(f,)) for f in files]
    threads.append(threading.Thread(target=writer))
    for thread in threads[-3:]:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert failures == []
    assert {name: (r.created, r.errors) for name, r in reports.items()} == {
        "a": (250, []),
        "b": (250, []),
    }
    assert len(articles.list_articles(engine, limit=1000)) == 500
    assert len(writes_done) == 60
    with Session(engine) as session:
        others = session.exec(select(Author).where(col(Author.slug).startswith("other-")))
        assert len(others.all()) == 60
