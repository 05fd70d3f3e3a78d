"""The editors' JSON API on digests and runs (/api/v1/digests, /api/v1/runs), and the use
cases it shares with the admin pages (audience size, run progress). Requests go through a
TestClient over the real app using the services of the `svc` fixture (an aiosmtpd sink, the
tests' clock); a second set of services plays the delivery worker."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from newsletter import services, subscribers
from newsletter.config import Settings
from newsletter.digests import RunProgress
from newsletter.digests.definitions import DigestInput
from newsletter.models import Scope
from newsletter.web import create_app
from tests.conftest import SmtpSink
from tests.digest_helpers import T0, Clock, deliver, html_of, post, reader, text_of, wired

API = "/api/v1"


class Api:
    """A client with a write token, and the services behind it."""

    def __init__(self, client: TestClient, svc: services.Services) -> None:
        self.client = client
        self.svc = svc
        token = svc.access.create_token("editor", Scope.write)
        self.headers = {"Authorization": f"Bearer {token}"}

    def get(self, path: str, **params: Any) -> Any:
        return self.client.get(API + path, params=params, headers=self.headers)

    def post(self, path: str, body: Any = None) -> Any:
        return self.client.post(API + path, json=body, headers=self.headers)

    def patch(self, path: str, body: Any) -> Any:
        return self.client.patch(API + path, json=body, headers=self.headers)

    def delete(self, path: str) -> Any:
        return self.client.delete(API + path, headers=self.headers)


@pytest.fixture
def api(settings: Settings, engine: sa.Engine, svc: services.Services) -> Iterator[Api]:
    with TestClient(create_app(settings, engine), base_url=settings.base_url) as client:
        # the routes use the tests' services: their clock and the SMTP sink
        client.app.app.state.services = svc  # type: ignore[attr-defined]
        yield Api(client, svc)
        client.portal.call(svc.mailer.close)  # type: ignore[union-attr]


@pytest.fixture
def worker(
    settings: Settings, engine: sa.Engine, smtp_sink: tuple[SmtpSink, int], clock: Clock
) -> services.Services:
    """Another process's services, sending what the API left to the workers."""
    return wired(settings, engine, smtp_sink[1], clock)


def loc(response: Any) -> list[list[str | int]]:
    assert response.status_code == 422, response.text
    return [item["loc"] for item in response.json()["detail"]]


def news(svc: services.Services, settings: Settings) -> None:
    """Posts for the next issue (the clock stands at T0 - 12 h): one on trade, one on energy."""
    post(svc.engine, settings, "tariffs-rise", T0 - timedelta(hours=20), ["trade"])
    post(svc.engine, settings, "dam-opens", T0 - timedelta(hours=18), ["energy"])


# --------------------------------------------------------------------------- use cases


def test_audience_size_counts_readers_who_would_get_a_post(
    svc: services.Services, settings: Settings, clock: Clock
) -> None:
    post(svc.engine, settings, "tariffs", T0 - timedelta(hours=20), ["trade"])
    post(svc.engine, settings, "dam", T0 - timedelta(hours=20), ["energy"])
    post(svc.engine, settings, "old", T0 - timedelta(days=5), ["korea"])
    reader(svc.engine, settings, "all@example.org")
    reader(svc.engine, settings, "trade@example.org", tags=("trade",))
    reader(svc.engine, settings, "korea@example.org", tags=("korea",))  # no new post
    reader(svc.engine, settings, "gone@example.org")
    svc.digests.create("weekly", DigestInput(name="Weekly"))
    reader(svc.engine, settings, "other@example.org", digests=("weekly",))
    subscribers.suppress(svc.engine, "gone@example.org", "bounced")
    assert svc.digests.audience_size("digest") == 2


def test_audience_size_of_an_empty_issue_follows_skip_if_empty(
    svc: services.Services, settings: Settings
) -> None:
    reader(svc.engine, settings, "all@example.org")
    assert svc.digests.audience_size("digest") == 0
    svc.digests.edit("digest", DigestInput(skip_if_empty=False))
    assert svc.digests.audience_size("digest") == 1


def test_progress_counts_sent_in_the_last_minute_and_says_finished(
    svc: services.Services,
    settings: Settings,
    engine: sa.Engine,
    clock: Clock,
    smtp_sink: tuple[SmtpSink, int],
) -> None:
    post(svc.engine, settings, "tariffs", T0 - timedelta(hours=20), ["trade"])
    for n in range(3):
        reader(svc.engine, settings, f"r{n}@example.org")
    run = svc.digests.send_now("digest")
    before = svc.digests.progress(run.id)
    assert isinstance(before, RunProgress)
    assert (before.status, before.finished, before.recipients) == ("sending", False, 3)
    assert before.counts == {"queued": 3} and before.sent_last_minute == 0
    deliver(wired(settings, engine, smtp_sink[1], clock), run.id)
    after = svc.digests.progress(run.id)
    assert (after.status, after.finished, after.counts) == ("sent", True, {"sent": 3})
    assert after.sent_last_minute == 3 and after.finished_at is not None
    clock.set(clock() + timedelta(minutes=2))
    assert svc.digests.progress(run.id).sent_last_minute == 0


# --------------------------------------------------------------------------- digests


def test_create_show_edit_list_and_delete_a_digest(api: Api) -> None:
    created = api.post(
        "/digests",
        {"slug": "weekly", "name": "  Weekly   Review ", "cron": "30 6 * * mon", "max_items": 5},
    )
    assert created.status_code == 201, created.text
    assert created.headers["location"] == "/api/v1/digests/weekly"
    body = created.json()
    assert (body["name"], body["cron"], body["max_items"]) == ("Weekly Review", "30 6 * * mon", 5)
    assert body["timezone"] == "Asia/Jakarta" and body["tags"] == []

    again = api.post("/digests", {"slug": "weekly", "name": "Other"})
    assert again.status_code == 409

    shown = api.get("/digests/weekly").json()
    # the clock stands at Thursday 19 November 2026, 19:00 in Jakarta
    assert shown["next_run"] == "2026-11-22T23:30:00Z"
    assert shown["next_run_local"] == "2026-11-23T06:30:00+07:00"
    assert shown["audience_size"] == 0

    edited = api.patch("/digests/weekly", {"timezone": "Europe/Paris", "skip_if_empty": False})
    assert edited.status_code == 200, edited.text
    assert edited.json()["cron"] == "30 6 * * mon"  # what was not given stays
    assert edited.json()["next_run_local"] == "2026-11-23T06:30:00+01:00"
    assert edited.json()["skip_if_empty"] is False

    assert [d["slug"] for d in api.get("/digests").json()] == ["digest", "weekly"]
    assert api.delete("/digests/weekly").status_code == 204
    assert api.get("/digests/weekly").status_code == 404
    assert api.delete("/digests/weekly").status_code == 404
    assert api.patch("/digests/weekly", {"name": "x"}).status_code == 404


def test_pause_and_resume_a_digest(api: Api) -> None:
    paused = api.post("/digests/digest/pause")
    assert paused.status_code == 200
    assert paused.json()["paused"] is True and paused.json()["next_run"] is None
    resumed = api.post("/digests/digest/resume").json()
    assert resumed["paused"] is False and resumed["next_run"] == "2026-11-20T00:00:00Z"
    assert api.post("/digests/nope/pause").status_code == 404


def test_audience_size_in_the_digest(api: Api, settings: Settings) -> None:
    news(api.svc, settings)
    reader(api.svc.engine, settings, "everything@example.org")
    reader(api.svc.engine, settings, "trade@example.org", tags=("trade",))
    post(api.svc.engine, settings, "old", T0 - timedelta(days=9), ["korea"])
    reader(api.svc.engine, settings, "korea@example.org", tags=("korea",))
    assert api.get("/digests/digest").json()["audience_size"] == 2


def test_preview_of_a_digest_with_a_tag_filter_shows_only_its_posts(
    api: Api, settings: Settings
) -> None:
    news(api.svc, settings)
    created = api.post("/digests", {"slug": "trade", "name": "Trade Desk", "tags": ["trade"]})
    assert created.status_code == 201, created.text
    html = api.get("/digests/trade/preview").json()
    assert html["format"] == "html" and html["subject"].startswith("Trade Desk")
    assert "Tariffs Rise" in html["body"] and "Dam Opens" not in html["body"]
    text = api.get("/digests/trade/preview", format="text").json()
    assert text["format"] == "text"
    assert "Tariffs Rise" in text["body"] and "Dam Opens" not in text["body"]

    # the tag changes: so does the preview
    api.patch("/digests/trade", {"tags": ["energy"]})
    changed = api.get("/digests/trade/preview", format="text").json()["body"]
    assert "Dam Opens" in changed and "Tariffs Rise" not in changed


def test_preview_for_one_subscriber_is_their_narrowed_view(api: Api, settings: Settings) -> None:
    news(api.svc, settings)
    reader(api.svc.engine, settings, "Dewi@Example.org", tags=("energy",), name="Dewi")
    mine = api.get("/digests/digest/preview", format="text", subscriber="dewi@example.org")
    assert mine.status_code == 200, mine.text
    body = mine.json()["body"]
    assert "Dam Opens" in body and "Tariffs Rise" not in body
    assert "dewi@example.org" in body
    whole = api.get("/digests/digest/preview", format="text").json()["body"]
    assert "Dam Opens" in whole and "Tariffs Rise" in whole

    assert api.get("/digests/digest/preview", subscriber="nobody@example.org").status_code == 404
    assert loc(api.get("/digests/digest/preview", subscriber="not an address")) == [
        ["query", "subscriber"]
    ]
    api.post("/digests", {"slug": "weekly", "name": "Weekly"})
    assert loc(api.get("/digests/weekly/preview", subscriber="dewi@example.org")) == [
        ["query", "subscriber"]
    ]
    assert loc(api.get("/digests/digest/preview", format="pdf")) == [["query", "format"]]
    assert api.get("/digests/nope/preview").status_code == 404


def test_a_test_send_arrives(api: Api, settings: Settings, smtp_sink: tuple[SmtpSink, int]) -> None:
    news(api.svc, settings)
    sent = api.post("/digests/digest/test", {"to": "editor@example.org"})
    assert sent.status_code == 202, sent.text
    [message] = smtp_sink[0].messages
    assert message["Message-ID"] == sent.json()["message_id"]
    assert message["To"].addresses[0].addr_spec == "editor@example.org"
    assert str(message["Subject"]).startswith("[Test] Morning Ledger")
    assert "Tariffs Rise" in text_of(message) and "Dam Opens" in html_of(message)

    assert loc(api.post("/digests/digest/test", {"to": "not an address"})) == [["body", "to"]]
    assert loc(api.post("/digests/digest/test", {})) == [["body", "to"]]
    assert loc(api.post("/digests/digest/test", {"to": "a@example.org", "cc": "x"})) == [
        ["body", "cc"]
    ]
    refused = api.post("/digests/digest/test", {"to": "bounce@example.org"})
    assert loc(refused) == [["body", "to"]]
    assert api.post("/digests/nope/test", {"to": "editor@example.org"}).status_code == 404
    assert len(smtp_sink[0].messages) == 1


# --------------------------------------------------------------------------- runs


def test_send_now_leaves_the_run_to_the_workers_until_everyone_has_it(
    api: Api, settings: Settings, worker: services.Services, smtp_sink: tuple[SmtpSink, int]
) -> None:
    news(api.svc, settings)
    for n in range(4):
        reader(api.svc.engine, settings, f"reader{n}@example.org")
    reader(api.svc.engine, settings, "energy@example.org", tags=("energy",))
    started = api.post("/digests/digest/send")
    assert started.status_code == 202, started.text
    run = started.json()
    assert started.headers["location"] == f"/api/v1/runs/{run['id']}"
    assert (run["status"], run["kind"], run["posts"], run["recipients"]) == (
        "sending",
        "manual",
        2,
        5,
    )
    assert run["counts"] == {"queued": 5} and not smtp_sink[0].messages

    shown = api.get(f"/runs/{run['id']}").json()
    assert (shown["sent_last_minute"], shown["finished"]) == (0, False)

    for _ in range(3):  # a worker sends; the page reads the run until it has finished
        deliver(worker, run["id"])
        shown = api.get(f"/runs/{run['id']}").json()
        if shown["finished"]:
            break
    assert shown["status"] == "sent" and shown["counts"] == {"sent": 5}
    assert shown["sent_last_minute"] == 5 and shown["finished_at"] is not None
    assert shown["started_at"] is not None
    assert len(smtp_sink[0].messages) == 5


def test_send_now_of_an_empty_issue_is_skipped(api: Api) -> None:
    started = api.post("/digests/digest/send")
    assert started.status_code == 202
    assert started.json()["status"] == "skipped" and started.json()["finished"] is True
    assert api.post("/digests/nope/send").status_code == 404


def test_pause_resume_and_cancel_a_run_and_what_its_state_refuses(
    api: Api, settings: Settings
) -> None:
    news(api.svc, settings)
    for n in range(3):
        reader(api.svc.engine, settings, f"reader{n}@example.org")
    run_id = api.post("/digests/digest/send").json()["id"]

    paused = api.post(f"/runs/{run_id}/pause")
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    assert paused.json()["reason"] == "paused by an editor"
    assert loc(api.post(f"/runs/{run_id}/pause")) == [["path", "run"]]
    resumed = api.post(f"/runs/{run_id}/resume")
    assert resumed.status_code == 200 and resumed.json()["status"] == "sending"
    assert loc(api.post(f"/runs/{run_id}/resume")) == [["path", "run"]]

    cancelled = api.post(f"/runs/{run_id}/cancel").json()
    assert cancelled["status"] == "cancelled" and cancelled["finished"] is True
    assert cancelled["counts"] == {"skipped": 3}
    for action in ("pause", "resume", "cancel"):
        refused = api.post(f"/runs/{run_id}/{action}")
        assert loc(refused) == [["path", "run"]], action
        assert refused.json()["detail"][0]["msg"]


@pytest.mark.parametrize("action", ["pause", "resume", "cancel"])
def test_run_actions_on_unknown_or_malformed_ids(api: Api, action: str) -> None:
    assert api.post(f"/runs/4242/{action}").status_code == 404
    assert loc(api.post(f"/runs/abc/{action}")) == [["path", "run"]]
    assert loc(api.post(f"/runs/0/{action}")) == [["path", "run"]]
    assert loc(api.post(f"/runs/{2**70}/{action}")) == [["path", "run"]]


def test_show_an_unknown_or_malformed_run(api: Api) -> None:
    assert api.get("/runs/4242").status_code == 404
    assert loc(api.get("/runs/-1")) == [["path", "run"]]
    assert loc(api.get("/runs/1.5")) == [["path", "run"]]
    assert loc(api.get(f"/runs/{2**31}")) == [["path", "run"]]


def test_runs_are_listed_newest_first_a_page_at_a_time(api: Api, clock: Clock) -> None:
    api.post("/digests", {"slug": "weekly", "name": "Weekly"})
    made: list[int] = []
    for n in range(7):  # empty issues: each run is skipped at once, which is all we need
        clock.set(T0 - timedelta(hours=11) + timedelta(minutes=n))
        made.append(
            api.post("/digests/" + ("weekly" if n % 3 == 0 else "digest") + "/send").json()["id"]
        )
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.get("/runs", **params).json()
        seen += [r["id"] for r in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == made[::-1] and pages == 4

    weekly = api.get("/runs", digest="weekly", limit=100).json()
    assert [r["id"] for r in weekly["items"]] == [made[6], made[3], made[0]]
    assert weekly["next_cursor"] is None
    assert len(api.get("/runs", status="skipped").json()["items"]) == 7
    assert api.get("/runs", status="sent").json() == {"items": [], "next_cursor": None}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"cursor": "bm90IGEgY3Vyc29y"}, "cursor"),
        ({"cursor": "!!"}, "cursor"),
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"status": "lost"}, "status"),
        ({"digest": "nope"}, "digest"),
        ({"digest": "Not A Slug"}, "digest"),
    ],
)
def test_bad_run_filters_are_named(api: Api, params: dict[str, Any], field: str) -> None:
    assert loc(api.get("/runs", **params)) == [["query", field]]


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"cron": "every morning"}, "cron"),
        ({"cron": "0 7 31 2 *"}, "cron"),
        ({"cron": ""}, "cron"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"timezone": "x" * 300}, "timezone"),
        ({"max_items": 0}, "max_items"),
        ({"max_items": 101}, "max_items"),
        ({"max_items": "many"}, "max_items"),
        ({"tags": ["no-such-tag"]}, "tags"),
        ({"tags": "trade"}, "tags"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 100_000}, "name"),
        ({"name": "bad\x00name"}, "name"),
        ({"template": "missing"}, "template"),
        ({"subject": "{{ unclosed"}, "subject"),
        ({"skip_if_empty": "perhaps"}, "skip_if_empty"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_bad_definitions_are_refused_naming_the_field(
    api: Api, body: dict[str, Any], field: str
) -> None:
    before = api.get("/digests/digest").json()
    edited = api.patch("/digests/digest", body)
    assert [at[-1] for at in loc(edited)] == [field], edited.text
    created = api.post("/digests", {"slug": "fresh", "name": "Fresh", **body})
    assert [at[-1] for at in loc(created)] == [field], created.text
    assert api.get("/digests/digest").json() == before
    assert api.get("/digests/fresh").status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "No slug"}, "slug"),
        ({"slug": "Not A Slug", "name": "x"}, "slug"),
        ({"slug": "x" * 201, "name": "x"}, "slug"),
        ({"slug": "fresh"}, "name"),
        ({"slug": 7, "name": "x"}, "slug"),
    ],
)
def test_creating_needs_a_slug_and_a_name(api: Api, body: dict[str, Any], field: str) -> None:
    assert [at[-1] for at in loc(api.post("/digests", body))] == [field]


def test_bodies_that_are_not_objects_are_refused(api: Api) -> None:
    for body in ([], "text", 5, None):
        assert api.post("/digests", body).status_code == 422
        assert api.patch("/digests/digest", body).status_code == 422
    raw = api.client.post(
        API + "/digests",
        content=b"{not json",
        headers={**api.headers, "content-type": "application/json"},
    )
    assert raw.status_code == 422


def test_slugs_in_the_path_that_cannot_be_digests_are_refused(api: Api) -> None:
    for slug in ("UPPER", "x" * 201, "a%00b", "-"):
        assert api.get(f"/digests/{slug}").status_code == 422, slug


# --------------------------------------------------------------------------- the contract


def test_the_schema_documents_every_field(api: Api) -> None:
    schema = api.client.get(API + "/openapi.json").json()
    for path in (
        "/api/v1/digests",
        "/api/v1/digests/{slug}",
        "/api/v1/digests/{slug}/preview",
        "/api/v1/digests/{slug}/test",
        "/api/v1/digests/{slug}/send",
        "/api/v1/runs",
        "/api/v1/runs/{run}",
        "/api/v1/runs/{run}/cancel",
    ):
        assert path in schema["paths"], path
    fields = schema["components"]["schemas"]["NewDigest"]["properties"]
    assert {"slug", "name", "tags", "max_items", "cron", "timezone", "subject"} <= set(fields)
    assert "422" in schema["paths"]["/api/v1/runs/{run}/pause"]["post"]["responses"]
    assert "409" in schema["paths"]["/api/v1/digests"]["post"]["responses"]


def test_tokens_are_needed_and_read_tokens_only_read(api: Api) -> None:
    assert api.client.get(API + "/digests").status_code == 401
    read = api.svc.access.create_token("reader", Scope.read)
    headers = {"Authorization": f"Bearer {read}"}
    assert api.client.get(API + "/runs", headers=headers).status_code == 200
    assert api.client.post(API + "/digests/digest/send", headers=headers).status_code == 403
