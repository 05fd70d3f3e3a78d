"""Limits on what a request may cost: body and header sizes, validation errors that never
echo their input, and (for `newsletter serve`) a bounded request head read in bounded time.

`RequestLimits` is plain ASGI middleware. It refuses a request whose request target and
headers together exceed `max_header_bytes` (431), a declared Content-Length over
`max_body_bytes` (413) before reading anything, and a body that grows past `max_body_bytes`
while it arrives (413, counted chunk by chunk, so chunked bodies without a length are held
to the same limit and never buffered whole).

`server_protocol` is the HTTP protocol `newsletter serve` runs uvicorn with: uvicorn's
httptools protocol (the fast one, which has no limits of its own) with a cap on the raw
request head and a timeout for reading it, so a client that sends an endless header line or
opens connections and never completes a request cannot hold memory or sockets for long.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from fastapi.exceptions import RequestValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from newsletter.web.bounds import HEAD_TIMEOUT, MAX_HEAD_BYTES

MAX_BODY_BYTES = 1024 * 1024  # forms and JSON; nothing here takes uploads
MAX_HEADER_BYTES = 16 * 1024  # request target, header names and values
MAX_ERROR_TEXT = 200  # characters of any string an error answer repeats


class _BodyTooLarge(Exception):
    """Raised into the application when the body it reads passes the limit."""


class RequestLimits:
    """ASGI middleware: 431 for oversized headers, 413 for oversized bodies."""

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int = MAX_BODY_BYTES,
        max_header_bytes: int = MAX_HEADER_BYTES,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        size = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
        declared: bytes | None = None
        for name, value in scope["headers"]:
            size += len(name) + len(value)
            if name == b"content-length":
                declared = value
        if size > self.max_header_bytes:
            await _refuse(send, 431, b"Request Header Fields Too Large", close=False)
            return
        if declared is not None:
            if not declared.strip().isdigit():
                await _refuse(send, 400, b"Bad Request: invalid Content-Length", close=True)
                return
            if int(declared) > self.max_body_bytes:
                await _refuse(send, 413, self._too_large_text(), close=True)
                return

        limit = self.max_body_bytes
        received = 0
        too_large = started = False

        async def limited_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    too_large = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if too_large:
                return  # whatever the application makes of the refused body is not sent
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not too_large:
                raise
        if too_large and not started:
            await _refuse(send, 413, self._too_large_text(), close=True)

    def _too_large_text(self) -> bytes:
        return f"Content Too Large: at most {self.max_body_bytes} bytes".encode()


async def _refuse(send: Send, status: int, text: bytes, close: bool) -> None:
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(text)).encode()),
    ]
    if close:  # the body was not read: the connection cannot carry another request
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": text})


# ------------------------------------------------------------------------- validation errors


def _bounded(value: object) -> object:
    """A value an error answer may repeat: numbers and booleans as they are, anything else
    as text of at most MAX_ERROR_TEXT characters that UTF-8 can carry (a lone surrogate
    becomes its escape)."""
    if isinstance(value, bool | int | float) or value is None:
        return value
    text = value if isinstance(value, str) else repr(value)
    if len(text) > MAX_ERROR_TEXT:
        text = text[:MAX_ERROR_TEXT] + "…"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def public_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Pydantic/FastAPI validation errors as an answer may carry them: type, location,
    message and context, each bounded, and never the input that was refused (which can be
    megabytes, bytes that JSON cannot carry, or text UTF-8 cannot encode)."""
    public: list[dict[str, Any]] = []
    for error in errors[:20]:
        item: dict[str, Any] = {
            "type": _bounded(error.get("type", "")),
            "loc": [_bounded(part) for part in list(error.get("loc", ()))[:10]],
            "msg": _bounded(error.get("msg", "")),
        }
        ctx = error.get("ctx")
        if isinstance(ctx, dict) and ctx:
            item["ctx"] = {str(_bounded(k)): _bounded(v) for k, v in list(ctx.items())[:5]}
        public.append(item)
    return public


async def validation_failed(_request: Request, exc: Exception) -> Response:
    """The application's answer to a request FastAPI could not validate: 422 with the
    errors, without echoing what was sent."""
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": public_errors(exc.errors())}, status_code=422)


# ------------------------------------------------------------------------- the server


def server_protocol(
    head_timeout: float = HEAD_TIMEOUT, max_head_bytes: int = MAX_HEAD_BYTES
) -> type[asyncio.Protocol] | str:
    """The `http` protocol for uvicorn: httptools with a bounded request head, read within
    `head_timeout` seconds. Without httptools, "h11" (then only the head size is bounded,
    through uvicorn's `h11_max_incomplete_event_size`)."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # pragma: no cover - httptools comes with uvicorn[standard]
        return "h11"

    class BoundedHttpToolsProtocol(HttpToolsProtocol):
        """Counts the bytes of a request head that is still incomplete after a chunk of
        data was parsed: past `max_head_bytes` it answers 431 and closes, so the parser
        never buffers an endless header. A connection whose head is not complete within
        `head_timeout` seconds of its first byte (or of the connection, for the first
        request) is closed, with 408 when part of a request came."""

        _awaiting_head = False  # between a request's first byte and its last header
        _ended_now = False  # a request ended in this chunk: not all of it is head
        _head_bytes = 0
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_head_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_head_timer()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            self._ended_now = False
            super().data_received(data)
            if not self._awaiting_head or self.transport.is_closing():
                return
            if not self._ended_now:  # the whole chunk belongs to the unfinished head
                self._head_bytes += len(data)
                if self._head_bytes > max_head_bytes:
                    self._refuse(b"431 Request Header Fields Too Large")
                    return
            if self._head_timer is None:
                self._arm_head_timer()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._awaiting_head = True
            self._head_bytes = 0

        def on_message_complete(self) -> None:
            self._ended_now = True
            super().on_message_complete()

        def on_headers_complete(self) -> None:
            self._awaiting_head = False
            self._cancel_head_timer()
            super().on_headers_complete()

        def _arm_head_timer(self) -> None:
            self._head_timer = self.loop.call_later(head_timeout, self._head_timed_out)

        def _cancel_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timed_out(self) -> None:
            self._head_timer = None
            if self.transport.is_closing():
                return
            if self._awaiting_head:
                self._refuse(b"408 Request Timeout")
            elif self.cycle is None:  # connected, and never sent a byte
                self.transport.close()

        def _refuse(self, status: bytes) -> None:
            self._cancel_head_timer()
            if self.cycle is not None and not self.cycle.response_complete:
                self.transport.close()  # a pipelined request is still being answered
                return
            text = status[4:]
            self.transport.write(
                b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\n"
                b"content-length: " + str(len(text)).encode() + b"\r\n"
                b"connection: close\r\n\r\n" + text
            )
            self.transport.close()

    return BoundedHttpToolsProtocol
