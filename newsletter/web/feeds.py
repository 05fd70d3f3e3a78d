"""Feed responses, served by a bare ASGI handler in front of the FastAPI app.

Feeds are what gets polled hardest, so they skip the framework: a path match, a dictionary
lookup and one `send` of bytes rendered earlier. Conditional GET (If-None-Match, then
If-Modified-Since), HEAD, gzip and Cache-Control are handled here.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from newsletter import metrics
from newsletter.feeds.cache import FeedCache, Rendered

FEED_PATH = re.compile(r"^/(?:(tags|authors)/([^/]+)/)?feed\.(rss|atom|json)$")
_KINDS = {"tags": "tag", "authors": "author", None: "site"}


@dataclass(frozen=True)
class _Prepared:
    """Response headers for one rendered entry, built once: a cached request only picks a list."""

    key: str
    entry: Rendered
    plain: list[tuple[bytes, bytes]]
    gzipped: list[tuple[bytes, bytes]]
    not_modified: list[tuple[bytes, bytes]]

    @classmethod
    def build(
        cls, key: str, entry: Rendered, self_url: str, hub: str | None, cache_control: bytes
    ) -> _Prepared:
        link = f'<{self_url}>; rel="self"' + (f', <{hub}>; rel="hub"' if hub else "")
        common = [
            (b"etag", entry.etag.encode()),
            (b"last-modified", entry.last_modified.encode()),
            (b"cache-control", cache_control),
            (b"vary", b"Accept-Encoding"),
            (b"link", link.encode()),
            (b"access-control-allow-origin", b"*"),
        ]
        content_type = (b"content-type", entry.content_type.encode())
        return cls(
            key=key,
            entry=entry,
            plain=[*common, content_type, (b"content-length", str(len(entry.body)).encode())],
            gzipped=[
                *common,
                content_type,
                (b"content-encoding", b"gzip"),
                (b"content-length", str(len(entry.gzipped)).encode()),
            ],
            not_modified=common,
        )


class FeedRoutes:
    """ASGI middleware: answers feed URLs, hands everything else to `app`."""

    def __init__(self, app: ASGIApp, cache: FeedCache, max_age: int) -> None:
        self.app = app
        self.cache = cache
        self.cache_control = f"public, max-age={max_age}".encode()
        self._by_path: dict[str, _Prepared] = {}  # the hot path: one lookup per request

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        prepared = self._by_path.get(scope["path"])
        result = "hit"  # for newsletter_feed_requests_total: from memory, 304, or rendered
        if prepared is None or not self.cache.is_current(prepared.key, prepared.entry):
            match = FEED_PATH.match(scope["path"])
            if match is None:
                await self.app(scope, receive, send)
                return
            found, rendered = await self._prepare(scope["path"], *match.groups())
            if found is None:
                await _plain(send, 404, b"No such feed", [])
                return
            prepared = found
            if rendered:
                result = "render"
        if scope["method"] not in ("GET", "HEAD"):
            await _plain(send, 405, b"Method Not Allowed", [(b"allow", b"GET, HEAD")])
            return
        entry = prepared.entry

        if_none_match = if_modified_since = accept_encoding = None
        for name, value in scope["headers"]:
            if name == b"if-none-match":
                if_none_match = value
            elif name == b"if-modified-since":
                if_modified_since = value
            elif name == b"accept-encoding":
                accept_encoding = value
        if (if_none_match is not None or if_modified_since is not None) and _not_modified(
            if_none_match, if_modified_since, entry
        ):
            metrics.feed_request("not_modified")
            await send(
                {"type": "http.response.start", "status": 304, "headers": prepared.not_modified}
            )
            await send({"type": "http.response.body", "body": b""})
            return
        if accept_encoding is not None and _accepts_gzip(accept_encoding):
            headers, body = prepared.gzipped, entry.gzipped
        else:
            headers, body = prepared.plain, entry.body
        metrics.feed_request(result)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send(
            {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body}
        )

    async def _prepare(
        self, path: str, section: str | None, slug: str | None, fmt: str
    ) -> tuple[_Prepared | None, bool]:
        """Find (rendering if needed) the current entry of a feed, and whether it was
        rendered now; None if there is no feed."""
        cache = self.cache
        if cache.needs_refresh():  # a change made in this process: look before answering
            await run_in_threadpool(cache.refresh)
        ref = cache.ref(_KINDS[section], slug or "")
        if ref is None:
            return None, False
        entry = cache.cached(ref, fmt)
        rendered = entry is None
        if entry is None:
            entry = await run_in_threadpool(cache.render, ref, fmt)
        spec = cache.spec(ref)
        prepared = _Prepared.build(ref.key, entry, spec.url(fmt), spec.hub, self.cache_control)
        self._by_path[path] = prepared
        return prepared, rendered


def _not_modified(if_none_match: bytes | None, since: bytes | None, entry: Rendered) -> bool:
    """RFC 9110 13.2.2: If-None-Match decides when present (weak comparison); otherwise
    If-Modified-Since answers 304 when the feed has not changed since that time."""
    if if_none_match is not None:
        ours = entry.etag.removeprefix("W/")
        tags = [t.strip().removeprefix("W/") for t in if_none_match.decode("latin-1").split(",")]
        return "*" in tags or ours in tags
    if since is None:
        return False
    try:
        when: datetime = parsedate_to_datetime(since.decode("latin-1"))
    except (TypeError, ValueError, IndexError, OverflowError):
        # an unparseable date is ignored, as the RFC says; a year too large for a C int
        # ("Mon, 01 Jan 99999999999 00:00:00 GMT") overflows rather than failing to parse
        return False
    if when.tzinfo is None:
        return False
    return entry.last_modified_at <= when


@functools.lru_cache(maxsize=256)  # clients send the same few Accept-Encoding values
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
