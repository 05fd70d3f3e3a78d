"""Sending a digest run: `newsletter digests send` against Postfix's smtp-sink, compared
with smtp-source sending as many messages of the same size over as many connections to the
same sink.

A fresh site per scenario: config.toml with `[mail] transport = "smtp"` pointed at the
sink, 10 published articles (three topics) and N active subscribers of one digest in three
topic groups, so that the run has three segments and each message is about 35 KB. Rows are
seeded directly; the digests are defined with `newsletter digests create` and sent with
`newsletter digests send` (or `send --background` and K `newsletter worker` processes),
each a subprocess, as an operator runs them.

    bench/digest/run [--subscribers N] [--workers K] [--dkim none,both] [--quick]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import itertools
import json
import os
import platform
import pwd
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

sys.path.insert(0, str(Path(__file__).resolve().parent))

import procs
import seed

from newsletter import config as nl_config
from newsletter.errors import ConfigError
from newsletter.models import Delivery, DigestRun
from newsletter.storage.database import create_engine, open_database

DIGEST = "bench"  # the digest measured
PROBE = "bench-probe"  # same definition, three subscribers: one real message per segment
FROM = "digest@news.example.org"
SCENARIOS = {
    "none": "no DKIM",
    "rsa": "DKIM RSA-2048",
    "both": "DKIM RSA-2048 + Ed25519",
}
LEDGER_LINE = re.compile(r"ledger:\s*([\d,_]+)\s+rows?\s+in\s+([\d.]+)\s*(ms|s)\b")
POLL_SECONDS = 0.05


def log(message: str) -> None:
    print(message, flush=True)


# ------------------------------------------------------------------ databases


class SqliteStore:
    """One seeded SQLite file, copied for each scenario (every scenario starts from the
    same fresh site)."""

    def __init__(self, workdir: Path) -> None:
        self.seed_path = workdir / "seed" / "newsletter.db"
        self.seed_path.parent.mkdir(parents=True, exist_ok=True)
        self.seed_url = f"sqlite:///{self.seed_path}"

    def site_url(self, name: str, folder: Path) -> str:
        target = folder / "newsletter.db"
        shutil.copyfile(self.seed_path, target)
        target.chmod(0o600)
        return f"sqlite:///{target}"

    def describe(self) -> str:
        return "SQLite"

    def drop(self) -> None:
        pass


class PostgresStore:
    """Scratch databases on the server of `url`: a seeded one, and one per scenario made
    from it with CREATE DATABASE ... TEMPLATE; all dropped at the end. The role needs
    CREATEDB; the database named in `url` is only used to connect."""

    def __init__(self, url: str) -> None:
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://") :]
        try:
            self.base = sa.make_url(url)
        except (sa.exc.ArgumentError, ValueError):
            raise RuntimeError("--database-url is not a database URL") from None
        if self.base.get_backend_name() != "postgresql":
            shown = self.base.render_as_string(hide_password=True)
            raise RuntimeError(f"--database-url must be a PostgreSQL URL, not {shown!r}")
        self.prefix = f"nlbench_{os.getpid()}_"
        self.admin = sa.create_engine(
            self.base, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool
        )
        self.made: list[str] = []
        seed_name = self._create(self.prefix + "seed")
        self.seed_url = self._url(seed_name)

    def _url(self, database: str) -> str:
        return self.base.set(database=database).render_as_string(hide_password=False)

    def _create(self, name: str, template: str | None = None) -> str:
        clause = f" TEMPLATE {template}" if template else ""
        try:
            for attempt in range(20):
                try:
                    with self.admin.connect() as conn:
                        conn.exec_driver_sql(f"CREATE DATABASE {name}{clause}")
                    break
                except sa.exc.OperationalError as exc:
                    # a template still used by a connection that is closing
                    if "being accessed by other users" not in str(exc.orig) or attempt == 19:
                        raise
                    time.sleep(0.25)
        except sa.exc.DBAPIError as exc:
            raise RuntimeError(
                f"cannot create database {name} on "
                f"{self.base.render_as_string(hide_password=True)}: {exc.orig}\n(the bench "
                "makes scratch databases there: the role needs CREATEDB)"
            ) from None
        self.made.append(name)
        return name

    def site_url(self, name: str, folder: Path) -> str:
        return self._url(self._create(self.prefix + name, template=self.prefix + "seed"))

    def describe(self) -> str:
        with self.admin.connect() as conn:
            version = conn.exec_driver_sql("SHOW server_version").scalar()
        return f"PostgreSQL {version}"

    def drop(self) -> None:
        for name in reversed(self.made):
            try:
                with self.admin.connect() as conn:
                    conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            except sa.exc.DBAPIError as exc:
                log(f"warning: could not drop database {name}: {exc.orig}")
        self.made.clear()
        self.admin.dispose()


# ------------------------------------------------------------------ sites


def toml_str(value: str) -> str:
    return json.dumps(value)  # a TOML basic string for what this script writes


def write_config(
    folder: Path,
    database_url: str,
    port: int,
    connections: int,
    rsa_key: Path | None = None,
    ed25519_key: Path | None = None,
) -> Path:
    lines = [
        "[site]",
        'title = "The Asia Ledger"',
        'base_url = "https://news.example.org"',
        'timezone = "UTC"',
        "",
        "[database]",
        f"url = {toml_str(database_url)}",
        "",
        "[mail]",
        'transport = "smtp"',
        f"from_address = {toml_str(FROM)}",
        'postal_address = "The Asia Ledger, 1 Harbour Road, Singapore 018989"',
        'dkim_selector = "bench"',
        'dkim_domain = "news.example.org"',
    ]
    if rsa_key is not None:
        lines.append(f"dkim_key_file = {toml_str(str(rsa_key))}")
    if ed25519_key is not None:
        lines.append(f"dkim_ed25519_key_file = {toml_str(str(ed25519_key))}")
    lines += [
        "",
        "[smtp]",
        'host = "127.0.0.1"',
        f"port = {port}",
        'security = "none"',
        f"pool_size = {connections}",
        "timeout = 60",
        "",
        "[security]",
        f"secret_key = {toml_str(base64.urlsafe_b64encode(os.urandom(32)).decode())}",
        "",
    ]
    path = folder / "config.toml"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write("\n".join(lines))
    return path


def make_keys(folder: Path) -> tuple[Path, Path]:
    """An RSA-2048 key in PEM and an Ed25519 key as base64 of its 32 raw bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    rsa_path, ed_path = folder / "dkim-rsa.pem", folder / "dkim-ed25519.key"
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    raw = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    for path, data in ((rsa_path, pem), (ed_path, base64.b64encode(raw) + b"\n")):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
    return rsa_path, ed_path


# ------------------------------------------------------------------ SMTP sink and source


@dataclass(frozen=True)
class Tools:
    sink: str
    source: str
    newsletter: str


def sink_argv(tools: Tools, pin: list[str], port: int, dump: Path | None = None) -> list[str]:
    """smtp-sink on 127.0.0.1:`port`: throws mail away (or dumps each message into `dump`),
    announces PIPELINING (the default), counts sessions and messages on stdout (-c)."""
    argv = [*pin, tools.sink, "-4"]
    argv += ["-c"] if dump is None else ["-d", f"{dump}/%H%M%S."]
    if os.geteuid() == 0:  # smtp-sink refuses to run as root without -u
        argv += ["-u", "nobody"]
    return [*argv, f"{procs.LOOPBACK}:{port}", "1000"]


def sink_messages(log_path: Path) -> int | None:
    """The message counter smtp-sink -c last printed ("sess=N quit=N mesg=N", \\r apart),
    read from the end of its log."""
    try:
        with log_path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 256))
            tail = handle.read().decode("ascii", "replace")
    except OSError:
        return None
    found = re.findall(r"mesg=(\d+)\s", tail)
    return int(found[-1]) if found else None


_SINK_HEADERS = ("X-Client-Addr:", "X-Client-Proto:", "X-Helo-Args:", "X-Mail-Args:")


def read_dump(path: Path) -> bytes:
    """The message of one smtp-sink -d file: without the X-* and Received lines smtp-sink
    puts before it and the empty line after it; LF line ends (as smtp-source -F wants)."""
    lines = path.read_bytes().split(b"\n")
    i = 0
    while i < len(lines) and lines[i].decode("latin-1").startswith(
        (*_SINK_HEADERS, "X-Rcpt-Args:")
    ):
        i += 1
    if i < len(lines) and lines[i].startswith(b"Received:"):
        i += 1
        while i < len(lines) and lines[i][:1] in (b"\t", b" "):
            i += 1
    body = lines[i:]
    if body and body[-1] == b"":
        body = body[:-1]  # the split after the final LF
    if body and body[-1] == b"":
        body = body[:-1]  # the empty line smtp-sink appends
    return b"\n".join(body) + b"\n"


def wire_size(message: bytes) -> int:
    """Bytes of the message on the wire (CRLF line ends), before dot-stuffing."""
    return len(message) + message.count(b"\n")


@dataclass
class SourceRound:
    seconds: float
    messages: int
    rate: float
    when: str  # before or after the service


def run_source(
    runner: procs.Processes,
    tools: Tools,
    pin: list[str],
    port: int,
    message: Path,
    messages: int,
    connections: int,
    log_path: Path,
    name: str,
    when: str,
) -> SourceRound:
    """smtp-source: `messages` copies of `message` over `connections` sessions that each
    keep their connection for the next message (-d), as a pool of senders does."""
    argv = [
        *pin,
        tools.source,
        "-4",
        "-d",
        "-s",
        str(connections),
        "-m",
        str(messages),
        "-F",
        str(message),
        "-f",
        FROM,
        "-t",
        "reader@example.net",
        f"{procs.LOOPBACK}:{port}",
    ]
    child = procs.run_to_end(
        runner, name, argv, log_path, procs.clean_env(), timeout=120 + messages / 100
    )
    if child.exit_code != 0:
        raise RuntimeError(f"smtp-source exited with {child.exit_code}:\n{child.tail()}")
    return SourceRound(child.seconds, messages, messages / child.seconds, when)


# ------------------------------------------------------------------ watching a run


@dataclass
class Seen:
    """What polling the database saw of the run: when each status was first seen."""

    run_id: int | None = None
    created_at: datetime | None = None
    finished_at: datetime | None = None
    status: str | None = None
    first_seen: dict[str, tuple[float, float]] = field(default_factory=dict)  # perf, wall


class Watcher:
    """Polls the newest run of a digest every POLL_SECONDS in a thread of its own; prints
    the progress every `report_every` seconds."""

    def __init__(
        self, url: str, digest_id: int, total: int, sink_log: Path, report_every: float = 30
    ) -> None:
        self.engine = create_engine(url)
        self.digest_id = digest_id
        self.total = total
        self.sink_log = sink_log
        self.report_every = report_every
        self.seen = Seen()
        # (perf_counter, messages the sink counted) whenever the count moved
        self.sink_samples: list[tuple[float, int]] = []
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._loop, name="watcher", daemon=True)

    def __enter__(self) -> Watcher:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)
        self.engine.dispose()

    def _loop(self) -> None:
        runs = DigestRun.__table__
        query = (
            sa.select(runs.c.id, runs.c.status, runs.c.created_at, runs.c.finished_at)
            .where(runs.c.digest_id == self.digest_id)
            .order_by(runs.c.id.desc())
            .limit(1)
        )
        last_report = time.perf_counter()
        try:
            while not self.stop.is_set():
                with self.engine.connect() as conn:
                    row = conn.execute(query).first()
                now = (time.perf_counter(), time.time())
                count = sink_messages(self.sink_log)
                if count is not None and (
                    not self.sink_samples or count != self.sink_samples[-1][1]
                ):
                    self.sink_samples.append((now[0], count))
                if row is not None:
                    seen = self.seen
                    seen.run_id, seen.status = row.id, row.status
                    seen.created_at, seen.finished_at = row.created_at, row.finished_at
                    seen.first_seen.setdefault(row.status, now)
                    if now[0] - last_report >= self.report_every:
                        last_report = now[0]
                        self._report(row.id, row.status)
                self.stop.wait(POLL_SECONDS)
        except BaseException as exc:  # shown by the caller
            self.error = exc

    def _report(self, run_id: int, status: str) -> None:
        table = Delivery.__table__
        with self.engine.connect() as conn:
            sent = conn.execute(
                sa.select(sa.func.count())
                .select_from(table)
                .where(table.c.run_id == run_id, table.c.status == "sent")
            ).scalar_one()
        log(f"    ... run {run_id} {status}: {sent:,} of {self.total:,} sent")

    def stalls(self, since: float, until: float) -> tuple[float, float, float]:
        """Within [since, until]: (time to the first message at the sink, longest time
        between two messages after it, time from the last one to `until`). A sender that
        waits on something shows in the middle figure."""
        times = [t for t, _ in self.sink_samples if since <= t <= until]
        if not times:
            return until - since, 0.0, 0.0
        gaps = [b - a for a, b in itertools.pairwise(times)]
        return times[0] - since, max(gaps, default=0.0), until - times[-1]

    def timeline(self, since: float) -> list[int]:
        """Messages the sink had counted at each whole second after `since`."""
        out: list[int] = []
        samples = self.sink_samples
        if not samples:
            return out
        base = next((c for t, c in reversed(samples) if t <= since), samples[0][1])
        end = samples[-1][0]
        second, i, count = 1, 0, base
        while since + second <= end + 1:
            while i < len(samples) and samples[i][0] <= since + second:
                count = samples[i][1]
                i += 1
            out.append(count - base)
            second += 1
        return out

    def wait_for(self, status: str, timeout: float, alive: Any) -> bool:
        """Wait until the run reaches `status`; False if `alive()` turns false first or the
        time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if status in self.seen.first_seen:
                return True
            if self.error is not None:
                raise RuntimeError(f"watching the run failed: {self.error}")
            if not alive():
                time.sleep(2 * POLL_SECONDS)  # a last look
                return status in self.seen.first_seen
            time.sleep(POLL_SECONDS)
        return False


def run_counts(url: str, run_id: int) -> dict[str, int]:
    table = Delivery.__table__
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(table.c.status, sa.func.count())
                .where(table.c.run_id == run_id)
                .group_by(table.c.status)
            ).all()
    finally:
        engine.dispose()
    return {str(status): int(count) for status, count in rows}


def parse_ledger(output: str) -> tuple[int, float] | None:
    """(rows, seconds) from the "ledger: N rows in X s" line `digests send` prints."""
    match = LEDGER_LINE.search(output)
    if match is None:
        return None
    rows = int(re.sub(r"[,_]", "", match.group(1)))
    seconds = float(match.group(2)) / (1000 if match.group(3) == "ms" else 1)
    return rows, seconds


def polled_ledger_seconds(seen: Seen) -> float | None:
    """From the run's created_at (stored) to the moment it was first seen sending."""
    if seen.created_at is None or "sending" not in seen.first_seen:
        return None
    created = seen.created_at
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return seen.first_seen["sending"][1] - created.timestamp()


# ------------------------------------------------------------------ one scenario


@dataclass
class Result:
    scenario: str
    label: str
    mode: str
    subscribers: int
    connections: int
    workers: int
    messages_sent: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    exit_codes: list[int] = field(default_factory=list)
    message_bytes: list[int] = field(default_factory=list)  # one real message per segment
    source_message_bytes: int = 0
    service_seconds: float = 0.0  # start of the first command to the run sent
    service_rate: float = 0.0
    send_phase_seconds: float | None = None  # run seen sending to run sent
    send_phase_rate: float | None = None
    service_cpu_seconds: float = 0.0  # user + system of the sending processes
    cpu_us_per_message: float | None = None
    peak_rss_mib: list[float] = field(default_factory=list)  # per process
    ledger_rows: int | None = None
    ledger_seconds: float | None = None
    ledger_source: str = ""
    source_rounds: list[SourceRound] = field(default_factory=list)
    source_rate: float = 0.0  # best round
    ratio: float | None = None  # service_rate / source_rate
    sink_messages_service: int | None = None
    first_message_seconds: float | None = None  # send phase start to first at the sink
    longest_gap_seconds: float | None = None  # between two messages reaching the sink
    tail_seconds: float | None = None  # from the last message to the end of the send
    per_second: list[int] = field(default_factory=list)  # messages at the sink, cumulative
    notes: list[str] = field(default_factory=list)


def newsletter_argv(tools: Tools, cfg: Path, *args: str) -> list[str]:
    return [tools.newsletter, "--config", str(cfg), *args]


def cli(
    runner: procs.Processes, tools: Tools, cfg: Path, name: str, *args: str, timeout: float = 300
) -> procs.Child:
    """A newsletter command that must succeed."""
    child = procs.run_to_end(
        runner,
        name,
        newsletter_argv(tools, cfg, *args),
        cfg.parent / f"{name}.log",
        procs.clean_env(),
        timeout=timeout,
        cwd=cfg.parent,
    )
    if child.exit_code != 0:
        raise RuntimeError(
            f"newsletter {' '.join(args)} exited with {child.exit_code}:\n{child.tail()}"
        )
    return child


def has_option(tools: Tools, args: list[str], option: str) -> bool:
    done = subprocess.run(
        [tools.newsletter, *args, "--help"],
        capture_output=True,
        text=True,
        env=procs.clean_env(),
        check=False,
        timeout=60,
    )
    return done.returncode == 0 and option in done.stdout


class Bench:
    def __init__(self, args: argparse.Namespace, tools: Tools, workdir: Path) -> None:
        self.args = args
        self.tools = tools
        self.workdir = workdir
        self.runner = procs.Processes(workdir / "pids")
        self.sink_pin, self.sender_pin = procs.cpu_split()
        self.store: SqliteStore | PostgresStore | None = None
        self.keys: tuple[Path, Path] | None = None
        self.digest_id = self.probe_id = 0
        self.sink_log = workdir / "sink.log"  # the current scenario's

    # -- seeding -------------------------------------------------------------------

    def build_seed(self) -> None:
        args = self.args
        self.store = (
            PostgresStore(args.database_url) if args.database_url else SqliteStore(self.workdir)
        )
        folder = self.workdir / "seed"
        folder.mkdir(parents=True, exist_ok=True)
        now = datetime.now(UTC)
        started = time.perf_counter()
        engine = open_database(self.store.seed_url)  # the service's migrations
        try:
            seed.add_articles(engine, now)
        finally:
            engine.dispose()
        cfg = write_config(folder, self.store.seed_url, port=25, connections=1)
        definition = ["--name", "The Asia Ledger Daily", "--max-items", "10"]
        definition += ["--description", "The day's reporting from the region"]
        definition += ["--daily", "07:00", "--timezone", "UTC"]
        for name, slug in (("create-digest", DIGEST), ("create-probe", PROBE)):
            cli(self.runner, self.tools, cfg, name, "digests", "create", slug, *definition)
        engine = create_engine(self.store.seed_url)
        total = args.subscribers
        step = max(total // 10, seed.BATCH)
        mark = [step]

        def progress(done: int) -> None:
            if done >= mark[0] or done == total:
                log(f"  seeded {done:,} of {total:,} subscribers")
                mark[0] += step

        try:
            seed.add_subscribers(engine, DIGEST, total, now, on_batch=progress)
            seed.add_subscribers(
                engine, PROBE, 3, now, email="probe{k}@probe{domain:02d}.example.net"
            )
            self.digest_id = seed.digest_id(engine, DIGEST)
            self.probe_id = seed.digest_id(engine, PROBE)
            seed.finish(engine)
        finally:
            engine.dispose()
        log(
            f"  seeded {self.store.describe()}: {len(seed.ARTICLE_TOPICS)} articles, "
            f"{total:,} subscribers in {time.perf_counter() - started:.1f} s"
        )

    # -- a scenario ----------------------------------------------------------------

    def scenario(self, name: str) -> Result:
        args = self.args
        assert self.store is not None
        folder = self.workdir / f"site-{name}"
        folder.mkdir()
        url = self.store.site_url(name, folder)
        result = Result(
            scenario=name,
            label=SCENARIOS[name],
            mode=f"{args.workers} workers" if args.workers else "foreground",
            subscribers=args.subscribers,
            connections=args.connections_total,
            workers=args.workers,
        )
        port, capture_port = procs.free_port(), procs.free_port()
        while capture_port == port:
            capture_port = procs.free_port()
        cfg = self.site_config(name, folder, url, port, result)

        sink = self.runner.start(
            f"sink-{name}",
            sink_argv(self.tools, self.sink_pin, port),
            folder / "sink.log",
            procs.clean_env(),
        )
        procs.wait_listening(port, sink)
        self.sink_log = sink.log
        message = self.probe(name, folder, cfg, capture_port, result)

        rounds = max(1, args.source_rounds)
        source = (
            self.tools,
            self.sender_pin,
            port,
            message,
            args.subscribers,
            args.connections_total,
            folder / "smtp-source.log",
        )
        result.source_rounds.append(
            run_source(self.runner, *source, name=f"source-{name}-0", when="before")
        )
        before = sink_messages(sink.log) or 0
        if args.workers:
            self.send_workers(name, cfg, url, result)
        else:
            self.send_foreground(name, cfg, url, result)
        after = sink_messages(sink.log)
        if after is not None:
            result.sink_messages_service = after - before
        for i in range(1, rounds):
            result.source_rounds.append(
                run_source(self.runner, *source, name=f"source-{name}-{i}", when="after")
            )
        self.runner.stop(sink)

        result.source_rate = max(r.rate for r in result.source_rounds)
        if result.service_rate and result.source_rate:
            result.ratio = result.service_rate / result.source_rate
        if result.service_cpu_seconds and result.messages_sent:
            result.cpu_us_per_message = 1e6 * result.service_cpu_seconds / result.messages_sent
        if result.sink_messages_service not in (None, result.messages_sent):
            result.notes.append(
                f"the sink counted {result.sink_messages_service:,} messages during the "
                f"service's run, the ledger {result.messages_sent:,} sent"
            )
        return result

    def site_config(self, name: str, folder: Path, url: str, port: int, result: Result) -> Path:
        rsa_key = ed_key = None
        if name != "none":
            assert self.keys is not None
            rsa_key = self.keys[0]
            ed_key = self.keys[1] if name == "both" else None
        cfg = write_config(folder, url, port, self.args.connections, rsa_key, ed_key)
        try:
            nl_config.load(cfg, environ={})
        except ConfigError as exc:
            if ed_key is None or "dkim_ed25519_key_file" not in str(exc):
                raise RuntimeError(f"the bench's config.toml is refused: {exc}") from None
            result.label = "DKIM RSA-2048 only (this version has no dkim_ed25519_key_file)"
            result.notes.append(
                "[mail] dkim_ed25519_key_file is refused by this version's config "
                f"({exc}); signed with the RSA key only"
            )
            log(f"  note: {result.notes[-1]}")
            cfg = write_config(folder, url, port, self.args.connections, rsa_key, None)
        return cfg

    def probe(self, name: str, folder: Path, cfg: Path, capture_port: int, result: Result) -> Path:
        """Send the probe digest (three subscribers, one per segment) to a sink that keeps
        each message: the real messages' sizes, and the one smtp-source then sends."""
        dump = folder / "captured"
        dump.mkdir()
        if os.geteuid() == 0:  # the capturing sink writes as nobody
            dump.chmod(0o777)
        capture = self.runner.start(
            f"capture-{name}",
            sink_argv(self.tools, [], capture_port, dump),
            folder / "capture.log",
            procs.clean_env(),
        )
        procs.wait_listening(capture_port, capture)
        child = procs.run_to_end(
            self.runner,
            f"probe-{name}",
            newsletter_argv(self.tools, cfg, "digests", "send", PROBE),
            folder / "probe.log",
            procs.clean_env(NEWSLETTER_SMTP__PORT=str(capture_port)),
            timeout=300,
            cwd=folder,
        )
        deadline = time.monotonic() + 5
        files: list[Path] = []
        while time.monotonic() < deadline:
            files = sorted(dump.iterdir())
            if len(files) >= 3:
                break
            time.sleep(0.05)
        self.runner.stop(capture)
        if child.exit_code != 0 or len(files) < 3:
            raise RuntimeError(
                f"the probe run sent {len(files)} of 3 messages (exit {child.exit_code}):\n"
                f"{child.tail()}"
            )
        messages = [read_dump(f) for f in files]
        sizes = [wire_size(m) for m in messages]
        result.message_bytes = sorted(sizes)
        mean = statistics.mean(sizes)
        chosen = min(messages, key=lambda m: abs(wire_size(m) - mean))
        result.source_message_bytes = wire_size(chosen)
        target = folder / "message.eml"
        target.write_bytes(chosen)
        if name != "none" and b"DKIM-Signature:" not in chosen:
            result.notes.append("DKIM asked for, but the message carries no DKIM-Signature")
        signatures = chosen.count(b"DKIM-Signature:")
        log(
            f"  [{name}] one message per segment: "
            + ", ".join(f"{s:,}" for s in sorted(sizes))
            + f" bytes; {signatures} DKIM signature(s)"
        )
        return target

    def send_foreground(self, name: str, cfg: Path, url: str, result: Result) -> None:
        args = self.args
        log(f"  [{name}] newsletter digests send {DIGEST} ({args.subscribers:,} recipients) ...")
        with Watcher(url, self.digest_id, args.subscribers, self.sink_log) as watcher:
            child = self.runner.start(
                f"send-{name}",
                [*self.sender_pin, *newsletter_argv(self.tools, cfg, "digests", "send", DIGEST)],
                cfg.parent / "send.log",
                procs.clean_env(),
                cwd=cfg.parent,
            )
            if not child.wait(args.timeout):
                self.runner.stop(child)
                raise RuntimeError(f"digests send did not finish in {args.timeout:.0f} s")
            self.runner.stop(child)
            time.sleep(2 * POLL_SECONDS)
        self.collect(result, url, watcher.seen, [child], child.output(), first=child)
        result.service_seconds = child.seconds
        sending = watcher.seen.first_seen.get("sending")
        ended = child.ended or time.perf_counter()
        if sending is not None:
            result.send_phase_seconds = ended - sending[0]
        self.pace(result, watcher, sending[0] if sending else child.started, ended)
        self.rates(result)

    def send_workers(self, name: str, cfg: Path, url: str, result: Result) -> None:
        args = self.args
        log(
            f"  [{name}] newsletter digests send {DIGEST} --background, then "
            f"{args.workers} x newsletter worker --exit-when-idle ..."
        )
        with Watcher(url, self.digest_id, args.subscribers, self.sink_log) as watcher:
            bg = self.runner.start(
                f"background-{name}",
                [
                    *self.sender_pin,
                    *newsletter_argv(self.tools, cfg, "digests", "send", DIGEST, "--background"),
                ],
                cfg.parent / "background.log",
                procs.clean_env(),
                cwd=cfg.parent,
            )
            if not bg.wait(args.timeout):
                self.runner.stop(bg)
                raise RuntimeError(f"digests send --background did not return in {args.timeout} s")
            self.runner.stop(bg)
            if bg.exit_code != 0:
                raise RuntimeError(f"digests send --background exited {bg.exit_code}:\n{bg.tail()}")
            workers_started = time.perf_counter()
            workers = [
                self.runner.start(
                    f"worker-{name}-{i}",
                    [
                        *self.sender_pin,
                        *newsletter_argv(self.tools, cfg, "worker", "--exit-when-idle"),
                    ],
                    cfg.parent / f"worker-{i}.log",
                    procs.clean_env(),
                    cwd=cfg.parent,
                )
                for i in range(1, args.workers + 1)
            ]
            done = watcher.wait_for(
                "sent", args.timeout, alive=lambda: any(not w.done.is_set() for w in workers)
            )
            sent_at = watcher.seen.first_seen.get("sent", (time.perf_counter(), 0.0))[0]
            if not done:
                result.notes.append(
                    f"the run did not reach 'sent' (last seen {watcher.seen.status!r})"
                )
            for worker in workers:
                if not worker.wait(60):
                    result.notes.append(f"{worker.name} was still running 60 s after the run")
                self.runner.stop(worker)
        outputs = bg.output() + "".join(w.output() for w in workers)
        self.collect(result, url, watcher.seen, [bg, *workers], outputs, first=bg)
        result.service_seconds = sent_at - bg.started
        result.send_phase_seconds = sent_at - workers_started
        self.pace(result, watcher, workers_started, sent_at)
        self.rates(result)

    def collect(
        self,
        result: Result,
        url: str,
        seen: Seen,
        children: list[procs.Child],
        output: str,
        first: procs.Child,
    ) -> None:
        result.exit_codes = [c.exit_code if c.exit_code is not None else -1 for c in children]
        result.peak_rss_mib = [round((c.maxrss_kib or 0) / 1024, 1) for c in children]
        result.service_cpu_seconds = sum(c.cpu_seconds for c in children)
        if seen.run_id is None:
            raise RuntimeError(f"no run of {DIGEST} appeared:\n{first.tail()}")
        result.counts = run_counts(url, seen.run_id)
        result.messages_sent = result.counts.get("sent", 0)
        parsed = parse_ledger(output)
        if parsed is not None:
            result.ledger_rows, result.ledger_seconds = parsed
            result.ledger_source = "printed by digests send"
        else:
            result.ledger_rows = sum(result.counts.values())
            result.ledger_seconds = polled_ledger_seconds(seen)
            result.ledger_source = "run created_at to first seen sending (polled)"
        if any(code != 0 for code in result.exit_codes):
            result.notes.append(f"exit codes {result.exit_codes}:\n{first.tail(1500)}")
        if result.messages_sent != result.subscribers:
            result.notes.append(f"ledger after the run: {result.counts}")

    def pace(self, result: Result, watcher: Watcher, since: float, until: float) -> None:
        """How steadily messages reached the sink while the service sent."""
        first, gap, tail = watcher.stalls(since, until)
        result.first_message_seconds, result.longest_gap_seconds = first, gap
        result.tail_seconds = tail
        result.per_second = watcher.timeline(since)
        if gap >= 1.0:
            result.notes.append(
                f"no message reached the sink for {gap:.1f} s in a row while the run was "
                "sending (per_second in the JSON shows when)"
            )
        if first >= 5.0:
            result.notes.append(
                f"the first message reached the sink {first:.1f} s after the "
                f"{'workers started' if self.args.workers else 'run was seen sending'}"
            )

    def rates(self, result: Result) -> None:
        if result.service_seconds:
            result.service_rate = result.messages_sent / result.service_seconds
        if result.send_phase_seconds:
            result.send_phase_rate = result.messages_sent / result.send_phase_seconds

    def close(self) -> None:
        self.runner.stop_all()
        if self.store is not None:
            self.store.drop()


# ------------------------------------------------------------------ report


def table(results: list[Result]) -> str:
    head = (
        "scenario",
        "sent",
        "msg kB",
        "service s",
        "service msg/s",
        "send-phase msg/s",
        "smtp-source msg/s",
        "ratio",
        "CPU us/msg",
        "peak RSS MiB",
        "ledger s",
    )
    rows = [head]
    for r in results:
        rows.append(
            (
                f"{r.scenario} ({r.mode})",
                f"{r.messages_sent:,}",
                f"{r.source_message_bytes / 1000:.1f}",
                f"{r.service_seconds:.1f}",
                f"{r.service_rate:,.0f}",
                f"{r.send_phase_rate:,.0f}" if r.send_phase_rate else "-",
                f"{r.source_rate:,.0f}",
                f"{r.ratio:.3f}" if r.ratio is not None else "-",
                f"{r.cpu_us_per_message:,.0f}" if r.cpu_us_per_message else "-",
                "/".join(f"{m:,.0f}" for m in r.peak_rss_mib),
                f"{r.ledger_seconds:.2f}" if r.ledger_seconds is not None else "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = [
        "  ".join(
            cell.rjust(w) if i else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def summary_lines(results: list[Result]) -> list[str]:
    out = []
    for r in results:
        ratio = f"{r.ratio:.3f}" if r.ratio is not None else "-"
        out.append(
            f"digest run, {r.label}, {r.mode}, {r.messages_sent:,} messages of "
            f"{r.source_message_bytes / 1000:.1f} kB over {r.connections} connections: "
            f"newsletter {r.service_rate:,.0f} msg/s, smtp-source {r.source_rate:,.0f} msg/s, "
            f"ratio {ratio}"
        )
        ledger = f"{r.ledger_seconds:.2f} s" if r.ledger_seconds is not None else "-"
        out.append(
            f"  peak RSS {'/'.join(f'{m:,.0f}' for m in r.peak_rss_mib)} MiB; ledger "
            f"{r.ledger_rows or 0:,} rows in {ledger} ({r.ledger_source}); smtp-source rounds "
            + ", ".join(f"{s.rate:,.0f} ({s.when})" for s in r.source_rounds)
        )
        out.extend(f"  note: {n}" for n in r.notes)
    return out


# ------------------------------------------------------------------ main


def find_tool(name: str, given: str | None) -> str | None:
    if given:
        return given if os.access(given, os.X_OK) else None
    found = shutil.which(name)
    if found:
        return found
    for folder in ("/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/libexec/postfix"):
        candidate = Path(folder) / name
        if os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--subscribers", type=int, metavar="N", default=100_000, help="(default 100,000)"
    )
    parser.add_argument("--quick", action="store_true", help="10,000 subscribers: a smoke run")
    parser.add_argument(
        "--workers",
        type=int,
        metavar="K",
        default=0,
        help="send with `digests send --background` and K `newsletter worker --exit-when-idle` "
        "processes instead of one foreground `digests send` (default 0: foreground)",
    )
    parser.add_argument(
        "--connections",
        type=int,
        metavar="C",
        default=8,
        help="[smtp] pool_size, and smtp-source's sessions (times K with --workers; default 8)",
    )
    parser.add_argument(
        "--dkim",
        metavar="LIST",
        default="none,both",
        help="scenarios, comma-separated: none (no signature), rsa (RSA-2048), both "
        "(RSA-2048 and Ed25519; RSA alone when the config has no dkim_ed25519_key_file). "
        "Default none,both",
    )
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help="PostgreSQL server to use instead of SQLite: scratch databases are created on it "
        "(CREATE DATABASE ... TEMPLATE, the role needs CREATEDB) and dropped at the end",
    )
    parser.add_argument(
        "--source-rounds",
        type=int,
        metavar="R",
        default=3,
        help="smtp-source runs per scenario, one before the service and the rest after; the "
        "best counts (default 3)",
    )
    parser.add_argument("--timeout", type=float, help="seconds a send may take (default: N/10+600)")
    parser.add_argument("--workdir", type=Path, help="scratch folder (default: a temp dir)")
    parser.add_argument("--newsletter", help="the newsletter command (default: beside python)")
    parser.add_argument("--smtp-sink", help="path of smtp-sink (default: looked up)")
    parser.add_argument("--smtp-source", help="path of smtp-source (default: looked up)")
    parser.add_argument("--json", type=Path, help="write the figures here (default: a temp file)")
    parser.add_argument("--summary", type=Path, help="append the result lines to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.subscribers = 10_000
    if args.subscribers < 3:
        parser.error("--subscribers must be at least 3")
    if args.workers < 0 or not 1 <= args.connections <= 100:
        parser.error("--workers must be >= 0 and --connections between 1 and 100")
    scenarios = [s.strip() for s in args.dkim.split(",") if s.strip()]
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if not scenarios or unknown:
        parser.error(f"--dkim: {unknown or args.dkim!r}; expected none, rsa, both, comma-separated")
    args.scenarios = list(dict.fromkeys(scenarios))
    if args.timeout is None:
        args.timeout = args.subscribers / 10 + 600
    if args.workers:
        args.connections_total = args.connections * args.workers
    else:
        args.connections_total = args.connections
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # a TERM (the wrapper's trap, a CI timeout) unwinds like Ctrl-C: children and scratch
    # databases are cleaned up in the finally blocks
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sink = find_tool("smtp-sink", args.smtp_sink)
    source = find_tool("smtp-source", args.smtp_source)
    if sink is None or source is None:
        print(
            "error: this benchmark needs Postfix's smtp-sink and smtp-source. Install them, "
            "for example:\n  sudo apt-get install postfix     # Debian, Ubuntu (choose "
            "'No configuration')\n  sudo dnf install postfix         # Fedora",
            file=sys.stderr,
        )
        return 2
    newsletter = args.newsletter or str(Path(sys.executable).parent / "newsletter")
    if not os.access(newsletter, os.X_OK):
        print(f"error: {newsletter} is not an executable newsletter command", file=sys.stderr)
        return 2
    tools = Tools(sink, source, newsletter)
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("nobody")
        except KeyError:
            print(
                "error: smtp-sink runs as user nobody when started by root; none here",
                file=sys.stderr,
            )
            return 2
    if args.workers:
        missing = []
        if not has_option(tools, ["digests", "send"], "--background"):
            missing.append("`newsletter digests send --background`")
        if not has_option(tools, ["worker"], "--exit-when-idle"):
            missing.append("`newsletter worker --exit-when-idle`")
        if missing:
            print(
                f"error: --workers needs {' and '.join(missing)}, which this version of the "
                "service does not have yet; run without --workers to measure the foreground "
                "`digests send`",
                file=sys.stderr,
            )
            return 2

    own_workdir = args.workdir is None
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="newsletter-digest-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        workdir.chmod(0o711)  # the capturing sink (user nobody) writes into a folder below
    bench = Bench(args, tools, workdir)
    results: list[Result] = []
    status = 0
    try:
        log(
            f"== digest run: {args.subscribers:,} subscribers, "
            f"{'foreground send' if not args.workers else f'{args.workers} workers'}, "
            f"{args.connections} SMTP connections"
            + (f" per worker ({args.connections_total} in all)" if args.workers else "")
            + f", scenarios {', '.join(args.scenarios)}"
        )
        if bench.sink_pin:
            log(f"  CPUs: smtp-sink on {bench.sink_pin[2]}, senders on {bench.sender_pin[2]}")
        bench.build_seed()
        if any(s != "none" for s in args.scenarios):
            bench.keys = make_keys(workdir / "keys")
        for name in args.scenarios:
            result = bench.scenario(name)
            results.append(result)
            for line in summary_lines([result]):
                log(line)
            if any(code != 0 for code in result.exit_codes) or result.messages_sent == 0:
                status = 1
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        status = 1
    except Exception:  # a bug here: the figures so far are still written below
        traceback.print_exc()
        status = 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        status = 130
    finally:
        bench.close()
        if own_workdir:
            shutil.rmtree(workdir, ignore_errors=True)

    if results:
        log("")
        log(table(results))
        report = {
            "benchmark": "digest run vs smtp-source",
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "database": "PostgreSQL" if args.database_url else "SQLite",
                "pinned": bool(bench.sink_pin),
            },
            "parameters": {
                "subscribers": args.subscribers,
                "workers": args.workers,
                "connections": args.connections_total,
                "scenarios": args.scenarios,
                "source_rounds": args.source_rounds,
            },
            "results": [asdict(r) for r in results],
        }
        if args.json:
            path = args.json
        else:
            fd, name = tempfile.mkstemp(prefix="newsletter-digest-bench-", suffix=".json")
            os.close(fd)
            path = Path(name)
        path.write_text(json.dumps(report, indent=2, default=str) + "\n")
        log(f"figures: {path}")
        if args.summary:
            with args.summary.open("a") as out:
                out.write("\n".join(summary_lines(results)) + "\n")
    return status


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
