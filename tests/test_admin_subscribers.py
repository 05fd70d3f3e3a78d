"""The subscribers pages under /admin: search, filters, pages, suppress and remove through
forms, CSV import with its report, export."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC
from html.parser import HTMLParser

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from newsletter import subscribers
from newsletter.config import Settings
from newsletter.digests.definitions import DigestInput
from newsletter.models import utcnow
from newsletter.web import create_app
from tests.admin_helpers import PASSWORD, with_admin


class Page(HTMLParser):
    """What a test reads of a page: its inputs, its table cells by row, its links."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.inputs: list[dict[str, str | None]] = []
        self.rows: list[list[str]] = []
        self.links: dict[str, str] = {}
        self._cell: list[str] | None = None
        self._link: str | None = None
        self._text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag in ("input", "select"):
            self.inputs.append({"tag": tag, **found})
        elif tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "a":
            self._link, self._text = found.get("href"), []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "a" and self._link is not None:
            self.links[" ".join("".join(self._text).split())] = self._link
            self._link = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._link is not None:
            self._text.append(data)

    def value(self, name: str) -> str:
        return next(str(i.get("value") or "") for i in self.inputs if i.get("name") == name)

    def column(self, index: int) -> list[str]:
        return [row[index] for row in self.rows[1:] if row]


@pytest.fixture
def admin(settings: Settings, engine: sa.Engine) -> Iterator[TestClient]:
    """A browser logged in as the [admin] account."""
    configured = with_admin(settings)
    with TestClient(create_app(configured, engine), base_url=settings.base_url) as client:
        token = Page(client.get("/admin/login").text).value("csrf_token")
        answer = client.post(
            "/admin/login",
            data={"username": "admin", "password": PASSWORD, "csrf_token": token},
            follow_redirects=False,
        )
        assert answer.status_code == 303
        yield client


def seed(engine: sa.Engine, text: str) -> None:
    report = subscribers.import_csv(engine, io.StringIO(text), utcnow(), UTC)
    assert not report.errors, report.errors


def csrf(client: TestClient, path: str = "/admin/subscribers") -> str:
    return Page(client.get(path).text).value("csrf_token")


def test_the_list_searches_filters_and_labels_its_fields(
    admin: TestClient, engine: sa.Engine
) -> None:
    admin.app.app.state.services.digests.create("weekly", DigestInput(name="Weekly"))  # type: ignore[attr-defined]
    seed(
        engine,
        "email,name,status,digests\n"
        "siti@kompas.example,Siti,active,weekly\n"
        "budi@tempo.example,Budi,pending,digest\n"
        "sitiawan@tempo.example,Awan,bounced,digest\n",
    )
    page = admin.get("/admin/subscribers")
    assert page.status_code == 200
    html = page.text
    for field, label in (("q", "Search by address"), ("status", "Status"), ("digest", "Digest")):
        assert f'<label for="{field}">{label}</label>' in html
    assert '<div class="table-wrap">' in html
    assert Page(html).column(0) == [
        "siti@kompas.example",
        "budi@tempo.example",
        "sitiawan@tempo.example",
    ]
    found = Page(admin.get("/admin/subscribers", params={"q": "SITI"}).text)
    assert found.column(0) == ["siti@kompas.example", "sitiawan@tempo.example"]
    tempo = Page(admin.get("/admin/subscribers", params={"q": "tempo", "status": "bounced"}).text)
    assert tempo.column(0) == ["sitiawan@tempo.example"]
    weekly = Page(admin.get("/admin/subscribers", params={"digest": "weekly"}).text)
    assert weekly.column(0) == ["siti@kompas.example"]
    assert "Export CSV (bounced)" in admin.get("/admin/subscribers?status=bounced").text


def test_a_bad_filter_is_shown_next_to_its_field(admin: TestClient) -> None:
    page = admin.get("/admin/subscribers", params={"status": "asleep"})
    assert page.status_code == 400
    assert 'aria-describedby="status-error"' in page.text
    assert '<p class="field-error" id="status-error">' in page.text
    unknown = admin.get("/admin/subscribers", params={"digest": "monthly"})
    assert '<p class="field-error" id="digest-error">no digest' in unknown.text


def test_next_pages_keep_the_filters_and_reach_the_end(
    admin: TestClient, engine: sa.Engine
) -> None:
    emails = [f"reader{i:03}@tempo.example" for i in range(120)]
    seed(engine, "email\n" + "\n".join(emails) + "\nother@kompas.example\n")
    seen: list[str] = []
    path: str | None = "/admin/subscribers?q=tempo"
    while path:
        page = Page(admin.get(path).text)
        seen += page.column(0)
        path = page.links.get("Next")
        if path:
            assert "q=tempo" in path
    assert seen == emails


def test_suppress_and_remove_through_the_forms(admin: TestClient, engine: sa.Engine) -> None:
    seed(engine, "email\nkeep@example.org\nleave@example.org\n")
    token = csrf(admin)
    done = admin.post(
        "/admin/subscribers/suppress",
        data={"csrf_token": token, "email": "leave@example.org", "back": "q=leave&next=//evil"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert done.headers["location"].startswith("/admin/subscribers?q=leave&notice=")
    shown = admin.get(done.headers["location"])
    assert "leave@example.org is suppressed (unsubscribed)." in shown.text
    assert subscribers.subscriber_view(engine, "leave@example.org").suppressed == "unsubscribed"
    assert "Suppress leave@example.org" not in shown.text  # nothing left to suppress

    gone = admin.post(
        "/admin/subscribers/remove",
        data={"csrf_token": token, "email": "keep@example.org"},
    )
    assert gone.status_code == 200
    assert "keep@example.org is removed." in gone.text
    assert Page(gone.text).column(0) == ["leave@example.org"]


def test_forms_without_the_csrf_token_are_refused(admin: TestClient, engine: sa.Engine) -> None:
    seed(engine, "email\nreader@example.org\n")
    for path in ("/admin/subscribers/suppress", "/admin/subscribers/remove"):
        answer = admin.post(path, data={"email": "reader@example.org"})
        assert answer.status_code == 403
    upload = admin.post(
        "/admin/subscribers/import", files={"file": ("s.csv", b"email\nx@example.org\n")}
    )
    assert upload.status_code == 403
    assert subscribers.subscriber_view(engine, "reader@example.org").suppressed is None
    assert [s.email for s in subscribers.list_subscribers(engine).items] == ["reader@example.org"]


def test_import_shows_the_report_with_every_bad_row(admin: TestClient, engine: sa.Engine) -> None:
    form = admin.get("/admin/subscribers/import")
    assert '<label for="file">CSV file</label>' in form.text
    assert 'enctype="multipart/form-data"' in form.text
    data = (
        b"email,name,status\n"
        b"ok@example.org,Ok,active\n"
        b"not-an-address,Bad,active\n"
        b"fine@example.org,Fine,grumpy\n"
        b"more@example.org,More,pending\n"
    )
    report = admin.post(
        "/admin/subscribers/import",
        data={"csrf_token": csrf(admin, "/admin/subscribers/import")},
        files={"file": ("people.csv", data, "text/csv")},
    )
    assert report.status_code == 200
    page = Page(report.text)
    assert ["3", "email", "'not-an-address' is not an email address"] in page.rows
    assert any(row[:2] == ["4", "status"] for row in page.rows)
    assert "people.csv" in report.text
    assert "<strong>2</strong> created" in report.text
    assert "<strong>2</strong> bad rows" in report.text
    assert [s.email for s in subscribers.list_subscribers(engine).items] == [
        "ok@example.org",
        "more@example.org",
    ]


def test_an_unreadable_file_is_an_error_next_to_the_file_field(admin: TestClient) -> None:
    token = csrf(admin, "/admin/subscribers/import")
    for content, words in (
        ("email\nJosé@example.org\n".encode("latin-1"), "not UTF-8"),
        (b"address\nx@example.org\n", "needs a header row"),
        (b"", "choose a CSV file"),
    ):
        answer = admin.post(
            "/admin/subscribers/import",
            data={"csrf_token": token},
            files={"file": ("s.csv", content, "text/csv")},
        )
        assert answer.status_code == 400
        assert 'aria-describedby="file-error"' in answer.text
        error = answer.text.split('<p class="field-error" id="file-error">')[1]
        assert words in error.split("</p>")[0]


def test_export_honours_the_status_filter(admin: TestClient, engine: sa.Engine) -> None:
    seed(engine, "email,status\na@example.org,active\nb@example.org,pending\n")
    link = Page(admin.get("/admin/subscribers?status=pending").text).links["Export CSV (pending)"]
    assert link == "/admin/subscribers/export.csv?status=pending"
    answer = admin.get(link)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert [(r["email"], r["status"]) for r in rows] == [("b@example.org", "pending")]
    everyone = list(csv.DictReader(io.StringIO(admin.get("/admin/subscribers/export.csv").text)))
    assert len(everyone) == 2
    assert admin.get("/admin/subscribers/export.csv?status=asleep").status_code == 400


def test_the_pages_need_a_login(client: TestClient) -> None:
    answer = client.get("/admin/subscribers?q=x", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/admin/login?next=")
