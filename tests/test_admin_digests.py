"""The editors' digest and run pages (/admin/digests, /admin/runs) through the app: forms
with CSRF tokens, errors beside their fields, previews, a test sent to a real SMTP server,
send now behind its confirmation, and a run's progress, pause, resume and cancel."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from newsletter.config import Settings
from newsletter.mail import SmtpMailer
from newsletter.web import create_app
from tests.admin_helpers import PASSWORD, csrf, with_admin
from tests.conftest import SmtpSink
from tests.digest_helpers import html_of, post, reader, text_of


@pytest.fixture
def admin(
    settings: Settings, engine: sa.Engine, smtp_sink: tuple[SmtpSink, int]
) -> Iterator[TestClient]:
    """A logged-in editor's browser on an app that mails through the SMTP sink, with posts
    on two tags from the last hours and three readers of the default digest."""
    cfg = with_admin(settings)
    mailer = SmtpMailer("127.0.0.1", smtp_sink[1], "none", pool_size=2, timeout=5)
    now = datetime.now(UTC)
    post(engine, cfg, "tariffs-rise", now - timedelta(hours=2), ["trade"], title="Tariffs rise")
    post(engine, cfg, "summit-ends", now - timedelta(hours=1), ["politics"], title="Summit ends")
    reader(engine, cfg, "dewi@example.org", name="Dewi")
    reader(engine, cfg, "budi@example.org", tags=("politics",))
    reader(engine, cfg, "sari@example.org")
    with TestClient(create_app(cfg, engine, mailer), base_url=cfg.base_url) as client:
        form = client.get("/admin/login")
        answer = client.post(
            "/admin/login",
            data={"csrf_token": csrf(form.text), "username": "admin", "password": PASSWORD},
            follow_redirects=False,
        )
        assert answer.status_code == 303
        yield client


def _post(client: TestClient, path: str, data: dict[str, object], page: str = "") -> object:
    token = csrf(page or client.get("/admin/digests").text)
    return client.post(path, data={**data, "csrf_token": token}, follow_redirects=False)


def _srcdoc(page: str) -> str:
    found = re.search(r'<iframe id="preview-html"[^>]*srcdoc="([^"]*)"', page)
    assert found, page
    return html.unescape(found.group(1))


def _text_preview(page: str) -> str:
    found = re.search(r'<pre id="preview-text"[^>]*>(.*?)</pre>', page, re.S)
    assert found
    return html.unescape(found.group(1))


FORM = {
    "slug": "politics-weekly",
    "name": "Politics Weekly",
    "description": "The week in politics.",
    "tags": ["politics"],
    "max_items": "5",
    "repeat": "weekly",
    "weekday": "fri",
    "at": "17:30",
    "timezone": "Asia/Seoul",
    "subject": "{{ digest.name }}",
    "template": "digest",
}


def test_pages_need_a_logged_in_editor(client: TestClient) -> None:
    for path in ("/admin/digests", "/admin/digests/digest/edit", "/admin/runs", "/admin/runs/1"):
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/admin/login?next=")


def test_forms_without_a_csrf_token_are_refused(admin: TestClient) -> None:
    for path in (
        "/admin/digests/new",
        "/admin/digests/digest/edit",
        "/admin/digests/digest/pause",
        "/admin/digests/digest/test",
        "/admin/digests/digest/send",
        "/admin/runs/1/cancel",
    ):
        assert admin.post(path, data={"name": "x", "to": "a@example.org"}).status_code == 403
    digests = admin.app.app.state.services.digests  # type: ignore[attr-defined]
    assert not digests.get("digest").paused and digests.runs("digest") == []


def test_create_shows_each_error_beside_its_field_and_keeps_what_was_typed(
    admin: TestClient,
) -> None:
    cases = [
        ({"slug": "Not A Slug"}, "slug"),
        ({"name": ""}, "name"),
        ({"max_items": "500"}, "max_items"),
        ({"max_items": "many"}, "max_items"),
        ({"tags": ["no-such-tag"]}, "tags"),
        ({"at": "25:00"}, "schedule"),
        ({"repeat": "cron", "cron": "every morning"}, "cron"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"template": "missing"}, "template"),
        ({"subject": "{{ digest.name"}, "subject"),
    ]
    for change, field in cases:
        answer = _post(admin, "/admin/digests/new", {**FORM, **change})
        assert answer.status_code == 422, (change, answer.text)  # type: ignore[attr-defined]
        page = answer.text  # type: ignore[attr-defined]
        error = re.search(rf'<p class="field-error" id="{field}-error">([^<]+)</p>', page)
        assert error, (field, page)
        assert f'aria-describedby="{field}-error' in page
        assert 'aria-invalid="true"' in page or field == "tags"
        assert 'value="The week in politics.' not in page  # a textarea keeps it as text
        assert "The week in politics." in page
    assert "Politics Weekly" not in admin.get("/admin/digests").text


def test_create_then_list_then_edit(admin: TestClient) -> None:
    answer = _post(admin, "/admin/digests/new", FORM)
    assert answer.status_code == 303  # type: ignore[attr-defined]
    assert answer.headers["location"].startswith(  # type: ignore[attr-defined]
        "/admin/digests/politics-weekly/edit?notice="
    )
    listing = admin.get("/admin/digests").text
    assert "Politics Weekly" in listing and "Every Friday at 17:30" in listing
    assert "Asia/Seoul" in listing and "KST" in listing  # next issue in the digest's zone
    assert "active" in listing and "politics" in listing

    taken = _post(admin, "/admin/digests/new", FORM)
    assert taken.status_code == 422  # type: ignore[attr-defined]
    assert 'id="slug-error"' in taken.text  # type: ignore[attr-defined]

    page = admin.get("/admin/digests/politics-weekly/edit").text
    assert re.search(r'<option value="weekly" selected>', page)
    assert re.search(r'value="politics" checked', page)
    saved = _post(
        admin,
        "/admin/digests/politics-weekly/edit",
        {**FORM, "tags": ["trade"], "repeat": "daily", "at": "06:15", "send_if_empty": "1"},
        page,
    )
    assert saved.status_code == 303  # type: ignore[attr-defined]
    view = admin.app.app.state.services.digests.get("politics-weekly")  # type: ignore[attr-defined]
    assert (view.tags, view.cron, view.skip_if_empty) == (("trade",), "15 6 * * *", False)

    wrong = _post(admin, "/admin/digests/politics-weekly/edit", {**FORM, "max_items": "0"})
    assert wrong.status_code == 422  # type: ignore[attr-defined]
    assert 'id="max_items-error"' in wrong.text  # type: ignore[attr-defined]
    assert 'value="0"' in wrong.text  # type: ignore[attr-defined]


def test_pause_and_resume_from_the_list(admin: TestClient) -> None:
    paused = _post(admin, "/admin/digests/digest/pause", {})
    assert paused.status_code == 303  # type: ignore[attr-defined]
    listing = admin.get(paused.headers["location"]).text  # type: ignore[attr-defined]
    assert "is paused" in listing and "none while paused" in listing
    assert _post(admin, "/admin/digests/digest/resume", {}).status_code == 303  # type: ignore[attr-defined]
    assert not admin.app.app.state.services.digests.get("digest").paused  # type: ignore[attr-defined]


def test_preview_follows_the_tag_filter_and_one_subscriber(admin: TestClient) -> None:
    page = admin.get("/admin/digests/digest/edit").text
    whole = _srcdoc(page)
    assert "Tariffs rise" in whole and "Summit ends" in whole
    assert "Tariffs rise" in _text_preview(page)

    _post(admin, "/admin/digests/digest/edit", {**FORM, "tags": ["trade"]}, page)
    narrowed = admin.get("/admin/digests/digest/edit").text
    assert "Tariffs rise" in _srcdoc(narrowed) and "Summit ends" not in _srcdoc(narrowed)
    _post(admin, "/admin/digests/digest/edit", {**FORM, "tags": []}, page)

    budi = admin.get("/admin/digests/digest/edit", params={"subscriber": "budi@example.org"})
    assert "Summit ends" in _srcdoc(budi.text) and "Tariffs rise" not in _srcdoc(budi.text)
    assert "Showing the issue budi@example.org gets." in budi.text

    nobody = admin.get("/admin/digests/digest/edit", params={"subscriber": "who@example.org"})
    assert 'id="subscriber-error"' in nobody.text and "no subscriber" in nobody.text
    assert "Tariffs rise" in _srcdoc(nobody.text)  # the whole issue instead

    alone = admin.get("/admin/digests/digest/preview", params={"format": "html"})
    assert alone.headers["content-type"].startswith("text/html")
    assert alone.headers["content-security-policy"] == "sandbox"
    text = admin.get(
        "/admin/digests/digest/preview",
        params={"format": "text", "subscriber": "budi@example.org"},
    )
    assert text.headers["content-type"].startswith("text/plain")
    assert "Summit ends" in text.text and "Tariffs rise" not in text.text


def test_the_draft_preview_follows_unsaved_settings(admin: TestClient) -> None:
    page = admin.get("/admin/digests/digest/edit").text
    draft = _post(admin, "/admin/digests/digest/preview-draft", {**FORM, "tags": ["trade"]}, page)
    assert draft.status_code == 200  # type: ignore[attr-defined]
    bodies = draft.json()  # type: ignore[attr-defined]
    assert "Tariffs rise" in bodies["html"] and "Summit ends" not in bodies["html"]
    assert "Tariffs rise" in bodies["text"] and "Summit ends" not in bodies["text"]
    # nothing was saved: the page still previews every tag
    assert "Summit ends" in _srcdoc(admin.get("/admin/digests/digest/edit").text)
    one = _post(
        admin,
        "/admin/digests/digest/preview-draft",
        {**FORM, "tags": [], "subscriber": "budi@example.org"},
        page,
    )
    assert "Summit ends" in one.json()["text"] and "Tariffs rise" not in one.json()["text"]  # type: ignore[attr-defined]
    bad = _post(admin, "/admin/digests/digest/preview-draft", {**FORM, "max_items": "0"}, page)
    assert bad.status_code == 422  # type: ignore[attr-defined]
    assert bad.json()["field"] == "max_items"  # type: ignore[attr-defined]
    forged = admin.post("/admin/digests/digest/preview-draft", data=FORM)
    assert forged.status_code == 403


def test_a_test_send_arrives_at_the_smtp_server(
    admin: TestClient, smtp_sink: tuple[SmtpSink, int]
) -> None:
    sink, _ = smtp_sink
    sent = _post(admin, "/admin/digests/digest/test", {"to": "Editor@Example.org"})
    assert sent.status_code == 303  # type: ignore[attr-defined]
    [message] = sink.messages
    assert message["To"].addresses[0].addr_spec == "editor@example.org"
    assert message["Subject"].startswith("[Test]")
    assert "Tariffs rise" in text_of(message) and "Summit ends" in html_of(message)

    wrong = _post(admin, "/admin/digests/digest/test", {"to": "not an address"})
    assert wrong.status_code == 422  # type: ignore[attr-defined]
    assert 'id="to-error"' in wrong.text  # type: ignore[attr-defined]
    assert 'value="not an address"' in wrong.text  # type: ignore[attr-defined]
    assert "Nothing was saved" not in wrong.text  # type: ignore[attr-defined]
    assert len(sink.messages) == 1


def test_send_now_says_how_many_then_the_run_page_follows_it(
    admin: TestClient, smtp_sink: tuple[SmtpSink, int]
) -> None:
    services = admin.app.app.state.services  # type: ignore[attr-defined]
    confirm = admin.get("/admin/digests/digest/send")
    assert "3 people" in confirm.text
    assert not services.digests.runs("digest")  # asking creates nothing
    sent = _post(admin, "/admin/digests/digest/send", {}, confirm.text)
    assert sent.status_code == 303  # type: ignore[attr-defined]
    location = sent.headers["location"]  # type: ignore[attr-defined]
    run_id = int(re.search(r"/admin/runs/(\d+)", location).group(1))  # type: ignore[union-attr]

    page = admin.get(f"/admin/runs/{run_id}").text
    assert 'id="run-status" aria-live="polite">sending<' in page
    assert '<progress id="run-progress" max="3" value="0"' in page
    assert 'http-equiv="refresh"' in page and "Reload" in page
    progress = admin.get(f"/admin/runs/{run_id}/progress.json").json()
    assert progress["counts"]["pending"] == 3 and not progress["finished"]

    admin.portal.call(services.digests.deliver, run_id)  # type: ignore[attr-defined]
    done = admin.get(f"/admin/runs/{run_id}/progress.json").json()
    assert done["status_text"] == "finished (sent)" and done["finished"]
    assert done["counts"]["sent"] == 3 and done["done"] == 3 == done["recipients"]
    assert done["sent_last_minute"] == 3
    assert len(smtp_sink[0].messages) == 3
    page = admin.get(f"/admin/runs/{run_id}").text
    assert "finished (sent)" in page and 'http-equiv="refresh"' not in page
    listing = admin.get("/admin/runs").text
    assert f"/admin/runs/{run_id}" in listing and "3 sent of 3" in listing


def test_pause_resume_and_cancel_a_run(admin: TestClient) -> None:
    services = admin.app.app.state.services  # type: ignore[attr-defined]
    run_id = services.digests.send_now("digest").id  # no sender runs here: it waits
    page = admin.get(f"/admin/runs/{run_id}").text
    paused = _post(admin, f"/admin/runs/{run_id}/pause", {}, page)
    assert paused.status_code == 303  # type: ignore[attr-defined]
    page = admin.get(f"/admin/runs/{run_id}").text
    assert ">paused<" in page and "/resume" in page
    again = _post(admin, f"/admin/runs/{run_id}/pause", {}, page)
    assert again.status_code == 409  # type: ignore[attr-defined]
    assert "Not paused" in again.text  # type: ignore[attr-defined]
    assert _post(admin, f"/admin/runs/{run_id}/resume", {}, page).status_code == 303  # type: ignore[attr-defined]
    assert services.digests.run(run_id).status == "sending"

    confirm = admin.get(f"/admin/runs/{run_id}/cancel")
    assert "3 recipients not yet mailed" in confirm.text
    assert services.digests.run(run_id).status == "sending"  # asking changes nothing
    cancelled = _post(admin, f"/admin/runs/{run_id}/cancel", {}, confirm.text)
    assert cancelled.status_code == 303  # type: ignore[attr-defined]
    progress = admin.get(f"/admin/runs/{run_id}/progress.json").json()
    assert progress["status_text"] == "finished (cancelled)"
    assert progress["counts"]["skipped"] == 3
    assert admin.get("/admin/runs/999999").status_code == 404
