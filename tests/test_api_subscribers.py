"""The subscribers part of the JSON API: list and search with cursor pages, one subscriber,
add, remove, suppress, CSV import and export, and the dashboard's counts."""

from __future__ import annotations

import csv
import io
from datetime import UTC

import pytest
import sqlalchemy as sa
from sqlmodel import Session
from starlette.testclient import TestClient

from newsletter import storage, subscribers
from newsletter.digests.definitions import DigestInput
from newsletter.models import Scope
from newsletter.web.limits import MAX_BODY_BYTES
from tests.helpers import NOW, settle

CSV = {"content-type": "text/csv"}


@pytest.fixture
def auth(client: TestClient) -> dict[str, str]:
    token = client.app.app.state.services.access.create_token("api", Scope.write)  # type: ignore[attr-defined]
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def weekly(client: TestClient, engine: sa.Engine) -> None:
    """A second digest and two tags to choose from."""
    client.app.app.state.services.digests.create("weekly", DigestInput(name="Weekly"))  # type: ignore[attr-defined]
    with Session(engine) as session:
        storage.upsert_tag(session, "korea", "Korea", "")
        storage.upsert_tag(session, "japan", "Japan", "")
        session.commit()


def upload(client: TestClient, auth: dict[str, str], text: str) -> dict[str, object]:
    response = client.post("/api/v1/subscribers/import", content=text, headers={**auth, **CSV})
    assert response.status_code == 200, response.text
    report: dict[str, object] = response.json()
    return report


def field_of(response: object) -> list[object]:
    """Where a 422 says the fault is."""
    assert getattr(response, "status_code", None) == 422, getattr(response, "text", "")
    [error] = response.json()["detail"]  # type: ignore[attr-defined]
    loc: list[object] = error["loc"]
    return loc


def test_counts_give_every_status_and_the_active_subscribers_of_each_digest(
    client: TestClient, auth: dict[str, str], engine: sa.Engine, weekly: None
) -> None:
    upload(
        client,
        auth,
        "email,status,digests\n"
        "a@example.org,active,digest;weekly\n"
        "b@example.org,active,weekly\n"
        "c@example.org,pending,weekly\n"
        "d@example.org,bounced,digest\n",
    )
    counts = subscribers.subscriber_counts(engine)
    assert counts.by_status == {
        "pending": 1,
        "active": 2,
        "unsubscribed": 0,
        "bounced": 1,
        "complained": 0,
    }
    assert counts.total == 4
    assert [(d.slug, d.active) for d in counts.by_digest] == [("digest", 1), ("weekly", 2)]

    answer = client.get("/api/v1/subscribers/counts", headers=auth)
    assert answer.status_code == 200
    assert answer.json() == {
        "total": 4,
        "by_status": counts.by_status,
        "by_digest": [
            {"slug": "digest", "name": "Newsletter", "active": 1},
            {"slug": "weekly", "name": "Weekly", "active": 2},
        ],
    }


def test_add_then_get_and_a_second_add_of_the_address_is_a_conflict(
    client: TestClient, auth: dict[str, str], weekly: None
) -> None:
    body = {"email": " Dewi@Example.ORG ", "name": "Dewi", "digests": ["weekly"], "tags": ["korea"]}
    added = client.post("/api/v1/subscribers", json=body, headers=auth)
    assert added.status_code == 201, added.text
    shown = added.json()
    assert shown["email"] == "dewi@example.org"
    assert shown["status"] == "active"
    assert shown["digests"] == ["weekly"]
    assert shown["tags"] == ["korea"]
    assert shown["suppressed"] is None
    assert shown["confirmed_at"] is not None

    got = client.get("/api/v1/subscribers/DEWI@example.org", headers=auth)
    assert got.status_code == 200
    assert got.json() == shown

    again = client.post("/api/v1/subscribers", json={"email": "dewi@example.org"}, headers=auth)
    assert again.status_code == 409
    assert "dewi@example.org" in again.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not an address"}, "email"),
        ({"email": "x@example.org", "digests": ["monthly"]}, "digests"),
        ({"email": "x@example.org", "tags": ["nope"]}, "tags"),
        ({"email": "x@example.org", "colour": "red"}, "colour"),
        ({"name": "nobody"}, "email"),
    ],
)
def test_add_refuses_bad_input_naming_the_field(
    client: TestClient, auth: dict[str, str], body: dict[str, object], field: str
) -> None:
    answer = client.post("/api/v1/subscribers", json=body, headers=auth)
    assert field_of(answer)[-1] == field
    assert client.get("/api/v1/subscribers", headers=auth).json()["items"] == []


def test_add_with_confirm_queues_a_confirmation_and_leaves_the_reader_pending(
    client: TestClient, auth: dict[str, str]
) -> None:
    answer = client.post(
        "/api/v1/subscribers", json={"email": "New@example.org", "confirm": True}, headers=auth
    )
    assert answer.status_code == 202, answer.text
    assert answer.json()["email"] == "new@example.org"
    settle(client)
    got = client.get("/api/v1/subscribers/new@example.org", headers=auth).json()
    assert got["status"] == "pending"
    assert got["confirmed_at"] is None
    again = client.post(
        "/api/v1/subscribers", json={"email": "new@example.org", "confirm": True}, headers=auth
    )
    assert again.status_code == 409


def test_a_suppressed_address_is_not_added(client: TestClient, auth: dict[str, str]) -> None:
    held = client.post("/api/v1/subscribers/gone@example.org/suppress", headers=auth)
    assert held.status_code == 200
    for confirm in (False, True):
        answer = client.post(
            "/api/v1/subscribers",
            json={"email": "gone@example.org", "confirm": confirm},
            headers=auth,
        )
        assert field_of(answer) == ["body", "email"]
        assert "suppressed" in answer.json()["detail"][0]["msg"]


def test_pages_reach_the_end_without_duplicates(client: TestClient, auth: dict[str, str]) -> None:
    emails = [f"reader{i}@example.org" for i in range(7)]
    upload(client, auth, "email\n" + "\n".join(emails) + "\n")
    seen: list[str] = []
    sizes = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/api/v1/subscribers", params=params, headers=auth)
        assert page.status_code == 200
        body = page.json()
        sizes.append(len(body["items"]))
        seen += [item["email"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert sizes == [3, 3, 1]
    assert seen == emails  # in the order they came, each once


def test_an_exact_page_ends_without_an_empty_one(client: TestClient, auth: dict[str, str]) -> None:
    upload(client, auth, "email\na@example.org\nb@example.org\n")
    body = client.get("/api/v1/subscribers", params={"limit": 2}, headers=auth).json()
    assert len(body["items"]) == 2
    assert body["next_cursor"] is None


def test_search_and_filters(client: TestClient, auth: dict[str, str], weekly: None) -> None:
    upload(
        client,
        auth,
        "email,status,digests\n"
        "siti@kompas.example,active,weekly\n"
        "budi@tempo.example,pending,digest\n"
        "sitiawan@tempo.example,unsubscribed,digest\n"
        "100%_sure@tempo.example,active,digest\n",
    )

    def emails(**params: str) -> list[str]:
        page = client.get("/api/v1/subscribers", params=params, headers=auth)
        assert page.status_code == 200, page.text
        return [item["email"] for item in page.json()["items"]]

    assert emails(q="SITI") == ["siti@kompas.example", "sitiawan@tempo.example"]
    assert emails(q="tempo", status="pending") == ["budi@tempo.example"]
    assert emails(digest="weekly") == ["siti@kompas.example"]
    assert emails(q="siti", digest="digest") == ["sitiawan@tempo.example"]
    assert emails(q="%_") == ["100%_sure@tempo.example"]  # wildcards are plain text
    [row] = client.get("/api/v1/subscribers", params={"q": "sitiawan"}, headers=auth).json()[
        "items"
    ]
    assert row["status"] == "unsubscribed"
    assert row["suppressed"] == "unsubscribed"  # the import recorded the suppression


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "YWZ0ZXI6LTE"}, "cursor"),  # "after:-1"
        ({"status": "happy"}, "status"),
        ({"digest": "monthly"}, "digest"),
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"q": "nul\x00byte"}, "q"),
        ({"digest": "nul\x00byte"}, "digest"),
    ],
)
def test_a_bad_list_parameter_is_a_422_naming_it(
    client: TestClient, auth: dict[str, str], params: dict[str, str], field: str
) -> None:
    answer = client.get("/api/v1/subscribers", params=params, headers=auth)
    assert field_of(answer) == ["query", field]


def test_get_and_remove_an_unknown_address_is_404(client: TestClient, auth: dict[str, str]) -> None:
    assert client.get("/api/v1/subscribers/nobody@example.org", headers=auth).status_code == 404
    assert client.delete("/api/v1/subscribers/nobody@example.org", headers=auth).status_code == 404
    bad = client.get("/api/v1/subscribers/no-at-sign", headers=auth)
    assert field_of(bad) == ["path", "email"]


def test_remove_forgets_the_subscriber_and_keeps_a_suppression(
    client: TestClient, auth: dict[str, str]
) -> None:
    upload(client, auth, "email\nleaving@example.org\n")
    client.post("/api/v1/subscribers/leaving@example.org/suppress", headers=auth)
    removed = client.delete("/api/v1/subscribers/leaving@example.org", headers=auth)
    assert removed.status_code == 204
    assert removed.content == b""
    assert client.get("/api/v1/subscribers/leaving@example.org", headers=auth).status_code == 404
    report = upload(client, auth, "email\nleaving@example.org\n")
    assert report["suppressed"] == 1
    assert report["created"] == 0


def test_suppress_marks_the_subscriber_and_works_for_unknown_addresses(
    client: TestClient, auth: dict[str, str]
) -> None:
    upload(client, auth, "email\nreader@example.org\n")
    answer = client.post(
        "/api/v1/subscribers/Reader@example.org/suppress", json={"reason": "bounced"}, headers=auth
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["email"], body["reason"], body["by_operator"]) == (
        "reader@example.org",
        "bounced",
        True,
    )
    assert body["subscriber"]["status"] == "bounced"
    assert body["subscriber"]["suppressed"] == "bounced"

    stranger = client.post("/api/v1/subscribers/stranger@example.org/suppress", headers=auth)
    assert stranger.status_code == 200
    assert stranger.json()["reason"] == "unsubscribed"
    assert stranger.json()["subscriber"] is None

    bad = client.post(
        "/api/v1/subscribers/reader@example.org/suppress", json={"reason": "bored"}, headers=auth
    )
    assert field_of(bad) == ["body", "reason"]


def test_lifting_a_suppression_lets_the_address_be_added_again(
    client: TestClient, auth: dict[str, str]
) -> None:
    client.post("/api/v1/subscribers/back@example.org/suppress", headers=auth)
    body = {"email": "back@example.org"}
    refused = client.post("/api/v1/subscribers", json=body, headers=auth)
    assert field_of(refused) == ["body", "email"]
    lifted = client.delete("/api/v1/subscribers/back@example.org/suppression", headers=auth)
    assert lifted.status_code == 204
    again = client.delete("/api/v1/subscribers/back@example.org/suppression", headers=auth)
    assert again.status_code == 404
    added = client.post("/api/v1/subscribers", json=body, headers=auth)
    assert added.status_code == 201
    assert (added.json()["status"], added.json()["suppressed"]) == ("active", None)


def test_import_stores_good_rows_and_reports_each_bad_row_by_line(
    client: TestClient, auth: dict[str, str]
) -> None:
    report = upload(
        client,
        auth,
        "\ufeffemail,name,status\n"
        "ok@example.org,Ok,active\n"
        "broken-address,Bad,active\n"
        "fine@example.org,Fine,pending\n"
        "mood@example.org,Mood,grumpy\n",
    )
    assert report["created"] == 2
    assert report["failed"] == 2
    assert report["errors"] == [
        {"line": 3, "field": "email", "reason": "'broken-address' is not an email address"},
        {
            "line": 5,
            "field": "status",
            "reason": "'grumpy' is not one of pending, active, unsubscribed, bounced, complained",
        },
    ]
    listed = client.get("/api/v1/subscribers", headers=auth).json()["items"]
    assert [(s["email"], s["status"]) for s in listed] == [
        ("ok@example.org", "active"),
        ("fine@example.org", "pending"),
    ]


def test_import_refuses_what_is_not_utf8_csv_and_says_so(
    client: TestClient, auth: dict[str, str]
) -> None:
    latin1 = "email,name\nx@example.org,José\n".encode("latin-1")
    answer = client.post("/api/v1/subscribers/import", content=latin1, headers={**auth, **CSV})
    assert field_of(answer) == ["body"]
    assert "not UTF-8" in answer.json()["detail"][0]["msg"]

    no_header = client.post(
        "/api/v1/subscribers/import", content='{"email": "x@example.org"}', headers={**auth, **CSV}
    )
    assert field_of(no_header) == ["body"]
    assert "header" in no_header.json()["detail"][0]["msg"]

    empty = client.post("/api/v1/subscribers/import", content=b"", headers={**auth, **CSV})
    assert "empty" in empty.json()["detail"][0]["msg"]

    as_json = client.post(
        "/api/v1/subscribers/import",
        content="email\nx@example.org\n",
        headers={**auth, "content-type": "application/json"},
    )
    assert field_of(as_json) == ["header", "content-type"]
    assert "text/csv" in as_json.json()["detail"][0]["msg"]
    assert client.get("/api/v1/subscribers", headers=auth).json()["items"] == []


def test_import_is_bounded_in_size(client: TestClient, auth: dict[str, str]) -> None:
    huge = "email\n" + "x" * MAX_BODY_BYTES
    answer = client.post("/api/v1/subscribers/import", content=huge, headers={**auth, **CSV})
    assert answer.status_code == 413


def test_export_round_trips_through_import(
    client: TestClient, auth: dict[str, str], weekly: None
) -> None:
    upload(
        client,
        auth,
        "email,name,status,digests,tags,created_at\n"
        'a@example.org,"Kim, Ji-woo",active,digest;weekly,korea;japan,2026-01-02T03:04:05+00:00\n'
        "b@example.org,한국어 이름,pending,weekly,,2026-02-03T00:00:00+00:00\n"
        "c@example.org,,complained,digest,,2026-03-04T00:00:00+00:00\n",
    )
    answer = client.get("/api/v1/subscribers/export", headers=auth)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in answer.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(answer.text, newline="")))
    assert [r["email"] for r in rows] == ["a@example.org", "b@example.org", "c@example.org"]
    assert rows[0] == {
        "email": "a@example.org",
        "name": "Kim, Ji-woo",
        "status": "active",
        "digests": "digest;weekly",
        "tags": "japan;korea",
        "created_at": "2026-01-02T03:04:05+00:00",
    }
    assert rows[1]["name"] == "한국어 이름"

    again = upload(client, auth, answer.text)
    assert again["unchanged"] == 2  # the complained address is skipped as suppressed
    assert again["suppressed"] == 1
    assert again["created"] == again["updated"] == again["failed"] == 0

    only = client.get("/api/v1/subscribers/export", params={"status": "pending"}, headers=auth)
    assert [r["email"] for r in csv.DictReader(io.StringIO(only.text))] == ["b@example.org"]
    bad = client.get("/api/v1/subscribers/export", params={"status": "asleep"}, headers=auth)
    assert field_of(bad)[-1] == "status"


def test_export_streams_more_than_one_batch(engine: sa.Engine) -> None:
    emails = [f"r{i}@example.org" for i in range(5)]
    subscribers.import_rows(engine, [{"email": e} for e in emails], NOW, UTC)
    chunks = list(subscribers.csv_chunks(engine, batch=2))
    assert len(chunks) == 3
    rows = list(csv.DictReader(io.StringIO("".join(chunks))))
    assert [r["email"] for r in rows] == emails


def test_needs_a_token_and_writes_need_a_write_token(client: TestClient) -> None:
    assert client.get("/api/v1/subscribers").status_code == 401
    token = client.app.app.state.services.access.create_token("reader", Scope.read)  # type: ignore[attr-defined]
    read = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/subscribers/counts", headers=read).status_code == 200
    answer = client.post("/api/v1/subscribers", json={"email": "x@example.org"}, headers=read)
    assert answer.status_code == 403


def test_the_schema_documents_every_field_and_the_csv_bodies(client: TestClient) -> None:
    spec = client.get("/api/v1/openapi.json").json()
    schemas = spec["components"]["schemas"]
    assert set(schemas["SubscriberOut"]["properties"]) == {
        "email",
        "name",
        "status",
        "created_at",
        "confirmed_at",
        "digests",
        "tags",
        "suppressed",
    }
    assert set(schemas["NewSubscriber"]["properties"]) == {
        "email",
        "name",
        "digests",
        "tags",
        "confirm",
    }
    paths = spec["paths"]
    assert "text/csv" in paths["/api/v1/subscribers/import"]["post"]["requestBody"]["content"]
    assert "text/csv" in paths["/api/v1/subscribers/export"]["get"]["responses"]["200"]["content"]
    add = paths["/api/v1/subscribers"]["post"]["responses"]
    assert {"201", "202", "409", "422"} <= set(add)
    assert "404" in paths["/api/v1/subscribers/{email}"]["get"]["responses"]
