"""An editor in a real browser (Debian's chromium driven by Playwright) against `newsletter
serve` in a child process: log in, create a digest with a tag filter and watch its preview
follow the tag, send a test that a real SMTP server receives, send it now and follow the
run to the end, then pause and resume another run. Screenshots of the dashboard, the digest
editor and a run page at desktop and phone widths go to screenshots/admin/."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from newsletter.cli import main
from tests.admin_helpers import PASSWORD
from tests.browser_helpers import run_cli
from tests.conftest import SmtpSink
from tests.helpers import free_port, serving, write_jsonl
from tests.test_browser import ARGS, CHROMIUM, _browser_or_skip

SHOTS = Path(__file__).parents[1] / "screenshots" / "admin"
READERS = [f"reader{i}@example.org" for i in range(1, 7)]
WIDTHS = (1280, 390)


def _article(slug: str, title: str, tag: str, ago: timedelta) -> dict[str, Any]:
    return {
        "guid": slug,
        "slug": slug,
        "title": title,
        "summary": f"The lead of {title}.",
        "body": f"<p>{title}.</p>",
        "tags": [tag],
        "author": {"name": "Dewi Lestari", "slug": "dewi"},
        "published_at": (datetime.now(UTC) - ago).isoformat(),
    }


def _mail_to(sink: SmtpSink, address: str) -> int:
    return sum(1 for m in sink.messages if m["To"].addresses[0].addr_spec == address)


def _shots(page: Any, name: str) -> None:
    """The whole page at each width. The viewport is made as tall as the page rather than
    stitched (full_page): chromium leaves a sandboxed frame blank while it is out of view."""
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.reload()  # laid out afresh at this width
        height = page.evaluate("document.documentElement.scrollHeight")
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(SHOTS / f"{name}-{width}.png"))
    page.set_viewport_size({"width": 1280, "height": 900})


def test_editor_defines_previews_tests_sends_and_steers_runs_in_a_browser(
    tmp_path: Path, database_url: str, smtp_sink: tuple[SmtpSink, int]
) -> None:
    _browser_or_skip()
    from playwright.sync_api import expect, sync_playwright

    sink, smtp_port = smtp_sink
    port = free_port()
    env = {
        "NEWSLETTER_DATABASE__URL": database_url,
        "NEWSLETTER_SITE__BASE_URL": f"http://127.0.0.1:{port}",
        "NEWSLETTER_ADMIN__PASSWORD": PASSWORD,
        "NEWSLETTER_MAIL__TRANSPORT": "smtp",
        "NEWSLETTER_SMTP__HOST": "127.0.0.1",
        "NEWSLETTER_SMTP__PORT": str(smtp_port),
        "NEWSLETTER_SMTP__SECURITY": "none",
        # one message a second: a run of six lasts long enough to pause it by hand
        "NEWSLETTER_DELIVERY__MAX_PER_SECOND": "1",
        "NEWSLETTER_DIGESTS__SYNC_SECONDS": "1",  # a new run gets its sender within a second
    }
    assert CliRunner().invoke(main, ["init", str(tmp_path)]).exit_code == 0
    config = tmp_path / "config.toml"
    posts = write_jsonl(
        tmp_path / "posts.jsonl",
        [
            _article("talks-stall", "Peace talks stall", "politics", timedelta(hours=3)),
            _article("tariffs-rise", "Tariffs rise in Jakarta", "trade", timedelta(hours=2)),
        ],
    )
    run_cli(config, env, "articles", "import", str(posts))
    SHOTS.mkdir(parents=True, exist_ok=True)

    with serving(config, env, port) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(15_000)
            page.goto(base + "/admin/digests")
            page.get_by_label("Name").fill("admin")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            expect(page.get_by_role("heading", name="Digests")).to_be_visible()

            page.get_by_role("link", name="New digest").click()
            page.get_by_label("Slug").fill("asia-brief")
            page.get_by_label("Name", exact=True).fill("Asia Brief")
            page.get_by_label("Politics").check()
            page.get_by_label("Most posts in an issue").fill("5")
            page.get_by_role("button", name="Create digest").click()
            expect(page.get_by_text("Digest Asia Brief created.")).to_be_visible()

            preview = page.frame_locator("#preview-html")
            expect(preview.get_by_role("link", name="Peace talks stall")).to_be_visible()
            expect(preview.get_by_role("link", name="Tariffs rise in Jakarta")).to_have_count(0)
            # the preview follows the form before anything is saved
            page.get_by_label("Politics").uncheck()
            page.get_by_label("Trade").check()
            expect(preview.get_by_role("link", name="Tariffs rise in Jakarta")).to_be_visible()
            expect(preview.get_by_role("link", name="Peace talks stall")).to_have_count(0)
            expect(page.locator("#preview-text")).to_contain_text("Tariffs rise in Jakarta")
            expect(page.locator("#preview-status")).to_contain_text("not saved yet")
            page.get_by_role("button", name="Save").click()
            expect(page.get_by_text("Saved Asia Brief.")).to_be_visible()
            expect(preview.get_by_role("link", name="Tariffs rise in Jakarta")).to_be_visible()
            expect(preview.get_by_role("link", name="Peace talks stall")).to_have_count(0)
            _shots(page, "digest-editor")

            page.get_by_label("Send the next issue, marked as a test, to").fill("desk@example.org")
            page.get_by_role("button", name="Send test").click()
            expect(
                page.get_by_text("A test of asia-brief went to desk@example.org.")
            ).to_be_visible()
            [test] = [m for m in sink.messages if m["Subject"].startswith("[Test]")]
            assert test["To"].addresses[0].addr_spec == "desk@example.org"
            assert "Tariffs rise in Jakarta" in test.get_body(("plain",)).get_content()

            for address in READERS:
                run_cli(config, env, "subscribers", "add", address, "--digest", "asia-brief")
            page.reload()
            page.get_by_role("link", name="Send now").click()
            expect(page.locator("#audience")).to_contain_text("6 people")
            page.get_by_role("button", name="Confirm: send to 6").click()
            expect(page).to_have_url(
                f"{base}/admin/runs/1?notice=Run%201%20of%20asia-brief%20is%20under%20way."
            )
            status = page.locator("#run-status")
            expect(status).to_have_text("finished (sent)", timeout=30_000)
            expect(page.locator("#count-sent")).to_have_text("6")
            assert all(_mail_to(sink, a) == 1 for a in READERS)
            _shots(page, "run")

            more = write_jsonl(
                tmp_path / "more.jsonl",
                [_article("ports-reopen", "Ports reopen", "trade", timedelta(0))],
            )
            run_cli(config, env, "articles", "import", str(more))
            page.goto(base + "/admin/digests/asia-brief/send")
            page.get_by_role("button", name="Confirm: send to 6").click()
            expect(page.get_by_role("heading", name="Run 2")).to_be_visible()
            page.get_by_role("button", name="Pause").click()
            expect(page.get_by_text("Run 2 is paused.")).to_be_visible()
            expect(status).to_have_text("paused")
            page.get_by_role("button", name="Resume").click()
            expect(page.get_by_text("Run 2 goes on where it stopped.")).to_be_visible()
            expect(status).to_have_text("finished (sent)", timeout=30_000)
            deadline = time.monotonic() + 10
            while not all(_mail_to(sink, a) == 2 for a in READERS):
                assert time.monotonic() < deadline, "a reader did not get the second issue"
                time.sleep(0.1)
            assert all(_mail_to(sink, a) == 2 for a in READERS)  # nobody got it twice

            page.goto(base + "/admin")
            _shots(page, "dashboard")
        finally:
            browser.close()
