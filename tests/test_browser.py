"""A reader in a real browser (Debian's chromium driven by Playwright): subscribe on the
home page, follow the confirmation link from the email a real SMTP server received, then
choose topics on the preferences page."""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import main
from tests.conftest import SmtpSink
from tests.helpers import free_port, serving

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _browser_or_skip() -> None:
    required = os.environ.get("NEWSLETTER_REQUIRE_BROWSER") == "1"  # set by .ci/run
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        if required:
            raise
        pytest.skip("playwright is not installed")
    if not Path(CHROMIUM).exists():
        if required:
            raise AssertionError(f"no chromium at {CHROMIUM}")
        pytest.skip("chromium is not installed (apt-get install chromium)")


def test_reader_subscribes_confirms_and_chooses_topics_in_a_browser(
    tmp_path: Path, database_url: str, smtp_sink: tuple[SmtpSink, int]
) -> None:
    _browser_or_skip()
    from playwright.sync_api import expect, sync_playwright

    sink, smtp_port = smtp_sink
    port = free_port()
    env = {
        "NEWSLETTER_DATABASE__URL": database_url,
        "NEWSLETTER_SITE__BASE_URL": f"http://127.0.0.1:{port}",
        "NEWSLETTER_MAIL__TRANSPORT": "smtp",
        "NEWSLETTER_SMTP__HOST": "127.0.0.1",
        "NEWSLETTER_SMTP__PORT": str(smtp_port),
        "NEWSLETTER_SMTP__SECURITY": "none",
    }
    assert CliRunner().invoke(main, ["init", str(tmp_path)]).exit_code == 0
    config = tmp_path / "config.toml"
    assert CliRunner().invoke(main, ["--config", str(config), "demo"], env=env).exit_code == 0

    with serving(config, env, port) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            page.goto(base + "/")
            expect(page.get_by_role("heading", name="Latest stories")).to_be_visible()
            form = page.locator("form.subscribe")
            form.get_by_label("Email address").fill("Browser.Reader@Example.org")
            form.get_by_label("Name (optional)").fill("Dewi")
            form.get_by_role("button", name="Subscribe").click()
            expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()

            deadline = time.monotonic() + 15
            while not sink.messages:
                assert time.monotonic() < deadline, "no confirmation email arrived"
                time.sleep(0.1)
            [message] = sink.messages
            assert message["To"] == "browser.reader@example.org"
            html = message.get_body(("html",))
            assert html is not None
            confirm = re.search(
                r'href="(http://127\.0\.0\.1:\d+/confirm/[^"]+)"', html.get_content()
            )
            assert confirm, "no confirmation link in the HTML part"

            page.goto(confirm.group(1))
            page.get_by_role(
                "button", name="Yes, subscribe me"
            ).click()  # GET alone confirms nobody
            expect(page.get_by_role("heading", name="You are subscribed")).to_be_visible()
            page.get_by_role("link", name="Choose what you receive").click()
            expect(page.get_by_role("heading", name="Your subscription")).to_be_visible()
            page.get_by_label("Kim Jong Un").check()
            page.get_by_role("button", name="Save").click()
            expect(page.get_by_text("Your choices are saved.")).to_be_visible()
            expect(page.get_by_label("Kim Jong Un")).to_be_checked()
            page.screenshot(path=str(tmp_path / "preferences.png"))
        finally:
            browser.close()
