"""Seeing delivery work: the counters of newsletter.metrics, GET /metrics in the Prometheus
text format and who may read it, and `newsletter runs show --follow`.

The counters are the process's own and other tests move them too, so every assertion
here is on a difference between two scrapes."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from newsletter import metrics, services
from newsletter.cli import digests as cli_digests
from newsletter.cli import main
from newsletter.config import MetricsSettings, Settings, load
from newsletter.errors import ConfigError
from newsletter.web import create_app
from newsletter.web.metrics import allowed
from tests.digest_helpers import Clock, deliver, firing_with_posts, reader

LOCAL = ("127.0.0.1", 40000)
OUTSIDE = ("203.0.113.7", 40000)


def sample(text: str, name: str, **labels: str) -> float:
    """The value of the sample `name` with exactly `labels` (0 when absent)."""
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return float(found.value)
    return 0.0


def scrape(app_client: TestClient) -> str:
    response = app_client.get("/metrics")
    assert response.status_code == 200, response.text
    return response.text


@pytest.fixture
def local(settings: Settings, engine: sa.Engine) -> Iterator[TestClient]:
    """The web app as a client on loopback sees it (the default `[metrics] allow`)."""
    with TestClient(create_app(settings, engine), base_url=settings.base_url, client=LOCAL) as c:
        yield c


@pytest.fixture
def sending_run(svc: services.Services, settings: Settings, clock: Clock) -> int:
    """A run whose three ledger rows are written and queued, none sent yet."""
    for name in ("ayu", "budi", "citra"):
        reader(svc.engine, settings, f"{name}@example.org")
    run_id = firing_with_posts(svc, settings, clock)
    assert svc.digests.run(run_id).status == "sending"
    return run_id


# ----------------------------------------------------------------------------- the module


def test_recording_functions_count_by_label() -> None:
    before = metrics.render().decode()
    metrics.delivered("metrics-test", "sent", 3)
    metrics.delivered("metrics-test", "deferred")
    metrics.smtp_reply("mx.test:25", 250, 2)
    metrics.smtp_reply("mx.test:25", None)
    metrics.lease_expired(4)
    metrics.feed_request("hit")
    after = metrics.render().decode()

    def moved(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert moved("newsletter_deliveries_total", digest="metrics-test", outcome="sent") == 3
    assert moved("newsletter_deliveries_total", digest="metrics-test", outcome="deferred") == 1
    assert moved("newsletter_smtp_replies_total", relay="mx.test:25", code="250") == 2
    assert moved("newsletter_smtp_replies_total", relay="mx.test:25", code="none") == 1
    assert moved("newsletter_lease_expiries_total") == 4
    assert moved("newsletter_feed_requests_total", result="hit") == 1
    assert sample(after, "newsletter_send_rate") > 0
    assert "newsletter_ledger_rows_waiting" not in after  # only with a `waiting` function


def test_send_rate_averages_the_last_minute_of_sent_messages() -> None:
    now = [1000.0]
    rate = metrics._SendRate(clock=lambda: now[0])
    assert rate.per_second() == 0
    for _ in range(30):  # 4 messages a second, in seconds 1000-1029
        rate.add(4)
        now[0] += 1
    assert rate.per_second() == pytest.approx(120 / 60)
    now[0] += 44  # second 1074: the window is seconds 1015-1074, the last 15 of the 30
    assert rate.per_second() == pytest.approx(60 / 60)
    now[0] += 3600  # an idle hour: slots of old seconds never count again
    assert rate.per_second() == 0
    rate.add(6)
    assert rate.per_second() == pytest.approx(6 / 60)


def test_render_reports_waiting_rows_with_every_status() -> None:
    text = metrics.render(lambda: {"queued": 7}).decode()
    assert sample(text, "newsletter_ledger_rows_waiting", status="queued") == 7
    assert sample(text, "newsletter_ledger_rows_waiting", status="deferred") == 0
    assert 'newsletter_ledger_rows_waiting{status="sending"} 0.0' in text


# ----------------------------------------------------------------------------- GET /metrics


def test_metrics_answer_in_the_prometheus_text_format(local: TestClient) -> None:
    response = local.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert response.headers["cache-control"] == "no-store"
    families = {f.name: f.type for f in text_string_to_metric_families(response.text)}
    assert families["newsletter_feed_requests"] == "counter"
    assert families["newsletter_send_rate"] == "gauge"
    assert families["newsletter_ledger_rows_waiting"] == "gauge"
    assert "/metrics" not in local.get("/api/v1/openapi.json").text


def test_a_feed_requested_twice_counts_a_render_then_a_hit(local: TestClient) -> None:
    before = scrape(local)
    first = local.get("/feed.rss")
    second = local.get("/feed.rss")
    assert first.status_code == second.status_code == 200
    unchanged = local.get("/feed.rss", headers={"If-None-Match": first.headers["etag"]})
    assert unchanged.status_code == 304
    after = scrape(local)
    moved = {
        result: sample(after, "newsletter_feed_requests_total", result=result)
        - sample(before, "newsletter_feed_requests_total", result=result)
        for result in metrics.FEED_RESULTS
    }
    assert moved == {"render": 1, "hit": 1, "not_modified": 1}


def test_ledger_rows_waiting_for_a_run_in_progress(
    svc: services.Services, settings: Settings, sending_run: int
) -> None:
    with TestClient(create_app(settings, svc.engine), client=LOCAL) as c:
        text = scrape(c)
        assert sample(text, "newsletter_ledger_rows_waiting", status="queued") == 3
        assert sample(text, "newsletter_ledger_rows_waiting", status="sending") == 0
        svc.digests.pause_run(sending_run)  # paused runs still wait
        assert sample(scrape(c), "newsletter_ledger_rows_waiting", status="queued") == 3
        svc.digests.cancel_run(sending_run)  # a cancel skips them: nothing waits
        assert sample(scrape(c), "newsletter_ledger_rows_waiting", status="queued") == 0


def test_clients_outside_allow_get_the_404_of_a_path_that_does_not_exist(
    settings: Settings, engine: sa.Engine
) -> None:
    with TestClient(create_app(settings, engine), client=OUTSIDE) as c:
        refused = c.get("/metrics")
        absent = c.get("/no-such-path")
        assert refused.status_code == absent.status_code == 404
        assert refused.content == absent.content
        assert "newsletter_" not in refused.text
    opened = dataclasses.replace(settings, metrics=MetricsSettings(allow="203.0.113.0/24"))
    with TestClient(create_app(opened, engine), client=OUTSIDE) as c:
        assert c.get("/metrics").status_code == 200
    off = dataclasses.replace(settings, metrics=MetricsSettings(enabled=False))
    with TestClient(create_app(off, engine), client=LOCAL) as c:
        assert c.get("/metrics").status_code == 404


def test_allow_matches_networks_and_ipv4_mapped_addresses() -> None:
    default = MetricsSettings()
    assert allowed(default, "127.0.0.1") and allowed(default, "127.8.9.1")
    assert allowed(default, "::1") and allowed(default, "::ffff:127.0.0.1")
    assert not allowed(default, "10.0.0.1") and not allowed(default, "::2")
    assert not allowed(default, "testclient") and not allowed(default, None)
    private = MetricsSettings(allow="10.0.0.0/8, fd00::/8")
    assert allowed(private, "10.20.30.40") and allowed(private, "fd12::9")
    assert not allowed(private, "127.0.0.1")
    assert not allowed(MetricsSettings(allow=""), "127.0.0.1")  # nobody


def test_a_bad_allow_list_stops_the_start(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[metrics]\nallow = "127.0.0.1/8, localhost"\n')
    with pytest.raises(ConfigError, match=r"\[metrics\] allow = '127.0.0.1/8, localhost'"):
        load(path, environ={})
    path.write_text("")
    loaded = load(path, environ={"NEWSLETTER_METRICS__ENABLED": "false"})
    assert loaded.metrics.enabled is False


# ----------------------------------------------------------------------------- runs show --follow


def show(tmp_path: Path, database_url: str, *args: str) -> Result:
    config = tmp_path / "config.toml"
    if not config.exists():
        config.write_text("")
    env = {"NEWSLETTER_DATABASE__URL": database_url}
    return CliRunner().invoke(main, ["--config", str(config), "runs", "show", *args], env=env)


def progress_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if "  rate " in line]


def test_follow_on_a_finished_run_prints_the_summary_and_exits(
    svc: services.Services, tmp_path: Path, database_url: str, sending_run: int
) -> None:
    deliver(svc, sending_run)
    shown = show(tmp_path, database_url, str(sending_run), "--follow")
    assert shown.exit_code == 0, shown.output
    [line] = progress_lines(shown.output)
    assert line.split()[1] == "sent" and "sent 3" in line and "waiting 0" in line
    assert f"run {sending_run}  digest" in shown.output
    assert "subject:" in shown.output and "window:" in shown.output


def test_follow_prints_until_the_run_is_paused_elsewhere(
    svc: services.Services,
    tmp_path: Path,
    database_url: str,
    sending_run: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cli_digests, "FOLLOW_SECONDS", 0.05)
    pauser = threading.Timer(0.6, svc.digests.pause_run, (sending_run,))
    pauser.start()
    try:
        shown = show(tmp_path, database_url, str(sending_run), "-f")
    finally:
        pauser.join()
    assert shown.exit_code == 0, shown.output
    lines = progress_lines(shown.output)
    statuses = [line.split()[1] for line in lines]
    assert statuses[-1] == "paused" and statuses.count("sending") >= 3
    assert set(statuses) == {"sending", "paused"}
    assert all("waiting 3" in line and "sent 0" in line for line in lines)
    assert "paused by an editor" in shown.output  # the summary, with its reason


def test_ctrl_c_stops_following_and_leaves_the_run_alone(
    svc: services.Services,
    tmp_path: Path,
    database_url: str,
    sending_run: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def interrupted(_seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_digests, "_sleep", interrupted)
    shown = show(tmp_path, database_url, str(sending_run), "--follow")
    assert shown.exit_code == 0, shown.output
    assert f"stopped following run {sending_run}; the run itself goes on" in shown.output
    assert len(progress_lines(shown.output)) == 1
    assert svc.digests.run(sending_run).status == "sending"
