"""What the process has done, as Prometheus metrics (served at `/metrics` by the web app).

Everything lives in this module's own CollectorRegistry, not prometheus_client's global one,
so building the web app (or importing this module) any number of times registers nothing
twice. The recording functions are called on hot paths (every feed request, every message):
each is a dictionary lookup and one prometheus_client increment, with no lock of its own.

Counts belong to this process: several web processes or a separate `newsletter scheduler`
each report their own, and Prometheus sums them. Only `newsletter_ledger_rows_waiting`
is read from the database, at scrape time, through the `waiting` function the caller passes
to `render` (this module sits below storage and cannot query it itself).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.registry import Collector

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
"""`text/plain; version=0.0.4; charset=utf-8`: the text exposition format `render` writes."""

OUTCOMES = ("sent", "deferred", "failed", "skipped", "suppressed")
FEED_RESULTS = ("hit", "not_modified", "render")
WAITING_STATUSES = ("queued", "deferred", "sending")
RATE_WINDOW = 60
"""Seconds over which `newsletter_send_rate` averages."""

REGISTRY = CollectorRegistry(auto_describe=True)

_deliveries = Counter(
    "newsletter_deliveries_total",
    "Ledger rows given an outcome by this process, by digest and outcome "
    "(sent, deferred, failed, skipped, suppressed).",
    ("digest", "outcome"),
    registry=REGISTRY,
)
_smtp_replies = Counter(
    "newsletter_smtp_replies_total",
    "SMTP answers to this process's transactions, by relay and reply code "
    '("none": no answer, a timeout or a connection error).',
    ("relay", "code"),
    registry=REGISTRY,
)
_lease_expiries = Counter(
    "newsletter_lease_expiries_total",
    "Ledger rows taken over by this process from a sender whose lease ran out.",
    registry=REGISTRY,
)
_feed_requests = Counter(
    "newsletter_feed_requests_total",
    'Feed requests, by result: "hit" (bytes served from memory), "not_modified" (304), '
    '"render" (bytes rendered).',
    ("result",),
    registry=REGISTRY,
)

# Children bound once: the hot paths do a dict lookup instead of Counter.labels (which locks).
_feed_children = {result: _feed_requests.labels(result=result) for result in FEED_RESULTS}
_delivery_children: dict[tuple[str, str], Counter] = {}
_reply_children: dict[tuple[str, str], Counter] = {}


class _SendRate:
    """Messages accepted per second over the last RATE_WINDOW seconds, from a ring of
    per-second buckets (slot = second % size, each slot remembering its second).

    No lock: two threads that start the same new second at once can lose a few counts of
    that second, which a rate averaged over a minute does not notice.
    """

    def __init__(self, window: int = RATE_WINDOW, clock: Callable[[], float] = time.monotonic):
        self.window = window
        self.clock = clock
        self._size = window + 1  # the current, partial second and `window` whole ones
        self._seconds = [-1] * self._size
        self._counts = [0] * self._size

    def add(self, n: int) -> None:
        second = int(self.clock())
        slot = second % self._size
        if self._seconds[slot] != second:
            self._counts[slot] = 0
            self._seconds[slot] = second
        self._counts[slot] += n

    def per_second(self) -> float:
        now = int(self.clock())
        total = sum(
            count
            for second, count in zip(self._seconds, self._counts, strict=True)
            if now - self.window < second <= now
        )
        return total / self.window


_send_rate = _SendRate()
Gauge(
    "newsletter_send_rate",
    f"Messages accepted by the mail server per second, averaged over the last {RATE_WINDOW} s "
    "(this process).",
    registry=REGISTRY,
).set_function(lambda: _send_rate.per_second())


def delivered(digest: str, outcome: str, n: int = 1) -> None:
    """`n` ledger rows of a run of `digest` got `outcome` (one of OUTCOMES)."""
    key = (digest, outcome)
    child = _delivery_children.get(key)
    if child is None:
        child = _delivery_children.setdefault(
            key, _deliveries.labels(digest=digest, outcome=outcome)
        )
    child.inc(n)
    if outcome == "sent":
        _send_rate.add(n)


def smtp_reply(relay: str, code: int | None, n: int = 1) -> None:
    """The relay (host:port, or the transport's name) answered `code`; None: no answer."""
    key = (relay, "none" if code is None else str(code))
    child = _reply_children.get(key)
    if child is None:
        child = _reply_children.setdefault(key, _smtp_replies.labels(relay=key[0], code=key[1]))
    child.inc(n)


def lease_expired(n: int = 1) -> None:
    """`n` ledger rows were taken over from a sender whose lease had run out."""
    _lease_expiries.inc(n)


def feed_request(result: str) -> None:
    """One feed request ended as `result`: "hit", "not_modified" or "render"."""
    child = _feed_children.get(result)
    if child is None:
        child = _feed_requests.labels(result=result)
    child.inc()


def send_rate() -> float:
    """The current value of `newsletter_send_rate`."""
    return _send_rate.per_second()


class _Scrape(Collector):
    """This module's registry plus the metrics read at scrape time, as one collector."""

    def __init__(self, waiting: Callable[[], Mapping[str, int]] | None) -> None:
        self.waiting = waiting

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()
        if self.waiting is not None:
            counts = self.waiting()
            family = GaugeMetricFamily(
                "newsletter_ledger_rows_waiting",
                "Ledger rows of runs in progress (composing, sending, paused) still to be "
                "sent, by status (queued, deferred, sending).",
                labels=("status",),
            )
            for status in (*WAITING_STATUSES, *sorted(set(counts) - set(WAITING_STATUSES))):
                family.add_metric((status,), counts.get(status, 0))
            yield family


def render(waiting: Callable[[], Mapping[str, int]] | None = None) -> bytes:
    """Every metric in the text exposition format (CONTENT_TYPE). `waiting`, when given, is
    called once and returns ledger rows waiting by status (missing statuses count 0)."""
    return generate_latest(_Scrape(waiting))
