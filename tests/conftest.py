"""Shared fixtures. The database is SQLite in a temporary folder, or a fresh PostgreSQL
database per test when NEWSLETTER_TEST_DATABASE_URL points at a server (scripts/test does)."""

from __future__ import annotations

import email.policy
import os
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from newsletter import services
from newsletter.config import DatabaseSettings, Settings, SiteSettings
from newsletter.storage import database
from newsletter.web import create_app
from tests.digest_helpers import T0, Clock, daily_digest, wired

PG_URL = os.environ.get("NEWSLETTER_TEST_DATABASE_URL", "")
# for tests of markup and layout in a browser, and of the API's schema on its own SQLite
# database: what they check does not depend on the database, so the PostgreSQL pass of
# scripts/test skips them rather than run them twice
sqlite_pass_only = pytest.mark.skipif(
    bool(PG_URL), reason="markup, layout or schema: checked in the SQLite pass"
)


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """An empty database: a SQLite file, or a new PostgreSQL database dropped afterwards."""
    if not PG_URL:
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    name = "t_" + uuid.uuid4().hex[:12]
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        root=tmp_path,
        site=SiteSettings(base_url="http://news.test", timezone="Asia/Jakarta"),
        database=DatabaseSettings(url=database_url),
    )


@pytest.fixture
def engine(settings: Settings) -> Iterator[sa.Engine]:
    eng = database.open_database(settings.database_url)
    yield eng
    eng.dispose()


@pytest.fixture
def client(settings: Settings, engine: sa.Engine) -> Iterator[TestClient]:
    with TestClient(create_app(settings, engine), base_url=settings.base_url) as c:
        yield c


class SmtpSink:
    """A real SMTP server (aiosmtpd) on loopback that keeps what it receives. Recipients
    containing "bounce" get 550 5.1.1, "nocode" a plain 550, "later" 451 every time,
    "flaky" 451 on the first try only, "full" 552 5.2.2 every time, "policy" 554 5.7.1;
    a message to a recipient containing "spamfilter" is refused at DATA with 554.
    `on_message(address)` is called for each accepted message (tests hook into it)."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str], bytes]] = []
        self.connections = 0
        self.tries: dict[str, int] = {}
        self.on_message: Callable[[str], None] | None = None

    async def handle_RCPT(self, server, session, envelope, address, options):  # type: ignore[no-untyped-def]
        self.tries[address] = self.tries.get(address, 0) + 1
        if "bounce" in address:
            return "550 5.1.1 No such user here"
        if "nocode" in address:
            return "550 Unknown user"
        if "later" in address or ("flaky" in address and self.tries[address] == 1):
            return "451 4.3.0 Try again later"
        if "full" in address:
            return "552 5.2.2 Mailbox full"
        if "policy" in address:
            return "554 5.7.1 Client host blocked using a blocklist"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        if any("spamfilter" in rcpt for rcpt in envelope.rcpt_tos):
            return "554 5.7.1 Message rejected as spam"
        data = envelope.original_content or envelope.content
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos), data))
        self.messages.append(
            BytesParser(policy=email.policy.default).parsebytes(data)  # type: ignore[arg-type]
        )
        if self.on_message is not None:
            for rcpt in envelope.rcpt_tos:
                self.on_message(rcpt)
        return "250 Message accepted"

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # type: ignore[no-untyped-def]
        self.connections += 1
        session.host_name = hostname
        return responses


@pytest.fixture
def smtp_sink() -> Iterator[tuple[SmtpSink, int]]:
    from aiosmtpd.controller import Controller

    from tests.helpers import free_port

    sink = SmtpSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()


@pytest.fixture
def clock() -> Clock:
    """Twelve hours before the default digest's 07:00 firing in Jakarta."""
    return Clock(T0 - timedelta(hours=12))


@pytest.fixture
def svc(
    settings: Settings, engine: sa.Engine, smtp_sink: tuple[SmtpSink, int], clock: Clock
) -> services.Services:
    """Services that send through the shared SMTP sink, with the daily digest defined."""
    built = wired(settings, engine, smtp_sink[1], clock)
    daily_digest(built)
    return built
