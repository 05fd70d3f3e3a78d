"""Bulk SMTP: one connection sending prepared messages with command pipelining (RFC 2920).

aiosmtplib opens the connection: greeting, EHLO, STARTTLS or TLS, AUTH, the parts where
a mature client matters. Its transactions, though, send MAIL, RCPT and DATA one at a time
and rewrite every message (line endings, dot-stuffing) with two passes over its bytes,
which prepared messages do not need (`prepared` makes them CRLF with no line starting
with a dot). So once the session is open, the transport is handed to `_Replies`, a small
protocol that reads any number of replies in order, and each message goes as one write
of MAIL FROM, RCPT TO and DATA, then one write of its bytes.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from dataclasses import dataclass
from typing import cast

import aiosmtplib

from newsletter.errors import DeliveryError, MessageRefused, PermanentFailure, TemporaryFailure

MAX_REPLY = 64 * 1024


@dataclass(frozen=True)
class Reply:
    code: int
    text: str


class _Replies(asyncio.Protocol):
    """Replies of the server, in order, however the bytes arrive."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.lines: list[bytes] = []
        self.waiting: deque[asyncio.Future[Reply]] = deque()
        self.ready: deque[Reply] = deque()
        self.lost: Exception | None = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\n")
            if end < 0:
                if len(self.buffer) > MAX_REPLY:
                    self._fail(ConnectionError("the server's reply is too long"))
                return
            line = bytes(self.buffer[: end + 1]).rstrip(b"\r\n")
            del self.buffer[: end + 1]
            self.lines.append(line)
            if line[3:4] == b"-":
                continue  # a multi-line reply goes on
            try:
                code = int(line[:3])
            except ValueError:
                self._fail(ConnectionError(f"not an SMTP reply: {line[:80]!r}"))
                return
            text = "\n".join(x[4:].decode("utf-8", "replace") for x in self.lines)
            self.lines = []
            reply = Reply(code, text)
            if self.waiting:
                waiter = self.waiting.popleft()
                if not waiter.done():
                    waiter.set_result(reply)
            else:
                self.ready.append(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or ConnectionError("the server closed the connection"))

    def eof_received(self) -> bool:
        self._fail(ConnectionError("the server closed the connection"))
        return False

    def _fail(self, exc: Exception) -> None:
        self.lost = self.lost or exc
        while self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.set_exception(exc)
                # replies of a pipelined transaction after the first failed one are
                # never awaited: mark their error seen, or asyncio logs each at exit
                waiter.exception()
        if self.transport is not None:
            self.transport.close()

    def expect(self) -> asyncio.Future[Reply]:
        """The future of the next reply not yet asked for."""
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        if self.ready:
            future.set_result(self.ready.popleft())
        elif self.lost is not None:
            future.set_exception(self.lost)
        else:
            self.waiting.append(future)
        return future


class Connection:
    """An open SMTP session that sends prepared messages. Not shared: one transaction at
    a time. Any error other than a refusal leaves it closed (`usable` is False)."""

    def __init__(self, transport: asyncio.Transport, pipelining: bool, timeout: float) -> None:
        self.protocol = _Replies()
        self.protocol.transport = transport
        transport.set_protocol(self.protocol)
        self.transport = transport
        self.pipelining = pipelining
        self.timeout = timeout

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        security: str,
        username: str = "",
        password: str = "",
        timeout: float = 30,
        tls_context: ssl.SSLContext | None = None,
    ) -> Connection:
        """Connect, say EHLO, secure and log in; TemporaryFailure when that fails."""
        client = aiosmtplib.SMTP(
            hostname=host,
            port=port,
            timeout=timeout,
            use_tls=security == "tls",
            start_tls=security == "starttls",
            tls_context=tls_context,
        )
        try:
            await client.connect()
            if client.is_ehlo_or_helo_needed:
                await client.ehlo()  # servers without ESMTP are not worth a HELO fallback
            if username:
                await client.login(username, password)
            pipelining = client.supports_extension("pipelining")
            transport = client.transport
        except (aiosmtplib.SMTPException, OSError) as exc:
            client.close()
            raise TemporaryFailure("", None, f"cannot connect to {host}:{port}: {exc}") from None
        if transport is None:
            client.close()
            raise TemporaryFailure("", None, f"no transport to {host}:{port}")
        # uvloop's transports are asyncio transports in all but inheritance
        return cls(cast(asyncio.Transport, transport), pipelining, timeout)

    @property
    def usable(self) -> bool:
        return self.protocol.lost is None and not self.transport.is_closing()

    async def send(self, mail_from: str, recipient: str, data: bytes) -> Reply:
        """Send one prepared message (CRLF, no line starting with a dot, ending in CRLF).
        Raises PermanentFailure (5xx to RCPT), MessageRefused (5xx to MAIL or DATA) or
        TemporaryFailure (4xx; code None when the connection failed or timed out)."""
        try:
            async with asyncio.timeout(self.timeout):
                return await self._transaction(mail_from, recipient, data)
        except DeliveryError:
            raise
        except asyncio.CancelledError:
            self.transport.close()  # cut off mid-transaction: the session is out of step
            raise
        except (TimeoutError, ConnectionError, OSError) as exc:
            self.transport.close()  # mid-transaction: its next reply would be out of step
            reason = "no answer in time" if isinstance(exc, TimeoutError) else str(exc)
            raise TemporaryFailure(recipient, None, reason or type(exc).__name__) from None

    async def _transaction(self, mail_from: str, recipient: str, data: bytes) -> Reply:
        commands = [f"MAIL FROM:<{mail_from}>\r\n", f"RCPT TO:<{recipient}>\r\n", "DATA\r\n"]
        if self.pipelining:
            replies = [self.protocol.expect() for _ in commands]
            self.transport.write("".join(commands).encode())
            mail, rcpt, start = [await r for r in replies]
        else:
            mail = await self._command(commands[0])
            rcpt = await self._command(commands[1]) if mail.code == 250 else mail
            start = await self._command(commands[2]) if rcpt.code // 100 == 2 else rcpt
        if start.code == 354 and (mail.code != 250 or rcpt.code // 100 != 2):
            await self._command(".\r\n")  # a server that took DATA after a refusal
            start = Reply(554, "no valid recipients")
        if start.code != 354:
            await self._command("RSET\r\n")
            if mail.code != 250:
                raise _refusal(MessageRefused, recipient, mail)
            if rcpt.code // 100 != 2:
                raise _refusal(PermanentFailure, recipient, rcpt)
            raise _refusal(MessageRefused, recipient, start)
        done = self.protocol.expect()
        self.transport.write(data + b".\r\n")
        reply = await done
        if reply.code != 250:
            raise _refusal(MessageRefused, recipient, reply)
        return reply

    async def _command(self, line: str) -> Reply:
        reply = self.protocol.expect()
        self.transport.write(line.encode())
        return await reply

    async def close(self) -> None:
        """QUIT politely; close in any case."""
        if self.usable:
            try:
                async with asyncio.timeout(2):
                    await self._command("QUIT\r\n")
            except (TimeoutError, ConnectionError, OSError):
                pass
        self.transport.close()


def _refusal(permanent: type[DeliveryError], recipient: str, reply: Reply) -> DeliveryError:
    kind = permanent if 500 <= reply.code < 600 else TemporaryFailure
    return kind(recipient, reply.code, reply.text)
