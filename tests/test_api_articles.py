"""/api/v1 articles, tags and authors: every route, its refusals (404, 409, 422 naming the
field), cursor pagination and filters, and the feeds a change reaches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session
from starlette.testclient import TestClient

from newsletter import storage
from newsletter.models import Scope, utcnow
from tests.helpers import import_path, write_jsonl

Json = dict[str, Any]


@pytest.fixture
def api(client: TestClient) -> TestClient:
    """The client with a write token."""
    token = client.app.app.state.services.access.create_token("editor", Scope.write)  # type: ignore[attr-defined]
    client.headers["Authorization"] = f"Bearer {token}"
    return client


def _post(api: TestClient, **fields: Any) -> Json:
    response = api.post("/api/v1/articles", json=fields)
    assert response.status_code == 201, response.text
    body: Json = response.json()
    return body


def _error_fields(response: Any) -> list[str]:
    assert response.status_code == 422, response.text
    return [str(item["loc"][-1]) for item in response.json()["detail"]]


def _feed_version(api: TestClient) -> int:
    engine = api.app.app.state.engine  # type: ignore[attr-defined]
    with Session(engine) as session:
        return storage.global_version(session)


def test_create_answers_201_with_location_and_stores_the_record_fields(api: TestClient) -> None:
    response = api.post(
        "/api/v1/articles",
        json={
            "title": "The End of Peace Talks? <b>Kim</b>",
            "body_markdown": "# Lead\n\nSeoul [reacts](/seoul).",
            "author": {"name": "Siti Rahma", "bio": "A Jakarta-based news writer"},
            "tags": ["North Korea", "South Korea"],
            "published_at": "2026-11-01T09:30:00",
            "status": "published",
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"] == "/api/v1/articles/the-end-of-peace-talks-kim"
    assert body["title"] == "The End of Peace Talks? Kim"
    assert '<a href="http://news.test/seoul">reacts</a>' in body["body_html"]
    assert body["author"] == {"slug": "siti-rahma", "name": "Siti Rahma"}
    assert [t["slug"] for t in body["tags"]] == ["north-korea", "south-korea"]
    # a date without an offset is in the site's zone (Asia/Jakarta, UTC+7)
    assert body["published_at"] == "2026-11-01T02:30:00Z"
    assert body["state"] == "published"
    assert body["link"] == "http://news.test/articles/the-end-of-peace-talks-kim"
    fetched = api.get(response.headers["location"])
    assert fetched.status_code == 200
    assert fetched.json() == body
    # the public page shows it: the same article the import path would have stored
    assert api.get("/articles/the-end-of-peace-talks-kim").status_code == 200


def test_create_refuses_a_taken_slug_or_guid_with_409(api: TestClient) -> None:
    _post(api, title="One", slug="one", guid="urn:x:1")
    assert api.post("/api/v1/articles", json={"title": "Two", "slug": "one"}).status_code == 409
    again = api.post("/api/v1/articles", json={"title": "Two", "guid": "urn:x:1"})
    assert again.status_code == 409
    assert "urn:x:1" in again.json()["detail"]
    # a slug made from the title moves to a free one, as an import does
    assert _post(api, title="One")["slug"] == "one-2"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "title"),
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        ({"title": 5}, "title"),
        ({"title": "x", "slug": "Not A Slug"}, "slug"),
        ({"title": "x", "published_at": "yesterday"}, "published_at"),
        ({"title": "x", "published_at": "1900-01-01"}, "published_at"),
        ({"title": "x", "status": "archived"}, "status"),
        ({"title": "x", "url": "javascript:alert(1)"}, "url"),
        ({"title": "x", "image": "http://"}, "image"),
        ({"title": "x", "body": "<p>a</p>", "body_markdown": "a"}, "body_markdown"),
        ({"title": "x", "tags": "a,b"}, "tags"),
        ({"title": "x", "author": {"name": "A", "twitter": "@a"}}, "twitter"),
        ({"title": "x", "author": {"name": "A", "slug": "A B"}}, "author.slug"),
        ({"title": "x", "colour": "red"}, "colour"),
        ({"title": "x" * 1001}, "title"),
        ({"title": "x", "guid": "\x00"}, "guid"),
    ],
)
def test_create_refuses_bad_fields_with_422_naming_the_field(
    api: TestClient, body: Json, field: str
) -> None:
    assert field in _error_fields(api.post("/api/v1/articles", json=body))


def test_odd_bodies_and_slugs_never_give_a_server_error(api: TestClient) -> None:
    assert (
        api.post(
            "/api/v1/articles", content=b"{", headers={"content-type": "application/json"}
        ).status_code
        == 422
    )
    assert api.post("/api/v1/articles", json=[1, 2]).status_code == 422
    surrogate = b'{"title": "\\ud800", "tags": ["\\udfff"]}'
    json_type = {"content-type": "application/json"}
    assert api.post("/api/v1/articles", content=surrogate, headers=json_type).status_code in (
        201,
        422,
    )
    for slug in ("%00", "a%2Fb", "%E2%80%AE", "x" * 3000, "%F0%9F%92%A9"):
        assert api.get(f"/api/v1/articles/{slug}").status_code == 404
        assert api.post(f"/api/v1/articles/{slug}/publish").status_code == 404
        assert api.patch(f"/api/v1/articles/{slug}", json={"title": "t"}).status_code == 404
        assert api.delete(f"/api/v1/articles/{slug}").status_code == 404
        assert api.get(f"/api/v1/tags/{slug}").status_code == 404
        assert api.get(f"/api/v1/authors/{slug}").status_code == 404
    assert api.get("/api/v1/articles", params={"q": "\x00", "tag": "\x00"}).status_code in (
        200,
        422,
    )


def test_get_unknown_article_is_404(api: TestClient) -> None:
    response = api.get("/api/v1/articles/nothing-here")
    assert response.status_code == 404
    assert "nothing-here" in response.json()["detail"]


def test_patch_changes_only_the_given_fields(api: TestClient) -> None:
    created = _post(
        api,
        title="Draft on Jakarta",
        slug="jakarta",
        summary="A summary kept",
        body="<p>Old body</p>",
        author="Siti Rahma",
        tags=["Indonesia"],
        status="draft",
    )
    response = api.patch("/api/v1/articles/jakarta", json={"title": "Jakarta floods"})
    assert response.status_code == 200, response.text
    changed = response.json()
    assert changed["title"] == "Jakarta floods"
    for same in ("slug", "guid", "summary", "body_html", "author", "tags", "status"):
        assert changed[same] == created[same], same
    assert changed["updated_at"] >= created["updated_at"]

    cleared = api.patch(
        "/api/v1/articles/jakarta", json={"author": None, "tags": [], "slug": "jakarta-floods"}
    ).json()
    assert cleared["author"] is None and cleared["tags"] == []
    assert cleared["slug"] == "jakarta-floods"
    assert api.get("/api/v1/articles/jakarta").status_code == 404


def test_patch_keeps_tags_defined_with_their_own_slugs(api: TestClient) -> None:
    api.post("/api/v1/tags", json={"slug": "nk", "name": "North Korea"})
    engine = api.app.app.state.engine  # type: ignore[attr-defined]
    path = write_jsonl(
        api.app.app.state.settings.root / "a.jsonl",  # type: ignore[attr-defined]
        [{"title": "Talks", "slug": "talks", "tags": ["nk"]}],
    )
    import_path(engine, api.app.app.state.settings, path)  # type: ignore[attr-defined]
    before = api.get("/api/v1/articles/talks").json()["tags"]
    after = api.patch("/api/v1/articles/talks", json={"summary": "New"}).json()["tags"]
    assert after == before


def test_patch_with_no_change_writes_nothing(api: TestClient) -> None:
    created = _post(api, title="Same", slug="same")
    version = _feed_version(api)
    again = api.patch("/api/v1/articles/same", json={"title": "Same"}).json()
    assert again["updated_at"] == created["updated_at"]
    assert _feed_version(api) == version


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": None}, "title"),
        ({"slug": ""}, "slug"),
        ({"status": None}, "status"),
        ({"published_at": "not a date"}, "published_at"),
        ({"guid": "urn:new"}, "guid"),
        ({"url": "ftp://x"}, "url"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_patch_refuses_bad_fields_with_422_naming_the_field(
    api: TestClient, body: Json, field: str
) -> None:
    _post(api, title="Target", slug="target")
    assert field in _error_fields(api.patch("/api/v1/articles/target", json=body))


def test_patch_to_a_taken_slug_is_409(api: TestClient) -> None:
    _post(api, title="A", slug="a")
    _post(api, title="B", slug="b")
    assert api.patch("/api/v1/articles/b", json={"slug": "a"}).status_code == 409


def test_publish_unpublish_and_delete_change_the_site_feed(api: TestClient) -> None:
    _post(api, title="Seoul responds", slug="seoul", status="draft")
    assert "Seoul responds" not in api.get("/feed.rss").text
    published = api.post("/api/v1/articles/seoul/publish")
    assert published.status_code == 200
    assert published.json()["state"] == "published"
    assert "Seoul responds" in api.get("/feed.rss").text
    assert api.post("/api/v1/articles/seoul/unpublish").json()["status"] == "draft"
    assert "Seoul responds" not in api.get("/feed.rss").text
    api.post("/api/v1/articles/seoul/publish")
    deleted = api.delete("/api/v1/articles/seoul")
    assert deleted.status_code == 204 and deleted.content == b""
    assert "Seoul responds" not in api.get("/feed.rss").text
    assert api.delete("/api/v1/articles/seoul").status_code == 404
    assert api.post("/api/v1/articles/seoul/publish").status_code == 404
    assert api.post("/api/v1/articles/seoul/unpublish").status_code == 404


def test_an_edit_reaches_the_feed_at_once(api: TestClient) -> None:
    _post(api, title="Old headline", slug="headline")
    assert "Old headline" in api.get("/feed.atom").text
    api.patch("/api/v1/articles/headline", json={"title": "New headline"})
    feed = api.get("/feed.atom").text
    assert "New headline" in feed and "Old headline" not in feed


def _seed(api: TestClient, count: int) -> None:
    """`count` articles; several share a publication date, so the id breaks ties."""
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for n in range(count):
        when = base + timedelta(hours=n // 3)
        _post(
            api,
            title=f"Post {n}",
            slug=f"post-{n}",
            published_at=when.isoformat(),
            tags=["Even" if n % 2 == 0 else "Odd"],
            author="Ana" if n % 3 == 0 else "Budi",
        )


def _walk(api: TestClient, path: str, **params: Any) -> list[str]:
    seen: list[str] = []
    cursor = None
    for _ in range(100):
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = api.get(path, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        seen += [item["slug"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return seen
    raise AssertionError("pagination does not end")


def test_pagination_reaches_the_last_item_with_no_duplicates(api: TestClient) -> None:
    _seed(api, 11)
    _post(api, title="A draft", slug="a-draft", status="draft")
    seen = _walk(api, "/api/v1/articles", limit=4)
    assert len(seen) == len(set(seen)) == 12
    # newest first; a draft without a date counts from its creation (now): first
    assert seen[0] == "a-draft"
    assert seen[1:] == [f"post-{n}" for n in (10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0)]
    assert _walk(api, "/api/v1/articles", limit=100) == seen


def test_filters_by_tag_author_status_and_title(api: TestClient) -> None:
    _seed(api, 9)
    future = (utcnow() + timedelta(days=3)).isoformat()
    _post(api, title="Coming soon", slug="soon", published_at=future)
    _post(api, title="Unfinished", slug="unfinished", status="draft")
    odd = _walk(api, "/api/v1/articles", tag="odd", limit=2)
    assert odd == ["post-7", "post-5", "post-3", "post-1"]
    ana = _walk(api, "/api/v1/articles", author="ana", limit=2)
    assert ana == ["post-6", "post-3", "post-0"]
    assert _walk(api, "/api/v1/articles", tag="odd", author="ana") == ["post-3"]
    assert _walk(api, "/api/v1/articles", status="draft") == ["unfinished"]
    assert _walk(api, "/api/v1/articles", status="scheduled") == ["soon"]
    assert len(_walk(api, "/api/v1/articles", status="published")) == 9
    assert _walk(api, "/api/v1/articles", q="POST 8") == ["post-8"]
    assert _walk(api, "/api/v1/articles", q="%") == []
    assert _walk(api, "/api/v1/articles", tag="no-such-tag") == []
    listed = api.get("/api/v1/articles", params={"status": "scheduled"}).json()["items"][0]
    assert listed["state"] == "scheduled" and "body_html" not in listed


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"cursor": "garbage"}, "cursor"),
        ({"cursor": "WyJ4IiwgMV0"}, "cursor"),  # ["x", 1]: not a date
        ({"cursor": "x" * 601}, "cursor"),
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"status": "archived"}, "status"),
        ({"q": "a\x01"}, "q"),
    ],
)
def test_bad_list_parameters_are_422_naming_the_parameter(
    api: TestClient, params: Json, field: str
) -> None:
    response = api.get("/api/v1/articles", params=params)
    assert _error_fields(response) == [field]
    assert response.json()["detail"][0]["loc"][0] == "query"


# --------------------------------------------------------------------- tags and authors


def test_tags_create_read_update_and_list(api: TestClient) -> None:
    created = api.post("/api/v1/tags", json={"name": "North Korea", "description": "DPRK"})
    assert created.status_code == 201, created.text
    assert created.headers["location"] == "/api/v1/tags/north-korea"
    assert created.json() == {
        "slug": "north-korea",
        "name": "North Korea",
        "description": "DPRK",
        "articles": 0,
    }
    assert api.post("/api/v1/tags", json={"name": "North Korea"}).status_code == 409
    _post(api, title="Talks", tags=["North Korea"])
    assert api.get("/api/v1/tags/north-korea").json()["articles"] == 1
    renamed = api.patch("/api/v1/tags/north-korea", json={"name": "DPRK", "description": None})
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "DPRK" and renamed.json()["description"] == ""
    assert api.get("/api/v1/articles/talks").json()["tags"] == [
        {"slug": "north-korea", "name": "DPRK"}
    ]
    assert api.patch("/api/v1/tags/nope", json={"name": "x"}).status_code == 404
    assert api.get("/api/v1/tags/nope").status_code == 404
    for n in range(7):
        api.post("/api/v1/tags", json={"name": f"Topic {n}"})
    slugs = _walk(api, "/api/v1/tags", limit=3)
    assert len(slugs) == len(set(slugs)) == 8
    assert slugs[0] == "north-korea"  # by name: "DPRK" sorts before "Topic"


def test_renaming_a_tag_gives_its_feed_a_new_version(api: TestClient) -> None:
    _post(api, title="Talks", tags=["Korea"])
    version = _feed_version(api)
    api.patch("/api/v1/tags/korea", json={"name": "Korean Peninsula"})
    assert _feed_version(api) > version
    assert "Korean Peninsula" in api.get("/tags/korea/feed.atom").text


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/tags", {}, "name"),
        ("/api/v1/tags", {"name": ""}, "name"),
        ("/api/v1/tags", {"name": "!!!"}, "slug"),
        ("/api/v1/tags", {"name": "A", "slug": "Bad Slug"}, "slug"),
        ("/api/v1/tags", {"name": "A", "extra": 1}, "extra"),
        ("/api/v1/tags", {"name": ["A"]}, "name"),
        ("/api/v1/authors", {}, "name"),
        ("/api/v1/authors", {"name": "A", "url": "not a url"}, "url"),
        ("/api/v1/authors", {"name": "A", "slug": "A!"}, "slug"),
        ("/api/v1/authors", {"name": "<b></b>"}, "name"),
    ],
)
def test_tag_and_author_writes_refuse_bad_fields_naming_them(
    api: TestClient, path: str, body: Json, field: str
) -> None:
    assert field in _error_fields(api.post(path, json=body))


def test_authors_create_read_update_and_list(api: TestClient) -> None:
    created = api.post(
        "/api/v1/authors",
        json={"name": "Siti Rahma", "bio": "Jakarta", "url": "https://siti.example/"},
    )
    assert created.status_code == 201, created.text
    assert created.headers["location"] == "/api/v1/authors/siti-rahma"
    assert api.post("/api/v1/authors", json={"name": "Siti Rahma"}).status_code == 409
    _post(api, title="Floods", author={"slug": "siti-rahma", "name": "Siti Rahma"})
    assert api.get("/api/v1/authors/siti-rahma").json()["articles"] == 1
    changed = api.patch("/api/v1/authors/siti-rahma", json={"url": None, "bio": "Reporter"})
    assert changed.status_code == 200
    assert changed.json() == {
        "slug": "siti-rahma",
        "name": "Siti Rahma",
        "bio": "Reporter",
        "url": None,
        "articles": 1,
    }
    assert "name" in _error_fields(api.patch("/api/v1/authors/siti-rahma", json={"name": None}))
    assert "url" in _error_fields(api.patch("/api/v1/authors/siti-rahma", json={"url": "x"}))
    assert api.patch("/api/v1/authors/nobody", json={"bio": "x"}).status_code == 404
    assert api.get("/api/v1/authors/nobody").status_code == 404
    for n in range(5):
        api.post("/api/v1/authors", json={"name": f"Writer {n}"})
    slugs = _walk(api, "/api/v1/authors", limit=2)
    assert len(slugs) == len(set(slugs)) == 6
    assert "cursor" in _error_fields(api.get("/api/v1/authors", params={"cursor": "%%"}))
    assert "cursor" in _error_fields(api.get("/api/v1/tags", params={"cursor": "WzEsMl0"}))


def test_a_read_token_may_list_but_not_write(client: TestClient) -> None:
    services = client.app.app.state.services  # type: ignore[attr-defined]
    read = {"Authorization": f"Bearer {services.access.create_token('reader', Scope.read)}"}
    assert client.get("/api/v1/articles").status_code == 401
    assert client.get("/api/v1/articles", headers=read).status_code == 200
    assert client.post("/api/v1/tags", json={"name": "x"}, headers=read).status_code == 403


def test_the_schema_documents_every_route_and_field(client: TestClient) -> None:
    schema = client.get("/api/v1/openapi.json").json()
    paths = schema["paths"]
    assert set(paths["/api/v1/articles"]) == {"get", "post"}
    assert set(paths["/api/v1/articles/{slug}"]) == {"get", "patch", "delete"}
    for path in ("/api/v1/tags/{slug}", "/api/v1/authors/{slug}"):
        assert set(paths[path]) == {"get", "patch"}
    assert "409" in paths["/api/v1/articles"]["post"]["responses"]
    assert "404" in paths["/api/v1/articles/{slug}/publish"]["post"]["responses"]
    fields = schema["components"]["schemas"]["ArticleIn"]["properties"]
    assert {"title", "guid", "slug", "body", "body_markdown", "tags", "published_at"} <= set(fields)
