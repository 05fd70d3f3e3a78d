"""The public archive of digests: issue pages ("view in browser"), each digest's page with
its past issues and a sign-up form, its RSS/Atom/JSON feeds of issues and their place in
/feeds.opml. Issues are made by the real use cases (send now, deliver, pause, cancel, the
scheduler's tick) on the test database, mail kept by a MemoryMailer."""

from __future__ import annotations

import asyncio
import email.policy
import html
import importlib
import io
import json
import os
import re
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime
from pathlib import Path
from types import ModuleType
from urllib.parse import urlsplit

import feedparser
import lxml.html
import pytest
import sqlalchemy as sa
from lxml import etree
from starlette.testclient import TestClient

from newsletter import articles, services
from newsletter.config import Settings
from newsletter.digests import schedule
from newsletter.digests.definitions import DigestInput
from newsletter.mail import MemoryMailer
from newsletter.models import RunStatus
from newsletter.web import create_app
from tests.digest_helpers import T0, Clock, post, reader

BASE = "http://news.test"
ARCHIVE = f"{BASE}/digests/digest"
HOSTILE_TITLE = "Fish & <Chips> at AT&T"
DESCRIPTION = "Asia & the <world>, every morning"
CONTENT_TYPES = {
    "rss": "application/rss+xml; charset=utf-8",
    "atom": "application/atom+xml; charset=utf-8",
    "json": "application/feed+json; charset=utf-8",
}


@dataclass
class Archive:
    """Runs of every kind for the digest "digest" (daily at 07:00 in Jakarta)."""

    svc: services.Services
    mailer: MemoryMailer
    clock: Clock
    first: int  # sent: three posts, every reader narrowed to "politics"
    skipped: int  # no new posts
    paused: int
    cancelled: int
    missed: int
    second: int  # sent: one post

    @property
    def sent(self) -> list[int]:
        """The issues with pages, newest first."""
        return [self.second, self.first]


def _deliver(svc: services.Services, run_id: int) -> None:
    asyncio.run(svc.digests.deliver(run_id))
    assert svc.digests.run(run_id).status == RunStatus.sent


@pytest.fixture
def archive(settings: Settings, engine: sa.Engine) -> Archive:
    clock = Clock(T0 - timedelta(hours=12))
    mailer = MemoryMailer()
    svc = services.build(settings, engine, mailer=mailer, clock=clock)
    svc.digests.edit(
        "digest",
        DigestInput(
            name="Morning Ledger",
            description=DESCRIPTION,
            cron=schedule.daily("07:00"),
            timezone="Asia/Jakarta",
        ),
    )
    svc.digests.create(
        "weekly", DigestInput(name="The Weekly", cron=schedule.weekly("mon", "08:00"))
    )
    post(engine, settings, "rice-talks", T0 - timedelta(hours=10), ["politics"])
    post(
        engine,
        settings,
        "port-deal",
        T0 - timedelta(hours=9),
        ["economy"],
        title=HOSTILE_TITLE,
        image="https://img.test/port.jpg",
    )
    post(engine, settings, "vote-count", T0 - timedelta(hours=8), ["politics", "economy"])
    reader(engine, settings, "ani@example.org", tags=("politics",))
    reader(engine, settings, "budi@example.org", tags=("politics",), name="Budi")

    clock.set(T0)
    first = svc.digests.send_now("digest").id
    _deliver(svc, first)

    clock.set(T0 + timedelta(hours=1))
    skipped = svc.digests.send_now("digest")
    assert skipped.status == RunStatus.skipped

    post(engine, settings, "quiet-day", T0 + timedelta(hours=2), ["politics"])
    clock.set(T0 + timedelta(hours=3))
    paused = svc.digests.send_now("digest").id
    assert svc.digests.pause_run(paused).status == RunStatus.paused

    post(engine, settings, "late-news", T0 + timedelta(hours=4), ["politics"])
    clock.set(T0 + timedelta(hours=5))
    cancelled = svc.digests.send_now("digest").id
    assert svc.digests.cancel_run(cancelled).status == RunStatus.cancelled

    # the scheduler comes back 12 hours after a firing: more than catch_up_hours late
    (missed,) = svc.digests.tick(T0 + timedelta(days=1, hours=12))
    assert svc.digests.run(missed).status == RunStatus.missed

    post(engine, settings, "harbour-strike", T0 + timedelta(days=1, hours=13), ["politics"])
    clock.set(T0 + timedelta(days=2))
    second = svc.digests.send_now("digest").id
    _deliver(svc, second)
    return Archive(svc, mailer, clock, first, skipped.id, paused, cancelled, missed, second)


@pytest.fixture
def web(settings: Settings, engine: sa.Engine, archive: Archive) -> Iterator[TestClient]:
    with TestClient(create_app(settings, engine), base_url=settings.base_url) as c:
        yield c


def _messages(mailer: MemoryMailer) -> list[EmailMessage]:
    parser = BytesParser(policy=email.policy.default)
    return [parser.parsebytes(e.data) for e in mailer.sent]  # type: ignore[misc]


def _html(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())


def _issue_url(run_id: int) -> str:
    return f"{ARCHIVE}/{run_id}"


def _autodiscovery(page: str) -> dict[str, str]:
    doc = lxml.html.fromstring(page)
    return {
        str(link.get("type")): str(link.get("href"))
        for link in doc.xpath('//head/link[@rel="alternate"]')
    }


# ----------------------------------------------------------------------------- pages


def test_archive_lists_sent_issues_newest_first(web: TestClient, archive: Archive) -> None:
    response = web.get("/digests/digest")
    assert response.status_code == 200
    doc = lxml.html.fromstring(response.text)
    assert doc.findtext(".//h1") == "Morning Ledger"
    assert doc.xpath("//main/p[1]")[0].text_content() == DESCRIPTION
    assert "<world>" not in response.text  # escaped
    anchors = doc.xpath('//ol[contains(@class, "issues")]//h3/a')
    assert [a.get("href") for a in anchors] == [_issue_url(i) for i in archive.sent]
    subjects = [archive.svc.digests.run(i).subject for i in archive.sent]
    assert [a.text_content() for a in anchors] == subjects
    metas = [
        " ".join(p.text_content().split()) for p in doc.xpath('//ol[contains(@class, "issues")]//p')
    ]
    # dates in the digest's zone (Asia/Jakarta, UTC+7): T0 is 07:00 there
    assert metas == [
        "22 November 2026, 07:00 WIB · 1 story",
        "20 November 2026, 07:00 WIB · 3 stories",
    ]


def test_archive_of_a_digest_without_issues(web: TestClient) -> None:
    page = web.get("/digests/weekly")
    assert page.status_code == 200
    assert "No issue has been sent yet" in page.text


def test_archive_signup_form_preselects_its_digest(web: TestClient) -> None:
    for slug, other in (("weekly", "digest"), ("digest", "weekly")):
        doc = lxml.html.fromstring(web.get(f"/digests/{slug}").text)
        (form,) = doc.xpath('//form[contains(@class, "subscribe")]')
        assert form.get("action") == f"{BASE}/subscribe"
        boxes = {
            str(i.get("value")): i.get("checked") is not None
            for i in form.xpath(".//input")
            if i.get("name") == "digests"
        }
        assert boxes == {slug: True, other: False}
        token = form.xpath('.//input[@name="csrf_token"]/@value')
        assert token and token[0]
    # the form works as it is: the CSRF cookie was set with the page
    response = web.post(
        "/subscribe",
        data={"csrf_token": token[0], "email": "new@example.org", "digests": "digest"},
    )
    assert response.status_code == 200
    assert "Check your inbox" in response.text


def test_issue_page_shows_the_whole_issue(web: TestClient, archive: Archive) -> None:
    # every reader chose "politics" only: their email had two of the three posts
    messages = _messages(archive.mailer)
    first_issue = [m for m in messages if _issue_url(archive.first) in _html(m)]
    assert len(first_issue) == 2
    for message in first_issue:
        assert "Port Deal" not in _html(message) and "Chips" not in _html(message)

    response = web.get(f"/digests/digest/{archive.first}")
    assert response.status_code == 200
    page = response.text
    doc = lxml.html.fromstring(page)
    assert doc.findtext(".//h1") == archive.svc.digests.run(archive.first).subject
    titles = [h.text_content() for h in doc.xpath("//article//ol/li/h2")]
    assert titles == ["Vote Count", HOSTILE_TITLE, "Rice Talks"]  # newest first, un-narrowed
    assert "<Chips>" not in page and "Fish &amp; &lt;Chips&gt;" in page
    hrefs = doc.xpath("//article//ol/li/h2/a/@href")
    assert hrefs == [f"{BASE}/articles/{s}" for s in ("vote-count", "port-deal", "rice-talks")]
    (image,) = doc.xpath("//article//img")
    assert image.get("src") == "https://img.test/port.jpg"
    assert image.get("alt") == HOSTILE_TITLE
    text = " ".join(doc.text_content().split())
    assert "Budi Santoso · 19 November 2026" in text  # 21:00 in Jakarta, 14:00 UTC
    assert "Lead of port-deal." in text
    assert "20 November 2026, 07:00 WIB" in text
    # a way back to the archive, and the sign-up form for this digest
    assert f"{ARCHIVE}" in doc.xpath("//main//a/@href")
    assert doc.xpath(
        '//form[contains(@class, "subscribe")]//input[@name="digests"][@checked]/@value'
    ) == ["digest"]
    assert doc.xpath('//head/link[@rel="canonical"]/@href') == [_issue_url(archive.first)]


def test_view_in_browser_link_answers_with_the_issue(web: TestClient, archive: Archive) -> None:
    messages = _messages(archive.mailer)
    assert messages
    for message in messages:
        doc = lxml.html.fromstring(_html(message))
        (link,) = doc.xpath('//a[normalize-space()="View in your browser"]/@href')
        assert link in {_issue_url(i) for i in archive.sent}
        response = web.get(link)
        assert response.status_code == 200, link
        assert message["Subject"] in response.text


def test_an_issue_still_sending_has_its_page(
    web: TestClient, archive: Archive, settings: Settings, engine: sa.Engine
) -> None:
    post(engine, settings, "new-dawn", T0 + timedelta(days=2, hours=5), ["politics"])
    archive.clock.set(T0 + timedelta(days=3))
    run = archive.svc.digests.send_now("digest")
    assert run.status == RunStatus.sending  # composed, nothing delivered yet
    assert web.get(f"/digests/digest/{run.id}").status_code == 200
    assert _issue_url(run.id) in web.get("/digests/digest").text


def test_runs_that_did_not_go_out_have_no_page(web: TestClient, archive: Archive) -> None:
    for run_id in (archive.skipped, archive.paused, archive.cancelled, archive.missed):
        response = web.get(f"/digests/digest/{run_id}")
        assert response.status_code == 404, (run_id, archive.svc.digests.run(run_id).status)
        assert "text/html" in response.headers["content-type"]
    for path in (
        "/digests/nowhere",
        f"/digests/nowhere/{archive.first}",
        f"/digests/weekly/{archive.first}",  # an issue of another digest
        "/digests/digest/999999",
        "/digests/digest/99999999999999999999999",
        "/digests/digest/abc",
        "/digests/digest/feed",
        "/digests/digest/feed.xml",
        "/digests/nowhere/feed.rss",
        "/digests/nowhere/feed.atom",
    ):
        assert web.get(path).status_code == 404, path


def test_pages_announce_the_digest_feeds(web: TestClient, archive: Archive) -> None:
    for path in ("/digests/digest", f"/digests/digest/{archive.first}"):
        found = _autodiscovery(web.get(path).text)
        assert found == {
            "application/rss+xml": f"{ARCHIVE}/feed.rss",
            "application/atom+xml": f"{ARCHIVE}/feed.atom",
            "application/feed+json": f"{ARCHIVE}/feed.json",
        }, path


def test_withdrawn_post_leaves_the_archive(
    web: TestClient, archive: Archive, engine: sa.Engine
) -> None:
    articles.unpublish(engine, "port-deal", T0 + timedelta(days=3))
    page = web.get(f"/digests/digest/{archive.first}").text
    assert "Chips" not in page and "Vote Count" in page
    assert "Chips" not in web.get("/digests/digest/feed.atom").text
    listing = " ".join(lxml.html.fromstring(web.get("/digests/digest").text).text_content().split())
    assert "07:00 WIB · 2 stories" in listing


# ----------------------------------------------------------------------------- feeds


@pytest.mark.parametrize("fmt", ["rss", "atom"])
def test_feeds_list_every_sent_issue(
    web: TestClient, archive: Archive, settings: Settings, fmt: str
) -> None:
    response = web.get(f"/digests/digest/feed.{fmt}")
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPES[fmt]
    parsed = feedparser.parse(response.content)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert parsed.version == ("rss20" if fmt == "rss" else "atom10")
    assert parsed.feed.title == f"Morning Ledger · {settings.site.title}"
    assert parsed.feed.link == ARCHIVE
    urls = [_issue_url(i) for i in archive.sent]
    assert [e.id for e in parsed.entries] == urls
    assert [e.link for e in parsed.entries] == urls
    for entry in parsed.entries:
        parts = urlsplit(entry.link)
        assert parts.scheme == "http" and parts.netloc == "news.test"
    subjects = [archive.svc.digests.run(i).subject for i in archive.sent]
    assert [e.title for e in parsed.entries] == subjects
    first = parsed.entries[1]
    assert first.published_parsed[:5] == T0.timetuple()[:5]
    # an RSS description is HTML: the titles come back as escaped text
    summary = html.unescape(first.summary) if fmt == "rss" else first.summary
    assert summary == f"Vote Count · {HOSTILE_TITLE} · Rice Talks"
    content = lxml.html.fromstring(first.content[0].value)
    assert content.xpath("//a/@href") == [
        f"{BASE}/articles/{s}" for s in ("vote-count", "port-deal", "rice-talks")
    ]
    assert [a.text_content() for a in content.xpath("//a")] == [
        "Vote Count",
        HOSTILE_TITLE,
        "Rice Talks",
    ]


def test_feed_ids_stay_when_new_issues_come(
    web: TestClient, archive: Archive, settings: Settings, engine: sa.Engine
) -> None:
    before = feedparser.parse(web.get("/digests/digest/feed.atom").content)
    post(engine, settings, "new-dawn", T0 + timedelta(days=2, hours=5), ["politics"])
    archive.clock.set(T0 + timedelta(days=3))
    third = archive.svc.digests.send_now("digest").id
    _deliver(archive.svc, third)
    after = feedparser.parse(web.get("/digests/digest/feed.atom").content)
    assert [e.id for e in after.entries] == [_issue_url(third)] + [e.id for e in before.entries]
    assert [e.title for e in after.entries[1:]] == [e.title for e in before.entries]


def test_json_feed(web: TestClient, archive: Archive) -> None:
    response = web.get("/digests/digest/feed.json")
    assert response.headers["content-type"] == CONTENT_TYPES["json"]
    data = json.loads(response.content)
    assert data["feed_url"] == f"{ARCHIVE}/feed.json"
    assert [item["id"] for item in data["items"]] == [_issue_url(i) for i in archive.sent]


def test_feed_of_a_digest_without_issues(web: TestClient) -> None:
    for fmt in ("rss", "atom"):
        response = web.get(f"/digests/weekly/feed.{fmt}")
        assert response.status_code == 200
        parsed = feedparser.parse(response.content)
        assert parsed.bozo == 0 and parsed.entries == []
        assert "last-modified" not in response.headers


def test_feed_conditional_get_and_head(web: TestClient, archive: Archive) -> None:
    response = web.get("/digests/digest/feed.rss")
    etag = response.headers["etag"]
    assert etag.startswith('W/"')
    newest = archive.svc.digests.run(archive.second).scheduled_for.replace(microsecond=0)
    assert response.headers["last-modified"] == format_datetime(newest, usegmt=True)
    assert response.headers["cache-control"].startswith("public, max-age=")
    assert web.get("/digests/digest/feed.rss").headers["etag"] == etag  # same bytes

    again = web.get("/digests/digest/feed.rss", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    assert (
        web.get("/digests/digest/feed.rss", headers={"If-None-Match": etag[2:]}).status_code == 304
    )
    other = web.get("/digests/digest/feed.rss", headers={"If-None-Match": 'W/"other"'})
    assert other.status_code == 200
    # If-None-Match decides when present, whatever If-Modified-Since says
    both = web.get(
        "/digests/digest/feed.rss",
        headers={
            "If-None-Match": 'W/"other"',
            "If-Modified-Since": response.headers["last-modified"],
        },
    )
    assert both.status_code == 200
    since = web.get(
        "/digests/digest/feed.rss", headers={"If-Modified-Since": response.headers["last-modified"]}
    )
    assert since.status_code == 304
    older = format_datetime(newest - timedelta(seconds=1), usegmt=True)
    assert (
        web.get("/digests/digest/feed.rss", headers={"If-Modified-Since": older}).status_code == 200
    )
    # the Atom feed is other bytes, so another ETag
    assert web.get("/digests/digest/feed.atom").headers["etag"] != etag

    head = web.head("/digests/digest/feed.rss")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["etag"] == etag
    assert head.headers["content-type"] == CONTENT_TYPES["rss"]
    assert head.headers["content-length"] == str(len(response.content))
    assert web.post("/digests/digest/feed.rss").status_code == 405


def test_opml_lists_digests_that_have_issues(web: TestClient, settings: Settings) -> None:
    response = web.get("/feeds.opml")
    assert response.status_code == 200
    outlines = etree.fromstring(response.content).findall("./body/outline")
    digests = [o for o in outlines if "/digests/" in (o.get("xmlUrl") or "")]
    assert [(o.get("xmlUrl"), o.get("htmlUrl")) for o in digests] == [
        (f"{ARCHIVE}/feed.rss", ARCHIVE)
    ]  # "weekly" has sent nothing yet
    assert digests[0].get("title") == f"Morning Ledger · {settings.site.title}"
    # the site's own feeds are still there, first
    assert outlines[0].get("xmlUrl") == f"{BASE}/feed.rss"
    assert web.get(str(digests[0].get("xmlUrl"))).status_code == 200


# ----------------------------------------------------------------------------- W3C


def _feedvalidator() -> ModuleType:
    """The W3C feed validator, as tests/test_feeds_validity.py finds it: its src folder
    named by $FEEDVALIDATOR or at /tmp/fv/src, with html5lib importable."""
    for folder in (os.environ.get("FEEDVALIDATOR", ""), "/tmp/fv/src"):
        if folder and (Path(folder) / "feedvalidator").is_dir():
            if folder not in sys.path:
                sys.path.append(folder)
            break
    try:
        importlib.import_module("html5lib")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            validator = importlib.import_module("feedvalidator")
            importlib.import_module("feedvalidator.compatibility")
            importlib.import_module("feedvalidator.formatter.text_plain")
    except ImportError:
        pytest.skip("W3C feed validator not installed: see README")
    return validator


def test_w3c_feed_validator(web: TestClient) -> None:
    feedvalidator = _feedvalidator()
    formatter = sys.modules["feedvalidator.formatter.text_plain"].Formatter
    problems = []
    for slug in ("digest", "weekly"):
        for fmt in ("rss", "atom"):
            url = f"{BASE}/digests/{slug}/feed.{fmt}"
            response = web.get(url)
            assert response.status_code == 200
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = feedvalidator.validateStream(
                    io.BytesIO(response.content),
                    firstOccurrenceOnly=1,
                    contentType=response.headers["content-type"],
                    base=url,
                )
            events = feedvalidator.compatibility.AA(result["loggedEvents"])
            if events:
                lines = [
                    f"{text}  [{type(event).__name__} in {event.params.get('parent')}/"
                    f"{event.params.get('element')}]"
                    for text, event in zip(formatter(events), events, strict=True)
                ]
                problems.append(f"{url}:\n" + "\n".join(lines))
    assert not problems, "\n\n".join(problems)


def test_every_issue_link_in_the_feeds_is_a_page(web: TestClient) -> None:
    body = web.get("/digests/digest/feed.rss").text
    for link in re.findall(r"<link>([^<]+)</link>", body):
        assert web.get(link).status_code == 200, link
