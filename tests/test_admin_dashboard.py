"""The editors' dashboard (/admin): next issues with their times in each digest's own zone,
recent runs with their progress, subscribers by status and by digest, recent articles."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import lxml.html
import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from newsletter.config import Settings
from newsletter.digests import schedule
from newsletter.digests.definitions import DigestInput
from newsletter.web import create_app
from tests.admin_helpers import log_in, with_admin
from tests.digest_helpers import post, reader


@pytest.fixture
def admin(settings: Settings, engine: sa.Engine) -> Iterator[TestClient]:
    cfg = with_admin(settings)
    now = datetime.now(UTC)
    post(engine, cfg, "harvest-report", now - timedelta(hours=3), ["economy"], title="Harvest")
    reader(engine, cfg, "dewi@example.org")
    reader(engine, cfg, "budi@example.org")
    with TestClient(create_app(cfg, engine), base_url=cfg.base_url) as client:
        log_in(client)
        yield client


def test_the_dashboard_shows_next_issues_in_their_zone_runs_counts_and_articles(
    admin: TestClient,
) -> None:
    digests = admin.app.app.state.services.digests  # type: ignore[attr-defined]
    digests.edit("digest", DigestInput(cron=schedule.daily("07:00"), timezone="Asia/Jakarta"))
    seoul = DigestInput(
        name="Seoul Evening", cron=schedule.daily("18:30"), timezone="Asia/Seoul", tags=()
    )
    digests.create("seoul-evening", seoul)
    run = digests.send_now("digest")

    page = admin.get("/admin")
    assert page.status_code == 200
    doc = lxml.html.fromstring(page.text)
    upcoming = {
        row.xpath("string(td[1])").strip(): row.xpath("string(td[2])").strip()
        for row in doc.xpath('//section[@aria-labelledby="next-issues"]//tbody/tr')
    }
    assert upcoming["Seoul Evening"].endswith("18:30 KST")
    assert upcoming[digests.get("digest").name].endswith("07:00 WIB")
    runs = doc.xpath('//section[@aria-labelledby="recent-runs"]//tbody/tr')
    assert runs and runs[0].xpath("string(td[1])").strip() == f"#{run.id}"
    assert runs[0].xpath(".//progress/@max") == ["2"]  # both readers are in the ledger
    counts = doc.xpath('//section[@aria-labelledby="subscribers"]//tr')
    by_status = {r.xpath("string(th)").strip(): r.xpath("string(td)").strip() for r in counts}
    assert by_status["active"] == "2" and by_status["pending"] == "0"
    assert "Harvest" in doc.xpath('string(//section[@aria-labelledby="recent-articles"])')


def test_the_dashboard_needs_a_login(client: TestClient) -> None:
    answer = client.get("/admin", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/admin/login")
