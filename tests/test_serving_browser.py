"""The 404 page and /feeds in Debian's chromium at phone and desktop widths, served by
`newsletter serve` with the config `newsletter init` writes and the demo publication: no
sideways scroll, tap targets of at least 24 px in the page's content, no serious or critical
axe-core violation. Screenshots go to screenshots/site/{not-found,feeds}-{390,1280}.png."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from newsletter.cli import main
from tests.browser_helpers import serious_violations
from tests.conftest import sqlite_pass_only
from tests.helpers import free_port, serving
from tests.test_browser import ARGS, CHROMIUM, _browser_or_skip

SHOTS = Path(__file__).parents[1] / "screenshots" / "site"
WIDTHS = (390, 1280)
PAGES = {"not-found": ("/no/such/page", 404), "feeds": ("/feeds", 200)}
# links, buttons and fields in <main> smaller than 24 x 24 CSS pixels (WCAG 2.5.8)
SMALL_TARGETS = """() => [...document.querySelectorAll(
    'main a, main button, main input, main select, main textarea, main summary')]
  .filter(e => { const r = e.getBoundingClientRect();
                 return r.width > 0 && (r.width < 24 || r.height < 24); })
  .map(e => `${e.tagName} "${e.textContent.trim().slice(0, 30)}"`)"""


@sqlite_pass_only
def test_not_found_and_feeds_pages_fit_a_phone_and_pass_axe(
    tmp_path: Path, database_url: str
) -> None:
    _browser_or_skip()
    from axe_playwright_python.sync_playwright import Axe
    from playwright.sync_api import sync_playwright

    env = {"NEWSLETTER_DATABASE__URL": database_url}
    assert CliRunner().invoke(main, ["init", str(tmp_path)]).exit_code == 0
    config = tmp_path / "config.toml"
    assert CliRunner().invoke(main, ["--config", str(config), "demo"], env=env).exit_code == 0
    SHOTS.mkdir(parents=True, exist_ok=True)
    axe = Axe()
    found: dict[str, list[str]] = {}
    with serving(config, env, free_port()) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            for width in WIDTHS:
                page.set_viewport_size({"width": width, "height": 900})
                for name, (path, status) in PAGES.items():
                    answer = page.goto(base + path)
                    assert answer is not None and answer.status == status, (path, answer)
                    assert page.locator("header a", has_text="The Asia Ledger").count() == 1
                    problems = serious_violations(axe.run(page))
                    sideways = page.evaluate(
                        "document.documentElement.scrollWidth - window.innerWidth"
                    )
                    if sideways > 0:
                        problems.append(f"scrolls sideways by {sideways}px")
                    problems += [f"small target {t}" for t in page.evaluate(SMALL_TARGETS)]
                    if problems:
                        found[f"{path} at {width}px"] = problems
                    page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
            # the 404 page leads on: its search form goes to /search with the words
            page.goto(base + "/no/such/page")
            content = page.locator("main")
            content.get_by_label("Search our articles").fill("Korea")
            with page.expect_navigation():
                content.get_by_role("button", name="Search").click()
            assert page.url.startswith(base + "/search?q=Korea")
        finally:
            browser.close()
    assert found == {}
