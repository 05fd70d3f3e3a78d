"""Feed responses, served by a bare ASGI handler in front of the FastAPI app.

Feeds are what gets polled hardest, so they skip the framework: a path match, a dictionary
lookup and one `send` of bytes rendered earlier. Conditional GET (If-None-Match, then
If-Modified-Since), HEAD, gzip and Cache-Control are handled here. The browser stylesheet
the RSS and Atom feeds name (/feed.xsl, feeds/stylesheet.py) is served here too, beside them.

A browser opening an RSS or Atom feed (its Accept names text/html and no feed type) gets the
same bytes as application/xml, the one type under which browsers apply the stylesheet;
everyone else gets the feed's own type. Responses say `Vary: Accept`.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from newsletter import metrics
from newsletter.feeds import stylesheet
from newsletter.feeds.cache import FeedCache, Rendered

FEED_PATH = re.compile(r"^/(?:(tags|authors)/([^/]+)/)?feed\.(rss|atom|json)$")
_KINDS = {"tags": "tag", "authors": "author", None: "site"}
# The stylesheet changes only with a release or the site's name: browsers revalidate it
# hourly (ETag), so a renamed site shows within the hour.
STYLESHEET_CACHE_CONTROL = b"public, max-age=3600"


# What a browser opening a feed gets instead of the feed types, which Chromium shows as
# plain text and Firefox downloads: the same bytes as XML, so the feed's xml-stylesheet
# instruction applies and the feed reads as a page (see feeds/stylesheet.py).
BROWSER_CONTENT_TYPE = b"application/xml; charset=utf-8"
# Media types by which a client says it wants a feed: it gets the feed's own type.
_FEED_TYPES = frozenset(
    {"application/rss+xml", "application/atom+xml", "application/rdf+xml", "application/feed+json"}
)


@dataclass(frozen=True)
class _Headers:
    """The response headers of one representation, built once."""

    etag: str
    plain: list[tuple[bytes, bytes]]
    gzipped: list[tuple[bytes, bytes]]
    not_modified: list[tuple[bytes, bytes]]

    @classmethod
    def build(
        cls,
        etag: str,
        common: list[tuple[bytes, bytes]],
        content_type: bytes,
        body: bytes,
        gzipped: bytes,
    ) -> _Headers:
        common = [(b"etag", etag.encode()), *common]
        content_type_header = (b"content-type", content_type)
        return cls(
            etag=etag,
            plain=[*common, content_type_header, (b"content-length", str(len(body)).encode())],
            gzipped=[
                *common,
                content_type_header,
                (b"content-encoding", b"gzip"),
                (b"content-length", str(len(gzipped)).encode()),
            ],
            not_modified=common,
        )


@dataclass(frozen=True)
class _Prepared:
    """Response headers for one rendered entry, built once: a cached request only picks a list.
    RSS and Atom have two representations, the same bytes under two content types: `reader`
    (the feed's own type) and `browser` (XML, for a browser's navigation)."""

    key: str
    entry: Rendered
    reader: _Headers
    browser: _Headers | None

    @classmethod
    def build(
        cls, key: str, entry: Rendered, self_url: str, hub: str | None, cache_control: bytes
    ) -> _Prepared:
        link = f'<{self_url}>; rel="self"' + (f', <{hub}>; rel="hub"' if hub else "")
        negotiated = entry.content_type.startswith(("application/rss+xml", "application/atom+xml"))
        common = [
            (b"last-modified", entry.last_modified.encode()),
            (b"cache-control", cache_control),
            (b"vary", b"Accept, Accept-Encoding" if negotiated else b"Accept-Encoding"),
            (b"link", link.encode()),
            (b"access-control-allow-origin", b"*"),
        ]
        body, packed = entry.body, entry.gzipped
        reader = _Headers.build(entry.etag, common, entry.content_type.encode(), body, packed)
        browser = None
        if negotiated:
            # another representation, another entity tag (RFC 9110 8.8.3)
            etag = entry.etag[:-1] + '-xml"'
            browser = _Headers.build(etag, common, BROWSER_CONTENT_TYPE, body, packed)
        return cls(key=key, entry=entry, reader=reader, browser=browser)


@dataclass(frozen=True)
class _Asset:
    """A file served beside the feeds (the browser stylesheet)."""

    body: bytes
    gzipped: bytes
    headers: _Headers

    @classmethod
    def build(cls, body: bytes, content_type: str, cache_control: bytes) -> _Asset:
        etag = 'W/"' + hashlib.sha1(body).hexdigest()[:20] + '"'
        packed = gzip.compress(body, compresslevel=9, mtime=0)
        common = [
            (b"cache-control", cache_control),
            (b"vary", b"Accept-Encoding"),
            (b"x-content-type-options", b"nosniff"),
        ]
        return cls(body, packed, _Headers.build(etag, common, content_type.encode(), body, packed))


class FeedRoutes:
    """ASGI middleware: answers feed URLs, hands everything else to `app`."""

    def __init__(self, app: ASGIApp, cache: FeedCache, max_age: int) -> None:
        self.app = app
        self.cache = cache
        self.cache_control = f"public, max-age={max_age}".encode()
        self._by_path: dict[str, _Prepared] = {}  # the hot path: one lookup per request
        self._stylesheet: _Asset | None = None  # built at its first request

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        prepared = self._by_path.get(scope["path"])
        result = "hit"  # for newsletter_feed_requests_total: from memory, 304, or rendered
        if prepared is None or not self.cache.is_current(prepared.key, prepared.entry):
            match = FEED_PATH.match(scope["path"])
            if match is None:
                if scope["path"] == stylesheet.PATH:
                    await self._send_stylesheet(scope, send)
                    return
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

        if_none_match, if_modified_since, accept_encoding, accept = _request_headers(scope)
        chosen = prepared.reader
        if prepared.browser is not None and accept is not None and _is_browser(accept):
            chosen = prepared.browser
        if (if_none_match is not None or if_modified_since is not None) and _not_modified(
            if_none_match, if_modified_since, chosen.etag, entry.last_modified_at
        ):
            metrics.feed_request("not_modified")
            await send(
                {"type": "http.response.start", "status": 304, "headers": chosen.not_modified}
            )
            await send({"type": "http.response.body", "body": b""})
            return
        if accept_encoding is not None and _accepts_gzip(accept_encoding):
            headers, body = chosen.gzipped, entry.gzipped
        else:
            headers, body = chosen.plain, entry.body
        metrics.feed_request(result)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send(
            {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body}
        )

    async def _send_stylesheet(self, scope: Scope, send: Send) -> None:
        """/feed.xsl: GET and HEAD, If-None-Match, gzip."""
        if scope["method"] not in ("GET", "HEAD"):
            await _plain(send, 405, b"Method Not Allowed", [(b"allow", b"GET, HEAD")])
            return
        asset = self._stylesheet
        if asset is None:
            body = stylesheet.stylesheet(self.cache.settings)
            asset = _Asset.build(body, stylesheet.CONTENT_TYPE, STYLESHEET_CACHE_CONTROL)
            self._stylesheet = asset
        if_none_match, _, accept_encoding, _ = _request_headers(scope)
        if if_none_match is not None and _etag_matches(if_none_match, asset.headers.etag):
            await send(
                {
                    "type": "http.response.start",
                    "status": 304,
                    "headers": asset.headers.not_modified,
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        if accept_encoding is not None and _accepts_gzip(accept_encoding):
            headers, body = asset.headers.gzipped, asset.gzipped
        else:
            headers, body = asset.headers.plain, asset.body
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


def _request_headers(
    scope: Scope,
) -> tuple[bytes | None, bytes | None, bytes | None, bytes | None]:
    """The request's If-None-Match, If-Modified-Since, Accept-Encoding and Accept headers."""
    if_none_match = if_modified_since = accept_encoding = accept = None
    for name, value in scope["headers"]:
        if name == b"if-none-match":
            if_none_match = value
        elif name == b"if-modified-since":
            if_modified_since = value
        elif name == b"accept-encoding":
            accept_encoding = value
        elif name == b"accept":
            accept = value
    return if_none_match, if_modified_since, accept_encoding, accept


def _etag_matches(if_none_match: bytes, etag: str) -> bool:
    """Weak comparison of an If-None-Match list with our ETag (RFC 9110 8.8.3.2)."""
    ours = etag.removeprefix("W/")
    tags = [t.strip().removeprefix("W/") for t in if_none_match.decode("latin-1").split(",")]
    return "*" in tags or ours in tags


def _not_modified(
    if_none_match: bytes | None, since: bytes | None, etag: str, modified_at: datetime
) -> bool:
    """RFC 9110 13.2.2: If-None-Match decides when present (weak comparison); otherwise
    If-Modified-Since answers 304 when the feed has not changed since that time."""
    if if_none_match is not None:
        return _etag_matches(if_none_match, etag)
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
    return modified_at <= when


@functools.lru_cache(maxsize=256)  # browsers send the same few Accept values
def _is_browser(header: bytes) -> bool:
    """Whether an Accept header is a browser's navigation: it asks for HTML and names no
    feed type. Feed readers name the feed types or send */* (or nothing)."""
    types = {part.partition(";")[0].strip().lower() for part in header.decode("latin-1").split(",")}
    return "text/html" in types and not types & _FEED_TYPES


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
