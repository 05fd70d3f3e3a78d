"""Per-relay send rates that hold across every worker: providers such as Amazon SES
enforce a per-account rate, whatever number of machines send. Each worker reserves sends
in small blocks from the relay's current second and hour windows in the database
(`storage.reserve_relay`, one conditional UPDATE each) and spends them locally; a block
not spent before its window ends is dropped, so the rate is never exceeded, only
sometimes not reached."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session

from newsletter import storage
from newsletter.config import RelaySettings
from newsletter.storage.retry import retry_on_busy

Clock = Callable[[], datetime]
BLOCKS_PER_SECOND = 5  # reservations a worker makes per second at most, per relay


class SharedThrottle:
    def __init__(self, engine: sa.Engine, relays: Sequence[RelaySettings], clock: Clock) -> None:
        self.engine = engine
        self.clock = clock
        self.limits = {r.name: (r.max_per_second, r.max_per_hour) for r in relays}
        self.tokens = {r.name: 0 for r in relays}
        self.valid_until = {r.name: datetime.min for r in relays}
        self.locks = {r.name: asyncio.Lock() for r in relays}

    @property
    def active(self) -> bool:
        return any(s or h for s, h in self.limits.values())

    async def __call__(self, relay: str) -> None:
        """Wait until `relay` may be handed one more message, and count it."""
        per_second, per_hour = self.limits.get(relay, (0, 0))
        if not per_second and not per_hour:
            return
        async with self.locks[relay]:
            while self.tokens[relay] <= 0 or self.clock() >= self.valid_until[relay]:
                granted, until = await asyncio.to_thread(self._reserve, relay, per_second, per_hour)
                if granted:
                    self.tokens[relay], self.valid_until[relay] = granted, until
                else:
                    wait = (until - self.clock()).total_seconds()
                    await asyncio.sleep(min(max(wait, 0.01), 5.0))
            self.tokens[relay] -= 1

    @retry_on_busy()
    def _reserve(self, relay: str, per_second: int, per_hour: int) -> tuple[int, datetime]:
        """(sends granted, until when they may be spent); (0, when to ask again)."""
        now = self.clock()
        second = now.replace(microsecond=0)
        hour = now.replace(minute=0, second=0, microsecond=0)
        block = max(1, per_second // BLOCKS_PER_SECOND) if per_second else max(1, per_hour // 360)
        block = min(block, *(limit for limit in (per_second, per_hour) if limit))
        with Session(self.engine) as session:
            if per_second and not storage.reserve_relay(
                session, relay, "second", second, block, per_second
            ):
                session.rollback()
                return 0, second + timedelta(seconds=1)
            if per_hour and not storage.reserve_relay(
                session, relay, "hour", hour, block, per_hour
            ):
                session.rollback()
                return 0, min(hour + timedelta(hours=1), now + timedelta(seconds=5))
            session.commit()
        return block, second + timedelta(seconds=1) if per_second else hour + timedelta(hours=1)
