"""Sliding-window rate limits, kept in the process."""

from __future__ import annotations

import time
from collections import defaultdict, deque


class RateLimiter:
    """At most `limit` events per key in a sliding window of `seconds` (per process)."""

    def __init__(self, limit: int, seconds: float) -> None:
        self.limit = limit
        self.seconds = seconds
        self._events: dict[str, deque[float]] = defaultdict(deque)

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        if len(self._events) > 10_000:  # forget keys whose window has passed
            for stale in [
                k for k, v in self._events.items() if not v or v[-1] <= now - self.seconds
            ]:
                del self._events[stale]
        events = self._events[key]
        while events and events[0] <= now - self.seconds:
            events.popleft()
        if len(events) >= self.limit:
            return False
        events.append(now)
        return True
