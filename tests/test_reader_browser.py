"""The readers' pages in Debian's chromium at phone and desktop widths: the sign-up page,
a preferences page reached by the link an email carries, and the unsubscribed page with
its undo. No sideways scroll, form controls and buttons at least 24x24 px, and axe-core
finds no serious or critical violation. Screenshots go to
screenshots/site/{subscribe,preferences}-{390,1280}.png."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from click.testing import CliRunner

from newsletter import config, subscribers
from newsletter.cli import main
from newsletter.storage import database
from newsletter.subscribers import links
from tests.browser_helpers import serious_violations
from tests.conftest import sqlite_pass_only
from tests.helpers import free_port, serving
from tests.test_browser import ARGS, CHROMIUM, _browser_or_skip

WIDTHS = (390, 1280)
SHOTS = Path(__file__).parents[1] / "screenshots" / "site"
# every control a reader operates, with its rendered size (closed <details> opened first)
MEASURE = """() => {
  document.querySelectorAll("details").forEach(d => { d.open = true; });
  return [...document.querySelectorAll(
    "input:not([type=hidden]), button, select, textarea, summary"
  )].map(e => {
    const r = e.getBoundingClientRect();
    return {what: e.outerHTML.slice(0, 80), width: r.width, height: r.height};
  });
}"""


def _problems(page: Any, axe: Any) -> list[str]:
    found = serious_violations(axe.run(page))
    sideways = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    if sideways > 0:
        found.append(f"scrolls sideways by {sideways}px")
    for control in page.evaluate(MEASURE):
        if control["width"] < 24 or control["height"] < 24:
            found.append(f"{control['width']:.0f}x{control['height']:.0f}: {control['what']}")
    return found


@sqlite_pass_only
def test_readers_pages_fit_a_phone_and_pass_axe(tmp_path: Path, database_url: str) -> None:
    _browser_or_skip()
    from axe_playwright_python.sync_playwright import Axe
    from playwright.sync_api import expect, sync_playwright

    port = free_port()
    env = {
        "NEWSLETTER_DATABASE__URL": database_url,
        "NEWSLETTER_SITE__BASE_URL": f"http://127.0.0.1:{port}",
    }
    assert CliRunner().invoke(main, ["init", str(tmp_path)]).exit_code == 0
    config_path = tmp_path / "config.toml"
    demo = CliRunner().invoke(main, ["--config", str(config_path), "demo"], env=env)
    assert demo.exit_code == 0, demo.output
    settings = config.load(config_path, environ=env)
    engine = database.open_database(settings.database_url)
    try:
        reader = subscribers.add(engine, "pages@example.org", settings.site.tz, "Ayu Lestari")
    finally:
        engine.dispose()
    assert reader.id is not None
    preferences = links.preferences_url(settings, reader.id, reader.link_key)
    unsubscribe = links.unsubscribe_url(settings, reader.id, reader.link_key)
    SHOTS.mkdir(parents=True, exist_ok=True)

    axe = Axe()
    found: dict[str, list[str]] = {}
    with serving(config_path, env, port) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            for width in WIDTHS:
                page.set_viewport_size({"width": width, "height": 900})
                answer = page.goto(base + "/subscribe")
                assert answer is not None and answer.status == 200
                expect(page.get_by_role("heading", level=1)).to_contain_text("by email")
                page.screenshot(path=str(SHOTS / f"subscribe-{width}.png"), full_page=True)
                found[f"/subscribe at {width}px"] = _problems(page, axe)

                answer = page.goto(preferences)
                assert answer is not None and answer.status == 200
                expect(page.get_by_text("You receive:")).to_be_visible()
                page.screenshot(path=str(SHOTS / f"preferences-{width}.png"), full_page=True)
                found[f"preferences at {width}px"] = _problems(page, axe)

                # leave with the email's link, then take it back with the undo button
                page.goto(unsubscribe)
                page.get_by_role("button", name="Unsubscribe").click()
                expect(page.get_by_role("heading", name="You are unsubscribed")).to_be_visible()
                found[f"unsubscribed at {width}px"] = _problems(page, axe)
                page.get_by_role("button", name="Undo: keep me subscribed").click()
                expect(page.get_by_role("heading", name="You are subscribed again")).to_be_visible()
        finally:
            browser.close()
    assert {where: problems for where, problems in found.items() if problems} == {}
