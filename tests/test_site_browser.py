"""Article, tag and topics pages in Debian's chromium at phone and desktop widths: no page
scrolls sideways, every link and button is a target of at least 24x24 px (links in running
text excepted, as WCAG 2.5.8 does), and axe-core finds no serious or critical violation.
Screenshots of the article page go to screenshots/site/article-{390,1280}.png."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from newsletter.cli import main
from tests.browser_helpers import serious_violations
from tests.conftest import sqlite_pass_only
from tests.helpers import free_port, serving, write_jsonl
from tests.test_browser import ARGS, CHROMIUM, _browser_or_skip

WIDTHS = (390, 1280)
SHOTS = Path(__file__).parents[1] / "screenshots" / "site"
LONG_TITLE = (
    "The End of Peace Talks? How Kim Jong Un's Rhetoric Threatens Relations with South "
    "Korea and Unsettles Neighbours Across Northeast Asia"
)
# every link and button smaller than 24x24 px that is not inside running text: a link whose
# paragraph, list item or cell says more than the link itself is part of a sentence
SMALL_TARGETS = """() => {
  const found = [];
  for (const el of document.querySelectorAll('a[href], button, summary, input[type=submit]')) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 && box.height === 0) continue;
    if (box.width >= 24 && box.height >= 24) continue;
    const block = el.closest('p, li, td, dd, figcaption, blockquote');
    const own = el.textContent.replace(/\\s+/g, ' ').trim();
    const around = block ? block.textContent.replace(/\\s+/g, ' ').trim() : '';
    const words = around.replace(own, '').replace(/[\\s·|,]/g, '');
    const link = el.tagName === 'A' && block;
    if (link && (el.closest('.body, .dek, .bio, .excerpt') || words.length > 12)) continue;
    const size = `${Math.round(box.width)}x${Math.round(box.height)}`;
    found.push(`${el.tagName.toLowerCase()} "${own.slice(0, 40)}" ${size}`);
  }
  return found;
}"""


def _cli(config: Path, env: Mapping[str, str], *args: str) -> None:
    result = CliRunner().invoke(main, ["--config", str(config), *args], env=dict(env))
    assert result.exit_code == 0, result.output


def _seed(tmp_path: Path, env: Mapping[str, str], base: str) -> Path:
    assert CliRunner().invoke(main, ["init", str(tmp_path)]).exit_code == 0
    config = tmp_path / "config.toml"
    now = datetime.now(UTC)
    author = {
        "name": "Dewi Lestari",
        "slug": "dewi",
        "bio": "A Jakarta-based news writer covering Korea and Southeast Asia.",
        "url": "https://dewi.example.org/",
    }
    body = (
        "<p>Pyongyang's latest statements mark a turn that diplomats in Seoul describe "
        'as <a href="https://example.org/report">the sharpest in a decade</a>. '
        + "The words matter because they close doors that stayed ajar for years. " * 30
        + "</p><h2>What changed</h2><p>"
        + "Officials on both sides now speak of two states rather than one nation. " * 40
        + "</p>"
    )
    records: list[dict[str, Any]] = [
        {
            "guid": f"story-{i}",
            "slug": f"story-{i}",
            "title": f"Story {i}: talks, tariffs and the long road to a regional settlement",
            "summary": "A one-line excerpt of the story that runs long enough to wrap twice "
            "on a phone and shows how the list holds up.",
            "body": f"<p>Body {i}.</p>",
            "tags": ["North Korea", "South Korea"] if i % 2 else ["Trade"],
            "author": author,
            "published_at": (now - timedelta(days=i + 2)).isoformat(),
        }
        for i in range(6)
    ]
    records.append(
        {
            "guid": "lead",
            "slug": "lead",
            "title": LONG_TITLE,
            "summary": "Pyongyang's rhetoric has hardened, and Seoul is adjusting.",
            "body": body,
            "image": f"{base}/favicon.svg",  # an image this server has: no network needed
            "tags": ["Kim Jong Un", "North Korea", "South Korea"],
            "author": author,
            "published_at": (now - timedelta(days=1, hours=3)).isoformat(),
            "updated_at": (now - timedelta(hours=5)).isoformat(),
        }
    )
    records.append(
        {
            "guid": "korean",
            "slug": "korean",
            "title": "북한, 남한과의 관계를 두 적대 국가로 규정",
            "summary": "김정은 위원장은 통일 정책을 폐기하고 새로운 노선을 발표했다.",
            "body": "<p>북한은 최고인민회의에서 헌법 개정을 논의했다.</p>",
            "tags": ["North Korea"],
            "published_at": (now - timedelta(days=1, hours=6)).isoformat(),
        }
    )
    _cli(config, env, "articles", "import", str(write_jsonl(tmp_path / "posts.jsonl", records)))
    return config


@sqlite_pass_only
def test_article_tag_and_topics_pages_fit_phones_and_pass_axe(
    tmp_path: Path, database_url: str
) -> None:
    _browser_or_skip()
    from axe_playwright_python.sync_playwright import Axe
    from playwright.sync_api import sync_playwright

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {"NEWSLETTER_DATABASE__URL": database_url, "NEWSLETTER_SITE__BASE_URL": base}
    config = _seed(tmp_path, env, base)
    SHOTS.mkdir(parents=True, exist_ok=True)
    axe = Axe()
    found: dict[str, list[str]] = {}
    with serving(config, env, port) as served, sync_playwright() as p:
        assert served == base
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            for width in WIDTHS:
                page.set_viewport_size({"width": width, "height": 900})
                for path in ("/articles/lead", "/articles/korean", "/tags/north-korea", "/tags"):
                    answer = page.goto(base + path)
                    assert answer is not None and answer.status == 200, (path, answer)
                    problems = serious_violations(axe.run(page))
                    sideways = page.evaluate(
                        "document.documentElement.scrollWidth - window.innerWidth"
                    )
                    if sideways > 0:
                        problems.append(f"scrolls sideways by {sideways}px")
                    problems += [f"small target: {t}" for t in page.evaluate(SMALL_TARGETS)]
                    if problems:
                        found[f"{path} at {width}px"] = problems
                page.goto(base + "/articles/lead")
                assert page.locator("figure.lead img").evaluate("img => img.naturalWidth") > 0
                page.screenshot(path=str(SHOTS / f"article-{width}.png"), full_page=True)
        finally:
            browser.close()
    assert found == {}
    assert (SHOTS / "article-390.png").stat().st_size > 0
