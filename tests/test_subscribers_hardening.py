"""What a probe of the running service found about consent, suppression, enumeration, lost
sign-ups and hostile names, each held to by a test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlmodel import Session
from starlette.testclient import TestClient

from newsletter import services, storage, subscribers
from newsletter.config import Settings
from newsletter.mail import MemoryMailer, SmtpMailer
from newsletter.storage import database
from newsletter.subscribers.addresses import clean_name
from newsletter.web import create_app
from tests.conftest import SmtpSink
from tests.helpers import settle
from tests.test_subscribers import links, sign_up, subscriber


@pytest.fixture
def site(
    settings: Settings, engine: sa.Engine, smtp_sink: tuple[SmtpSink, int]
) -> Iterator[tuple[TestClient, SmtpSink]]:
    sink, port = smtp_sink
    mailer = SmtpMailer("127.0.0.1", port, "none", pool_size=2, timeout=10)
    with TestClient(create_app(settings, engine, mailer), base_url=settings.base_url) as client:
        yield client, sink


def test_following_the_confirmation_link_confirms_nobody(
    site: tuple[TestClient, SmtpSink], engine: sa.Engine
) -> None:
    client, sink = site
    sign_up(client, "scanned@example.org")
    link = links(sink.messages[0])["confirm"]
    for _ in range(3):  # a mail provider's link scanner fetches it, maybe more than once
        assert client.get(link).status_code == 200
    assert subscriber(engine, "scanned@example.org").status == "pending"
    assert client.post(link).status_code == 200
    assert subscriber(engine, "scanned@example.org").status == "active"


def test_an_operators_suppression_holds_against_sign_ups(
    site: tuple[TestClient, SmtpSink], engine: sa.Engine
) -> None:
    client, sink = site
    subscribers.suppress(engine, "dnc@example.com", "unsubscribed")
    assert "Check your inbox" in sign_up(client, "dnc@example.com")  # the same answer
    assert sink.messages == []
    with Session(engine) as session:
        row = storage.suppressions_for(session, ["dnc@example.com"])["dnc@example.com"]
    assert row.by_operator
    # a reader's own unsubscribe, by contrast, is lifted by signing up and confirming
    sign_up(client, "back@example.org")
    client.post(links(sink.messages[0])["confirm"])
    client.post(links(sink.messages[0])["unsubscribe"])
    sign_up(client, "back@example.org")
    client.post(links(sink.messages[1])["confirm"])
    assert subscriber(engine, "back@example.org").status == "active"


def test_only_the_operator_lifts_a_suppression(
    site: tuple[TestClient, SmtpSink], engine: sa.Engine, settings: Settings, database_url: str
) -> None:
    from newsletter.cli import main

    client, sink = site
    subscribers.suppress(engine, "dnc@example.com", "bounced")
    (settings.root / "config.toml").write_text("")
    cli = ["--config", str(settings.root / "config.toml")]
    env = {"NEWSLETTER_DATABASE__URL": database_url}
    lifted = CliRunner().invoke(
        main, [*cli, "subscribers", "unsuppress", "dnc@example.com"], env=env
    )
    assert lifted.exit_code == 0, lifted.output
    again = CliRunner().invoke(
        main, [*cli, "subscribers", "unsuppress", "dnc@example.com"], env=env
    )
    assert again.exit_code == 1 and "no suppression" in again.output
    sign_up(client, "dnc@example.com")
    assert [m["To"] for m in sink.messages] == ["dnc@example.com"]


def test_every_address_costs_the_same_work_and_gets_the_same_answer(
    site: tuple[TestClient, SmtpSink], engine: sa.Engine
) -> None:
    client, sink = site
    sign_up(client, "pending@example.org")
    sign_up(client, "active@example.org")
    client.post(links(sink.messages[1])["confirm"])
    subscribers.suppress(engine, "blocked@example.org", "complained")
    statements: list[str] = []

    def count(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
        statements.append(statement.split()[0].upper())

    answers = {}
    work = {}
    # its own engine, without the app's background worker, so only `accept` is counted
    own = database.create_engine(engine.url.render_as_string(hide_password=False))
    quiet = services.build(client.app.app.state.settings, own, MemoryMailer())
    for address in ("new@example.org", "pending@example.org", "active@example.org",
                    "blocked@example.org"):  # fmt: skip
        response = client.post("/api/v1/subscribe", json={"email": address})
        answers[address] = (response.status_code, response.content)
        # what answering costs: the same statements whatever the address is
        statements.clear()
        sa.event.listen(own, "before_cursor_execute", count)
        quiet.subscribers.signups.accept(address, "", [], [], "10.0.0.1")
        sa.event.remove(own, "before_cursor_execute", count)
        work[address] = list(statements)
    assert len(set(answers.values())) == 1
    assert len({tuple(w) for w in work.values()}) == 1, work
    assert work["new@example.org"].count("INSERT") == 1  # the request, nothing else
    own.dispose()


def test_a_mail_outage_uses_up_no_confirmation_and_a_stranger_cannot_use_them_all(
    settings: Settings, engine: sa.Engine
) -> None:
    from aiosmtpd.controller import Controller

    from tests.helpers import free_port

    port = free_port()
    mailer = SmtpMailer("127.0.0.1", port, "none", timeout=2)
    with TestClient(create_app(settings, engine, mailer), base_url=settings.base_url) as client:
        stranger = TestClient(client.app, base_url="http://news.test", client=("10.9.9.9", 1))
        for _ in range(3):  # mail is down: sign-ups are kept, no confirmation counts yet
            assert (
                stranger.post("/api/v1/subscribe", json={"email": "me@example.org"}).status_code
                == 202
            )
            settle(client)
        with Session(engine) as session:
            queued = storage.outbound_for(session, "me@example.org")
        assert [m.status for m in queued] == ["queued"]  # one waits; none was lost or doubled
        sink = SmtpSink()
        controller = Controller(sink, hostname="127.0.0.1", port=port)
        controller.start()
        try:
            with Session(engine) as session:  # retry now rather than after the back-off
                storage.retry_outbound_now(session)
                session.commit()
            settle(client)
            assert len(sink.messages) == 1
            for _ in range(3):  # the stranger keeps asking: one more, then no more
                stranger.post("/api/v1/subscribe", json={"email": "me@example.org"})
                settle(client)
            assert len(sink.messages) == 2
            # the reader, from their own network, still gets the hour's last confirmation
            client.post("/api/v1/subscribe", json={"email": "me@example.org"})
            settle(client)
            assert len(sink.messages) == 3
        finally:
            controller.stop()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("=?utf-8?q?URGENT=0D=0ABcc:_x@evil.test?= Budi", "Budi"),
        ("=?UTF-8?B?QWRtaW4=?=", ""),
        ("Ayu\u202eevil\u202c", "Ayuevil"),
        ("Zero\u200bwidth\ufeff", "Zerowidth"),
        ("Line\r\nbreak\x00", "Line break"),
        ("<b>Bold</b> Name", "<b>Bold</b> Name"),  # text: pages escape it
        ("김민준", "김민준"),
        ("x" * 500, "x" * 100),
    ],
)
def test_names_are_made_harmless(raw: str, expected: str) -> None:
    assert clean_name(raw) == expected


def test_a_hostile_name_is_neither_mailed_nor_a_reason_for_500(
    site: tuple[TestClient, SmtpSink], engine: sa.Engine
) -> None:
    client, sink = site
    name = "URGENT: your account is locked, verify at https://evil.example/login =?utf-8?q?=0D=0A?="
    response = client.post("/api/v1/subscribe", json={"email": "victim@example.org", "name": name})
    assert response.status_code == 202
    settle(client)
    [message] = sink.messages
    assert "evil.example" not in message.as_string()
    assert message["To"] == "victim@example.org"
