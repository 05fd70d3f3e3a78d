"""The only module that speaks SMTP. Messages are composed here (MIME, CSS inlining, DKIM)
and handed to one small `Mailer` interface with three transports: SMTP (a pool of aiosmtplib
connections), a file outbox (.eml files; the default) and memory (tests).

A transport raises `PermanentFailure` for a 5xx answer about a recipient (the address must
be suppressed) and `TemporaryFailure` for anything worth retrying later.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import aiosmtplib
import css_inline
import dkim

from newsletter.config import Settings
from newsletter.errors import ConfigError, NewsletterError

# RFC 8058 section 4: the DKIM signature must cover List-Unsubscribe and
# List-Unsubscribe-Post, or receivers ignore one-click unsubscribe.
DKIM_HEADERS = [
    b"From",
    b"To",
    b"Subject",
    b"Date",
    b"Message-ID",
    b"List-Id",
    b"List-Unsubscribe",
    b"List-Unsubscribe-Post",
    b"MIME-Version",
    b"Content-Type",
]


class DeliveryError(NewsletterError):
    def __init__(self, recipient: str, code: int | None, reason: str) -> None:
        super().__init__(f"{recipient}: {code or ''} {reason}".strip())
        self.recipient = recipient
        self.code = code
        self.reason = reason


class PermanentFailure(DeliveryError):
    """The server refused the recipient for good (5xx to RCPT TO): suppress the address."""


class MessageRefused(DeliveryError):
    """The server refused the sender or the message itself (5xx to MAIL FROM or DATA): a
    problem of ours, not of the recipient, so the address is not suppressed."""


class TemporaryFailure(DeliveryError):
    """Try again later: 4xx, a timeout, a dropped connection."""


@dataclass(frozen=True)
class Envelope:
    """A message ready for the wire."""

    mail_from: str
    recipient: str
    data: bytes
    message_id: str


@dataclass(frozen=True)
class Letter:
    """What a use case wants to say; `compose` turns it into an Envelope."""

    to: str
    to_name: str
    subject: str
    text: str
    html: str
    headers: Mapping[str, str] = field(default_factory=dict)
    message_id: str | None = None  # given when a resend must carry the same id


class Mailer(Protocol):
    async def send(self, envelope: Envelope) -> None: ...

    async def close(self) -> None: ...


# ----------------------------------------------------------------------------- composing


class Composer:
    """Builds RFC 5322 messages for the configured site: From, List-Id, DKIM."""

    def __init__(self, settings: Settings) -> None:
        mail = settings.mail
        self.from_address = mail.from_address
        self.from_name = mail.from_name or settings.site.title
        self.domain = mail.from_address.rpartition("@")[2]
        self.list_id = f"{settings.site.title} <{_list_id_host(settings)}>"
        self.dkim: tuple[bytes, bytes, bytes, bytes] | None = None
        if mail.dkim_key_file:
            path = settings.root / mail.dkim_key_file
            try:
                key = path.read_bytes()
            except OSError as exc:
                raise ConfigError(
                    f"[mail] dkim_key_file = {mail.dkim_key_file!r} cannot be read: {exc.strerror}"
                ) from None
            algorithm = b"ed25519-sha256" if _is_ed25519(key) else b"rsa-sha256"
            selector = mail.dkim_selector.encode()
            self.dkim = (selector, (mail.dkim_domain or self.domain).encode(), key, algorithm)
        self._inliner = css_inline.CSSInliner(keep_style_tags=False, load_remote_stylesheets=False)

    def compose(self, letter: Letter, now: datetime) -> Envelope:
        message = EmailMessage()
        message_id = letter.message_id or make_msgid(domain=self.domain)
        message["From"] = formataddr((self.from_name, self.from_address))
        message["To"] = (
            str(Address(display_name=letter.to_name, addr_spec=letter.to))
            if letter.to_name
            else letter.to
        )
        message["Subject"] = letter.subject
        message["Date"] = format_datetime(now)
        message["Message-ID"] = message_id
        message["List-Id"] = self.list_id
        for name, value in letter.headers.items():
            message[name] = value
        message.set_content(letter.text, cte="quoted-printable")
        message.add_alternative(
            self._inliner.inline(letter.html), subtype="html", cte="quoted-printable"
        )
        # No folding below SMTP's 998-octet limit: folding a long URL header turns it into
        # RFC 2047 encoded words, which mail clients do not read as a List-Unsubscribe URL.
        data = message.as_bytes(policy=message.policy.clone(linesep="\r\n", max_line_length=998))
        if self.dkim:
            selector, domain, key, algorithm = self.dkim
            signature = dkim.sign(
                data,
                selector,
                domain,
                key,
                include_headers=[h for h in DKIM_HEADERS if h.decode() in message],
                signature_algorithm=algorithm,
            )
            data = signature + data
        return Envelope(self.from_address, letter.to, data, message_id)


def _list_id_host(settings: Settings) -> str:
    """RFC 2919 list identifier: a dot-atom under a domain the publisher controls."""
    host = re.sub(r"[^a-z0-9.-]", "", (urlsplit(settings.base_url).hostname or "").lower())
    return f"digest.{host or 'localhost'}"


def _is_ed25519(key: bytes) -> bool:
    # dkimpy takes an Ed25519 key as 32 raw bytes base64-encoded; RSA keys are PEM
    return b"-----BEGIN" not in key


# ----------------------------------------------------------------------------- transports


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
        self.directory.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha1(envelope.message_id.encode()).hexdigest()[:16]
        name = f"{datetime.now().strftime('%Y%m%dT%H%M%S')}-{digest}.eml"
        temporary = self.directory / (name + ".tmp")
        temporary.write_bytes(envelope.data)
        os.replace(temporary, self.directory / name)  # a half-written file is never seen

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
