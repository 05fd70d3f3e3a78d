"""`[delivery] max_per_second` holds across senders: two senders working on one run share
the relay's rate (reserved in the database), rather than each sending at the full rate."""

from __future__ import annotations

import time

import sqlalchemy as sa
from aiosmtpd.controller import Controller
from sqlmodel import Session, select

from newsletter.config import Settings
from newsletter.models import RelayUsage
from tests.conftest import SmtpSink
from tests.digest_helpers import (
    Clock,
    daily_digest,
    deliver_together,
    firing_with_posts,
    reader,
    wired,
)
from tests.helpers import free_port

RATE = 10
MESSAGES = 50


class TimedSink(SmtpSink):
    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.times.append(time.monotonic())
        return await super().handle_DATA(server, session, envelope)


def test_two_senders_share_the_relays_rate(
    settings: Settings, engine: sa.Engine, clock: Clock
) -> None:
    sink, port = TimedSink(), free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        first = wired(settings, engine, port, clock, max_per_second=RATE)
        second = wired(settings, engine, port, clock, max_per_second=RATE)
        daily_digest(first)
        for n in range(MESSAGES):
            reader(engine, settings, f"r{n:02}@example.org")
        run_id = firing_with_posts(first, settings, clock)
        deliver_together(run_id, first, second)
    finally:
        controller.stop()
    assert first.digests.run(run_id).counts == {"sent": MESSAGES}
    assert len(sink.messages) == MESSAGES
    # 50 messages at 10 a second, shared: five windows of a second at least, so more than
    # three seconds from the first to the last (at 10 a second each, two senders would
    # need two or three windows, about a second and a half)
    elapsed = max(sink.times) - min(sink.times)
    assert elapsed > 3.0, elapsed
    with Session(engine) as session:
        [usage] = session.exec(select(RelayUsage).where(RelayUsage.period == "second")).all()
    assert usage.relay == "smtp" and 0 < usage.used <= RATE
