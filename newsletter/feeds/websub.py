"""WebSub publisher pings: tell the hub which topics (feed URLs) changed.

Pings run as background tasks with retries and backoff; nothing waits for them, so a hub
that is slow or down never slows or fails a publish.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import httpx

log = logging.getLogger(__name__)


@dataclass
class PingStats:
    """What the pings came to since the Pinger started."""

    delivered: int = 0  # pings the hub accepted
    failed_attempts: int = 0  # attempts that raised or got an HTTP status of 300 or more
    given_up: int = 0  # pings dropped after their last attempt failed


class Pinger:
    def __init__(
        self,
        hub: str,
        *,
        attempts: int = 5,
        first_delay: float = 1.0,
        timeout: float = 10.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.hub = hub
        self.attempts = attempts
        self.first_delay = first_delay
        self.timeout = timeout
        self.sleep = sleep  # waits out the back-off between attempts
        self.stats = PingStats()
        self._tasks: set[asyncio.Task[bool]] = set()
        self._client: httpx.AsyncClient | None = None

    def ping(self, topics: Iterable[str]) -> None:
        """Schedule one ping per topic on the running event loop; returns at once."""
        for topic in topics:
            task = asyncio.get_running_loop().create_task(self._ping(topic))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _ping(self, topic: str) -> bool:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout)
        delay = self.first_delay
        for attempt in range(1, self.attempts + 1):
            try:
                response = await self._client.post(
                    self.hub, data={"hub.mode": "publish", "hub.url": topic}
                )
                if response.status_code < 300:
                    self.stats.delivered += 1
                    return True
                reason = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                reason = f"{type(exc).__name__}: {exc}"
            self.stats.failed_attempts += 1
            log.warning(
                "WebSub ping %s for %s failed (attempt %d): %s", self.hub, topic, attempt, reason
            )
            if attempt < self.attempts:
                await self.sleep(delay)
                delay *= 2
        self.stats.given_up += 1
        return False

    async def drain(self) -> None:
        """Wait for pings under way (tests, shutdown)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
