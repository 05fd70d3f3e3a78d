"""The one email layout, as mail clients receive it: the confirmation email (built by the
sign-up use case) and a digest (built once per segment, filled per recipient through its
slots) are parsed from their wire bytes with the email package, and their HTML with lxml.

What must hold for Gmail, Outlook for Windows and phones: a fluid 600 px table, a hidden
preheader first in the body, a button that is a table cell with a link inside, the CSS
inlined with only @media rules left in the head (narrow screens, dark mode), small footer
text that stays small, and a footer with the postal address and the privacy, unsubscribe
and preferences links, in the HTML and in the plain text alike.
"""

from __future__ import annotations

import email.policy
from dataclasses import replace
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from urllib.parse import urlsplit

import lxml.html
import pytest
import sqlalchemy as sa
from sqlmodel import Session

from newsletter.config import (
    DatabaseSettings,
    MailSettings,
    SecuritySettings,
    Settings,
    SiteSettings,
)
from newsletter.digests import compose
from newsletter.mail import Composer as MimeComposer
from newsletter.mail import MemoryMailer
from newsletter.models import DEFAULT_SUBJECT, Subscriber, SubscriberStatus
from newsletter.services import template_environment
from newsletter.subscribers import Subscribers
from tests.test_digest_email_golden import DIGEST, ISSUE_DATE, POSTS, RUN_ID

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
# Long enough that the confirmation link is over 150 characters, as in the report.
BASE_URL = "https://newsletter.the-asia-ledger.example/readers"
POSTAL_ADDRESS = "The Asia Ledger\nJl. Sudirman 1\nJakarta 10220, Indonesia"
PRIVACY_URL = "https://the-asia-ledger.example/privacy"
ADDRESS = "siti.rahma@example.com"
UNSUBSCRIBE_URL = f"{BASE_URL}/unsubscribe/layout-unsubscribe-token"
PREFERENCES_URL = f"{BASE_URL}/preferences/layout-preferences-token"
SUBSCRIBER_ID = 42
CONFIRM = f"{BASE_URL}/confirm/"


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return email_settings(tmp_path, database_url)


def email_settings(tmp_path: Path, database_url: str = "sqlite://") -> Settings:
    return Settings(
        root=tmp_path,
        site=SiteSettings(base_url=BASE_URL, timezone="Asia/Jakarta", privacy_url=PRIVACY_URL),
        database=DatabaseSettings(url=database_url),
        security=SecuritySettings(secret_key="layout"),
        mail=MailSettings(from_address="newsletter@the-asia-ledger.example"),
    )


def _parsed(data: bytes) -> EmailMessage:
    message = BytesParser(policy=email.policy.default).parsebytes(data)
    assert isinstance(message, EmailMessage)
    return message


def confirmation_message(engine: sa.Engine, settings: Settings) -> EmailMessage:
    """The confirmation email of a pending subscriber, as the queue sends it."""
    with Session(engine) as session:
        session.add(
            Subscriber(
                id=SUBSCRIBER_ID,
                email=ADDRESS,
                name="",
                status=SubscriberStatus.pending,
                created_at=NOW,
                updated_at=NOW,
                confirm_nonce="layout-nonce",
                link_key="layout-link-key",
            )
        )
        session.commit()
    service = Subscribers(engine, settings, MemoryMailer(), template_environment(settings))
    letter = service.signups.confirmation_letter(SUBSCRIBER_ID, NOW)
    assert letter is not None
    return _parsed(MimeComposer(settings).compose(letter, NOW).data)


def digest_message(settings: Settings) -> EmailMessage:
    """A digest issue as a run sends it: a segment's bodies rendered and inlined once, the
    recipient's parts filled into the prebuilt message's slots."""
    mime = MimeComposer(settings)
    composer = compose.Composer(
        templates=template_environment(settings),
        template="digest",
        subject=DEFAULT_SUBJECT,
        base_url=settings.base_url,
        site_title=settings.site.title,
        postal_address=settings.mail.postal_address,
        inline=mime.inline,
    )
    issue = compose.Issue(DIGEST, RUN_ID, ISSUE_DATE, POSTS, f"{BASE_URL}/digests/x/{RUN_ID}")
    bodies = composer.bodies(issue, POSTS)
    prepared = mime.prepare(bodies.subject, bodies.text, bodies.html, compose.MARKERS)
    values = {
        compose.GREETING: compose.greeting("Siti Rahma"),
        compose.EMAIL: ADDRESS,
        compose.UNSUBSCRIBE: UNSUBSCRIBE_URL,
        compose.PREFERENCES: PREFERENCES_URL,
    }
    filled = prepared.fill(ADDRESS, "Siti Rahma", [("Message-ID", "<layout@test>")], values)
    return _parsed(filled.data(None))


def html_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def with_postal_address(settings: Settings) -> Settings:
    return replace(settings, mail=replace(settings.mail, postal_address=POSTAL_ADDRESS))


@pytest.fixture
def confirmation(engine: sa.Engine, settings: Settings) -> EmailMessage:
    return confirmation_message(engine, with_postal_address(settings))


@pytest.fixture
def digest(settings: Settings) -> EmailMessage:
    return digest_message(with_postal_address(settings))


def _document(message: EmailMessage) -> lxml.html.HtmlElement:
    return lxml.html.document_fromstring(html_of(message))


def _style(element: lxml.html.HtmlElement) -> dict[str, str]:
    pairs = (d.partition(":") for d in str(element.get("style", "")).split(";"))
    return {k.strip().lower(): v.strip() for k, _, v in pairs if k.strip()}


def _classes(element: lxml.html.HtmlElement) -> set[str]:
    return set(str(element.get("class", "")).split())


def _confirm_url(message: EmailMessage) -> str:
    [url] = [line for line in text_of(message).splitlines() if line.startswith(CONFIRM)]
    return url


# ---------------------------------------------------------------- the layout, both emails


@pytest.mark.parametrize("kind", ["confirmation", "digest"])
def test_layout_is_a_fluid_600px_table(kind: str, request: pytest.FixtureRequest) -> None:
    document = _document(request.getfixturevalue(kind))
    assert document.get("lang") == "en"
    tables = document.xpath("//table")
    assert tables and all(t.get("role") == "presentation" for t in tables)
    [container] = [t for t in tables if "container" in _classes(t)]
    assert container.get("width") == "600"  # what Outlook for Windows honours
    assert _style(container)["max-width"] == "600px"
    assert _style(container)["width"] == "100%"
    # the outer table is the page, the container sits in its one centred cell
    [page] = [t for t in tables if "page" in _classes(t)]
    assert container.xpath("ancestor::table[1]") == [page]
    assert container.xpath("ancestor::td[1]")[0].get("align") == "center"
    viewport = document.xpath('//head/meta[@name="viewport"]/@content')
    assert viewport == ["width=device-width, initial-scale=1"]
    assert document.xpath("//script | //form | //input | //iframe | //link") == []


@pytest.mark.parametrize("kind", ["confirmation", "digest"])
def test_css_is_inlined_and_only_media_queries_stay_in_the_head(
    kind: str, request: pytest.FixtureRequest
) -> None:
    document = _document(request.getfixturevalue(kind))
    sheets = document.xpath("//style")
    assert sheets and all(s.getparent().tag == "head" for s in sheets)
    for sheet in sheets:
        # nothing in a kept sheet may be a plain rule a client that drops sheets would lose
        text = sheet.text_content().strip()
        assert text.startswith("@media"), text[:80]
        assert text.count("{") == text.count("}")
    media = " ".join(s.text_content() for s in sheets)
    assert "max-width: 620px" in media  # phones
    assert "prefers-color-scheme: dark" in media
    assert "!important" in media  # to beat the inlined styles
    body = document.xpath("//body")[0]
    assert _style(body)["background"] == "#f4f4f0"


@pytest.mark.parametrize("kind", ["confirmation", "digest"])
def test_dark_mode_is_declared(kind: str, request: pytest.FixtureRequest) -> None:
    document = _document(request.getfixturevalue(kind))
    schemes = document.xpath('//head/meta[@name="color-scheme"]/@content')
    assert schemes == ["light dark"]
    assert document.xpath('//head/meta[@name="supported-color-schemes"]/@content') == ["light dark"]
    # text is text: no image carries words a dark background would hide
    for image in document.xpath("//img"):
        assert image.get("alt")


@pytest.mark.parametrize("kind", ["confirmation", "digest"])
def test_footer_has_address_and_links_in_small_text(
    kind: str, request: pytest.FixtureRequest
) -> None:
    message = request.getfixturevalue(kind)
    document = _document(message)
    fine = [p for p in document.xpath("//td[contains(@class, 'footer')]//p")]
    assert fine and all("fine" in _classes(p) for p in fine)
    # inline styles decide in mail clients: the generic `p` size must not have won
    assert {_style(p)["font-size"] for p in fine} == {"12px"}
    links = {a.text_content(): a.get("href") for p in fine for a in p.xpath(".//a")}
    assert links["Unsubscribe"].startswith(f"{BASE_URL}/unsubscribe/")
    assert links["Change what you receive"].startswith(f"{BASE_URL}/preferences/")
    assert links["Privacy policy"] == PRIVACY_URL
    assert links["The Asia Ledger"] == f"{BASE_URL}/"
    if kind == "digest":  # filled into the slots per recipient
        assert links["Unsubscribe"] == UNSUBSCRIBE_URL
        assert links["Change what you receive"] == PREFERENCES_URL
    text = text_of(message)
    lines = text.splitlines()
    assert PRIVACY_URL in lines
    assert links["Unsubscribe"] in lines
    assert links["Change what you receive"] in lines


def test_digest_footer_shows_the_postal_address_line_by_line(digest: EmailMessage) -> None:
    _assert_postal_address(digest)


def test_confirmation_footer_shows_the_postal_address_line_by_line(
    confirmation: EmailMessage,
) -> None:
    _assert_postal_address(confirmation)


def _assert_postal_address(message: EmailMessage) -> None:
    fine = _document(message).xpath("//p[contains(@class, 'fine')]")
    addresses = [p for p in fine if p.xpath("br")]
    assert len(addresses) == 1
    shown = [t.strip() for t in addresses[0].xpath("text()")]
    assert shown == POSTAL_ADDRESS.splitlines()
    lines = text_of(message).splitlines()
    start = lines.index(POSTAL_ADDRESS.splitlines()[0])
    assert lines[start : start + 3] == POSTAL_ADDRESS.splitlines()


@pytest.mark.parametrize("kind", ["confirmation", "digest"])
def test_preheader_is_the_first_thing_in_the_body_and_hidden(
    kind: str, request: pytest.FixtureRequest
) -> None:
    document = _document(request.getfixturevalue(kind))
    body = document.xpath("//body")[0]
    preheader = body[0]
    assert "preheader" in _classes(preheader)
    style = _style(preheader)
    assert style["display"] == "none"
    assert style["mso-hide"] == "all"
    assert style["max-height"] == "0"
    expected = (
        "Confirm your subscription to The Asia Ledger"
        if kind == "confirmation"
        else POSTS[0].article.title  # the lead story first
    )
    assert preheader.text_content().startswith(expected)


@pytest.mark.parametrize("kind", ["confirmation", "digest"])
def test_button_is_a_padded_table_cell_with_the_link_inside(
    kind: str, request: pytest.FixtureRequest
) -> None:
    message = request.getfixturevalue(kind)
    document = _document(message)
    [cell] = document.xpath("//table[contains(@class, 'button')]//td")
    assert cell.get("bgcolor") == "#9b1c1c"  # Outlook paints the cell
    assert _style(cell)["mso-padding-alt"] == "14px 24px"  # and pads the cell
    [link] = cell.xpath("a")
    assert _style(link)["padding"] == "14px 24px"  # others pad the link: all of it clicks
    assert _style(link)["display"] == "inline-block"
    assert _style(link)["color"] == "#ffffff"
    if kind == "confirmation":
        assert link.text_content() == "Yes, subscribe me"
        assert link.get("href") == _confirm_url(message)
    else:
        assert link.text_content() == "Read the story"
        assert link.get("href") == POSTS[0].article.link(BASE_URL)


@pytest.mark.parametrize("kind", ["confirmation", "digest"])
def test_every_link_is_absolute(kind: str, request: pytest.FixtureRequest) -> None:
    document = _document(request.getfixturevalue(kind))
    hrefs = document.xpath("//a/@href")
    assert hrefs
    for href in hrefs:
        parts = urlsplit(href)
        assert parts.scheme in {"http", "https"} and parts.netloc, href


# ---------------------------------------------------------------- the confirmation


def test_confirmation_link_is_a_short_button_and_a_wrapping_raw_link(
    confirmation: EmailMessage,
) -> None:
    url = _confirm_url(confirmation)
    assert len(url) >= 150
    document = _document(confirmation)
    shown = [a for a in document.xpath("//a") if a.get("href") == url]
    assert [a.text_content() for a in shown] == ["Yes, subscribe me", url]
    raw = shown[1].getparent()
    assert "rawlink" in _classes(raw)
    for element in (raw, shown[1]):
        assert _style(element)["word-break"] == "break-all"
        assert _style(element)["overflow-wrap"] == "anywhere"
    assert _style(raw)["font-size"] == "13px"


def test_confirmation_subject_title_and_text(confirmation: EmailMessage) -> None:
    assert confirmation["Subject"] == "Confirm your subscription to The Asia Ledger"
    document = _document(confirmation)
    assert document.xpath("//title")[0].text_content() == (
        "Confirm your subscription to The Asia Ledger"
    )
    assert [h.text_content() for h in document.xpath("//h1")] == [
        "Please confirm your subscription"
    ]
    text = text_of(confirmation)
    assert _confirm_url(confirmation) in text.splitlines()
    assert "The link works once and for 48 hours." in " ".join(text.split())


def test_confirmation_without_privacy_url_has_no_privacy_link(
    engine: sa.Engine, settings: Settings
) -> None:
    plain = replace(settings, site=replace(settings.site, privacy_url=""))
    message = confirmation_message(engine, plain)
    assert "Privacy policy" not in html_of(message)
    assert "Privacy policy" not in text_of(message)
