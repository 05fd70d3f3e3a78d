"""Digests end to end on a real database and a real SMTP server (aiosmtpd): definitions,
the scheduler's tick at injected times, windows, narrowing and segments, and delivery
through the ledger with every kind of SMTP answer."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from newsletter import services, storage
from newsletter.config import Settings
from newsletter.digests import schedule
from newsletter.digests.definitions import DigestInput
from newsletter.errors import InvalidInputError, NotFoundError
from newsletter.models import DeliveryStatus, RunStatus
from newsletter.subscribers import links
from tests.conftest import SmtpSink
from tests.digest_helpers import (
    DAY,
    T0,
    Clock,
    daily_digest,
    deliver,
    deliver_together,
    firing_with_posts,
    html_of,
    mail_to,
    post,
    reader,
    text_of,
    wired,
)

JAKARTA_7AM = T0


@pytest.fixture
def sink(smtp_sink: tuple[SmtpSink, int]) -> SmtpSink:
    return smtp_sink[0]


def statuses(svc: services.Services, run_id: int) -> dict[str, str]:
    with Session(svc.engine) as session:
        rows = storage.ledger(session, run_id)
        emails = {s.id: s.email for s, _ in storage.subscribers(session) if s.id is not None}
    return {emails[r.subscriber_id]: r.status for r in rows}


# ----------------------------------------------------------------------------- definitions


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"cron": "61 7 * * *"}, "cron"),
        ({"cron": "every day"}, "cron"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"tags": ("no-such-tag",)}, "tags"),
        ({"template": "nope"}, "template"),
        ({"subject": "{{ digest.nonexistent.deeper }}"}, "subject"),
        ({"subject": "{% if %}"}, "subject"),
        ({"max_items": 0}, "max_items"),
    ],
)
def test_a_bad_definition_is_refused_naming_the_field_and_nothing_is_stored(
    svc: services.Services, fields: dict[str, object], field: str
) -> None:
    before = svc.digests.all()
    with pytest.raises(InvalidInputError) as refused:
        svc.digests.create("weekly", DigestInput(name="Weekly", **fields))  # type: ignore[arg-type]
    assert refused.value.field == field
    with pytest.raises(InvalidInputError) as refused_edit:
        svc.digests.edit("digest", DigestInput(**fields))  # type: ignore[arg-type]
    assert refused_edit.value.field == field
    assert svc.digests.all() == before


def test_presets_become_cron_in_the_digests_zone(svc: services.Services) -> None:
    view = svc.digests.create(
        "weekly",
        DigestInput(name="Weekly", cron=schedule.weekly("fri", "17:30"), timezone="Asia/Seoul"),
    )
    assert (view.cron, view.timezone) == ("30 17 * * fri", "Asia/Seoul")
    assert view.next_run is not None
    local = view.next_run.astimezone(schedule.zone("Asia/Seoul"))
    assert (local.strftime("%a"), local.hour, local.minute) == ("Fri", 17, 30)
    assert schedule.monthly(1, "06:00") == "0 6 1 * *"
    with pytest.raises(InvalidInputError, match="monthly"):
        schedule.monthly(31, "06:00")


# ----------------------------------------------------------------------------- the schedule


def test_a_scheduled_digest_fires_at_its_time_with_the_right_posts(
    svc: services.Services, settings: Settings, sink: SmtpSink, clock: Clock
) -> None:
    post(svc.engine, settings, "in-the-window", JAKARTA_7AM - timedelta(hours=14), ["trade"])
    post(svc.engine, settings, "too-old", JAKARTA_7AM - 2 * DAY, ["trade"])
    post(svc.engine, settings, "after-the-firing", JAKARTA_7AM + timedelta(hours=5), ["trade"])
    reader(svc.engine, settings, "ayu@example.org", name="Ayu")
    clock.set(JAKARTA_7AM - timedelta(minutes=1))
    assert svc.digests.tick() == []  # not yet
    clock.set(JAKARTA_7AM + timedelta(seconds=20))
    [run_id] = svc.digests.tick()
    assert svc.digests.tick() == []  # a second tick makes no second run
    deliver(svc, run_id)
    [message] = mail_to(sink.messages, "ayu@example.org")
    assert message["Subject"] == "Morning Ledger: 20 November 2026"
    text = text_of(message)
    assert "In The Window" in text and "Too Old" not in text and "After The Firing" not in text
    assert "Hello Ayu," in text
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert svc.digests.run(run_id).status == RunStatus.sent


def test_skip_if_empty_sends_nothing_and_send_if_empty_sends(
    svc: services.Services, settings: Settings, sink: SmtpSink, clock: Clock
) -> None:
    reader(svc.engine, settings, "ayu@example.org")
    clock.set(JAKARTA_7AM + timedelta(seconds=5))
    [run_id] = svc.digests.tick()
    run = svc.digests.run(run_id)
    assert run.status == RunStatus.skipped and run.recipients == 0
    assert sink.messages == []
    daily_digest(svc, skip_if_empty=False)
    clock.set(JAKARTA_7AM + DAY + timedelta(seconds=5))
    [run_id] = svc.digests.tick()
    deliver(svc, run_id)
    assert len(mail_to(sink.messages, "ayu@example.org")) == 1


def test_three_runs_in_a_row_carry_every_post_once(
    svc: services.Services, settings: Settings, sink: SmtpSink, clock: Clock
) -> None:
    reader(svc.engine, settings, "ayu@example.org")
    for day in range(3):
        firing = JAKARTA_7AM + day * DAY
        # one post just after the previous firing, one just before this one
        post(svc.engine, settings, f"early-{day}", firing - DAY + timedelta(seconds=1), ["trade"])
        post(svc.engine, settings, f"late-{day}", firing, ["trade"])
        clock.set(firing + timedelta(seconds=3))
        [run_id] = svc.digests.tick()
        deliver(svc, run_id)
    seen = [text_of(m) for m in mail_to(sink.messages, "ayu@example.org")]
    assert len(seen) == 3
    for day, text in enumerate(seen):
        mine = {f"Early {d}" for d in range(3) if f"Early {d}" in text}
        mine |= {f"Late {d}" for d in range(3) if f"Late {d}" in text}
        assert mine == {f"Early {day}", f"Late {day}"}


def test_narrowing_and_segments_render_each_body_once(
    svc: services.Services, settings: Settings, sink: SmtpSink, clock: Clock
) -> None:
    hour = timedelta(hours=1)
    post(svc.engine, settings, "tariffs", JAKARTA_7AM - 3 * hour, ["Trade"])
    post(svc.engine, settings, "summit", JAKARTA_7AM - 2 * hour, ["Korea"])
    post(svc.engine, settings, "football", JAKARTA_7AM - hour, ["Sports"])
    svc.digests.edit("digest", DigestInput(tags=("trade", "korea")))
    everything = ("all-1@example.org", "all-2@example.org")
    for email in everything:
        reader(svc.engine, settings, email)
    reader(svc.engine, settings, "trade-1@example.org", ("trade",))
    reader(svc.engine, settings, "trade-2@example.org", ("trade",))
    reader(svc.engine, settings, "korea@example.org", ("korea",))
    reader(svc.engine, settings, "sports@example.org", ("sports",))
    clock.set(JAKARTA_7AM + timedelta(seconds=5))
    [run_id] = svc.digests.tick()
    deliver(svc, run_id)
    assert svc.digests.renders(run_id) == 3  # everything, trade only, korea only
    got = {
        m["To"].addresses[0].addr_spec: ("Tariffs" in text_of(m), "Summit" in text_of(m))
        for m in sink.messages
    }
    assert got == {
        "all-1@example.org": (True, True),
        "all-2@example.org": (True, True),
        "trade-1@example.org": (True, False),
        "trade-2@example.org": (True, False),
        "korea@example.org": (False, True),
    }
    assert all("Football" not in text_of(m) for m in sink.messages)
    assert statuses(svc, run_id)["sports@example.org"] == DeliveryStatus.skipped


def test_two_schedulers_ticking_at_once_make_one_run(
    settings: Settings, engine: sa.Engine, smtp_sink: tuple[SmtpSink, int], svc: services.Services
) -> None:
    at = JAKARTA_7AM + timedelta(seconds=1)
    others = [wired(settings, engine, smtp_sink[1], Clock(at)) for _ in range(2)]
    barrier = threading.Barrier(2)
    created: list[list[int]] = []

    def tick(other: services.Services) -> None:
        barrier.wait()
        created.append(other.digests.tick(at))

    threads = [threading.Thread(target=tick, args=(o,)) for o in others]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(len(c) for c in created) == [0, 1]
    assert len(svc.digests.runs("digest")) == 1


def test_after_downtime_the_latest_firing_is_caught_up_within_the_grace(
    svc: services.Services, settings: Settings, sink: SmtpSink, clock: Clock
) -> None:
    reader(svc.engine, settings, "ayu@example.org")
    post(svc.engine, settings, "overnight", JAKARTA_7AM - timedelta(hours=3), ["trade"])
    clock.set(JAKARTA_7AM + timedelta(hours=5))  # down from before 07:00 until 12:00
    [run_id] = svc.digests.tick()
    run = svc.digests.run(run_id)
    assert run.scheduled_for == JAKARTA_7AM and run.status == RunStatus.sending
    deliver(svc, run_id)
    assert len(mail_to(sink.messages, "ayu@example.org")) == 1


def test_a_firing_older_than_the_grace_is_recorded_as_missed_and_its_posts_wait(
    svc: services.Services, settings: Settings, sink: SmtpSink, clock: Clock
) -> None:
    reader(svc.engine, settings, "ayu@example.org")
    post(svc.engine, settings, "overnight", JAKARTA_7AM - timedelta(hours=3), ["trade"])
    clock.set(JAKARTA_7AM + timedelta(hours=7))  # beyond catch_up_hours = 6
    [run_id] = svc.digests.tick()
    missed = svc.digests.run(run_id)
    assert missed.status == RunStatus.missed and "catch_up_hours" in missed.reason
    assert sink.messages == []
    clock.set(JAKARTA_7AM + DAY + timedelta(seconds=2))
    [next_id] = svc.digests.tick()
    deliver(svc, next_id)
    # the missed issue's post is not lost: the next window starts where the last sent one ended
    assert "Overnight" in text_of(mail_to(sink.messages, "ayu@example.org")[0])


@pytest.mark.parametrize(
    ("day", "when"),
    [
        (datetime(2026, 3, 8, tzinfo=UTC), "spring forward"),
        (datetime(2026, 11, 1, tzinfo=UTC), "fall back"),
    ],
)
@pytest.mark.parametrize("at", ["02:30", "01:30"])
def test_daylight_saving_neither_skips_nor_doubles_a_run(
    svc: services.Services, clock: Clock, day: datetime, when: str, at: str
) -> None:
    clock.set(day - 2 * DAY)
    svc.digests.edit("digest", DigestInput(cron=schedule.daily(at), timezone="America/New_York"))
    runs_per_day: dict[str, int] = {}
    moment = day - DAY
    while moment < day + 2 * DAY:  # tick every ten minutes across three local days
        moment += timedelta(minutes=10)
        for run_id in svc.digests.tick(moment):
            local = svc.digests.run(run_id).scheduled_for.astimezone(
                schedule.zone("America/New_York")
            )
            runs_per_day[f"{local:%m-%d}"] = runs_per_day.get(f"{local:%m-%d}", 0) + 1
    assert all(count == 1 for count in runs_per_day.values()), (when, runs_per_day)
    assert len(runs_per_day) >= 3, (when, runs_per_day)


# ----------------------------------------------------------------------------- delivery


def test_smtp_answers_decide_each_row_by_enhanced_code(
    svc: services.Services, settings: Settings, sink: SmtpSink, clock: Clock
) -> None:
    for email in (
        "ok@example.org",
        "flaky@example.org",
        "bounce@example.org",
        "nocode@example.org",
        "full@example.org",
        "later@example.org",
    ):
        reader(svc.engine, settings, email)
    run_id = firing_with_posts(svc, settings, clock)
    deliver(svc, run_id)
    assert statuses(svc, run_id) == {
        "ok@example.org": "sent",
        "flaky@example.org": "sent",  # 451 once, then delivered
        "bounce@example.org": "failed",  # 5.1.1
        "nocode@example.org": "failed",  # plain 550
        "full@example.org": "failed",  # 5.2.2 retried max_attempts times
        "later@example.org": "failed",  # 4xx retried max_attempts times
    }
    assert sink.tries["flaky@example.org"] == 2 and sink.tries["full@example.org"] == 3
    with Session(svc.engine) as session:
        suppressed = storage.suppressions_for(
            session, ["bounce@example.org", "nocode@example.org", "full@example.org"]
        )
    assert {e: s.reason for e, s in suppressed.items()} == {
        "bounce@example.org": "bounced",
        "nocode@example.org": "bounced",
    }
    run = svc.digests.run(run_id)
    assert run.status == RunStatus.sent and run.counts == {"sent": 2, "failed": 4}


def test_a_policy_refusal_pauses_the_run_and_suppresses_nobody(
    svc: services.Services, settings: Settings, sink: SmtpSink, clock: Clock
) -> None:
    for email in ("a-policy@example.org", "b@example.org", "c@example.org"):
        reader(svc.engine, settings, email)
    run_id = firing_with_posts(svc, settings, clock)
    deliver(svc, run_id)
    run = svc.digests.run(run_id)
    assert run.status == RunStatus.paused and "5.7.1" in run.reason
    with Session(svc.engine) as session:
        assert storage.suppressions_for(session, ["a-policy@example.org"]) == {}
    assert statuses(svc, run_id)["a-policy@example.org"] == DeliveryStatus.queued


def test_smtp_down_then_back_loses_nobody_and_fails_nobody(
    settings: Settings, engine: sa.Engine, clock: Clock
) -> None:
    from aiosmtpd.controller import Controller

    from tests.helpers import free_port

    port = free_port()
    svc = wired(settings, engine, port, clock)  # nothing listens on the port yet
    daily_digest(svc)
    for n in range(6):
        reader(svc.engine, settings, f"r{n}@example.org")
    run_id = firing_with_posts(svc, settings, clock)
    sink = SmtpSink()
    controller = Controller(sink, hostname="127.0.0.1", port=port)

    async def scenario() -> None:
        task = asyncio.create_task(svc.digests.deliver(run_id))
        for _ in range(600):  # until the first attempts have met a closed port
            await asyncio.sleep(0.05)
            if any("connect" in r.last_error for r in svc.digests.ledger(run_id)):
                break
        else:
            raise AssertionError("no attempt met the closed port")
        assert sink.messages == []
        controller.start()
        try:
            await asyncio.wait_for(task, 60)
        finally:
            await svc.mailer.close()
            controller.stop()

    asyncio.run(scenario())
    assert set(statuses(svc, run_id).values()) == {"sent"}
    assert sorted(m["To"].addresses[0].addr_spec for m in sink.messages) == [
        f"r{n}@example.org" for n in range(6)
    ]
    assert all(r.attempts == 1 for r in svc.digests.ledger(run_id))


def test_unsubscribing_during_a_run_stops_delivery_to_that_reader(
    svc: services.Services, settings: Settings, sink: SmtpSink, clock: Clock
) -> None:
    # messages are built in chunks of [delivery] result_batch (50), each right after a look
    # at its subscribers: the leaving reader is two chunks away when they leave
    for n in range(120):
        reader(svc.engine, settings, f"r{n:03}@example.org")
    run_id = firing_with_posts(svc, settings, clock)
    with Session(svc.engine) as session:
        leaving = storage.subscriber_by_email(session, "r119@example.org")
        assert leaving is not None and leaving.id is not None
        link = links.unsubscribe_url(svc.settings, leaving.id, leaving.link_key)

    def on_message(address: str) -> None:
        if address == "r000@example.org":  # the first message is out: r119 leaves now
            svc.subscribers.unsubscribe(link.rsplit("/", 1)[1])

    sink.on_message = on_message
    deliver(svc, run_id)
    received = {m["To"].addresses[0].addr_spec for m in sink.messages}
    assert "r119@example.org" not in received and len(received) == 119
    assert statuses(svc, run_id)["r119@example.org"] == DeliveryStatus.suppressed


def test_pause_resume_and_cancel(
    svc: services.Services, settings: Settings, sink: SmtpSink, clock: Clock
) -> None:
    for n in range(150):
        reader(svc.engine, settings, f"r{n:03}@example.org")
    run_id = firing_with_posts(svc, settings, clock)

    def on_message(address: str) -> None:
        if address == "r000@example.org":
            svc.digests.pause_run(run_id)

    sink.on_message = on_message
    deliver(svc, run_id)
    paused = svc.digests.run(run_id)
    assert paused.status == RunStatus.paused
    sent_while = len(sink.messages)
    # the pause is seen at the next chunk (result_batch = 50) or flush: what was already
    # built and queued (one chunk, a queue as deep as the connections) still goes
    assert sent_while < 50 + 2 * 4
    sink.on_message = None
    svc.digests.resume_run(run_id)
    deliver(svc, run_id)
    assert svc.digests.run(run_id).counts == {"sent": 150}
    assert len({m["Message-ID"] for m in sink.messages}) == 150

    # a second run, cancelled before it is sent: nobody is mailed
    clock.set(JAKARTA_7AM + DAY + timedelta(seconds=1))
    post(svc.engine, settings, "more", JAKARTA_7AM + timedelta(hours=1), ["trade"])
    [second] = svc.digests.tick()
    cancelled = svc.digests.cancel_run(second)
    deliver(svc, second)
    assert cancelled.status == RunStatus.cancelled and cancelled.counts == {"skipped": 150}
    assert len(sink.messages) == 150


def test_message_ids_derive_from_run_and_subscriber(
    svc: services.Services, settings: Settings, sink: SmtpSink, clock: Clock
) -> None:
    reader(svc.engine, settings, "ayu@example.org")
    run_id = firing_with_posts(svc, settings, clock)
    deliver(svc, run_id)
    [message] = sink.messages
    [row] = svc.digests.ledger(run_id)
    assert message["Message-ID"] == row.message_id
    assert message["Message-ID"].startswith(f"<digest.{run_id}.{row.subscriber_id}.")
    assert "View in your browser" in html_of(message) or "view" in html_of(message).lower()


def test_two_senders_on_one_run_share_it_without_duplicates_even_past_the_lease(
    settings: Settings, engine: sa.Engine, clock: Clock
) -> None:
    from aiosmtpd.controller import Controller

    from tests.helpers import free_port

    class SlowSink(SmtpSink):
        async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
            await asyncio.sleep(0.3)  # a slow relay: a batch outlasts its lease
            return await super().handle_DATA(server, session, envelope)

    sink, port = SlowSink(), free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        first = wired(settings, engine, port, clock, lease_seconds=1, claim_batch=50)
        second = wired(settings, engine, port, clock, lease_seconds=1, claim_batch=50)
        daily_digest(first)
        for n in range(30):
            reader(engine, settings, f"r{n:02}@example.org")
        run_id = firing_with_posts(first, settings, clock)
        deliver_together(run_id, first, second)
    finally:
        controller.stop()
    received = sorted(m["To"].addresses[0].addr_spec for m in sink.messages)
    assert received == [f"r{n:02}@example.org" for n in range(30)]  # each exactly once
    assert first.digests.run(run_id).counts == {"sent": 30}


def test_two_composers_of_one_run_write_one_ledger(
    svc: services.Services, settings: Settings, clock: Clock
) -> None:
    """A send-now composes its run while a sender, finding the run composing, composes it
    too: one window, one set of posts and one ledger row per reader, and neither fails."""
    from newsletter.models import DigestRun, RunKind

    for i in range(300):
        reader(svc.engine, settings, f"r{i}@example.org")
    post(svc.engine, settings, "tariffs", clock() - timedelta(hours=1), ["trade"])
    with Session(svc.engine) as session:
        digest = storage.digest_by_slug(session, "digest")
        assert digest is not None and digest.id is not None
        run, _ = storage.add_run(
            session,
            DigestRun(
                digest_id=digest.id, scheduled_for=clock(), kind=RunKind.manual, created_at=clock()
            ),
        )
        assert run.id is not None
        run_id = run.id
    start = threading.Barrier(2)
    failures: list[BaseException] = []

    def composer() -> None:
        start.wait()
        try:
            svc.digests.compose(run_id)
        except BaseException as exc:  # reported by the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=composer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    view = svc.digests.run(run_id)
    assert view.status == RunStatus.sending and view.posts == 1
    assert view.counts == {"queued": 300}


def test_a_draft_previews_without_being_stored(
    svc: services.Services, settings: Settings, clock: Clock
) -> None:
    """The editor's form previews unsaved changes: another tag filter changes the posts,
    a bad field is named, and the stored digest stays as it was."""
    post(svc.engine, settings, "tariffs", clock() - timedelta(hours=1), ["trade"], title="Tariffs")
    post(svc.engine, settings, "summit", clock() - timedelta(hours=2), ["politics"], title="Summit")
    whole = svc.digests.preview_issue("digest", "text", draft=DigestInput())
    assert "Tariffs" in whole.body and "Summit" in whole.body
    trade = svc.digests.preview_issue("digest", "text", draft=DigestInput(tags=("trade",)))
    assert "Tariffs" in trade.body and "Summit" not in trade.body
    assert svc.digests.get("digest").tags == ()
    with pytest.raises(InvalidInputError) as refused:
        svc.digests.preview_issue("digest", "html", draft=DigestInput(max_items=0))
    assert refused.value.field == "max_items"
    new = svc.digests.preview_issue(
        "politics-daily", "text", draft=DigestInput(name="Politics", tags=("politics",))
    )
    assert "Summit" in new.body and "Tariffs" not in new.body
    with pytest.raises(NotFoundError):
        svc.digests.get("politics-daily")


def test_send_now_twice_at_once_makes_one_issue(
    svc: services.Services, settings: Settings, clock: Clock
) -> None:
    """A send-now clicked twice (or an API call retried) while the first is composing:
    both calls answer with the same run, and every reader is in one ledger once."""
    for i in range(200):
        reader(svc.engine, settings, f"r{i}@example.org")
    post(svc.engine, settings, "tariffs", clock() - timedelta(hours=1), ["trade"])
    start = threading.Barrier(2)
    answers: list[int] = []
    failures: list[BaseException] = []

    def click() -> None:
        start.wait()
        try:
            answers.append(svc.digests.send_now("digest").id)
        except BaseException as exc:  # reported by the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=click) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert len(set(answers)) == 1
    assert [r.id for r in svc.digests.runs("digest")] == answers[:1]
    assert svc.digests.run(answers[0]).counts == {"queued": 200}


def test_two_runs_composed_at_once_never_share_a_window(
    svc: services.Services, settings: Settings, clock: Clock
) -> None:
    """Two runs of one digest composed at the same moment (a firing and a send-now): the
    one fixed second starts where the first ends, so no post goes to anyone twice."""
    from newsletter.models import DigestRun, RunKind

    for i in range(100):
        reader(svc.engine, settings, f"r{i}@example.org")
    post(svc.engine, settings, "tariffs", clock() - timedelta(hours=1), ["trade"])
    run_ids = []
    with Session(svc.engine) as session:
        digest = storage.digest_by_slug(session, "digest")
        assert digest is not None and digest.id is not None
        for offset in (0, 1):
            when = clock() + timedelta(microseconds=offset)
            run, _ = storage.add_run(
                session,
                DigestRun(
                    digest_id=digest.id, scheduled_for=when, kind=RunKind.manual, created_at=when
                ),
            )
            assert run.id is not None
            run_ids.append(run.id)
    start = threading.Barrier(2)

    def composer(run_id: int) -> None:
        start.wait()
        svc.digests.compose(run_id)

    threads = [threading.Thread(target=composer, args=(r,)) for r in run_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    views = [svc.digests.run(r) for r in run_ids]
    assert sorted(v.posts for v in views) == [0, 1]
    assert sum(v.counts.get("queued", 0) for v in views) == 100
