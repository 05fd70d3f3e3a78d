"""The only module that speaks SMTP: one small `Mailer` interface with three transports,
SMTP (a pool of aiosmtplib connections), a file outbox (.eml files; the default) and memory
(tests).

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

import aiosmtplib

from newsletter.config import Settings
from newsletter.errors import DeliveryError, MessageRefused, PermanentFailure, TemporaryFailure
from newsletter.mail.mime import Envelope


class Mailer(Protocol):
    async def send(self, envelope: Envelope) -> None: ...

    async def close(self) -> None: ...


class MemoryMailer:
    """Keeps what it is given, for tests and previews."""

    def __init__(self) -> None:
        self.sent: list[Envelope] = []

    async def send(self, envelope: Envelope) -> None:
        self.sent.append(envelope)

    async def close(self) -> None:
        pass


class OutboxMailer:
    """Writes each message as an .eml file into a folder (readable by any mail client)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def send(self, envelope: Envelope) -> None:
        await asyncio.to_thread(self._write, envelope)

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


class SmtpMailer:
    """Sends through an SMTP server over a pool of up to `pool_size` open connections."""

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
    ) -> None:
        self.options = dict(
            hostname=host,
            port=port,
            timeout=timeout,
            use_tls=security == "tls",
            start_tls=security == "starttls",
            tls_context=tls_context,
        )
        self.login = (username, password) if username else None
        self._idle: asyncio.Queue[aiosmtplib.SMTP] = asyncio.Queue()
        self._slots = asyncio.Semaphore(pool_size)
        self._open: set[aiosmtplib.SMTP] = set()

    async def _connection(self) -> aiosmtplib.SMTP:
        while not self._idle.empty():
            smtp = self._idle.get_nowait()
            if smtp.is_connected:
                return smtp
            self._open.discard(smtp)
        smtp = aiosmtplib.SMTP(**self.options)  # type: ignore[arg-type]
        await smtp.connect()
        try:
            if self.login:
                await smtp.login(*self.login)
        except BaseException:
            smtp.close()
            raise
        self._open.add(smtp)
        return smtp

    async def send(self, envelope: Envelope) -> None:
        async with self._slots:
            try:
                smtp = await self._connection()
            except (aiosmtplib.SMTPException, OSError) as exc:
                raise TemporaryFailure(envelope.recipient, None, f"cannot connect: {exc}") from None
            # Only a connection whose transaction ended with an answer goes back to the pool;
            # one left mid-transaction (cancelled, dropped) would hand its replies to the next.
            healthy = False
            try:
                await smtp.sendmail(envelope.mail_from, [envelope.recipient], envelope.data)
                healthy = True
            except aiosmtplib.SMTPRecipientsRefused as exc:
                healthy = True
                refused = exc.recipients[0]
                kind: type[DeliveryError] = (
                    PermanentFailure if 500 <= refused.code < 600 else TemporaryFailure
                )
                raise kind(envelope.recipient, refused.code, refused.message) from None
            except aiosmtplib.SMTPResponseException as exc:
                healthy = True
                refusal: type[DeliveryError] = (
                    MessageRefused if 500 <= exc.code < 600 else TemporaryFailure
                )
                raise refusal(envelope.recipient, exc.code, exc.message) from None
            except (aiosmtplib.SMTPException, OSError) as exc:
                raise TemporaryFailure(envelope.recipient, None, str(exc)) from None
            finally:
                if healthy and smtp.is_connected:
                    self._idle.put_nowait(smtp)
                else:
                    self._open.discard(smtp)
                    smtp.close()

    async def close(self) -> None:
        for smtp in list(self._open):
            try:
                await smtp.quit()
            except (aiosmtplib.SMTPException, OSError):
                smtp.close()
        self._open.clear()


def make_mailer(settings: Settings) -> Mailer:
    """The transport config.toml asks for."""
    if settings.mail.transport == "smtp":
        s = settings.smtp
        return SmtpMailer(
            s.host, s.port, s.security, s.username, s.password, s.pool_size, s.timeout
        )
    if settings.mail.transport == "memory":
        return MemoryMailer()
    return OutboxMailer(settings.outbox_path)
