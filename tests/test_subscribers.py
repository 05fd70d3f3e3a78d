"""Readers signing up, confirming, choosing and leaving, with a real SMTP server receiving."""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select
from starlette.testclient import TestClient

from newsletter import storage, tokens
from newsletter.config import DeliverySettings, Settings, SubscribersSettings
from newsletter.errors import InvalidInputError
from newsletter.mail import SmtpMailer
from newsletter.models import Subscriber, Suppression
from newsletter.subscribers import normalize_email
from newsletter.web import create_app
from tests.conftest import SmtpSink
from tests.helpers import settle


@pytest.fixture
def site(
    settings: Settings, engine: sa.Engine, smtp_sink: tuple[SmtpSink, int]
) -> Iterator[tuple[TestClient, SmtpSink]]:
    sink, port = smtp_sink
    mailer = SmtpMailer("127.0.0.1", port, "none", pool_size=2, timeout=10)
    with TestClient(create_app(settings, engine, mailer), base_url=settings.base_url) as client:
        yield client, sink


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "form without a CSRF token"
    return match.group(1)


def sign_up(client: TestClient, email: str, **fields: str | list[str]) -> str:
    token = csrf_of(client.get("/subscribe").text)
    response = client.post("/subscribe", data={"email": email, "csrf_token": token, **fields})
    settle(client)
    return response.text


def links(message: EmailMessage) -> dict[str, str]:
    text = message.get_body(("plain",))
    assert text is not None
    found = re.findall(
        r"http://news\.test/(confirm|preferences|unsubscribe)/(\S+)", text.get_content()
    )
    return {kind: f"http://news.test/{kind}/{token}" for kind, token in found}


def subscriber(engine: sa.Engine, email: str) -> Subscriber:
    with Session(engine) as session:
        found = storage.subscriber_by_email(session, email)
        assert found is not None
        session.expunge(found)
        return found


def test_whole_journey_sign_up_confirm_preferences_one_click_unsubscribe(
    site: tuple[TestClient, SmtpSink], engine: sa.Engine
) -> None:
    client, sink = site
    page = sign_up(client, "  Siti.Rahma@Example.ORG ", name="Siti Rahma")
    assert "Check your inbox" in page
    assert subscriber(engine, "siti.rahma@example.org").status == "pending"

    [message] = sink.messages
    # the name a stranger may have typed is not echoed to the address before it is confirmed
    assert message["To"] == "siti.rahma@example.org"
    assert "Siti Rahma" not in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert message["Subject"] == "Confirm your subscription to The Asia Ledger"
    assert re.fullmatch(r"<[^@>]+@localhost>", message["Message-ID"])
    assert message["List-Id"] == "The Asia Ledger <digest.news.test>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    https_part, mailto_part = [p.strip(" <>") for p in message["List-Unsubscribe"].split(",")]
    assert https_part.startswith("http://news.test/unsubscribe/")
    assert mailto_part.startswith("mailto:newsletter@localhost?subject=")
    assert message.get_content_type() == "multipart/alternative"
    html = message.get_body(("html",))
    assert html is not None
    found = links(message)
    assert found["confirm"] in html.get_content()
    assert found["unsubscribe"] == https_part
    assert 'style="' in html.get_content()  # CSS inlined for mail clients

    # the link shows a button; only pressing it (POST) confirms: link scanners confirm nobody
    shown_confirm = client.get(found["confirm"])
    assert shown_confirm.status_code == 200 and "<button" in shown_confirm.text
    assert subscriber(engine, "siti.rahma@example.org").status == "pending"
    confirmed = client.post(found["confirm"])
    assert confirmed.status_code == 200
    assert "You are subscribed" in confirmed.text
    assert subscriber(engine, "siti.rahma@example.org").status == "active"
    again = client.post(found["confirm"])
    assert again.status_code == 400
    assert "already used" in again.text

    prefs_page = client.get(found["preferences"])
    assert prefs_page.status_code == 200
    saved = client.post(
        found["preferences"],
        data={"csrf_token": csrf_of(prefs_page.text), "digests": "digest", "tags": []},
    )
    assert "Your choices are saved" in saved.text

    # the GET shows a button and changes nothing: link scanners unsubscribe nobody
    shown = client.get(found["unsubscribe"])
    assert shown.status_code == 200 and "<button" in shown.text
    assert subscriber(engine, "siti.rahma@example.org").status == "active"

    one_click = TestClient(client.app, base_url="http://news.test")  # no cookies at all
    left = one_click.post(
        found["unsubscribe"],
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert left.status_code == 200
    assert "You are unsubscribed" in left.text
    assert subscriber(engine, "siti.rahma@example.org").status == "unsubscribed"
    with Session(engine) as session:
        assert session.get(Suppression, "siti.rahma@example.org") is not None
    assert (
        one_click.post(found["unsubscribe"], content=b"List-Unsubscribe=One-Click").status_code
        == 200
    )


def test_preferences_change_digests_and_tags(
    site: tuple[TestClient, SmtpSink], engine: sa.Engine, settings: Settings
) -> None:
    from newsletter import articles
    from tests.helpers import context

    records = [
        articles.validate(
            {"guid": f"g{n}", "title": f"T{n}", "tags": [name]}, "t", context(settings)
        )
        for n, name in enumerate(["North Korea", "Trade"])
    ]
    articles.import_articles(engine, records, base_url=settings.base_url, now=datetime.now(UTC))
    client, sink = site
    sign_up(client, "reader@example.org", tags=["trade"])
    client.post(links(sink.messages[0])["confirm"])
    prefs_url = links(sink.messages[0])["preferences"]
    page = client.get(prefs_url).text
    assert re.search(r'value="trade" checked', page)
    assert not re.search(r'value="north-korea" checked', page)
    client.post(
        prefs_url, data={"csrf_token": csrf_of(page), "digests": "digest", "tags": ["north-korea"]}
    )
    with Session(engine) as session:
        mine = storage.subscriptions_of(session, subscriber(engine, "reader@example.org").id or 0)
    assert list(mine.values()) == [frozenset({"north-korea"})]
    bad = client.post(prefs_url, data={"csrf_token": csrf_of(page), "digests": "nope"})
    assert bad.status_code == 400 and "no digest &#39;nope&#39;" in bad.text
    # no newsletter ticked at all: that is leaving
    client.post(prefs_url, data={"csrf_token": csrf_of(page)})
    assert subscriber(engine, "reader@example.org").status == "unsubscribed"


def test_same_answer_for_new_pending_and_active_addresses(
    site: tuple[TestClient, SmtpSink], engine: sa.Engine
) -> None:
    client, sink = site
    first = sign_up(client, "new@example.org")
    pending = sign_up(client, "new@example.org")  # sends the same link once more
    assert len(sink.messages) == 2
    client.post(links(sink.messages[0])["confirm"])
    active = sign_up(client, "new@example.org", name="Changed")
    assert first == pending == active
    assert len(sink.messages) == 2  # signing up while active sends nothing, changes nothing
    assert subscriber(engine, "new@example.org").name == ""


def test_pending_sign_up_resends_the_same_link_a_limited_number_of_times(
    site: tuple[TestClient, SmtpSink],
) -> None:
    client, sink = site
    for _ in range(6):
        assert "Check your inbox" in sign_up(client, "slow@example.org")
    # one client may ask for all but one of the hour's confirmations: a stranger signing
    # someone else up cannot use them all
    assert len(sink.messages) == 2
    other = TestClient(client.app, base_url="http://news.test", client=("10.1.2.3", 4000))
    for _ in range(3):
        other.post("/api/v1/subscribe", json={"email": "slow@example.org"})
        settle(client)
    assert len(sink.messages) == 3  # [subscribers] confirmations_per_hour, from everyone
    first, second, third = (links(m)["confirm"] for m in sink.messages)
    assert client.post(second).status_code == 200  # whichever email the reader opens
    assert "already used" in client.post(first).text  # once only, for all of them
    assert "already used" in client.post(third).text


def test_tampered_expired_and_wrong_purpose_tokens_are_refused(
    site: tuple[TestClient, SmtpSink], engine: sa.Engine, settings: Settings
) -> None:
    client, sink = site
    sign_up(client, "reader@example.org")
    found = links(sink.messages[0])
    payload, mac = found["confirm"].rsplit("/", 1)[1].split(".")
    tampered = client.get(f"/confirm/{payload[:-2]}xx.{mac}")
    assert tampered.status_code == 400 and "This link is not valid" in tampered.text
    assert client.get(f"/unsubscribe/{payload}").status_code == 400  # cut short
    wrong = client.get(found["preferences"].replace("/preferences/", "/confirm/"))
    assert wrong.status_code == 400 and "not meant for this page" in wrong.text

    user = subscriber(engine, "reader@example.org")
    past = datetime.now(UTC) - timedelta(hours=1)
    expired_token = tokens.sign(
        settings.secret, "confirm", user.id or 0, user.confirm_nonce or "", past
    )
    expired = client.get(f"/confirm/{expired_token}")
    assert expired.status_code == 400 and "expired" in expired.text
    assert subscriber(engine, "reader@example.org").status == "pending"
    other_secret = tokens.sign(b"another secret", "unsubscribe", user.id or 0, user.link_key, None)
    assert client.post(f"/unsubscribe/{other_secret}").status_code == 400
    assert subscriber(engine, "reader@example.org").status == "pending"


def test_forms_need_their_csrf_token(site: tuple[TestClient, SmtpSink]) -> None:
    client, sink = site
    client.get("/subscribe")
    forged = client.post("/subscribe", data={"email": "victim@example.org", "csrf_token": "x"})
    assert forged.status_code == 403
    missing = client.post("/subscribe", data={"email": "victim@example.org"})
    assert missing.status_code == 403
    assert sink.messages == []


def test_bad_addresses_are_refused_with_the_reason(site: tuple[TestClient, SmtpSink]) -> None:
    client, sink = site
    page = sign_up(client, "not-an-address")
    assert "Please enter an email address like name@example.org." in page  # issue 12
    response = client.post("/api/v1/subscribe", json={"email": "a@b"})
    assert response.status_code == 400
    assert response.json()["field"] == "email"
    assert client.post("/api/v1/subscribe", json={"name": "no email"}).status_code == 422
    assert sink.messages == []


def test_json_endpoint_signs_up(site: tuple[TestClient, SmtpSink], engine: sa.Engine) -> None:
    client, sink = site
    response = client.post("/api/v1/subscribe", json={"email": "api@example.org", "name": "Api"})
    assert response.status_code == 202
    assert response.json()["status"] == "pending"
    settle(client)
    assert [m["To"] for m in sink.messages] == ["api@example.org"]
    unknown = client.post("/api/v1/subscribe", json={"email": "x@example.org", "digests": ["z"]})
    assert unknown.status_code == 400 and "no digest 'z'" in unknown.json()["error"]


def test_rate_limits_per_address_and_per_client(
    settings: Settings, engine: sa.Engine, smtp_sink: tuple[SmtpSink, int]
) -> None:
    _sink, port = smtp_sink
    strict = dataclasses.replace(
        settings,
        subscribers=SubscribersSettings(signups_per_ip_per_hour=8, signups_per_address_per_hour=5),
    )
    mailer = SmtpMailer("127.0.0.1", port, "none")
    with TestClient(create_app(strict, engine, mailer), base_url=settings.base_url) as client:
        codes = [
            client.post("/api/v1/subscribe", json={"email": "same@example.org"}).status_code
            for _ in range(6)
        ]
        assert codes == [202] * 5 + [429]  # five attempts per address per hour
        codes = [
            client.post("/api/v1/subscribe", json={"email": f"u{n}@example.org"}).status_code
            for n in range(4)
        ]
        assert codes == [202, 202, 429, 429]  # eight per client address per hour in all
        page = sign_up(client, "another@example.org")
        assert "try again in an hour" in page


def test_permanent_smtp_failure_suppresses_the_address(
    site: tuple[TestClient, SmtpSink], engine: sa.Engine
) -> None:
    client, sink = site
    sign_up(client, "bounce@example.org")
    assert subscriber(engine, "bounce@example.org").status == "bounced"
    with Session(engine) as session:
        row = session.get(Suppression, "bounce@example.org")
        assert row is not None and row.reason == "bounced" and "550" in row.detail
    sign_up(client, "bounce@example.org")  # never mailed again
    assert sink.messages == []


def test_unsubscribed_reader_may_come_back_through_the_form(
    site: tuple[TestClient, SmtpSink], engine: sa.Engine
) -> None:
    client, sink = site
    sign_up(client, "back@example.org")
    first = links(sink.messages[0])
    client.post(first["confirm"])
    client.post(first["unsubscribe"], data={"List-Unsubscribe": "One-Click"})
    sign_up(client, "back@example.org")
    assert len(sink.messages) == 2
    client.post(links(sink.messages[1])["confirm"])
    assert subscriber(engine, "back@example.org").status == "active"
    with Session(engine) as session:
        assert session.exec(select(Suppression)).all() == []


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Reader@Example.ORG", "reader@example.org"),
        ("  a.b+news@sub.example.co.id ", "a.b+news@sub.example.co.id"),
        ("kim@한국.example", "kim@xn--3e0b707e.example"),
    ],
)
def test_addresses_are_normalised(raw: str, expected: str) -> None:
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "plain",
        "a@b",
        "two@@example.org",
        ".dot@example.org",
        "a..b@example.org",
        "a@-bad.example",
        "a@example.123",
        "sp ace@example.org",
        "a@exa_mple.org",
        "x" * 65 + "@example.org",
    ],
)
def test_invalid_addresses_are_refused(raw: str) -> None:
    with pytest.raises(InvalidInputError, match="email"):
        normalize_email(raw)


def test_json_posted_to_the_form_address_is_a_json_sign_up(
    site: tuple[TestClient, SmtpSink],
) -> None:
    client, sink = site
    response = client.post("/subscribe", json={"email": "json@example.org"})
    assert response.status_code == 202
    settle(client)
    assert [m["To"] for m in sink.messages] == ["json@example.org"]
    assert client.post("/subscribe", json={"mail": "x"}).status_code == 422


def test_names_with_line_breaks_or_control_characters_are_cleaned(
    site: tuple[TestClient, SmtpSink], engine: sa.Engine
) -> None:
    client, sink = site
    response = client.post(
        "/api/v1/subscribe",
        json={"email": "odd@example.org", "name": "Dewi\r\nBcc: x@evil.test\u2028\x00 Lestari"},
    )
    assert response.status_code == 202
    settle(client)
    assert subscriber(engine, "odd@example.org").name == "Dewi Bcc: x@evil.test Lestari"
    [message] = sink.messages
    assert message["To"] == "odd@example.org"  # no name before the address is confirmed
    assert message["Bcc"] is None


def test_mail_server_down_changes_no_answer_and_loses_no_sign_up(
    settings: Settings, engine: sa.Engine
) -> None:
    from aiosmtpd.controller import Controller

    from tests.helpers import free_port

    port = free_port()
    mailer = SmtpMailer("127.0.0.1", port, "none", timeout=2)
    quick = dataclasses.replace(settings, delivery=DeliverySettings(retry_base_seconds=1))
    with TestClient(create_app(quick, engine, mailer), base_url=settings.base_url) as client:
        response = client.post("/api/v1/subscribe", json={"email": "wait@example.org"})
        assert response.status_code == 202  # the same answer as when mail flows
        assert "Check your inbox" in sign_up(client, "wait2@example.org")
        assert subscriber(engine, "wait@example.org").status == "pending"
        with Session(engine) as session:
            [queued] = storage.outbound_for(session, "wait@example.org")
        assert queued.status == "queued" and "connect" in queued.last_error
        sink = SmtpSink()
        controller = Controller(sink, hostname="127.0.0.1", port=port)
        controller.start()  # the server comes back: the queued confirmations go out
        try:
            for _ in range(100):
                settle(client)
                if len(sink.messages) == 2:
                    break
                time.sleep(0.1)
        finally:
            controller.stop()
    assert sorted(m["To"] for m in sink.messages) == ["wait2@example.org", "wait@example.org"]


def test_refused_message_does_not_suppress_the_reader(
    site: tuple[TestClient, SmtpSink], engine: sa.Engine
) -> None:
    client, _sink = site
    for address in ("spamfilter@example.org", "policy@example.org"):  # 5.7.1 at DATA, RCPT
        response = client.post("/api/v1/subscribe", json={"email": address})
        assert response.status_code == 202
        settle(client)
        assert subscriber(engine, address).status == "pending"
        with Session(engine) as session:
            assert session.get(Suppression, address) is None
            [message] = storage.outbound_for(session, address)
        assert message.status == "deferred" and "5.7.1" in message.last_error


def test_a_bounce_after_unsubscribing_keeps_the_address_from_signing_up_again(
    site: tuple[TestClient, SmtpSink], engine: sa.Engine
) -> None:
    from newsletter import subscribers as service

    client, sink = site
    sign_up(client, "gone@example.org")
    client.post(links(sink.messages[0])["confirm"])
    client.post(links(sink.messages[0])["unsubscribe"])
    service.suppress(engine, "gone@example.org", "bounced")
    with Session(engine) as session:
        row = session.get(Suppression, "gone@example.org")
        assert row is not None and row.reason == "bounced"
    sign_up(client, "gone@example.org")
    assert len(sink.messages) == 1


def test_simultaneous_sign_ups_of_one_address_all_succeed(
    site: tuple[TestClient, SmtpSink], engine: sa.Engine
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    client, _sink = site
    with ThreadPoolExecutor(8) as pool:
        codes = list(
            pool.map(
                lambda _: client.post("/api/v1/subscribe", json={"email": "twice@example.org"}),
                range(8),
            )
        )
    assert {c.status_code for c in codes} == {202}
    settle(client)
    assert subscriber(engine, "twice@example.org").status == "pending"


def test_idna_2008_keeps_sharp_s_domains_apart() -> None:
    assert normalize_email("a@straße.de") == "a@xn--strae-oqa.de"
    with pytest.raises(InvalidInputError, match="longer than 254"):
        normalize_email("a" * 64 + "@" + ".".join(["ü" * 20] * 7) + ".de")
