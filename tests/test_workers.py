"""Many workers on PostgreSQL, as an operator runs them: `digests send --background` makes
the run and its ledger, and `newsletter worker` processes share the sending through
claims with FOR UPDATE SKIP LOCKED and leases. A worker killed with SIGKILL mid-batch
loses its lease, and the other finishes its rows."""

from __future__ import annotations

import csv
import email.policy
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from email.parser import BytesHeaderParser
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from click.testing import CliRunner
from sqlmodel import Session

from newsletter import storage
from newsletter.cli import main
from newsletter.config import DatabaseSettings, Settings, SiteSettings
from newsletter.models import DigestRun
from newsletter.storage import database
from tests.conftest import PG_URL
from tests.digest_helpers import post
from tests.helpers import free_port

pytestmark = pytest.mark.skipif(not PG_URL, reason="several workers share runs on PostgreSQL")

RECIPIENTS = 20_000
KILL_RECIPIENTS = 5_000
RESULT_BATCH = 50
POOL_SIZE = 4
NEWSLETTER = [sys.executable, "-m", "newsletter"]
DEADLINE = 300.0  # a hang guard, not a performance requirement


class CountingSink:
    """An SMTP server keeping, per recipient, the Message-IDs it accepted (headers parsed
    with the email package, as a client reads them). `kill(pid, after)` SIGKILLs `pid`
    once `after` messages were accepted in all."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: dict[str, list[str]] = defaultdict(list)
        self.total = 0
        self.victim: int | None = None
        self.after = 0
        self.parser = BytesHeaderParser(policy=email.policy.default)

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        headers = self.parser.parsebytes(envelope.content)
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.received[rcpt].append(str(headers["Message-ID"]))
            self.total += 1
            if self.victim is not None and self.total >= self.after:
                os.kill(self.victim, signal.SIGKILL)
                self.victim = None
        return "250 2.0.0 OK"


def _site(
    tmp_path: Path, database_url: str, port: int, recipients: int
) -> tuple[Path, dict[str, str]]:
    env = {
        "NEWSLETTER_DATABASE__URL": database_url,
        "NEWSLETTER_SITE__BASE_URL": "http://news.test",
        "NEWSLETTER_MAIL__TRANSPORT": "smtp",
        "NEWSLETTER_MAIL__FROM_ADDRESS": "digest@news.test",
        "NEWSLETTER_SMTP__HOST": "127.0.0.1",
        "NEWSLETTER_SMTP__PORT": str(port),
        "NEWSLETTER_SMTP__SECURITY": "none",
        "NEWSLETTER_SMTP__POOL_SIZE": str(POOL_SIZE),
        "NEWSLETTER_DELIVERY__LEASE_SECONDS": "3",
        "NEWSLETTER_DELIVERY__RESULT_BATCH": str(RESULT_BATCH),
    }
    assert CliRunner().invoke(main, ["init", str(tmp_path)]).exit_code == 0
    config = tmp_path / "config.toml"
    people = tmp_path / "people.csv"
    with people.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "status"])
        writer.writerows([f"r{n:05}@example.org", "active"] for n in range(recipients))
    result = CliRunner().invoke(
        main, ["--config", str(config), "subscribers", "import", str(people)], env=env
    )
    assert result.exit_code == 0, result.output
    settings = Settings(
        root=tmp_path,
        site=SiteSettings(base_url="http://news.test"),
        database=DatabaseSettings(url=database_url),
    )
    engine = database.open_database(database_url)
    try:
        post(engine, settings, "the-news", datetime.now(UTC) - timedelta(hours=1), ["trade"])
    finally:
        engine.dispose()
    return config, env


def _send_in_background(config: Path, env: dict[str, str], recipients: int) -> int:
    result = CliRunner().invoke(
        main, ["--config", str(config), "digests", "send", "digest", "--background"], env=env
    )
    assert result.exit_code == 0, result.output
    assert f"{recipients} recipients" in result.output and "left to the workers" in result.output
    return int(result.output.split()[1].rstrip(":"))


def _worker(config: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as handle:
        return subprocess.Popen(
            [*NEWSLETTER, "--config", str(config), "worker", "--exit-when-idle"],
            env={**os.environ, **env},
            stdout=handle,
            stderr=handle,
        )


def _wait(processes: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + DEADLINE
    for process in processes:
        process.wait(timeout=max(deadline - time.monotonic(), 1))


def _run(database_url: str, run_id: int) -> tuple[str, dict[str, int]]:
    engine = sa.create_engine(database_url)
    try:
        with Session(engine) as session:
            run = session.get(DigestRun, run_id)
            assert run is not None
            return run.status, storage.counts(session, [run_id])[run_id]
    finally:
        engine.dispose()


@pytest.fixture
def sink() -> tuple[CountingSink, int]:
    handler, port = CountingSink(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port  # type: ignore[misc]
    controller.stop()


def test_two_workers_share_a_run_mailing_everyone_once(
    tmp_path: Path, database_url: str, sink: tuple[CountingSink, int]
) -> None:
    handler, port = sink
    config, env = _site(tmp_path, database_url, port, RECIPIENTS)
    run_id = _send_in_background(config, env, RECIPIENTS)
    workers = [_worker(config, env, tmp_path / f"worker{n}.log") for n in range(2)]
    try:
        _wait(workers)
    finally:
        for w in workers:
            w.kill()
    logs = [(tmp_path / f"worker{n}.log").read_text() for n in range(2)]
    assert all("on PostgreSQL" in text for text in logs), logs
    assert sorted(handler.received) == [f"r{n:05}@example.org" for n in range(RECIPIENTS)]
    twice = {k: v for k, v in handler.received.items() if len(v) > 1}
    assert twice == {}
    assert _run(database_url, run_id) == ("sent", {"sent": RECIPIENTS})
    # both took part: each recorded rows of its own
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        holders = conn.execute(
            sa.text("SELECT claimed_by, count(*) FROM delivery GROUP BY claimed_by")
        ).all()
    engine.dispose()
    assert len(holders) == 2 and all(count > 0 for _, count in holders), holders


def test_a_worker_killed_mid_batch_leaves_its_rows_to_the_other(
    tmp_path: Path, database_url: str, sink: tuple[CountingSink, int]
) -> None:
    handler, port = sink
    config, env = _site(tmp_path, database_url, port, KILL_RECIPIENTS)
    run_id = _send_in_background(config, env, KILL_RECIPIENTS)
    victim = _worker(config, env, tmp_path / "victim.log")
    survivor = _worker(config, env, tmp_path / "survivor.log")
    handler.victim, handler.after = victim.pid, KILL_RECIPIENTS // 4
    try:
        _wait([victim, survivor])
    finally:
        victim.kill()
        survivor.kill()
    assert victim.returncode == -signal.SIGKILL
    survivor_log = (tmp_path / "survivor.log").read_text()
    assert "whose lease ran out" in survivor_log, survivor_log
    assert sorted(handler.received) == [f"r{n:05}@example.org" for n in range(KILL_RECIPIENTS)]
    twice = {k: v for k, v in handler.received.items() if len(v) > 1}
    # only what the victim had sent but not yet recorded goes twice, with one Message-ID
    assert len(twice) <= 2 * RESULT_BATCH + POOL_SIZE, len(twice)
    assert all(len(set(ids)) == 1 for ids in twice.values()), twice
    assert _run(database_url, run_id) == ("sent", {"sent": KILL_RECIPIENTS})
