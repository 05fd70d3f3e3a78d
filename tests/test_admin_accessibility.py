"""Every admin page in Debian's chromium at desktop and phone widths: axe-core (bundled by
axe-playwright-python) finds no serious or critical violation, and no page scrolls
sideways. Pages are filled with real data: articles, subscribers, a digest and a run."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner

from newsletter.cli import main
from tests.admin_helpers import PASSWORD
from tests.browser_helpers import run_cli, serious_violations
from tests.conftest import sqlite_pass_only
from tests.helpers import free_port, serving, write_jsonl
from tests.test_browser import ARGS, CHROMIUM, _browser_or_skip

WIDTHS = (1280, 390)
PAGES = (
    "/admin/login",
    "/admin",
    "/admin/digests",
    "/admin/digests/new",
    "/admin/digests/digest/edit",
    "/admin/digests/digest/send",
    "/admin/runs",
    "/admin/runs/1",
    "/admin/runs/1/cancel",
    "/admin/subscribers",
    "/admin/subscribers/import",
    "/admin/articles",
)


def _seed(tmp_path: Path, env: Mapping[str, str]) -> Path:
    assert CliRunner().invoke(main, ["init", str(tmp_path)]).exit_code == 0
    config = tmp_path / "config.toml"
    now = datetime.now(UTC)
    records = [
        {
            "guid": f"story-{i}",
            "slug": f"story-{i}",
            "title": f"Story number {i} about a long and winding negotiation in Jakarta",
            "body": f"<p>Body {i}.</p>",
            "tags": ["politics" if i % 2 else "trade"],
            "author": {"name": "Dewi Lestari", "slug": "dewi"},
            "published_at": (now - timedelta(hours=i + 1)).isoformat(),
        }
        for i in range(6)
    ]
    run_cli(config, env, "articles", "import", str(write_jsonl(tmp_path / "posts.jsonl", records)))
    rows = "email,name,status,digests\n" + "".join(
        f"reader{i}@example.org,Reader {i},active,digest\n" for i in range(5)
    )
    (tmp_path / "readers.csv").write_text(rows)
    run_cli(config, env, "subscribers", "import", str(tmp_path / "readers.csv"))
    run_cli(config, env, "digests", "send", "digest", "--background")  # run 1, left pending
    return config


@sqlite_pass_only
def test_admin_pages_pass_axe_and_fit_a_phone(tmp_path: Path, database_url: str) -> None:
    _browser_or_skip()
    from axe_playwright_python.sync_playwright import Axe
    from playwright.sync_api import sync_playwright

    port = free_port()
    env = {
        "NEWSLETTER_DATABASE__URL": database_url,
        "NEWSLETTER_SITE__BASE_URL": f"http://127.0.0.1:{port}",
        "NEWSLETTER_ADMIN__PASSWORD": PASSWORD,
    }
    config = _seed(tmp_path, env)
    axe = Axe()
    found: dict[str, list[str]] = {}
    # --no-worker: run 1 stays as it is, so its page and its cancel page exist
    with serving(config, env, port, "--no-worker") as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(base + "/admin/login")
            page.get_by_label("Name").fill("admin")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url(base + "/admin")
            for width in WIDTHS:
                page.set_viewport_size({"width": width, "height": 800})
                for path in PAGES:
                    answer = page.goto(base + path)
                    assert answer is not None and answer.status == 200, (path, answer)
                    problems = serious_violations(axe.run(page))
                    sideways = page.evaluate(
                        "document.documentElement.scrollWidth - window.innerWidth"
                    )
                    if sideways > 0:
                        problems.append(f"scrolls sideways by {sideways}px")
                    if problems:
                        found[f"{path} at {width}px"] = problems
        finally:
            browser.close()
    assert found == {}
