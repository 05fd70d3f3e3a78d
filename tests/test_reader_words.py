"""What readers read: the sign-up page says what each digest brings and when; the
preferences page changes their name and says where they stand; the unsubscribed page
offers an undo that never gets round consent; errors in readers' words, next to their
field. With a real SMTP server receiving."""

from __future__ import annotations

import dataclasses
import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest
import sqlalchemy as sa
from sqlmodel import Session
from starlette.testclient import TestClient

from newsletter import articles, services, storage, subscribers, tokens
from newsletter.config import Settings, SubscribersSettings
from newsletter.digests import schedule
from newsletter.digests.definitions import DigestInput
from newsletter.mail import SmtpMailer
from newsletter.models import Subscriber, SubscriberStatus
from newsletter.subscribers import links
from newsletter.subscribers.wording import status_words
from newsletter.web import create_app
from tests.conftest import SmtpSink
from tests.digest_helpers import Clock, deliver, firing_with_posts, mail_to, text_of
from tests.helpers import context, settle

NOW = datetime.now(UTC)


@pytest.fixture
def site(
    settings: Settings, engine: sa.Engine, smtp_sink: tuple[SmtpSink, int]
) -> Iterator[tuple[TestClient, SmtpSink]]:
    _sink, port = smtp_sink
    mailer = SmtpMailer("127.0.0.1", port, "none", pool_size=2, timeout=10)
    with TestClient(create_app(settings, engine, mailer), base_url=settings.base_url) as client:
        yield client, _sink


def _services(client: TestClient) -> services.Services:
    found: services.Services = client.app.app.state.services  # type: ignore[attr-defined]
    return found


def _stories(engine: sa.Engine, settings: Settings) -> None:
    records = [
        articles.validate(
            {"guid": f"g{n}", "title": f"Story {n}", "tags": [tag]}, "t", context(settings)
        )
        for n, tag in enumerate(["North Korea", "Trade", "South Korea"])
    ]
    articles.import_articles(engine, records, base_url=settings.base_url, now=NOW)


def _two_digests(client: TestClient) -> None:
    """The default digest and a weekly one of two tags (stories with the tags first)."""
    built = _services(client)
    _stories(built.engine, built.settings)
    digests = built.digests
    digests.edit(
        "digest",
        DigestInput(
            name="Morning Ledger",
            description="The day's stories before breakfast.",
            cron=schedule.daily("07:00"),
            timezone="Asia/Jakarta",
        ),
    )
    digests.create(
        "korea-weekly",
        DigestInput(
            name="Korea Weekly",
            description="A week on the peninsula, in one email.",
            tags=("north-korea", "south-korea"),
            cron=schedule.weekly("mon", "08:30"),
            timezone="Asia/Seoul",
        ),
    )


def _active(engine: sa.Engine, settings: Settings, email: str, **extra: object) -> Subscriber:
    return subscribers.add(engine, email, settings.site.tz, **extra)  # type: ignore[arg-type]


def _prefs_url(settings: Settings, who: Subscriber) -> str:
    """As every email builds it (subscribers.links)."""
    assert who.id is not None
    return links.preferences_url(settings, who.id, who.link_key)


def _unsubscribe_url(settings: Settings, who: Subscriber) -> str:
    assert who.id is not None
    return links.unsubscribe_url(settings, who.id, who.link_key)


def _row(engine: sa.Engine, email: str) -> Subscriber:
    return subscribers.get_subscriber(engine, email)


def _suppression(engine: sa.Engine, email: str) -> str | None:
    with Session(engine) as session:
        found = storage.suppressions_for(session, [email]).get(email)
        return found.reason if found else None


def _csrf(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "form without a CSRF token"
    return match.group(1)


def _text(page: str) -> str:
    """The page as words: tags dropped, entities decoded, white space folded."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def _undo_action(page: str) -> str | None:
    match = re.search(r'action="http://news\.test(/resubscribe/[^"]+)"', page)
    return match.group(1) if match else None


# ----------------------------------------------------------------------------- sign-up page


def _digest_blocks(page: str) -> dict[str, str]:
    """Each digest's part of the sign-up box, by slug, as words."""
    blocks = re.findall(r'<div class="digest".*?</div>', page, flags=re.S)
    found = {}
    for block in blocks:
        slug = re.search(r'name="digests" value="([^"]+)"', block)
        assert slug, block
        found[slug.group(1)] = block
    return found


def test_sign_up_page_says_what_each_digest_brings_how_often_and_where_its_archive_is(
    site: tuple[TestClient, SmtpSink], engine: sa.Engine, settings: Settings
) -> None:
    client, _sink = site
    _two_digests(client)
    page = client.get("/subscribe").text
    blocks = _digest_blocks(page)
    assert set(blocks) == {"digest", "korea-weekly"}

    morning = _text(blocks["digest"])
    assert "Morning Ledger" in morning
    assert "The day's stories before breakfast." in morning
    assert "Every day at 07:00 (Asia/Jakarta time)" in morning
    assert "Topics: every topic we cover" in morning
    assert 'href="http://news.test/digests/digest"' in blocks["digest"]

    weekly = _text(blocks["korea-weekly"])
    assert "A week on the peninsula, in one email." in weekly
    assert "Every Monday at 08:30 (Asia/Seoul time)" in weekly
    assert "Topics: North Korea, South Korea" in weekly
    assert 'href="http://news.test/digests/korea-weekly"' in blocks["korea-weekly"]
    assert "Past issues of Korea Weekly" in weekly

    for slug in blocks:  # the archive links lead somewhere
        assert client.get(f"/digests/{slug}").status_code == 200


def test_a_paused_digest_and_an_odd_schedule_are_said_in_plain_words(
    site: tuple[TestClient, SmtpSink],
) -> None:
    client, _sink = site
    _two_digests(client)
    digests = _services(client).digests
    digests.edit("korea-weekly", DigestInput(paused=True))
    digests.edit("digest", DigestInput(cron="*/30 6-9 * * 1-5"))
    blocks = {k: _text(v) for k, v in _digest_blocks(client.get("/subscribe").text).items()}
    assert "Paused at the moment" in blocks["korea-weekly"]
    assert "On a schedule of its own (Asia/Jakarta time)" in blocks["digest"]
    assert "cron" not in blocks["digest"]


def test_a_digest_page_box_says_how_often_the_digest_comes(
    site: tuple[TestClient, SmtpSink],
) -> None:
    client, _sink = site
    _two_digests(client)
    page = _text(client.get("/digests/korea-weekly").text)
    assert "Every Monday at 08:30 (Asia/Seoul time)" in page


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("email", "name", "field", "words"),
    [
        ("not-an-address", "", "email", "Please enter an email address like name@example.org."),
        ("", "", "email", "Please enter your email address, like name@example.org."),
        ("kim@-bad.example", "", "email", "Please check the part after the @"),
        ("kim@example.org", "x" * 101, "name", "Please keep your name to 100 characters or fewer."),
    ],
)
def test_refused_sign_ups_say_why_next_to_the_field_in_readers_words(
    site: tuple[TestClient, SmtpSink], email: str, name: str, field: str, words: str
) -> None:
    client, sink = site
    token = _csrf(client.get("/subscribe").text)
    answer = client.post("/subscribe", data={"email": email, "name": name, "csrf_token": token})
    assert answer.status_code == 400
    error_id = f"signup-{field}-error"
    control = re.search(rf'<input [^>]*name="{field}"[^>]*>', answer.text)
    assert control is not None
    assert 'aria-invalid="true"' in control.group(0)
    assert f'aria-describedby="{error_id}"' in control.group(0)
    said = re.search(rf'id="{error_id}">([^<]*)<', answer.text)
    assert said is not None and words in html.unescape(said.group(1))
    assert "is not an email address" not in answer.text  # no developer words
    assert f'value="{html.escape(email)}"' in answer.text  # what was typed stays
    settle(client)
    assert sink.messages == []


def test_json_sign_up_keeps_its_shape_with_readers_words(
    site: tuple[TestClient, SmtpSink],
) -> None:
    client, _sink = site
    bad = client.post("/api/v1/subscribe", json={"email": "nope"})
    assert bad.status_code == 400
    assert bad.json()["field"] == "email"
    assert bad.json()["detail"] == "Please enter an email address like name@example.org."
    long_name = client.post("/api/v1/subscribe", json={"email": "a@example.org", "name": "x" * 101})
    assert long_name.status_code == 400 and long_name.json()["field"] == "name"
    missing = client.post("/api/v1/subscribe", json={"name": "no email"})
    assert missing.status_code == 422
    assert missing.json()["detail"][0]["loc"] == ["body", "email"]


def test_rate_limit_and_dead_links_are_explained_in_plain_words(
    settings: Settings, engine: sa.Engine, smtp_sink: tuple[SmtpSink, int]
) -> None:
    strict = dataclasses.replace(
        settings, subscribers=SubscribersSettings(signups_per_address_per_hour=1)
    )
    mailer = SmtpMailer("127.0.0.1", smtp_sink[1], "none")
    with TestClient(create_app(strict, engine, mailer), base_url=settings.base_url) as client:
        for expected in (200, 429):
            token = _csrf(client.get("/subscribe").text)
            answer = client.post("/subscribe", data={"email": "a@example.org", "csrf_token": token})
            assert answer.status_code == expected
        assert "Please try again in an hour" in _text(answer.text)
        assert 'role="alert"' in answer.text

        settle(client)
        pending = _row(engine, "a@example.org")
        past = datetime.now(UTC) - timedelta(hours=1)
        stale = tokens.sign(strict.secret, "confirm", pending.id or 0, "n", past)
        expired = client.get(f"/confirm/{stale}")
        assert expired.status_code == 400
        words = _text(expired.text)
        assert "This link has expired" in words and "we will send you a new link" in words
        assert 'href="http://news.test/subscribe">Sign up again</a>' in expired.text

        cut = client.get("/preferences/abc.def")
        assert cut.status_code == 400 and "latest email we sent you" in _text(cut.text)


# ----------------------------------------------------------------------------- preferences


def test_a_reader_changes_their_name_and_the_next_digest_greets_them_with_it(
    site: tuple[TestClient, SmtpSink],
    engine: sa.Engine,
    settings: Settings,
    svc: services.Services,
    clock: Clock,
) -> None:
    client, sink = site
    reader = _active(engine, settings, "dewi@example.org", name="D.", digests=["digest"])
    url = _prefs_url(settings, reader)
    page = client.get(url)
    assert page.status_code == 200
    assert 'value="D."' in page.text
    saved = client.post(
        url, data={"csrf_token": _csrf(page.text), "name": " Dewi\r\nLestari ", "digests": "digest"}
    )
    assert saved.status_code == 200 and "Your choices are saved." in saved.text
    assert _row(engine, "dewi@example.org").name == "Dewi Lestari"
    assert 'value="Dewi Lestari"' in saved.text

    deliver(svc, firing_with_posts(svc, settings, clock))
    [message] = mail_to(sink.messages, "dewi@example.org")
    assert "Hello Dewi Lestari," in text_of(message)
    assert message["To"].addresses[0].display_name == "Dewi Lestari"


def test_a_too_long_name_is_refused_next_to_the_field_and_nothing_changes(
    site: tuple[TestClient, SmtpSink], engine: sa.Engine, settings: Settings
) -> None:
    client, _sink = site
    reader = _active(engine, settings, "siti@example.org", name="Siti", tags=[])
    url = _prefs_url(settings, reader)
    page = client.get(url).text
    refused = client.post(url, data={"csrf_token": _csrf(page), "name": "y" * 150, "digests": []})
    assert refused.status_code == 400
    assert re.search(r'<input [^>]*aria-invalid="true" aria-describedby="name-error"', refused.text)
    assert "Please keep your name to 100 characters or fewer." in refused.text
    after = _row(engine, "siti@example.org")
    assert after.name == "Siti" and after.status == SubscriberStatus.active  # nothing stored


def test_a_page_without_the_name_field_leaves_the_name_alone(
    site: tuple[TestClient, SmtpSink], engine: sa.Engine, settings: Settings
) -> None:
    client, _sink = site
    reader = _active(engine, settings, "budi@example.org", name="Budi")
    url = _prefs_url(settings, reader)
    client.post(url, data={"csrf_token": _csrf(client.get(url).text), "digests": "digest"})
    assert _row(engine, "budi@example.org").name == "Budi"


def _make(
    engine: sa.Engine,
    settings: Settings,
    client: TestClient,
    status: str,
    email: str,
    digests: tuple[str, ...] = ("digest",),
) -> Subscriber:
    """A subscriber in `status` ("operator" is an operator's suppression), made the way
    it happens."""
    reader = _active(engine, settings, email, digests=digests)
    if status == "pending":
        with Session(engine) as session:
            row = storage.subscriber_by_email(session, email)
            assert row is not None
            row.status = SubscriberStatus.pending
            session.commit()
    elif status == "unsubscribed":
        client.post(_unsubscribe_url(settings, reader))
    elif status in ("bounced", "complained"):
        subscribers.mark(engine, email, SubscriberStatus(status), "5.1.1 no such user", NOW)
    elif status == "operator":
        subscribers.suppress(engine, email, "unsubscribed", NOW)
    return _row(engine, email)


@pytest.mark.parametrize(
    ("status", "words", "offer"),
    [
        ("active", "You receive: Morning Ledger and Korea Weekly.", None),
        ("pending", "You have not confirmed yet", "Send the confirmation email again"),
        ("unsubscribed", "You are not subscribed at the moment", "Send me a link to subscribe"),
        ("bounced", "We stopped mailing you because messages to this address bounced", None),
        ("complained", "reported as spam", None),
        ("operator", "our editors stopped it", None),
    ],
)
def test_the_preferences_page_says_where_the_reader_stands(
    site: tuple[TestClient, SmtpSink],
    engine: sa.Engine,
    settings: Settings,
    status: str,
    words: str,
    offer: str | None,
) -> None:
    client, _sink = site
    _two_digests(client)
    both = ("digest", "korea-weekly")
    reader = _make(engine, settings, client, status, f"{status}@example.org", both)
    page = client.get(_prefs_url(settings, reader))
    assert page.status_code == 200
    said = re.search(r'id="status-words">(.*?)</p>', page.text, flags=re.S)
    assert said is not None and words in _text(said.group(1))
    assert "Every day at 07:00 (Asia/Jakarta time)" in _text(page.text)
    buttons = [_text(b) for b in re.findall(r"<button[^>]*>(.*?)</button>", page.text)]
    if offer is None:
        assert buttons == ["Save"]  # no way back past a bounce, complaint or operator
    else:
        assert any(offer in b for b in buttons)


def test_status_words_cover_every_status_and_suppression() -> None:
    names = ["Morning Ledger"]
    said = {
        (status, reason, by_operator): status_words(status, reason, by_operator, names)
        for status in SubscriberStatus
        for reason in (None, "unsubscribed", "bounced", "complained")
        for by_operator in (False, True)
    }
    for (status, reason, by_operator), words in said.items():
        assert words and "_" not in words and status.value not in words.split()
        if by_operator and reason:
            assert "editors stopped it" in words
        elif "bounced" in (status, reason):
            assert "bounced" in words
        elif "complained" in (status, reason):
            assert "spam" in words
        elif status == "pending":
            assert "not confirmed" in words
        elif status == "active" and reason is None:
            assert words == "You receive: Morning Ledger."
        else:
            assert words.startswith("You are not subscribed at the moment")
    assert status_words("active", None, False, []).startswith("You are subscribed, but")
    assert status_words("active", None, False, ["A", "B", "C"]) == "You receive: A, B and C."


def test_a_reader_who_left_asks_from_preferences_and_confirms_by_email(
    site: tuple[TestClient, SmtpSink], engine: sa.Engine, settings: Settings
) -> None:
    client, sink = site
    reader = _make(engine, settings, client, "unsubscribed", "again@example.org")
    url = _prefs_url(settings, reader)
    page = client.get(url).text
    asked = client.post(f"{url}/again", data={"csrf_token": _csrf(page)})
    assert asked.status_code == 200 and "Check your inbox" in asked.text
    settle(client)
    assert _row(engine, "again@example.org").status == SubscriberStatus.pending  # not active
    [message] = mail_to(sink.messages, "again@example.org")
    confirm = re.search(r"http://news\.test/confirm/\S+", text_of(message))
    assert confirm is not None
    assert "You are subscribed" in client.post(confirm.group(0)).text
    assert _row(engine, "again@example.org").status == SubscriberStatus.active
    assert _suppression(engine, "again@example.org") is None


# ----------------------------------------------------------------------------- undo


def test_the_unsubscribed_page_offers_an_undo_that_restores_everything(
    site: tuple[TestClient, SmtpSink], engine: sa.Engine, settings: Settings
) -> None:
    client, sink = site
    _stories(engine, settings)
    reader = _active(engine, settings, "undo@example.org", tags=["trade"])
    url = _unsubscribe_url(settings, reader)
    shown = client.get(url)
    assert "<button" in shown.text and _undo_action(shown.text) is None
    left = client.post(url)
    assert left.status_code == 200
    assert "You are unsubscribed" in left.text
    assert "Undo: keep me subscribed" in left.text
    assert _row(engine, "undo@example.org").status == SubscriberStatus.unsubscribed
    assert _suppression(engine, "undo@example.org") == "unsubscribed"

    action = _undo_action(left.text)
    assert action is not None
    back = client.post(action, data={"csrf_token": _csrf(left.text)})
    assert back.status_code == 200
    assert "You are subscribed again" in back.text
    row = _row(engine, "undo@example.org")
    assert row.status == SubscriberStatus.active and row.confirm_nonce is None
    assert _suppression(engine, "undo@example.org") is None
    with Session(engine) as session:
        assert list(storage.subscriptions_of(session, row.id or 0).values()) == [
            frozenset({"trade"})
        ]
    again = client.post(action, data={"csrf_token": _csrf(left.text)})
    assert again.status_code == 400 and "already used" in again.text
    assert sink.messages == []  # an undo, not a sign-up: no email


def test_undo_never_gets_round_consent(
    site: tuple[TestClient, SmtpSink], engine: sa.Engine, settings: Settings
) -> None:
    client, _sink = site
    # no CSRF token: refused, still unsubscribed
    first = _active(engine, settings, "one@example.org")
    left = client.post(_unsubscribe_url(settings, first)).text
    action = _undo_action(left)
    assert action is not None
    forged = TestClient(client.app, base_url="http://news.test").post(action, data={})
    assert forged.status_code == 403
    assert _row(engine, "one@example.org").status == SubscriberStatus.unsubscribed

    # someone posting an old unsubscribe link of a reader who left long ago gets no undo
    again = client.post(_unsubscribe_url(settings, first))
    assert again.status_code == 200 and _undo_action(again.text) is None
    assert "Sign up again" in again.text

    # an address a stranger typed (pending) gets no undo either
    typed = _make(engine, settings, client, "pending", "typed@example.org")
    left_pending = client.post(_unsubscribe_url(settings, typed)).text
    assert _undo_action(left_pending) is None
    assert _row(engine, "typed@example.org").status == SubscriberStatus.unsubscribed

    # a bounce after the unsubscribe holds
    second = _active(engine, settings, "two@example.org")
    page = client.post(_unsubscribe_url(settings, second)).text
    subscribers.mark(engine, "two@example.org", SubscriberStatus.bounced, "5.1.1", NOW)
    refused = client.post(_undo_action(page) or "", data={"csrf_token": _csrf(page)})
    assert refused.status_code == 400
    assert _row(engine, "two@example.org").status == SubscriberStatus.bounced

    # an operator's suppression after the unsubscribe holds
    third = _active(engine, settings, "three@example.org")
    page = client.post(_unsubscribe_url(settings, third)).text
    subscribers.suppress(engine, "three@example.org", "unsubscribed", NOW)
    refused = client.post(_undo_action(page) or "", data={"csrf_token": _csrf(page)})
    assert refused.status_code == 400
    assert _row(engine, "three@example.org").status == SubscriberStatus.unsubscribed

    # an undo token past its hour, or a token of another purpose, does nothing
    fourth = _active(engine, settings, "four@example.org")
    client.post(_unsubscribe_url(settings, fourth))
    nonce = _row(engine, "four@example.org").confirm_nonce or ""
    late = tokens.sign(
        settings.secret, "resubscribe", fourth.id or 0, nonce, datetime.now(UTC) - timedelta(1)
    )
    token = _csrf(client.get("/subscribe").text)
    expired = client.post(f"/resubscribe/{late}", data={"csrf_token": token})
    assert expired.status_code == 400 and "expired" in expired.text
    other = _unsubscribe_url(settings, fourth).rsplit("/", 1)[1]
    wrong = client.post(f"/resubscribe/{other}", data={"csrf_token": token})
    assert wrong.status_code == 400 and "not meant for this page" in wrong.text
    assert _row(engine, "four@example.org").status == SubscriberStatus.unsubscribed


def test_unticking_every_newsletter_can_be_undone_from_the_same_page(
    site: tuple[TestClient, SmtpSink], engine: sa.Engine, settings: Settings
) -> None:
    client, _sink = site
    reader = _active(engine, settings, "untick@example.org")
    url = _prefs_url(settings, reader)
    left = client.post(url, data={"csrf_token": _csrf(client.get(url).text)})
    assert "You are not subscribed at the moment" in _text(left.text)
    action = _undo_action(left.text)
    assert action is not None
    back = client.post(action, data={"csrf_token": _csrf(left.text)})
    assert "You are subscribed again" in back.text
    assert _row(engine, "untick@example.org").status == SubscriberStatus.active


# ----------------------------------------------------------------------------- forms


class _Forms(HTMLParser):
    """The POST forms of a page: their CSRF fields, and controls without a label."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, object]] = []
        self.label_depth = 0
        self.labelled: set[str] = set()
        self.controls: list[tuple[str, str | None, bool]] = []  # (name, id, inside a label)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "form" and (found.get("method") or "").lower() == "post":
            self.forms.append({"action": found.get("action"), "csrf": False})
        elif tag == "label":
            self.label_depth += 1
            if found.get("for"):
                self.labelled.add(found["for"] or "")
        elif tag in ("input", "select", "textarea"):
            if found.get("type") == "hidden":
                if found.get("name") == "csrf_token" and self.forms:
                    self.forms[-1]["csrf"] = bool(found.get("value"))
                return
            self.controls.append((found.get("name") or "", found.get("id"), self.label_depth > 0))

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self.label_depth -= 1

    def unlabelled(self) -> list[str]:
        return [n for n, i, inside in self.controls if not inside and i not in self.labelled]


def _forms(page: str) -> _Forms:
    parser = _Forms()
    parser.feed(page)
    return parser


def test_every_readers_form_has_csrf_and_labels(
    site: tuple[TestClient, SmtpSink], engine: sa.Engine, settings: Settings
) -> None:
    client, _sink = site
    _two_digests(client)
    reader = _active(engine, settings, "forms@example.org")
    left_page = client.post(_unsubscribe_url(settings, reader)).text
    other = _make(engine, settings, client, "unsubscribed", "other@example.org")
    pages = {
        "subscribe": client.get("/subscribe").text,
        "refused sign-up": client.post(
            "/subscribe", data={"email": "x", "csrf_token": _csrf(client.get("/subscribe").text)}
        ).text,
        "preferences": client.get(_prefs_url(settings, _active(engine, settings, "p@ex.org"))).text,
        "preferences, not subscribed": client.get(_prefs_url(settings, other)).text,
        "unsubscribed": left_page,
    }
    for name, page in pages.items():
        parsed = _forms(page)
        assert parsed.forms, name
        assert all(f["csrf"] for f in parsed.forms), (name, parsed.forms)
        assert parsed.controls or name == "unsubscribed", name
        assert parsed.unlabelled() == [], name
