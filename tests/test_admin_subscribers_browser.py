"""An editor in a real browser (Debian's chromium driven by Playwright) imports subscribers
from a CSV file with one bad row and sees that row reported with its line number; the run
saves screenshots of the subscribers page at desktop and phone widths."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from newsletter.cli import main
from tests.admin_helpers import PASSWORD
from tests.helpers import free_port, serving
from tests.test_browser import ARGS, CHROMIUM, _browser_or_skip

SCREENSHOTS = Path(__file__).parents[1] / "screenshots" / "admin"
CSV = (
    "email,name,status,digests\n"
    "siti.rahma@kompas.example,Siti Rahmawati,active,digest\n"
    "budi@tempo.example,Budi Santoso,active,digest\n"
    "kim.jiwoo@example.kr,김지우,pending,digest\n"
    "not-an-address,Broken Row,active,digest\n"
    "tanaka@example.jp,田中 花子,active,digest\n"
)


def test_editor_imports_a_csv_and_sees_the_bad_row_in_a_browser(
    tmp_path: Path, database_url: str
) -> None:
    _browser_or_skip()
    from playwright.sync_api import expect, sync_playwright

    port = free_port()
    env = {
        "NEWSLETTER_DATABASE__URL": database_url,
        "NEWSLETTER_SITE__BASE_URL": f"http://127.0.0.1:{port}",
        "NEWSLETTER_ADMIN__PASSWORD": PASSWORD,
    }
    assert CliRunner().invoke(main, ["init", str(tmp_path)]).exit_code == 0
    config = tmp_path / "config.toml"
    upload = tmp_path / "subscribers.csv"
    upload.write_text(CSV, encoding="utf-8")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    with serving(config, env, port) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(base + "/admin/subscribers")
            page.get_by_label("Name").fill("admin")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            expect(page.get_by_role("heading", name="Subscribers")).to_be_visible()

            page.get_by_role("link", name="Import CSV").click()
            page.get_by_label("CSV file").set_input_files(str(upload))
            page.get_by_role("button", name="Import").click()
            expect(page.get_by_role("heading", name="Import report")).to_be_visible()
            bad = page.get_by_role("row").filter(has_text="not-an-address")
            expect(bad.get_by_role("cell").nth(0)).to_have_text("5")
            expect(bad.get_by_role("cell").nth(1)).to_have_text("email")
            expect(page.get_by_text("4 created")).to_be_visible()

            page.get_by_role("link", name="Back to subscribers").click()
            expect(page.get_by_role("cell", name="budi@tempo.example", exact=True)).to_be_visible()
            page.get_by_label("Search by address").fill("TEMPO")
            page.get_by_role("button", name="Filter").click()
            expect(
                page.get_by_role("cell", name="siti.rahma@kompas.example", exact=True)
            ).to_have_count(0)
            page.get_by_role("button", name="Suppress budi@tempo.example").click()
            expect(page.get_by_text("budi@tempo.example is suppressed")).to_be_visible()

            page.goto(base + "/admin/subscribers")
            page.screenshot(path=str(SCREENSHOTS / "subscribers-1280.png"), full_page=True)
            page.set_viewport_size({"width": 390, "height": 844})
            expect(page.get_by_label("Search by address")).to_be_visible()
            # nothing but the table (in its own scrolling box) may be wider than the phone
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, width
            page.screenshot(path=str(SCREENSHOTS / "subscribers-390.png"), full_page=True)
        finally:
            browser.close()
    assert (SCREENSHOTS / "subscribers-1280.png").stat().st_size > 0
    assert (SCREENSHOTS / "subscribers-390.png").stat().st_size > 0
