"""A feed opened in a browser reads as a page: Debian's chromium applies the feed's XSL
stylesheet (/feed.xsl) to the served RSS and Atom feeds and shows the feed's title, what a
feed is and the items as links, in the site's look, without sideways scrolling at 390 px.

Chromium shows application/rss+xml and application/atom+xml as plain text, so a browser's
navigation gets the same bytes as application/xml; feed readers still get the feed types.
Screenshots go to screenshots/site/feed-{390,1280}.png."""

from __future__ import annotations

from pathlib import Path

import httpx
from click.testing import CliRunner
from lxml import etree

from newsletter.cli import main
from tests.browser_helpers import serious_violations
from tests.conftest import sqlite_pass_only
from tests.helpers import free_port, serving
from tests.test_browser import ARGS, CHROMIUM, _browser_or_skip

SCREENSHOTS = Path(__file__).resolve().parent.parent / "screenshots" / "site"
ATOM = "{http://www.w3.org/2005/Atom}"
# what feedparser sends
READER_ACCEPT = (
    "application/atom+xml,application/rdf+xml,application/rss+xml,application/x-netcdf,"
    "application/xml;q=0.9,text/xml;q=0.2,*/*;q=0.1"
)
FEEDS = {
    "/feed.rss": "application/rss+xml; charset=utf-8",
    "/tags/kim-jong-un/feed.atom": "application/atom+xml; charset=utf-8",
}


def _title_and_items(body: bytes) -> tuple[str, list[tuple[str, str]]]:
    """The feed's title and its items as (title, link), read by a strict XML parser."""
    root = etree.fromstring(body, etree.XMLParser(recover=False, resolve_entities=False))
    if root.tag == "rss":
        items = [
            (item.findtext("title") or "", item.findtext("link") or "")
            for item in root.iterfind("channel/item")
        ]
        return root.findtext("channel/title") or "", items
    entries = [
        (
            entry.findtext(f"{ATOM}title") or "",
            entry.find(f"{ATOM}link[@rel='alternate']").get("href", ""),  # type: ignore[union-attr]
        )
        for entry in root.iterfind(f"{ATOM}entry")
    ]
    return root.findtext(f"{ATOM}title") or "", entries


@sqlite_pass_only
def test_feeds_read_as_pages_in_a_browser(tmp_path: Path, database_url: str) -> None:
    _browser_or_skip()
    from axe_playwright_python.sync_playwright import Axe
    from playwright.sync_api import expect, sync_playwright

    port = free_port()
    env = {
        "NEWSLETTER_DATABASE__URL": database_url,
        "NEWSLETTER_SITE__BASE_URL": f"http://127.0.0.1:{port}",
    }
    assert CliRunner().invoke(main, ["init", str(tmp_path)]).exit_code == 0
    config = tmp_path / "config.toml"
    assert CliRunner().invoke(main, ["--config", str(config), "demo"], env=env).exit_code == 0
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []

    with serving(config, env, port) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            for path, content_type in FEEDS.items():
                # what a feed reader gets: the feed document, its own content type
                served = httpx.get(base + path, headers={"Accept": READER_ACCEPT})
                assert served.headers["content-type"] == content_type
                assert httpx.get(base + path).content == served.content
                assert b'<?xml-stylesheet type="text/xsl"' in served.content
                title, items = _title_and_items(served.content)
                assert items, path

                for width in (1280, 390):
                    page = browser.new_page(viewport={"width": width, "height": 900})
                    response = page.goto(base + path)
                    assert response is not None and response.status == 200
                    assert response.headers["content-type"] == "application/xml; charset=utf-8"
                    # the same document under another type (the body playwright reports
                    # is the transformed page): what the browser asked for, fetched again
                    accept = response.request.all_headers()["accept"]
                    again = httpx.get(base + path, headers={"Accept": accept})
                    assert again.headers["content-type"] == "application/xml; charset=utf-8"
                    assert again.content == served.content
                    # the transformed page, not the raw XML tree
                    expect(page.get_by_role("heading", level=1)).to_have_text(title)
                    expect(
                        page.get_by_role("heading", name="This page is a web feed")
                    ).to_be_visible()
                    expect(page.locator("code.address")).to_have_text(base + path)
                    links = page.locator("ol.posts h3 a")
                    expect(links).to_have_count(len(items))
                    for n, (item_title, link) in enumerate(items):
                        expect(links.nth(n)).to_have_text(item_title)
                        expect(links.nth(n)).to_have_attribute("href", link)
                    assert page.evaluate("document.documentElement.lang") == "en"
                    where = f"{path} at {width} px"
                    overflow = page.evaluate(
                        "document.documentElement.scrollWidth"
                        " - document.documentElement.clientWidth"
                    )
                    if overflow > 0:
                        problems.append(f"{where}: scrolls sideways by {overflow} px")
                    for box in page.locator("nav a, ol.posts h3 a").evaluate_all(
                        "els => els.map(e => [e.textContent, e.getBoundingClientRect().height])"
                    ):
                        if box[1] < 24:
                            problems.append(f"{where}: tap target {box[0]!r} is {box[1]} px high")
                    problems += [f"{where}: {v}" for v in serious_violations(Axe().run(page))]
                    if path == "/feed.rss":
                        page.screenshot(path=str(SCREENSHOTS / f"feed-{width}.png"), full_page=True)
                    page.close()
        finally:
            browser.close()
    assert not problems, "\n".join(problems)
