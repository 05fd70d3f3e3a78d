"""The confirmation email and a digest as a phone and a desktop show them: their HTML parts,
taken from the parsed messages, open in Debian's chromium at 390 and 1280 px wide. Nothing
scrolls sideways (the 150-character confirmation link wraps), the buttons are padded, the
footer's text is small, dark mode repaints the card. Screenshots go to
screenshots/email/{confirm,digest}-{390,1280}.png (and -390-dark.png)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from newsletter.config import Settings
from tests.conftest import sqlite_pass_only
from tests.test_browser import ARGS, CHROMIUM, _browser_or_skip
from tests.test_email_layout import (
    confirmation_message,
    digest_message,
    email_settings,
    html_of,
    with_postal_address,
)

if TYPE_CHECKING:
    from playwright.sync_api import Page

SCREENSHOTS = Path(__file__).resolve().parent.parent / "screenshots" / "email"
WIDTHS = (390, 1280)
WHITE = "rgb(255, 255, 255)"


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return with_postal_address(email_settings(tmp_path, database_url))


def _png(width: int, height: int) -> bytes:
    """A grey PNG: the photo the digest's made-up CDN would have sent."""
    row = b"\x00" + b"\xb8\xb8\xb0" * width

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + b"".join(
        (chunk(b"IHDR", header), chunk(b"IDAT", zlib.compress(row * height)), chunk(b"IEND", b""))
    )


def _check(page: Page, html: str, name: str) -> None:
    # Nothing leaves the machine: images get a local photo, or nothing (blocked, as
    # Outlook does by default); either way the message must not widen.
    photo = _png(1200, 675)
    page.route("**/*", lambda route: route.fulfill(body=photo, content_type="image/png"))
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.emulate_media(color_scheme="light")
        page.set_content(html)
        sizes = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        assert sizes[0] <= sizes[1], f"{name} scrolls sideways at {width} px: {sizes}"
        container = page.locator("table.container").bounding_box()
        assert container is not None
        assert container["width"] <= min(width, 600)
        assert container["x"] >= 0
        button = page.locator("a.button-link").first.bounding_box()
        assert button is not None
        assert button["height"] >= 40, f"{name}'s button at {width} px: {button}"
        assert button["x"] + button["width"] <= width
        sizes_of_fine = page.locator("p.fine").evaluate_all(
            "ps => ps.map(p => getComputedStyle(p).fontSize)"
        )
        assert sizes_of_fine and set(sizes_of_fine) == {"12px"}
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}.png"), full_page=True)
    page.unroute("**/*")
    page.route("**/*", lambda route: route.abort())
    page.set_viewport_size({"width": 390, "height": 900})
    page.set_content(html)
    sizes = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert sizes[0] <= sizes[1], f"{name} with images blocked scrolls sideways: {sizes}"
    # dark mode repaints the card over the inlined white background
    page.set_viewport_size({"width": 390, "height": 900})
    page.emulate_media(color_scheme="dark")
    card = page.locator("td.card").evaluate("td => getComputedStyle(td).backgroundColor")
    assert card != WHITE
    page.screenshot(path=str(SCREENSHOTS / f"{name}-390-dark.png"), full_page=True)


@sqlite_pass_only
def test_confirmation_and_digest_fit_phones_and_desktops(
    engine: sa.Engine, settings: Settings
) -> None:
    _browser_or_skip()
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    confirmation = html_of(confirmation_message(engine, settings))
    digest = html_of(digest_message(settings))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            for name, html in (("confirm", confirmation), ("digest", digest)):
                page = browser.new_page()
                _check(page, html, name)
                if name == "confirm":
                    _check_raw_link_wraps(page, html)
                page.close()
        finally:
            browser.close()


def _check_raw_link_wraps(page: Page, html: str) -> None:
    """The raw confirmation link, over 150 characters, wraps inside a 390 px screen."""
    page.emulate_media(color_scheme="light")
    page.set_viewport_size({"width": 390, "height": 900})
    page.set_content(html)
    raw = page.locator("p.rawlink a")
    assert len(raw.inner_text().replace("\n", "")) >= 150
    box = raw.bounding_box()
    assert box is not None
    assert box["x"] + box["width"] <= 390
    lines = raw.evaluate("a => a.getClientRects().length")
    assert lines >= 2
