"""Running a unit of work again when the database is busy.

A unit of work is a function that opens its own Session, does its reads and writes and
commits: when the database refuses it for a reason that goes away by itself, rerunning the
whole function is safe (its transaction was rolled back), where retrying one statement is
not (its reads may be stale). The refusals that go away by themselves:

- SQLite: "database is locked" / "database table is locked" (SQLITE_BUSY, SQLITE_LOCKED
  and their extended codes), when the busy timeout ran out or a transaction that read
  first could not become a writer because another writer committed in between;
- PostgreSQL: serialization failure (SQLSTATE 40001) and deadlock (40P01), which roll
  the transaction back, and lock_not_available (55P03) when a lock_timeout ran out.

    from newsletter.storage.retry import retrying
    email = retrying(lambda: service.unsubscribe(token))

    @retry_on_busy()
    def save(...) -> None:
        with Session(engine) as session:
            ...
            session.commit()

The work must have no effect outside its transaction (no email sent, no file written)
before its commit, or that effect happens once per attempt. When the database is still
busy after the last attempt the OperationalError propagates: the web application answers
it 503 with Retry-After (`is_busy` tells it apart from other errors).
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import sqlalchemy as sa

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")

ATTEMPTS = 5
FIRST_DELAY = 0.05  # seconds; doubled after each attempt, with jitter
MAX_DELAY = 1.0
RETRY_AFTER = 1  # seconds a client is asked to wait when the database stays busy

# serialization_failure, deadlock_detected, lock_not_available
_PG_BUSY = frozenset({"40001", "40P01", "55P03"})
_SQLITE_BUSY = ("SQLITE_BUSY", "SQLITE_LOCKED")
_SQLITE_MESSAGES = ("database is locked", "database table is locked", "database is busy")


def is_busy(exc: BaseException) -> bool:
    """Whether `exc` is the database refusing for now (busy, locked, a serialization
    failure or a deadlock), so that the same work may succeed when run again."""
    if not isinstance(exc, sa.exc.OperationalError):
        return False
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if sqlstate is not None:
        return sqlstate in _PG_BUSY
    name = getattr(orig, "sqlite_errorname", None)
    if isinstance(name, str) and name.startswith(_SQLITE_BUSY):
        return True
    message = str(orig).lower()
    return any(text in message for text in _SQLITE_MESSAGES)


def retrying(
    work: Callable[[], T],
    *,
    attempts: int = ATTEMPTS,
    first_delay: float = FIRST_DELAY,
    max_delay: float = MAX_DELAY,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """`work()`, run again (up to `attempts` times in all, with a growing, jittered pause)
    while the database is busy; other errors, and the last busy one, propagate."""
    delay = first_delay
    for attempt in range(1, attempts + 1):
        try:
            return work()
        except sa.exc.OperationalError as exc:
            if attempt >= attempts or not is_busy(exc):
                raise
            log.info("database busy (attempt %d of %d): %s", attempt, attempts, exc.orig)
        sleep(delay * random.uniform(0.5, 1.5))  # jitter: writers that collided part ways
        delay = min(delay * 2, max_delay)
    raise AssertionError("unreachable")  # pragma: no cover


def retry_on_busy(
    attempts: int = ATTEMPTS,
    first_delay: float = FIRST_DELAY,
    max_delay: float = MAX_DELAY,
    sleep: Callable[[float], None] = time.sleep,
) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Decorator: the decorated unit of work runs through `retrying`."""

    def decorate(fn: Callable[P, T]) -> Callable[P, T]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            return retrying(
                lambda: fn(*args, **kwargs),
                attempts=attempts,
                first_delay=first_delay,
                max_delay=max_delay,
                sleep=sleep,
            )

        return wrapper

    return decorate
