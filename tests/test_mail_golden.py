"""The confirmation email, byte for byte: its plain text and its HTML with the CSS inlined,
as Subscribers renders them for a fixed subscriber, secret and `now`. The expected bytes are
under tests/golden/mail/; to update them after an intended change, see docs/golden-files.md.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from newsletter.config import DatabaseSettings, SecuritySettings, Settings, SiteSettings
from newsletter.mail import Composer, Letter, MemoryMailer
from newsletter.models import Subscriber, SubscriberStatus
from newsletter.services import template_environment
from newsletter.subscribers import Subscribers
from tests.golden import assert_golden

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SUBSCRIBER_ID = 42


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Every setting the email shows, spelt out; the secret makes the tokens fixed."""
    return Settings(
        root=tmp_path,
        site=SiteSettings(
            title="The Asia Ledger",
            description="News and analysis on Asian affairs",
            base_url="http://news.test",
            language="en",
            timezone="Asia/Jakarta",
        ),
        database=DatabaseSettings(url=database_url),
        security=SecuritySettings(secret_key="golden"),
    )


@pytest.fixture
def letter(engine: sa.Engine, settings: Settings) -> Letter:
    """The confirmation letter for a pending subscriber with a fixed id, nonce and link key."""
    with Session(engine) as session:
        session.add(
            Subscriber(
                id=SUBSCRIBER_ID,
                email="siti.rahma@example.com",
                name="Siti Rahma & 김민수",
                status=SubscriberStatus.pending,
                created_at=NOW,
                updated_at=NOW,
                confirm_nonce="fixed-nonce-1",
                link_key="fixed-link-key",
            )
        )
        session.commit()
    service = Subscribers(engine, settings, MemoryMailer(), template_environment(settings))
    found = service.signups.confirmation_letter(SUBSCRIBER_ID, NOW)  # what the queue sends
    assert found is not None
    return found


def test_confirmation_email_text_matches_golden_file(letter: Letter) -> None:
    assert_golden("mail/confirm.txt", letter.text.encode("utf-8"))


def test_confirmation_email_html_with_inlined_css_matches_golden_file(
    letter: Letter, settings: Settings
) -> None:
    assert_golden("mail/confirm.html", Composer(settings).inline(letter.html).encode("utf-8"))
