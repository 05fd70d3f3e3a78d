"""Digests' way out: one or more SMTP relays, each with its own pool of pipelined
connections (`smtp.Connection`), chosen by weight (smooth weighted round robin, as nginx
balances upstreams). A relay that fails `failures` times in a row (no answer, refused
connections, timeouts) rests for `rest_seconds` while its messages go through the others;
when every relay rests, sending fails at once as "no answer" and senders hold back until the
first comes back (`ready_in`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from newsletter import metrics
from newsletter.config import RelaySettings
from newsletter.errors import DeliveryError, TemporaryFailure
from newsletter.mail.mime import Envelope
from newsletter.mail.smtp import Connection

log = logging.getLogger(__name__)
Throttle = Callable[[str], Awaitable[None]]  # waits until the named relay may take one more


@dataclass
class Relay:
    settings: RelaySettings
    slots: asyncio.Semaphore
    idle: list[Connection] = field(default_factory=list)
    failures: int = 0
    last_error: str = ""
    resting_until: float = 0.0
    current: int = 0  # smooth weighted round robin state

    @property
    def name(self) -> str:
        return self.settings.name


class RelayMailer:
    """A Mailer over weighted relays. `send` returns the name of the relay that took the
    message; it raises DeliveryError like the other transports."""

    def __init__(
        self,
        relays: Sequence[RelaySettings],
        failures: int = 5,
        rest_seconds: float = 60,
        throttle: Throttle | None = None,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.relays = [Relay(r, asyncio.Semaphore(r.pool_size)) for r in relays]
        self.failures = failures
        self.rest_seconds = rest_seconds
        self.throttle = throttle
        self.tls_context = tls_context

    @property
    def connections(self) -> int:
        """How many messages may be in flight at once."""
        return sum(r.settings.pool_size for r in self.relays)

    def ready_in(self) -> float:
        """Seconds until a relay may be tried again (0: one may be tried now)."""
        return max(0.0, min(r.resting_until for r in self.relays) - time.monotonic())

    def _pick(self, exclude: set[str]) -> Relay | None:
        now = time.monotonic()
        ready = [r for r in self.relays if r.resting_until <= now and r.name not in exclude]
        if not ready:
            return None
        total = sum(r.settings.weight for r in ready)
        for relay in ready:
            relay.current += relay.settings.weight
        chosen = max(ready, key=lambda r: r.current)
        chosen.current -= total
        return chosen

    async def send(self, envelope: Envelope) -> str:
        tried: set[str] = set()
        while True:
            relay = self._pick(tried)
            if relay is None:
                reason = "; ".join(
                    f"{r.name}: {r.last_error}"
                    + ("" if r.name in tried else " (resting after failures)")
                    for r in self.relays
                )
                raise TemporaryFailure(envelope.recipient, None, reason)
            try:
                await self._send_via(relay, envelope)
                return relay.name
            except TemporaryFailure as exc:
                if exc.code is not None:
                    raise
                tried.add(relay.name)
                self._failed(relay, exc)

    async def _send_via(self, relay: Relay, envelope: Envelope) -> None:
        async with relay.slots:
            if self.throttle is not None:
                await self.throttle(relay.name)
            connection = None
            while relay.idle and connection is None:
                candidate = relay.idle.pop()
                if candidate.usable:
                    connection = candidate
            if connection is None:
                s = relay.settings
                connection = await Connection.open(
                    s.host, s.port, s.security, s.username, s.password, s.timeout, self.tls_context
                )
            code: int | None = None
            try:
                reply = await connection.send(envelope.mail_from, envelope.recipient, envelope.data)
                code = reply.code
            except DeliveryError as exc:
                code = exc.code
                raise
            finally:
                metrics.smtp_reply(relay.name, code)
                if code is not None:
                    relay.failures = 0  # it answered: the relay is up
                if connection.usable:
                    relay.idle.append(connection)

    def _failed(self, relay: Relay, exc: TemporaryFailure) -> None:
        relay.failures += 1
        relay.last_error = exc.reason
        if relay.failures >= self.failures and relay.resting_until <= time.monotonic():
            relay.resting_until = time.monotonic() + self.rest_seconds
            relay.failures = 0
            log.warning(
                "relay %s rests for %s s after failing %s times in a row: %s",
                relay.name,
                self.rest_seconds,
                self.failures,
                exc.reason,
            )

    async def close(self) -> None:
        for relay in self.relays:
            while relay.idle:
                with contextlib.suppress(Exception):
                    await relay.idle.pop().close()
