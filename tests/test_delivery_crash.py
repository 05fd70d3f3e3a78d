"""The promise of issue #8, with real processes, a real SMTP server and the real database:
a crash (kill -9) at any moment, followed by a restart of `newsletter scheduler` or
`newsletter serve`, resumes the run without anyone asking. Nobody is skipped, only the
messages sent but not yet recorded at a crash (a bounded number) go twice, and a message sent twice
carries the same Message-ID, derived from (run, subscriber).

The kill points are random; the seed is printed (and shown with a failure). Set
NEWSLETTER_CRASH_SEED to replay one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.storage import database
from tests.conftest import SmtpSink
from tests.helpers import free_port

SUBSCRIBERS = 300
POOL_SIZE = 4
# Outcomes are written in batches of at most this many ([delivery] result_batch): a crash
# leaves unrecorded at most the batch being written, the one filling meanwhile and the
# messages in flight.
RESULT_BATCH = 10
# Kills land when the sink has accepted this many messages in all; the last one stays
# below the number of subscribers, so every kill lands before the run could have ended.
FIRST_KILL = (10, 250)
LAST_KILL = SUBSCRIBERS - 10
DEADLINE = 120.0  # a hang guard, not a performance requirement


class SlowSink(SmtpSink):
    """The shared sink, a few milliseconds slower per message, so that a kill lands in the
    middle of a run with every connection of the pool busy. `kill_at(pid, n, delay, sig)`
    sends `sig` (SIGKILL) to `pid` `delay` seconds after the n-th message is accepted.
    With no delay the server has taken the message while the sender never reads the 250
    and cannot record it (the worst case for duplicates); with a few milliseconds the
    kill lands wherever the sender happens to be (a claim, a commit, between chunks)."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.victim: int | None = None
        self.kill_after = 0
        self.delay = 0.0
        self.signal = signal.SIGKILL
        self.killed = threading.Event()
        self.on_message = self._maybe_kill

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.005)
        return await super().handle_DATA(server, session, envelope)  # type: ignore[no-untyped-call]

    def kill_at(
        self, pid: int, after: int, delay: float, sig: signal.Signals = signal.SIGKILL
    ) -> None:
        with self.lock:
            self.killed.clear()
            self.kill_after, self.delay, self.signal, self.victim = after, delay, sig, pid
        self._maybe_kill("")  # in case that many arrived already

    def _maybe_kill(self, _address: str) -> None:
        with self.lock:
            if self.victim is None or len(self.messages) < self.kill_after:
                return
            victim, self.victim = self.victim, None
        if self.delay:
            threading.Timer(self.delay, self._kill, [victim]).start()
        else:
            self._kill(victim)

    def _kill(self, pid: int) -> None:
        os.kill(pid, self.signal)
        self.killed.set()

    def received(self) -> list[tuple[str, str]]:
        """(recipient, Message-ID) of every accepted message, in order."""
        with self.lock:
            pairs = list(zip(self.envelopes, self.messages, strict=False))
        return [(rcpts[0], str(msg["Message-ID"])) for (_, rcpts, _), msg in pairs]


@pytest.fixture
def sink() -> Iterator[tuple[SlowSink, int]]:
    handler = SlowSink()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


class Site:
    """A publication made with the CLI, and its commands run as child processes."""

    def __init__(self, root: Path, database_url: str, smtp_port: int) -> None:
        self.root = root
        self.config = root / "config.toml"
        self.database_url = database_url
        self.env = {
            "NEWSLETTER_DATABASE__URL": database_url,
            "NEWSLETTER_MAIL__TRANSPORT": "smtp",
            "NEWSLETTER_SMTP__HOST": "127.0.0.1",
            "NEWSLETTER_SMTP__PORT": str(smtp_port),
            "NEWSLETTER_SMTP__SECURITY": "none",
            "NEWSLETTER_SMTP__POOL_SIZE": str(POOL_SIZE),
            "NEWSLETTER_DELIVERY__RESULT_BATCH": str(RESULT_BATCH),
            "NEWSLETTER_DELIVERY__LEASE_SECONDS": "2",
            "NEWSLETTER_DIGESTS__SYNC_SECONDS": "1",
        }
        self.procs: list[tuple[subprocess.Popen[bytes], str, Path]] = []

    def cli(self, *args: str) -> str:
        result = CliRunner().invoke(main, ["--config", str(self.config), *args], env=self.env)
        assert result.exit_code == 0, f"newsletter {' '.join(args)}:\n{result.output}"
        return result.output

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        name = " ".join(args)
        log_path = self.root / f"{len(self.procs)}-{args[0]}.log"
        cmd = [sys.executable, "-m", "newsletter", "--config", str(self.config), *args]
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                cmd, env={**os.environ, **self.env}, cwd=self.root, stdout=log, stderr=log
            )
        self.procs.append((proc, name, log_path))
        return proc

    def logs(self) -> str:
        return "\n".join(
            f"--- newsletter {name} (exit {proc.returncode}):\n{log.read_text()}"
            for proc, name, log in self.procs
        )

    def log_of(self, proc: subprocess.Popen[bytes]) -> str:
        return next(log.read_text() for p, _, log in self.procs if p is proc)

    def stop_all(self) -> None:
        """Whatever still runs is killed: the database is dropped after the test."""
        for proc, _, _ in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)


@pytest.fixture
def site(tmp_path: Path, database_url: str, sink: tuple[SlowSink, int]) -> Iterator[Site]:
    made = Site(tmp_path, database_url, sink[1])
    made.cli("init", str(tmp_path))
    emails = [f"reader{i:03d}@example.org" for i in range(SUBSCRIBERS)]
    (tmp_path / "readers.csv").write_text("email,name\n" + "".join(f"{e},\n" for e in emails))
    made.cli("subscribers", "import", str(tmp_path / "readers.csv"))
    published = datetime.now(UTC) - timedelta(hours=3)
    (tmp_path / "posts.jsonl").write_text(
        "".join(
            json.dumps(
                {
                    "guid": f"post-{n}",
                    "title": f"Post {n}",
                    "body": f"<p>Body of post {n}.</p>",
                    "tags": ["asia"],
                    "published_at": (published + timedelta(minutes=n)).isoformat(),
                }
            )
            + "\n"
            for n in range(3)
        )
    )
    made.cli("articles", "import", str(tmp_path / "posts.jsonl"))
    # the digest's own firing is twelve hours away: the only run is the one sent by hand
    far = datetime.now(UTC) + timedelta(hours=12)
    made.cli("digests", "edit", "digest", "--daily", f"{far:%H:%M}", "--timezone", "UTC")
    try:
        yield made
    finally:
        made.stop_all()


@contextlib.contextmanager
def reading(url: str) -> Iterator[sa.Engine]:
    engine = database.create_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def run_state(engine: sa.Engine) -> tuple[int, str, dict[str, int]]:
    """The one run: its id, status and ledger counts."""
    with engine.connect() as conn:
        run_id, status = conn.execute(sa.text("SELECT id, status FROM digest_run")).one()
        counts: dict[str, int] = dict(
            conn.execute(
                sa.text("SELECT status, count(*) FROM delivery WHERE run_id = :r GROUP BY status"),
                {"r": run_id},
            ).all()
        )
    return run_id, status, counts


def kill_mid_run(
    site: Site,
    sink: SlowSink,
    engine: sa.Engine,
    proc: subprocess.Popen[bytes],
    when: tuple[int, float],
    sig: signal.Signals = signal.SIGKILL,
) -> None:
    """Send `sig` to `proc` at `when` (see SlowSink.kill_at); check that it ended mid-run
    (SIGKILL: killed; another signal: stopped by it, without a traceback)."""
    sink.kill_at(proc.pid, *when, sig)
    deadline = time.monotonic() + DEADLINE
    while not sink.killed.wait(0.05):
        assert proc.poll() is None, f"exited before the kill:\n{site.logs()}"
        assert time.monotonic() < deadline, f"no progress:\n{site.logs()}"
    code = proc.wait(timeout=30)
    if sig == signal.SIGKILL:
        assert code == -signal.SIGKILL
    else:
        assert "Traceback" not in site.log_of(proc), site.logs()
    _, status, counts = run_state(engine)
    assert status == "sending", (status, counts)
    assert counts.get("sent", 0) < SUBSCRIBERS, counts


def wait_until_sent(site: Site, engine: sa.Engine, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + DEADLINE
    while run_state(engine)[1] != "sent":
        assert proc.poll() is None, f"the last process exited:\n{site.logs()}"
        assert time.monotonic() < deadline, f"run not sent: {run_state(engine)}\n{site.logs()}"
        time.sleep(0.2)


def check_outcome(site: Site, sink: SlowSink, engine: sa.Engine, kills: int, seed: int) -> None:
    run_id, status, counts = run_state(engine)
    assert status == "sent"
    assert counts == {"sent": SUBSCRIBERS}, counts  # nobody skipped, failed or left behind

    copies: dict[str, list[str]] = {}
    for rcpt, mid in sink.received():
        copies.setdefault(rcpt, []).append(mid)
    with engine.connect() as conn:
        ledger = conn.execute(
            sa.text(
                "SELECT s.email, d.subscriber_id, d.status, d.message_id FROM delivery d "
                "JOIN subscriber s ON s.id = d.subscriber_id WHERE d.run_id = :r"
            ),
            {"r": run_id},
        ).all()
    assert len(ledger) == SUBSCRIBERS
    assert set(copies) == {email for email, *_ in ledger}, "someone got nothing"

    twice = {rcpt: mids for rcpt, mids in copies.items() if len(mids) > 1}
    extra = sum(len(mids) - 1 for mids in twice.values())
    print(f"seed {seed}: {kills} stops, {extra} messages sent again, to {sorted(twice)}")
    # only what was in flight at a crash goes again: at most the pool, per crash
    assert extra <= (2 * RESULT_BATCH + POOL_SIZE) * kills, (seed, twice)
    for rcpt, mids in twice.items():
        assert len(set(mids)) == 1, f"{rcpt} got different Message-IDs: {mids}"
    for email, subscriber_id, row_status, message_id in ledger:
        assert row_status == "sent"
        assert message_id == copies[email][0], (email, message_id, copies[email])
        assert message_id.startswith(f"<digest.{run_id}.{subscriber_id}."), message_id


def stop(proc: subprocess.Popen[bytes], *, exit_code: int = 0) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == exit_code


def seeded() -> tuple[int, random.Random]:
    seed = int(os.environ.get("NEWSLETTER_CRASH_SEED") or random.randrange(2**32))
    print(f"NEWSLETTER_CRASH_SEED={seed}")
    return seed, random.Random(seed)


def pause(rng: random.Random) -> float:
    """No delay half the time, else up to 30 ms (see SlowSink)."""
    return 0.0 if rng.random() < 0.5 else rng.uniform(0.001, 0.03)


def first_kill(rng: random.Random) -> tuple[int, float]:
    return rng.randint(*FIRST_KILL), pause(rng)


def second_kill(rng: random.Random, sink: SlowSink) -> tuple[int, float]:
    """A point between ten messages after now and ten short of the run's end."""
    base = len(sink.received())
    return base + 10 + round(rng.random() * (LAST_KILL - 10 - base)), pause(rng)


def test_kill_9_then_scheduler_restarts_resume_the_run(
    site: Site, sink: tuple[SlowSink, int]
) -> None:
    server = sink[0]
    seed, rng = seeded()
    first = first_kill(rng)
    with reading(site.database_url) as engine:
        kill_mid_run(site, server, engine, site.start("digests", "send", "digest"), first)
        kill_mid_run(site, server, engine, site.start("scheduler"), second_kill(rng, server))
        last = site.start("scheduler")
        wait_until_sent(site, engine, last)
        stop(last)
        check_outcome(site, server, engine, kills=2, seed=seed)


def test_kill_9_then_serve_restarts_resume_the_run(site: Site, sink: tuple[SlowSink, int]) -> None:
    server = sink[0]
    seed, rng = seeded()
    first = first_kill(rng)
    with reading(site.database_url) as engine:
        kill_mid_run(site, server, engine, site.start("digests", "send", "digest"), first)
        serve = site.start("serve", "--port", str(free_port()))
        kill_mid_run(site, server, engine, serve, second_kill(rng, server))
        last = site.start("serve", "--port", str(free_port()))
        wait_until_sent(site, engine, last)
        stop(last, exit_code=-signal.SIGTERM)  # uvicorn re-raises it once shut down
        assert "Application shutdown complete" in site.log_of(last)
        check_outcome(site, server, engine, kills=2, seed=seed)


def test_a_stop_then_restart_resumes_at_once_without_waiting_for_the_lease(
    site: Site, sink: tuple[SlowSink, int]
) -> None:
    """Ctrl-C on `digests send`, then SIGTERM on the scheduler (a deploy): each gives its
    claimed rows back as it stops, so the restarted scheduler sends everything long
    before the (here one-minute) lease would have returned them."""
    server = sink[0]
    seed, rng = seeded()
    site.env["NEWSLETTER_DELIVERY__LEASE_SECONDS"] = "60"
    with reading(site.database_url) as engine:
        send = site.start("digests", "send", "digest")
        kill_mid_run(site, server, engine, send, first_kill(rng), signal.SIGINT)
        scheduler = site.start("scheduler")
        kill_mid_run(site, server, engine, scheduler, second_kill(rng, server), signal.SIGTERM)
        assert scheduler.returncode == 0
        started = time.monotonic()
        last = site.start("scheduler")
        wait_until_sent(site, engine, last)
        assert time.monotonic() - started < 30, "the restart waited for the lease"
        stop(last)
        check_outcome(site, server, engine, kills=2, seed=seed)
