"""One small `Mailer` interface with three transports: SMTP (`relays.RelayMailer`: weighted
relays, each a pool of pipelined connections; `SmtpMailer` is one relay), a file outbox
(.eml files; the default) and memory (tests).

A transport raises `PermanentFailure` for a 5xx answer about a recipient (the address must
be suppressed), `MessageRefused` for a 5xx to the sender or the message, and
`TemporaryFailure` for anything worth retrying later (newsletter.errors).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import ssl
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Protocol

from newsletter.config import RelaySettings, Settings
from newsletter.mail.mime import Envelope
from newsletter.mail.relays import RelayMailer


class Mailer(Protocol):
    async def send(self, envelope: Envelope) -> str:
        """Hand the message on; returns the name of what took it (a relay's name)."""
        ...

    async def close(self) -> None: ...


class MemoryMailer:
    """Keeps what it is given, for tests and previews."""

    def __init__(self) -> None:
        self.sent: list[Envelope] = []

    async def send(self, envelope: Envelope) -> str:
        self.sent.append(envelope)
        return "memory"

    async def close(self) -> None:
        pass


class OutboxMailer:
    """Writes each message as an .eml file into a folder (readable by any mail client)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def send(self, envelope: Envelope) -> str:
        await asyncio.to_thread(self._write, envelope)
        return "outbox"

    def _write(self, envelope: Envelope) -> None:
        # Messages carry live confirmation and unsubscribe links: the folder and every file
        # in it are for the owner only, from the start (mkstemp creates 0600, O_EXCL and
        # O_NOFOLLOW, under a random name nobody can plant a symlink at).
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        digest = hashlib.sha1(envelope.message_id.encode()).hexdigest()[:16]
        name = f"{datetime.now().strftime('%Y%m%dT%H%M%S')}-{digest}.eml"
        fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=".", suffix=".eml.tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(envelope.data)
            os.replace(temporary, self.directory / name)  # a half-written file is never seen
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

    async def close(self) -> None:
        pass


class SmtpMailer(RelayMailer):
    """One SMTP server: a RelayMailer with a single relay (tests, simple set-ups)."""

    def __init__(
        self,
        host: str,
        port: int,
        security: str,
        username: str = "",
        password: str = "",
        pool_size: int = 4,
        timeout: float = 30,
        tls_context: ssl.SSLContext | None = None,
        failures: int = 5,
        rest_seconds: float = 60,
    ) -> None:
        relay = RelaySettings(
            name="smtp",
            host=host,
            port=port,
            security=security,
            username=username,
            password=password,
            pool_size=pool_size,
            timeout=int(timeout) or 1,
        )
        super().__init__([relay], failures, rest_seconds, tls_context=tls_context)


def make_mailer(settings: Settings) -> Mailer:
    """The transport config.toml asks for."""
    if settings.mail.transport == "smtp":
        d = settings.delivery
        return RelayMailer(settings.relays, d.relay_failures, d.relay_rest_seconds)
    if settings.mail.transport == "memory":
        return MemoryMailer()
    return OutboxMailer(settings.outbox_path)
