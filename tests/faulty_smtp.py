"""A small SMTP server that misbehaves on purpose, for the connection-level faults aiosmtpd
cannot stage (its handlers only see a message once all of it has arrived).

It speaks enough SMTP for the service's client: a greeting, EHLO (announcing PIPELINING)
or HELO, MAIL, RCPT, DATA, RSET, NOOP and QUIT. Commands that arrive together in one
packet are answered one by one, in order (`pipelined` counts the commands read while the
next one had already arrived). It runs on an event loop in a thread of its own: `start()`
listens (on the same port again after `stop()`), `stop()` stops listening and resets every
connection, as a process that dies would.

The faults, chosen per message by the recipient and how many times its DATA began:
- `cut(recipient, tries)` True: the server reads the headers and one line of the body,
  then closes the connection; nothing is kept (`cuts` records the Message-IDs it saw).
- `drop(recipient, tries)` True: the whole message is read and kept, then the connection
  is closed before the 250; the client cannot know it was delivered.
- `silent = True`: a new connection gets no greeting, and a session that reads a command
  or the end of a message never answers again; only the client can end it. `hung` counts
  such sessions by kind ("ungreeted", "mid-session"), `hung_closed` those the client closed.
- `crash_after = n`: once the n-th message is kept, the server dies before answering it:
  it stops listening and resets every connection, then sets `crashed`.
`on_message(recipient)` is called, on the server's thread, for each message kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.policy
import threading
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser

Fault = Callable[[str, int], bool]  # (recipient, DATA tries so far, this one included)
MAX_LINE = 1 << 20


def _never(_recipient: str, _tries: int) -> bool:
    return False


def parse(data: bytes, headers_only: bool = False) -> EmailMessage:
    return BytesParser(policy=email.policy.default).parsebytes(data, headersonly=headers_only)


@dataclass(frozen=True)
class Accepted:
    """A message the server kept: its envelope, its bytes parsed, the session it came on."""

    mail_from: str
    recipient: str
    message: EmailMessage
    session: int


class _Gone(Exception):
    """The client closed the connection."""


class _Lines:
    """The client's lines, however its packets cut them."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader
        self.buffer = bytearray()

    async def line(self) -> bytes:
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0:
                found = bytes(self.buffer[: end + 1])
                del self.buffer[: end + 1]
                return found
            if len(self.buffer) > MAX_LINE:
                raise _Gone("line too long")
            chunk = await self.reader.read(65536)
            if not chunk:
                raise _Gone("end of stream")
            self.buffer += chunk

    def more(self) -> bool:
        """A whole line is waiting already (the client did not wait for our answer)."""
        return b"\n" in self.buffer

    async def until_closed(self) -> None:
        while await self.reader.read(65536):
            pass


def _address(argument: str) -> str:
    start, end = argument.find("<"), argument.find(">")
    return argument[start + 1 : end] if 0 <= start < end else argument.split(":", 1)[-1].strip()


class FaultySmtp:
    def __init__(self, port: int) -> None:
        self.port = port
        self.cut: Fault = _never
        self.drop: Fault = _never
        self.silent = False
        self.crash_after: int | None = None
        self.on_message: Callable[[str], None] | None = None
        self.crashed = threading.Event()
        self.lock = threading.Lock()
        self.accepted: list[Accepted] = []
        self.cuts: list[tuple[str, str]] = []  # (recipient, Message-ID) of messages cut short
        self.dropped: list[str] = []  # recipients of messages kept but never answered
        self.tries: dict[str, int] = {}
        self.sessions = 0
        self.pipelined = 0
        self.hung: dict[str, int] = {"ungreeted": 0, "mid-session": 0}
        self.hung_closed: dict[str, int] = {"ungreeted": 0, "mid-session": 0}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ reading, in tests

    def messages(self) -> list[Accepted]:
        with self.lock:
            return list(self.accepted)

    def count(self, what: str) -> int:
        with self.lock:
            return {"sessions": self.sessions, "accepted": len(self.accepted)}[what]

    def closed_hung(self, kind: str) -> int:
        with self.lock:
            return self.hung_closed[kind]

    # ------------------------------------------------------------------ running

    def start(self) -> None:
        assert self._thread is None, "already running"
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failed: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._session, "127.0.0.1", self.port)
                )
            except BaseException as exc:
                failed.append(exc)
                ready.set()
                loop.close()
                return
            loop.call_soon(ready.set)
            try:
                loop.run_forever()
            finally:
                loop.close()

        self.crashed.clear()
        self._loop = loop
        self._thread = threading.Thread(target=run, name=f"faulty-smtp-{self.port}", daemon=True)
        self._thread.start()
        if not ready.wait(10) or failed:
            self._thread.join(5)
            self._thread = None
            raise RuntimeError(f"the faulty SMTP server did not start: {failed}")

    def stop(self) -> None:
        """Stop listening, reset every connection and end the thread."""
        if self._thread is None or self._loop is None:
            return
        loop = self._loop
        asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(10)
        self._thread, self._loop, self._server = None, None, None

    async def _shutdown(self) -> None:
        self._die()
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        await asyncio.sleep(0.01)  # let the aborted transports close their sockets

    def _die(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()

    # ------------------------------------------------------------------ a session

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        with self.lock:
            self.sessions += 1
            number = self.sessions
        lines = _Lines(reader)
        try:
            if self.silent:
                await self._hang(lines, "ungreeted")
                return
            await self._say(writer, "220 faulty.test ESMTP ready")
            await self._commands(number, lines, writer)
        except (_Gone, ConnectionError):
            pass
        finally:
            self._tasks.discard(task)
            self._writers.discard(writer)
            if self.crashed.is_set():
                writer.transport.abort()
            else:
                writer.close()

    async def _commands(self, number: int, lines: _Lines, writer: asyncio.StreamWriter) -> None:
        mail_from: str | None = None
        recipients: list[str] = []
        while True:
            line = await lines.line()
            if lines.more():
                with self.lock:
                    self.pipelined += 1
            if self.silent:
                await self._hang(lines, "mid-session")
                return
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            verb, _, argument = text.partition(" ")
            verb = verb.upper()
            if verb == "EHLO":
                await self._say(
                    writer, "250-faulty.test", "250-PIPELINING", "250-8BITMIME", "250 SIZE 10485760"
                )
            elif verb == "HELO":
                await self._say(writer, "250 faulty.test")
            elif verb == "MAIL":
                mail_from, recipients = _address(argument), []
                await self._say(writer, "250 2.1.0 Sender ok")
            elif verb == "RCPT":
                if mail_from is None:
                    await self._say(writer, "503 5.5.1 MAIL first")
                    continue
                recipients.append(_address(argument))
                await self._say(writer, "250 2.1.5 Recipient ok")
            elif verb == "DATA":
                if mail_from is None or not recipients:
                    await self._say(writer, "503 5.5.1 No valid recipients")
                    continue
                await self._say(writer, "354 End data with <CR><LF>.<CR><LF>")
                if not await self._message(number, lines, writer, mail_from, recipients):
                    return
                mail_from, recipients = None, []
            elif verb == "RSET":
                mail_from, recipients = None, []
                await self._say(writer, "250 2.0.0 Reset")
            elif verb == "NOOP":
                await self._say(writer, "250 2.0.0 Ok")
            elif verb == "QUIT":
                await self._say(writer, "221 2.0.0 Bye")
                return
            else:
                await self._say(writer, "502 5.5.2 Command not recognised")

    async def _message(
        self,
        number: int,
        lines: _Lines,
        writer: asyncio.StreamWriter,
        mail_from: str,
        recipients: list[str],
    ) -> bool:
        """Read one message after the 354; False when the session is over."""
        recipient = recipients[0]
        with self.lock:
            tries = self.tries[recipient] = self.tries.get(recipient, 0) + 1
        cut = self.cut(recipient, tries)
        data = bytearray()
        in_body = False
        while True:
            line = await lines.line()
            if line == b".\r\n":
                break
            data += line[1:] if line.startswith(b".") else line
            if cut and in_body:  # the headers and a line of the body: enough
                headers = parse(bytes(data), headers_only=True)
                with self.lock:
                    self.cuts.append((recipient, str(headers["Message-ID"])))
                return False
            in_body = in_body or line in (b"\r\n", b"\n")
        if self.silent:  # the message is in, the answer never comes
            await self._hang(lines, "mid-session")
            return False
        message = parse(bytes(data))
        with self.lock:
            self.accepted.append(Accepted(mail_from, recipient, message, number))
            kept = len(self.accepted)
        if self.on_message is not None:
            self.on_message(recipient)
        if self.crash_after is not None and kept >= self.crash_after and not self.crashed.is_set():
            self.crashed.set()
            self._die()
            return False
        if self.drop(recipient, tries):
            with self.lock:
                self.dropped.append(recipient)
            return False
        await self._say(writer, "250 2.0.0 Ok: queued")
        return True

    async def _hang(self, lines: _Lines, kind: str) -> None:
        with self.lock:
            self.hung[kind] += 1
        with contextlib.suppress(ConnectionError):
            await lines.until_closed()
        with self.lock:
            self.hung_closed[kind] += 1

    @staticmethod
    async def _say(writer: asyncio.StreamWriter, *lines: str) -> None:
        writer.write("".join(f"{line}\r\n" for line in lines).encode())
        await writer.drain()
