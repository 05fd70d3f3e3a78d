"""WebSub publisher pings: tell the hub which topics (feed URLs) changed.

Pings run as background tasks with retries and backoff; nothing waits for them, so a hub
that is slow or down never slows or fails a publish.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

import httpx

log = logging.getLogger(__name__)


class Pinger:
    def __init__(
        self,
        hub: str,
        *,
        attempts: int = 5,
        first_delay: float = 1.0,
        timeout: float = 10.0,
    ) -> None:
        self.hub = hub
        self.attempts = attempts
        self.first_delay = first_delay
        self.timeout = timeout
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
                    return True
                reason = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                reason = f"{type(exc).__name__}: {exc}"
            log.warning(
                "WebSub ping %s for %s failed (attempt %d): %s", self.hub, topic, attempt, reason
            )
            if attempt < self.attempts:
                await asyncio.sleep(delay)
                delay *= 2
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
