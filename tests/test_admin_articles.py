"""/admin/articles: the table, its filters and pages, Publish and Unpublish through the
forms, and the CSRF check on them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from newsletter import articles
from newsletter.config import Settings
from newsletter.web import create_app
from tests.admin_helpers import PASSWORD, csrf, with_admin
from tests.helpers import context


@pytest.fixture
def admin(settings: Settings, engine: sa.Engine) -> Iterator[TestClient]:
    """A browser logged in as the editor of [admin]."""
    configured = with_admin(settings)
    with TestClient(create_app(configured, engine), base_url=settings.base_url) as client:
        token = csrf(client.get("/admin/login").text)
        response = client.post(
            "/admin/login",
            data={"username": "admin", "password": PASSWORD, "csrf_token": token},
            follow_redirects=False,
        )
        assert response.status_code == 303
        yield client


def _add(settings: Settings, engine: sa.Engine, count: int) -> None:
    """`count` published articles an hour apart (the newest last), plus one draft."""
    base = datetime(2026, 11, 1, tzinfo=UTC)
    records = [
        {
            "title": f"Story {n}",
            "slug": f"story-{n}",
            "published_at": (base + timedelta(hours=n)).isoformat(),
            "tags": ["Korea" if n % 2 else "Japan"],
            "author": "Min-jun" if n % 3 else "Yuki",
        }
        for n in range(count)
    ]
    records.append({"title": "Unfinished piece", "slug": "unfinished", "status": "draft"})
    ctx = context(settings)
    for n, record in enumerate(records):
        articles.create_article(engine, ctx, record, base + timedelta(days=30, minutes=n))


def _rows(html: str) -> list[str]:
    return re.findall(r'<td class="title"><a href="[^"]*">([^<]*)</a>', html)


def test_the_list_needs_a_login(client: TestClient) -> None:
    response = client.get("/admin/articles?tag=korea", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/admin/login?next=")


def test_the_table_shows_title_link_status_author_tags_and_local_date(
    admin: TestClient, settings: Settings, engine: sa.Engine
) -> None:
    _add(settings, engine, 2)
    page = admin.get("/admin/articles")
    assert page.status_code == 200
    html = page.text
    assert _rows(html) == ["Unfinished piece", "Story 1", "Story 0"]
    assert '<a href="http://news.test/articles/story-1">Story 1</a>' in html
    assert '<div class="table-wrap">' in html
    # 2026-11-01 01:00 UTC is 08:00 in Jakarta
    assert "1 Nov 2026 08:00" in html
    assert "Min-jun" in html and "Korea" in html
    assert re.search(r'<label for="filter-tag">Tag</label>\s*<select id="filter-tag"', html)
    assert '<label for="filter-author">' in html and '<label for="filter-status">' in html
    assert html.count(">Unpublish</button>") == 2 and html.count(">Publish</button>") == 1


def test_filters_narrow_the_table_and_stay_in_the_older_link(
    admin: TestClient, settings: Settings, engine: sa.Engine
) -> None:
    _add(settings, engine, 60)
    korea = admin.get("/admin/articles", params={"tag": "korea", "status": "published"}).text
    titles = _rows(korea)
    assert len(titles) == 25
    assert all(int(t.split()[1]) % 2 == 1 for t in titles)
    assert '<option value="korea" selected>' in korea
    older = re.search(r'<a href="([^"]+)" rel="next">Older</a>', korea)
    assert older
    link = unescape(older.group(1))
    query = parse_qs(urlsplit(link).query)
    assert query["tag"] == ["korea"] and query["status"] == ["published"] and query["cursor"]
    seen = list(titles)
    while True:
        html = admin.get(link).text
        seen += _rows(html)
        older = re.search(r'<a href="([^"]+)" rel="next">Older</a>', html)
        if not older:
            break
        link = unescape(older.group(1))
    assert len(seen) == len(set(seen)) == 30
    assert seen[-1] == "Story 1"
    yuki = _rows(admin.get("/admin/articles", params={"author": "yuki", "tag": "japan"}).text)
    assert yuki[0] == "Story 54" and all(int(t.split()[1]) % 6 == 0 for t in yuki)
    drafts = _rows(admin.get("/admin/articles", params={"status": "draft"}).text)
    assert drafts == ["Unfinished piece"]
    stale = admin.get("/admin/articles", params={"cursor": "nonsense"})
    assert stale.status_code == 200 and "out of date" in stale.text


def test_publish_and_unpublish_through_the_forms(
    admin: TestClient, settings: Settings, engine: sa.Engine
) -> None:
    _add(settings, engine, 1)
    listed = admin.get("/admin/articles", params={"status": "draft"}).text
    form = re.search(r'<form method="post" action="(/admin/articles/unfinished/publish)">', listed)
    assert form
    back = re.search(r'name="back" value="([^"]+)"', listed)
    assert back
    response = admin.post(
        form.group(1),
        data={"csrf_token": csrf(listed), "back": unescape(back.group(1))},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"].startswith("/admin/articles?status=draft&notice=")
    assert articles.load_article(engine, "unfinished").status == "published"
    shown = admin.get(response.headers["location"]).text
    assert "“Unfinished piece” is published." in unescape(shown)
    assert admin.get("/articles/unfinished").status_code == 200

    token = csrf(shown)
    response = admin.post(
        "/admin/articles/unfinished/unpublish",
        data={"csrf_token": token, "back": "https://evil.example/"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"].startswith("/admin/articles?notice=")
    assert articles.load_article(engine, "unfinished").status == "draft"
    assert admin.get("/articles/unfinished").status_code == 404

    gone = admin.post(
        "/admin/articles/no-such/publish", data={"csrf_token": token}, follow_redirects=False
    )
    assert gone.status_code == 303 and "notice=" in gone.headers["location"]


def test_a_form_without_the_csrf_token_is_refused(
    admin: TestClient, settings: Settings, engine: sa.Engine
) -> None:
    _add(settings, engine, 1)
    for action in ("publish", "unpublish"):
        response = admin.post(f"/admin/articles/story-0/{action}", data={}, follow_redirects=False)
        assert response.status_code == 403
    assert articles.load_article(engine, "story-0").status == "published"
