"""Where links point when `newsletter serve` runs: the base URL of every link the service
hands out (pages, feeds, OPML, emails), and a warning when requests arrive elsewhere.

`newsletter init` writes the default `[site] base_url` (http://127.0.0.1:8000). Someone who
then serves on another port would get links to port 8000 everywhere, so with the default
the address `serve` binds is used instead. A base URL the operator set is kept as it is.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from newsletter.config import Settings, SiteSettings

log = logging.getLogger(__name__)
DEFAULT_BASE_URL = SiteSettings().base_url.rstrip("/")
WILDCARDS = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "[::1]"}
DEFAULT_PORTS = {"http": 80, "https": 443}
# monitoring probes ask by whatever address reaches the process; they follow no links
UNCHECKED_PATHS = frozenset({"/healthz", "/metrics"})


@dataclass(frozen=True)
class BaseUrl:
    """The base URL a serving process uses, and why."""

    url: str  # without a trailing slash
    derived: bool  # True: from the bind address, because base_url was left at its default
    wildcard: bool  # derived from a wildcard bind (every interface): loopback stands in

    def describe(self) -> str:
        """One line for the operator: which base URL links use, and how to change it."""
        if not self.derived:
            return f"links point at {self.url}/ ([site] base_url)"
        if self.wildcard:
            return (
                f"links point at {self.url}/, which only this machine reaches (listening on "
                "every address): set [site] base_url to the address readers use, "
                "e.g. https://news.example.org"
            )
        return (
            f"links point at {self.url}/ (the address serve listens on; [site] base_url "
            "is at its default: set it to the public address readers use)"
        )


def serving_base_url(settings: Settings, host: str, port: int) -> BaseUrl:
    """The base URL for a server bound to `host`:`port`: the configured one, unless it is
    the default `newsletter init` writes."""
    if settings.base_url != DEFAULT_BASE_URL:
        return BaseUrl(settings.base_url, derived=False, wildcard=False)
    wildcard = host in WILDCARDS
    name = WILDCARDS.get(host, host)
    if _is_ipv6(name):
        name = f"[{name}]"
    suffix = "" if port == DEFAULT_PORTS["http"] else f":{port}"
    return BaseUrl(f"http://{name}{suffix}", derived=True, wildcard=wildcard)


def with_base_url(settings: Settings, base_url: str) -> Settings:
    """`settings` whose links (templates, feeds, OPML, emails, digests) start with `base_url`."""
    if base_url == settings.base_url:
        return settings
    return dataclasses.replace(settings, site=dataclasses.replace(settings.site, base_url=base_url))


def _is_ipv6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return False


def _origin(scheme: str, netloc: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) with the default port filled in; None if `netloc` is no host."""
    try:
        parts = urlsplit(f"{scheme}://{netloc}")
        port = parts.port or DEFAULT_PORTS.get(scheme, 0)
    except ValueError:
        return None
    return (scheme, parts.hostname, port) if parts.hostname else None


class HostCheck:
    """ASGI middleware: warns once per process when a request arrives by an address other
    than the base URL's, since every link it is given then leads elsewhere (a proxy that
    passes X-Forwarded-Host is judged by that header)."""

    def __init__(self, app: ASGIApp, base_url: str) -> None:
        self.app = app
        self.base_url = base_url
        parts = urlsplit(base_url)
        self.expected = _origin(parts.scheme, parts.netloc)
        self.warned = False
        # (scheme, header) pairs already found to match: this sits in front of every
        # request, feeds included, so a matching address is parsed once, not each time
        self._matching: set[tuple[str, bytes]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.warned and scope["type"] == "http" and scope["path"] not in UNCHECKED_PATHS:
            self._check(scope)
        await self.app(scope, receive, send)

    def _check(self, scope: Scope) -> None:
        host = forwarded = None
        for name, value in scope["headers"]:
            if name == b"host":
                host = value
            elif name == b"x-forwarded-host":
                forwarded = value
        raw = forwarded or host or b""
        scheme = scope.get("scheme", "http")
        if (scheme, raw) in self._matching:
            return
        arrived = raw.decode("latin-1").split(",")[0].strip()
        if not arrived:
            return  # an HTTP/1.0 request without Host says nothing about the address
        if _origin(scheme, arrived) == self.expected:
            if len(self._matching) < 64:  # bounded: headers are the clients' to choose
                self._matching.add((scheme, raw))
            return
        self.warned = True
        # the header is the client's to choose: shown bounded and without control characters
        arrived = "".join(c if c.isprintable() else "?" for c in arrived[:200])
        log.warning(
            "a request arrived at %s://%s, but links point at %s: readers who follow them "
            "go elsewhere. Set [site] base_url to the address readers use; behind a proxy, "
            "have it pass Host (or X-Forwarded-Host) and X-Forwarded-Proto, and trust it "
            "with --forwarded-allow-ips (warned once)",
            scheme,
            arrived,
            self.base_url,
        )
