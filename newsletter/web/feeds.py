"""Feed responses, served by a bare ASGI handler in front of the FastAPI app.

Feeds are what gets polled hardest, so they skip the framework: a path match, a dictionary
lookup and one `send` of bytes rendered earlier. Conditional GET (If-None-Match, then
If-Modified-Since), HEAD, gzip and Cache-Control are handled here.
"""

from __future__ import annotations

import re
from datetime import datetime
from email.utils import parsedate_to_datetime

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from newsletter.feed_cache import FeedCache, Rendered

FEED_PATH = re.compile(r"^/(?:(tags|authors)/([^/]+)/)?feed\.(rss|atom|json)$")
_KINDS = {"tags": "tag", "authors": "author", None: "site"}


class FeedRoutes:
    """ASGI middleware: answers feed URLs, hands everything else to `app`."""

    def __init__(self, app: ASGIApp, cache: FeedCache, max_age: int) -> None:
        self.app = app
        self.cache = cache
        self.cache_control = f"public, max-age={max_age}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = FEED_PATH.match(scope["path"]) if scope["type"] == "http" else None
        if match is None:
            await self.app(scope, receive, send)
            return
        if scope["method"] not in ("GET", "HEAD"):
            await _plain(send, 405, b"Method Not Allowed", [(b"allow", b"GET, HEAD")])
            return
        section, slug, fmt = match.groups()
        cache = self.cache
        if cache.needs_refresh():  # a change made in this process: look before answering
            await run_in_threadpool(cache.refresh)
        ref = cache.ref(_KINDS[section], slug or "")
        if ref is None:
            await _plain(send, 404, b"No such feed", [])
            return
        entry = cache.cached(ref, fmt)
        if entry is None:
            entry = await run_in_threadpool(cache.render, ref, fmt)
        await self._respond(scope, send, entry, cache.spec(ref).url(fmt), cache.spec(ref).hub)

    async def _respond(
        self, scope: Scope, send: Send, entry: Rendered, self_url: str, hub: str | None
    ) -> None:
        request = dict(scope["headers"])
        link = f'<{self_url}>; rel="self"' + (f', <{hub}>; rel="hub"' if hub else "")
        headers = [
            (b"etag", entry.etag.encode()),
            (b"last-modified", entry.last_modified.encode()),
            (b"cache-control", self.cache_control),
            (b"vary", b"Accept-Encoding"),
            (b"link", link.encode()),
            (b"access-control-allow-origin", b"*"),
        ]
        if _not_modified(request, entry):
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        body = entry.body
        if _accepts_gzip(request.get(b"accept-encoding", b"")):
            body = entry.gzipped
            headers.append((b"content-encoding", b"gzip"))
        headers += [
            (b"content-type", entry.content_type.encode()),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send(
            {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body}
        )


def _not_modified(request: dict[bytes, bytes], entry: Rendered) -> bool:
    """RFC 9110 13.2.2: If-None-Match decides when present (weak comparison); otherwise
    If-Modified-Since answers 304 when the feed has not changed since that time."""
    if_none_match = request.get(b"if-none-match")
    if if_none_match is not None:
        ours = entry.etag.removeprefix("W/")
        tags = [t.strip().removeprefix("W/") for t in if_none_match.decode("latin-1").split(",")]
        return "*" in tags or ours in tags
    since = request.get(b"if-modified-since")
    if since is None:
        return False
    try:
        when: datetime = parsedate_to_datetime(since.decode("latin-1"))
    except (TypeError, ValueError, IndexError):
        return False  # an unparseable date is ignored, as the RFC says
    if when.tzinfo is None:
        return False
    return entry.last_modified_at <= when


def _accepts_gzip(header: bytes) -> bool:
    for part in header.decode("latin-1").lower().split(","):
        name, _, params = part.strip().partition(";")
        if name.strip() in ("gzip", "x-gzip", "*"):
            q = params.strip()
            try:
                return not (q.startswith("q=") and float(q[2:]) == 0)
            except ValueError:
                return True
    return False


async def _plain(send: Send, status: int, text: bytes, extra: list[tuple[bytes, bytes]]) -> None:
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(text)).encode()),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": text})
