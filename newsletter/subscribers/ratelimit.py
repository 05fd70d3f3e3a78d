"""Sliding-window rate limits, kept in the process.

Memory and time stay bounded whatever the traffic: at most `max_keys` keys are kept (the
least recently seen is forgotten first, in O(1)), each with at most `limit` timestamps.
Clients are keyed by `client_key`: an IPv6 client by its /64, the smallest network a home
or a server is usually given, so one network does not get 2^64 separate limits.
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict, deque

MAX_KEYS = 10_000  # about 10 MB per limiter when full


class RateLimiter:
    """At most `limit` events per key in a sliding window of `seconds` (per process).

    A call costs O(1) plus the expired timestamps it drops (at most `limit`). Past
    `max_keys` keys the one not seen for longest is forgotten, so a flood of new keys can
    reset the window of an old one: the limit holds for up to `max_keys` clients at once."""

    def __init__(self, limit: int, seconds: float, max_keys: int = MAX_KEYS) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.limit = limit
        self.seconds = seconds
        self.max_keys = max_keys
        self._events: OrderedDict[str, deque[float]] = OrderedDict()

    def __len__(self) -> int:
        """The number of keys held (at most `max_keys`)."""
        return len(self._events)

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        events = self._events.get(key)
        if events is None:
            events = self._events[key] = deque(maxlen=self.limit)
            if len(self._events) > self.max_keys:
                self._events.popitem(last=False)  # the least recently seen key
        else:
            self._events.move_to_end(key)
        while events and events[0] <= now - self.seconds:
            events.popleft()
        if len(events) >= self.limit:
            return False
        events.append(now)
        return True


def client_key(host: str) -> str:
    """The rate-limit key of a client address: an IPv4 address as it is, an IPv6 address as
    its /64 network (IPv4-mapped IPv6 as the IPv4 address), anything else unchanged."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv4Address):
        return host
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    network = ipaddress.IPv6Network((int(address) >> 64 << 64, 64))
    return str(network)
