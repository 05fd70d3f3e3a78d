"""Where imports come from: files, folders and http(s) URLs, read into `Source` objects.
The only part of the article domain that touches the file system or the network.

A feed at a URL is someone else's input, and so is every URL it redirects to; fetching one
is bounded:

- **Size.** At most `MAX_FEED_BYTES` (50 MB) of body, counted after decompression: gzip
  and deflate are decoded here, a chunk at a time with a bounded output, so a small
  compressed bomb stops at the limit instead of filling memory. Other content encodings
  are refused (only "gzip, deflate" is asked for).
- **Time.** The whole fetch (name look-ups, connecting, every redirect, the headers and the
  body) must end within `timeout` seconds (`FETCH_SECONDS`, 30): every read and write
  waits at most until that deadline, so a server sending a byte a second cannot stretch it.
- **Where.** Redirects are followed here, at most `MAX_REDIRECTS` (5), each to http(s)
  only. Every host name is resolved and each of its addresses checked: private, loopback,
  link-local, multicast, reserved and other non-public addresses are refused unless
  `allow_private` (`newsletter articles import --allow-private-hosts`). The connection
  goes to an address that was checked, never to a second look-up a rebinding DNS server
  could answer differently; proxy settings from the environment are not used, since a
  proxy would connect wherever it likes.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpcore
import httpx

from newsletter.articles.formats import SUFFIXES, Source, sniff
from newsletter.errors import SourceError

MAX_FEED_BYTES = 50 * 1024 * 1024  # largest feed body fetched from a URL, decompressed
FETCH_SECONDS = 30.0  # the whole fetch of a URL, redirects included
MAX_REDIRECTS = 5
MAX_URL_CHARS = 2000  # the size of article.source, which records the URL


def open_source(
    location: str,
    timeout: float = FETCH_SECONDS,
    *,
    allow_private: bool = False,
    max_bytes: int = MAX_FEED_BYTES,
) -> list[Source]:
    """The sources at `location`: a file, a folder (its .json, .jsonl, .md and feed files),
    or an http(s) URL of a feed, fetched within `timeout` seconds in all and `max_bytes`
    of body (see the module's notes; `allow_private` lets a URL reach private, loopback
    and link-local addresses). Raises SourceError if it cannot be read."""
    if re.match(r"https?://", location, re.IGNORECASE):
        if len(location) > MAX_URL_CHARS:
            raise SourceError(f"{location[:80]}…: a URL of more than {MAX_URL_CHARS} characters")
        data = fetch(location, timeout, allow_private=allow_private, max_bytes=max_bytes)
        return [Source(location, "feed", data, origin=location, remote=True)]
    path = Path(location)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
        return [s for p in files for s in open_source(str(p))]
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SourceError(f"{location}: cannot read: {exc.strerror}") from None
    kind = SUFFIXES.get(path.suffix.lower()) or sniff(data)
    if kind is None:
        raise SourceError(
            f"{location}: unknown format; expected .json, .jsonl, .md or an RSS/Atom feed"
        )
    origin = ("file:" + str(path.resolve()))[:MAX_URL_CHARS]
    return [Source(location, kind, data, origin=origin)]


def fetch(
    url: str,
    timeout: float = FETCH_SECONDS,
    *,
    allow_private: bool = False,
    max_bytes: int = MAX_FEED_BYTES,
) -> bytes:
    """The body of `url` (decompressed), within the bounds the module describes.
    Raises SourceError naming the URL and what went wrong."""
    deadline = time.monotonic() + timeout
    backend = _GuardedBackend(deadline, allow_private)
    current = url
    try:
        with httpx.Client(
            transport=_GuardedTransport(backend),
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,
            headers={"Accept-Encoding": "gzip, deflate"},
        ) as client:
            for _ in range(MAX_REDIRECTS + 1):
                with client.stream("GET", current) as response:
                    if response.is_redirect:
                        target = response.url.join(response.headers["location"])
                        if target.scheme not in ("http", "https"):
                            raise SourceError(
                                f"{url}: redirected to {str(target)[:200]!r}, not an http(s) URL"
                            )
                        current = str(target)
                        continue
                    response.raise_for_status()
                    return _read_body(response, max_bytes, deadline)
    except _Refused as exc:
        raise SourceError(f"{url}: not fetched: {exc}") from None
    except _TooLarge:
        raise SourceError(
            f"{url}: the feed is larger than {_size(max_bytes)} (decompressed); not imported"
        ) from None
    except httpx.TimeoutException as exc:
        if time.monotonic() >= deadline:
            raise SourceError(f"{url}: no complete answer within {timeout:g} s") from None
        raise SourceError(f"{url}: cannot fetch: timed out ({exc})") from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise SourceError(f"{url}: cannot fetch: {exc}") from None
    raise SourceError(f"{url}: more than {MAX_REDIRECTS} redirects")


# ----------------------------------------------------------------------------- the body


def _size(count: int) -> str:
    if count < 2**20:
        return f"{count} bytes"
    return f"{count / 2**20:.1f}".removesuffix(".0") + " MiB"


class _TooLarge(Exception):
    pass


class _Inflater:
    """One content encoding (gzip or deflate) undone with a bounded output."""

    def __init__(self, encoding: str, url: str) -> None:
        if encoding in ("gzip", "x-gzip"):
            self._z: Any = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._z = None  # zlib-wrapped or raw: decided by the first bytes
        else:
            raise SourceError(f"{url}: the server sent an unsupported encoding {encoding[:40]!r}")
        self._made = 0

    def feed(self, data: bytes, most: int) -> bytes:
        if self._z is None:
            self._z = zlib.decompressobj()
            try:
                return self._take(self._z.decompress(data, most - self._made + 1), most)
            except zlib.error:
                self._z = zlib.decompressobj(-zlib.MAX_WBITS)
        return self._take(self._z.decompress(data, most - self._made + 1), most)

    def finish(self, most: int) -> bytes:
        return self._take(self._z.flush() if self._z is not None else b"", most)

    def _take(self, out: bytes, most: int) -> bytes:
        self._made += len(out)
        if self._made > most or (self._z is not None and self._z.unconsumed_tail):
            raise _TooLarge
        return out


def _read_body(response: httpx.Response, most: int, deadline: float) -> bytes:
    url = str(response.url)
    encodings = [
        e.strip().lower()
        for e in response.headers.get("content-encoding", "").split(",")
        if e.strip() and e.strip().lower() != "identity"
    ]
    # listed in the order they were applied; undone last first
    inflaters = [_Inflater(e, url) for e in reversed(encodings)]
    declared = response.headers.get("content-length", "")
    if not inflaters and declared.isdigit() and int(declared) > most:
        raise _TooLarge
    body = bytearray()
    try:
        for raw in response.iter_raw():
            chunk = raw
            for inflater in inflaters:
                chunk = inflater.feed(chunk, most)
            body += chunk
            if len(body) > most:
                raise _TooLarge
            if time.monotonic() > deadline:
                raise httpx.ReadTimeout("deadline passed")
        tail = b""  # what each decoder still holds, through the decoders after it
        for inflater in inflaters:
            tail = inflater.feed(tail, most) + inflater.finish(most)
        body += tail
    except zlib.error as exc:
        raise SourceError(f"{url}: the body is not valid {', '.join(encodings)}: {exc}") from None
    if len(body) > most:
        raise _TooLarge
    return bytes(body)


# ----------------------------------------------------------------------------- the network


class _Refused(Exception):
    """A host whose address is not to be connected to."""


def _refused_address(ip: str) -> str | None:
    """Why connecting to `ip` is refused ("a loopback address"), or None when it is a
    public address."""
    address: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(
        ip.partition("%")[0]
    )
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:  # ::ffff:127.0.0.1 is 127.0.0.1
            address = address.ipv4_mapped
        elif address in _NAT64:  # 64:ff9b::7f00:1 reaches 127.0.0.1 through NAT64
            address = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    for kind, why in _REFUSED:
        if getattr(address, kind):
            return why
    if not address.is_global:
        return "is not a public address"
    return None


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_REFUSED = [
    ("is_loopback", "is a loopback address"),
    ("is_link_local", "is a link-local address"),
    ("is_multicast", "is a multicast address"),
    ("is_unspecified", "is an unspecified address"),
    ("is_reserved", "is a reserved address"),
    ("is_private", "is a private address"),
]


def _resolve(host: str, port: int, timeout: float) -> list[str]:
    """The addresses of `host`, looked up within `timeout` seconds (getaddrinfo has no
    timeout of its own, so it runs in a thread that is left behind if it takes longer)."""
    found: list[Any] = []

    def look_up() -> None:
        try:
            found.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as exc:
            found.append(exc)

    worker = threading.Thread(target=look_up, daemon=True)
    worker.start()
    worker.join(max(timeout, 0))
    if not found:
        raise httpcore.ConnectTimeout(f"looking up {host} took too long")
    if isinstance(found[0], OSError):
        raise httpcore.ConnectError(f"cannot look up {host}: {found[0]}")
    addresses: list[str] = []
    for *_, sockaddr in found[0]:
        if sockaddr[0] not in addresses:
            addresses.append(str(sockaddr[0]))
    return addresses


class _GuardedBackend(httpcore.NetworkBackend):
    """Connects only to checked addresses, and never waits past `deadline`."""

    def __init__(self, deadline: float, allow_private: bool) -> None:
        self._deadline = deadline
        self._allow_private = allow_private
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = _resolve(host, port, _clamp(timeout, self._deadline))
        if not self._allow_private:
            for address in addresses:
                why = _refused_address(address)
                if why is not None:
                    at = host if address == host else f"{host} is at {address},"
                    raise _Refused(
                        f"{at} {why}; private, loopback, link-local and reserved addresses "
                        "are refused (--allow-private-hosts allows them)"
                    )
        error: Exception = httpcore.ConnectError(f"{host} has no address")
        for address in addresses:
            try:
                stream = self._inner.connect_tcp(
                    address,
                    port,
                    timeout=_clamp(timeout, self._deadline),
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
                continue
            return _DeadlineStream(stream, self._deadline)
        raise error

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        raise _Refused("Unix sockets are not fetched from")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def _clamp(timeout: float | None, deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise httpcore.ReadTimeout("the deadline of the whole fetch has passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, deadline: float) -> None:
        self._inner = inner
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _clamp(timeout, self._deadline))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _clamp(timeout, self._deadline))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(ssl_context, server_hostname, _clamp(timeout, self._deadline))
        return _DeadlineStream(inner, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _GuardedTransport(httpx.HTTPTransport):
    """httpx's transport over a connection pool that connects through `backend`."""

    def __init__(self, backend: _GuardedBackend) -> None:
        super().__init__(trust_env=False)
        # HTTPTransport sends every request through self._pool; ours uses the guarded
        # backend (httpx has no public option for a network backend).
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=4,
            network_backend=backend,
        )
