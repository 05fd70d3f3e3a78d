"""The front page, a month of the archive and search in Debian's chromium at phone and
desktop widths: no sideways scroll, tap targets of at least 24x24 px, no serious or
critical axe-core violation; "Older stories" reaches the oldest story, and the search form
finds a story by a word of its body. Screenshots go to screenshots/site/."""

from __future__ import annotations

import contextlib
import functools
import http.server
import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from newsletter.cli import main
from tests.conftest import sqlite_pass_only
from tests.helpers import free_port, serving, write_jsonl
from tests.test_browser import ARGS, CHROMIUM, _browser_or_skip

SHOTS = Path(__file__).resolve().parent.parent / "screenshots" / "site"
WIDTHS = (390, 1280)
STORIES = 40
PICTURE = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="1200" height="675">'
    '<rect width="1200" height="675" fill="#6b7f8e"/>'
    '<circle cx="900" cy="200" r="120" fill="#e9d8a6"/></svg>'
)


@contextlib.contextmanager
def pictures(folder: Path) -> Iterator[str]:
    """A local web server for the stories' images (the site never loads third parties)."""
    folder.mkdir()
    (folder / "photo.svg").write_text(PICTURE)
    handler = functools.partial(_Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _seed(tmp_path: Path, env: Mapping[str, str], images: str) -> Path:
    assert CliRunner().invoke(main, ["init", str(tmp_path)]).exit_code == 0
    config = tmp_path / "config.toml"
    now = datetime.now(UTC)
    records = [
        {
            "guid": f"story-{i}",
            "slug": f"story-{i}",
            "title": f"Story {i}: talks resume on the peninsula as negotiators meet in Jakarta",
            "summary": "Negotiators from both sides met for the first time in months.",
            "body": f"<p>Body {i}.</p>"
            + ("<p>The <em>monsoon</em> delayed the flights.</p>" if i == 7 else ""),
            "image": f"{images}/photo.svg" if i % 2 == 0 else None,
            "tags": ["politics"],
            "author": {"name": "Dewi Lestari", "slug": "dewi"},
            "published_at": (now - timedelta(hours=i + 1)).isoformat(),
        }
        for i in range(STORIES)
    ]
    result = CliRunner().invoke(
        main,
        [
            "--config",
            str(config),
            "articles",
            "import",
            str(write_jsonl(tmp_path / "p.jsonl", records)),
        ],
        env=dict(env),
    )
    assert result.exit_code == 0, result.output
    return config


# every link, button and input whose box is under 24x24 px, unless hidden or an inline
# link in running text (WCAG 2.5.8's inline exception: the line's height sets its size);
# the pages' own navigation is made of blocks, never of such links
_TARGETS = """() => [...document.querySelectorAll(
    'a[href], button, input:not([type=hidden]), select, textarea')]
  .filter(e => !(e.tagName === 'A' && getComputedStyle(e).display === 'inline'
                 && e.parentElement.textContent.trim().length > e.textContent.trim().length + 8))
  .map(e => { const r = e.getBoundingClientRect();
              return {what: e.outerHTML.slice(0, 90), w: r.width, h: r.height}; })
  .filter(t => t.w > 0 && t.h > 0 && (t.w < 24 || t.h < 24))"""


def _problems(page: Any, axe: Any) -> list[str]:
    found = [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in axe.run(page).response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    sideways = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    if sideways > 0:
        found.append(f"scrolls sideways by {sideways}px")
    found += [f"tap target {t['w']:.0f}x{t['h']:.0f}: {t['what']}" for t in page.evaluate(_TARGETS)]
    return found


@sqlite_pass_only
def test_front_archive_and_search_in_a_browser(tmp_path: Path, database_url: str) -> None:
    _browser_or_skip()
    from axe_playwright_python.sync_playwright import Axe
    from playwright.sync_api import sync_playwright

    port = free_port()
    env = {
        "NEWSLETTER_DATABASE__URL": database_url,
        "NEWSLETTER_SITE__BASE_URL": f"http://127.0.0.1:{port}",
    }
    SHOTS.mkdir(parents=True, exist_ok=True)
    axe = Axe()
    found: dict[str, list[str]] = {}
    with (
        pictures(tmp_path / "images") as images,
        serving(_seed(tmp_path, env, images), env, port, "--no-worker") as base,
        sync_playwright() as p,
    ):
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            month = page.goto(base + "/archive") and page.locator("ul.months a").first
            assert month
            month_path = month.get_attribute("href")
            assert month_path
            for width in WIDTHS:
                page.set_viewport_size({"width": width, "height": 900})
                for name, path in (
                    ("home", "/"),
                    ("archive", month_path.removeprefix(base)),
                    ("search", "/search?q=story"),
                ):
                    answer = page.goto(base + path)
                    assert answer is not None and answer.status == 200, path
                    page.wait_for_load_state("networkidle")
                    problems = _problems(page, axe)
                    if problems:
                        found[f"{path} at {width}px"] = problems
                    page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)

            # "Older stories" from the front page reaches the oldest story
            page.set_viewport_size({"width": 390, "height": 900})
            page.goto(base + "/")
            seen: list[str] = []
            while True:
                seen += page.locator("main h2 a").evaluate_all("as => as.map(a => a.href)")
                older = page.get_by_role("link", name="Older stories")
                if older.count() == 0:
                    break
                older.click()
                page.wait_for_load_state()
            stories = [s for s in seen if "/articles/" in s]
            assert len(stories) == len(set(stories)) == STORIES
            assert stories[-1].endswith(f"/articles/story-{STORIES - 1}")

            # the search form finds a story by a word of its body
            page.goto(base + "/search")
            page.get_by_label("Search titles, summaries and stories").fill("monsoon")
            page.get_by_role("button", name="Search").click()
            page.wait_for_url("**/search?q=monsoon")
            hits = page.locator("ol.posts h2 a").evaluate_all("as => as.map(a => a.href)")
            assert hits == [base + "/articles/story-7"]
        finally:
            browser.close()
    assert found == {}, "\n".join(f"{k}: {v}" for k, v in found.items())
