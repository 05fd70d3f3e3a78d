"""Concurrent writers lose nothing (issue #9, finding 7): articles imported by two threads
while readers sign up and unsubscribe over HTTP, on the test database (a SQLite file, or
PostgreSQL with NEWSLETTER_TEST_DATABASE_URL). A database that stays busy is answered 503
with Retry-After, never 500; a unit of work the database refused for now runs again."""

from __future__ import annotations

import dataclasses
import functools
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session, col, func, select
from starlette.testclient import TestClient

from newsletter import articles, subscribers
from newsletter.config import Settings, SubscribersSettings
from newsletter.errors import NotFoundError
from newsletter.mail import MemoryMailer
from newsletter.models import Article, SubscriberStatus
from newsletter.storage import database
from newsletter.storage.retry import is_busy, retry_on_busy, retrying
from newsletter.subscribers import links
from newsletter.web import create_app
from tests.helpers import context

LOAD_SECONDS = 3.0  # how long the writers and readers run at the same time
SETTLE_SECONDS = 20.0  # deadline for the sign-up queue to catch up (only stops a hang)
LEAVERS = 60  # subscribers who unsubscribe during the load
PER_IMPORT = 3  # articles per import call
PAST = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def loaded(settings: Settings) -> Settings:
    """No rate limit in the way: every request comes from the same test client."""
    limits = SubscribersSettings(signups_per_ip_per_hour=100000)
    return dataclasses.replace(settings, subscribers=limits)


@pytest.fixture
def engine(loaded: Settings) -> Iterator[sa.Engine]:
    eng = database.open_database(loaded.database_url)
    yield eng
    eng.dispose()


def impatient(engine: sa.Engine) -> None:
    """Make every lock wait of `engine` give up after 20 ms instead of seconds (SQLite's
    busy timeout, PostgreSQL's lock_timeout): writers that meet are refused at once, as
    they are when a long transaction holds the lock past the usual timeout."""

    def shorten(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        if engine.dialect.name == "sqlite":
            cur.execute("PRAGMA busy_timeout=20")
        else:
            cur.execute("SET lock_timeout = '20ms'")
        cur.close()
        if engine.dialect.name != "sqlite":
            dbapi_conn.commit()

    sa.event.listen(engine, "connect", shorten)  # after the engine's own pragmas
    engine.dispose()  # connections made from now on


def busy_error(message: str = "database is locked") -> sa.exc.OperationalError:
    return sa.exc.OperationalError("UPDATE subscriber ...", {}, sqlite3.OperationalError(message))


class PgError(Exception):
    """Stands in for a psycopg error: carries its SQLSTATE."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"SQLSTATE {sqlstate}")
        self.sqlstate = sqlstate


# ----------------------------------------------------------------------------- the load


class Load:
    """What the threads did: requests answered, articles imported, errors met."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.statuses: Counter[tuple[str, int]] = Counter()  # (kind, status) -> count
        self.errors: list[str] = []
        self.guids: list[str] = []
        self.signed_up: list[str] = []
        self.unsubscribed: list[str] = []

    def answered(self, kind: str, status: int) -> None:
        with self.lock:
            self.statuses[(kind, status)] += 1

    def failed(self, what: str, exc: BaseException) -> None:
        with self.lock:
            self.errors.append(f"{what}: {type(exc).__name__}: {exc}")


def until_answered(
    load: Load, kind: str, deadline: float, send: Callable[[], Any], expected: int
) -> bool:
    """Send until the answer is not 503 (a 503 is retried after its Retry-After, shortened
    for the test); whether the final answer was `expected`."""
    while True:
        response = send()
        load.answered(kind, response.status_code)
        if response.status_code != 503:
            return bool(response.status_code == expected)
        assert response.headers["retry-after"].isdigit()
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


@pytest.mark.parametrize("locks", ["patient", "impatient"])
def test_concurrent_imports_signups_and_unsubscribes_lose_nothing(
    loaded: Settings, engine: sa.Engine, locks: str
) -> None:
    settings = loaded
    if locks == "impatient":
        impatient(engine)
    leavers = []
    for n in range(LEAVERS):
        subscriber = subscribers.add(engine, f"leaver-{n}@example.org", settings.site.tz)
        assert subscriber.id is not None
        url = links.unsubscribe_url(settings, subscriber.id, subscriber.link_key)
        leavers.append((subscriber.email, url.removeprefix(settings.base_url)))
    ctx = context(settings)
    load = Load()
    app = create_app(settings, engine, mailer=MemoryMailer())
    with TestClient(app, base_url=settings.base_url, raise_server_exceptions=False) as client:
        stop_at: list[float] = []  # set once, when all four threads are ready
        start = threading.Barrier(4, action=lambda: stop_at.append(time.monotonic() + LOAD_SECONDS))

        def begin() -> float:
            start.wait(timeout=30)
            return stop_at[0]

        def importer(name: str) -> None:
            end = begin()
            n = 0
            try:
                while time.monotonic() < end:
                    batch = []
                    for _ in range(PER_IMPORT):
                        n += 1
                        # shared tags and author: both importers touch the same rows
                        raw = {
                            "guid": f"{name}-{n}",
                            "title": f"{name} story {n}",
                            "body": f"<p>{name} {n}</p>",
                            "published_at": (PAST + timedelta(minutes=n)).isoformat(),
                            "tags": ["Load", f"Load {n % 5}"],
                            "author": {"name": "Loader", "slug": "loader"},
                        }
                        batch.append(articles.validate(raw, f"{name}#{n}", ctx))
                    report = articles.import_articles(
                        engine, batch, base_url=settings.base_url, now=datetime.now(UTC)
                    )
                    assert not report.errors, report.errors
                    with load.lock:
                        load.guids += [f"{name}-{i}" for i in range(n - PER_IMPORT + 1, n + 1)]
                    time.sleep(0.02)  # reading the next file: SQLite writers take turns
            except Exception as exc:  # reported with the rest at the end
                load.failed(f"import by {name} at {n}", exc)

        def signer() -> None:
            end = begin()
            n = 0
            try:
                while time.monotonic() < end:
                    n += 1
                    email = f"reader-{n}@example.org"
                    ok = until_answered(
                        load,
                        "sign-up",
                        end + 5,
                        functools.partial(client.post, "/api/v1/subscribe", json={"email": email}),
                        202,
                    )
                    if ok:
                        load.signed_up.append(email)
                    else:
                        load.failed(f"sign-up {email}", AssertionError("not accepted"))
                    time.sleep(0.01)  # a stream, not a flood: the queue must keep up
            except Exception as exc:
                load.failed(f"sign-up {n}", exc)

        def leaver() -> None:
            end = begin()
            pace = LOAD_SECONDS / LEAVERS  # spread over the whole load
            try:
                for email, path in leavers:
                    ok = until_answered(
                        load, "unsubscribe", end + 5, functools.partial(client.post, path), 200
                    )
                    if ok:
                        load.unsubscribed.append(email)
                    else:
                        load.failed(f"unsubscribe {email}", AssertionError("not answered 200"))
                    time.sleep(pace / 2)
            except Exception as exc:
                load.failed("unsubscribe", exc)

        threads = [
            threading.Thread(target=importer, args=("alpha",)),
            threading.Thread(target=importer, args=("beta",)),
            threading.Thread(target=signer),
            threading.Thread(target=leaver),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not any(thread.is_alive() for thread in threads)

        # the sign-up queue works in the app's background; wait for it to catch up
        deadline = time.monotonic() + SETTLE_SECONDS
        waiting = set(load.signed_up)
        while waiting and time.monotonic() < deadline:
            waiting = {email for email in waiting if not _subscriber_exists(engine, email)}
            time.sleep(0.05)

    statuses = dict(load.statuses)
    assert load.errors == [], (load.errors, statuses)
    assert not [k for k in statuses if k[1] >= 500 and k[1] != 503], statuses  # never a 500
    # the load was real: both importers and both kinds of request made progress
    for name in ("alpha", "beta"):
        assert sum(guid.startswith(name) for guid in load.guids) >= 2 * PER_IMPORT, name
    assert len(load.signed_up) >= 5, statuses
    assert sorted(load.unsubscribed) == sorted(email for email, _ in leavers)

    with Session(engine) as session:  # every imported article is stored, once
        stored = session.exec(select(Article.guid).where(col(Article.guid).in_(load.guids))).all()
        total = session.exec(select(func.count()).select_from(Article)).one()
    assert sorted(stored) == sorted(load.guids) and total == len(load.guids)
    assert waiting == set(), f"sign-ups never stored: {sorted(waiting)[:5]}"  # none lost
    for email, _ in leavers:  # every unsubscribe took effect
        assert subscribers.get_subscriber(engine, email).status == SubscriberStatus.unsubscribed


def _subscriber_exists(engine: sa.Engine, email: str) -> bool:
    try:
        subscribers.get_subscriber(engine, email)
    except NotFoundError:
        return False
    return True


# ----------------------------------------------------------------------------- busy -> 503


@pytest.fixture
def client(loaded: Settings, engine: sa.Engine) -> Iterator[TestClient]:
    app = create_app(loaded, engine, mailer=MemoryMailer())
    with TestClient(app, base_url=loaded.base_url, raise_server_exceptions=False) as c:
        yield c


def test_a_database_that_stays_busy_is_answered_503_with_retry_after(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = client.app.app.state.subscribers  # type: ignore[attr-defined]

    async def busy_subscribe(*_: object, **__: object) -> None:
        raise busy_error()

    def busy_unsubscribe(*_: object, **__: object) -> str:
        raise sa.exc.OperationalError("COMMIT", {}, PgError("40001"))

    monkeypatch.setattr(service, "subscribe", busy_subscribe)
    monkeypatch.setattr(service, "unsubscribe", busy_unsubscribe)

    api = client.post("/api/v1/subscribe", json={"email": "ayu@example.org"})
    assert api.status_code == 503
    assert api.headers["retry-after"] == "1"
    assert api.headers["content-type"].startswith("application/json")
    assert "try again" in api.json()["error"]

    page = client.post("/unsubscribe/some-token")
    assert page.status_code == 503
    assert page.headers["retry-after"] == "1"
    assert page.headers["content-type"].startswith("text/html")
    assert "try again" in page.text


def test_other_database_errors_stay_500(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = client.app.app.state.subscribers  # type: ignore[attr-defined]

    def broken(*_: object, **__: object) -> str:
        raise busy_error("no such table: subscriber")

    monkeypatch.setattr(service, "unsubscribe", broken)
    response = client.post("/unsubscribe/some-token")
    assert response.status_code == 500
    assert "retry-after" not in response.headers


# ----------------------------------------------------------------------------- retrying


def test_busy_errors_are_told_apart() -> None:
    assert is_busy(busy_error("database is locked"))
    assert is_busy(busy_error("database table is locked"))
    assert is_busy(sa.exc.OperationalError("x", {}, PgError("40001")))  # serialization failure
    assert is_busy(sa.exc.OperationalError("x", {}, PgError("40P01")))  # deadlock
    assert not is_busy(sa.exc.OperationalError("x", {}, PgError("57P01")))  # admin shutdown
    assert not is_busy(busy_error("no such table: article"))
    assert not is_busy(sa.exc.IntegrityError("x", {}, sqlite3.IntegrityError("UNIQUE")))
    assert not is_busy(ValueError("database is locked"))


def test_retrying_reruns_the_whole_unit_of_work_while_busy() -> None:
    calls: list[int] = []
    pauses: list[float] = []

    def work() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise busy_error()
        return "done"

    assert retrying(work, sleep=pauses.append) == "done"
    assert len(calls) == 3 and len(pauses) == 2 and pauses[1] > pauses[0] * 0.5

    calls.clear()

    def always_busy() -> str:
        calls.append(1)
        raise busy_error()

    with pytest.raises(sa.exc.OperationalError):  # still busy after the last attempt
        retrying(always_busy, attempts=2, sleep=pauses.append)
    assert len(calls) == 2

    calls.clear()

    @retry_on_busy(sleep=pauses.append)
    def broken(n: int) -> int:
        calls.append(n)
        raise busy_error("no such table: subscriber")

    with pytest.raises(sa.exc.OperationalError):  # not busy: raised at once
        broken(7)
    assert calls == [7]


def test_retrying_waits_out_a_real_sqlite_lock(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (n INTEGER)")
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the write lock
    holder.execute("INSERT INTO t VALUES (1)")
    impatient = sa.create_engine(f"sqlite:///{path}", connect_args={"timeout": 0})
    attempts: list[int] = []

    def write() -> int:
        attempts.append(1)
        with impatient.begin() as conn:
            conn.execute(sa.text("INSERT INTO t VALUES (2)"))
            return int(conn.execute(sa.text("SELECT count(*) FROM t")).scalar_one())

    def pause(_: float) -> None:
        holder.execute("COMMIT")  # the other writer finishes while we wait

    try:
        with pytest.raises(sa.exc.OperationalError) as refused:
            write()
        assert is_busy(refused.value)
        assert retrying(write, sleep=pause) == 2
        assert len(attempts) == 3
    finally:
        holder.close()
        impatient.dispose()
