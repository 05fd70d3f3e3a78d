"""`newsletter serve` (the HTTP service with the scheduler), `newsletter scheduler` (the
scheduler alone) and `newsletter demo`."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from typing import TYPE_CHECKING

import click

from newsletter import demo
from newsletter.cli.common import (
    EXIT_FAILED,
    command,
    engine,
    is_sqlite,
    main,
    now,
    run_loop,
    services,
    settings,
)
from newsletter.scheduler import work
from newsletter.web.bounds import HEAD_TIMEOUT, MAX_HEAD_BYTES

if TYPE_CHECKING:  # the web stack is imported when `serve` runs, not with every command
    from starlette.types import Receive, Scope, Send

worker_option = click.option(
    "--worker/--no-worker",
    default=True,
    show_default=True,
    help="Send digest runs in this process (with --no-worker, `newsletter worker` does).",
)


@command(main, "demo")
def demo_command() -> None:
    """Load the demo publication (idempotent: articles already there are left alone)."""
    cfg = settings()
    report = demo.load(engine(), cfg, now())
    click.echo(f"demo publication: {report.summary()}")


@command(main)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option(
    "--scheduler/--no-scheduler",
    default=True,
    show_default=True,
    help="Run the digest scheduler and sender in this process.",
)
@worker_option
@click.option(
    "--limit-concurrency",
    type=click.IntRange(1),
    default=1000,
    show_default=True,
    help="Answer 503 to new requests while this many connections or requests are open.",
)
@click.option(
    "--backlog",
    type=click.IntRange(1),
    default=2048,
    show_default=True,
    help="Connections the kernel queues before they are accepted.",
)
@click.option(
    "--timeout-keep-alive",
    type=click.IntRange(1),
    default=5,
    show_default=True,
    help="Seconds an idle kept-alive connection stays open.",
)
@click.option(
    "--header-timeout",
    type=click.FloatRange(min=0.1),
    default=HEAD_TIMEOUT,
    show_default=True,
    help="Seconds a client has to send a whole request head (408 and close after).",
)
@click.option(
    "--forwarded-allow-ips",
    default=None,
    help="Proxy addresses trusted for X-Forwarded-For/-Proto, comma-separated, or '*' "
    "[default: $FORWARDED_ALLOW_IPS, else 127.0.0.1,::1].",
)
@click.option(
    "--access-log/--no-access-log",
    default=None,
    help="Log every request (client, request line, status) on stderr "
    "[default: [server] access_log, else off].",
)
def serve(
    host: str,
    port: int,
    scheduler: bool,
    worker: bool,
    limit_concurrency: int,
    backlog: int,
    timeout_keep_alive: int,
    header_timeout: float,
    forwarded_allow_ips: str | None,
    access_log: bool | None,
) -> None:
    """Run the HTTP service (migrates the database first), with the digest scheduler.

    Links (pages, feeds, OPML, emails) start with [site] base_url; left at its default,
    they use the address served here (--host, --port) instead."""
    import uvicorn

    from newsletter.web import create_app
    from newsletter.web.access_log import log_config
    from newsletter.web.limits import server_protocol
    from newsletter.web.origin import HostCheck, serving_base_url, with_base_url

    cfg = settings()
    logged = cfg.server.access_log if access_log is None else access_log
    config = uvicorn.Config(
        _not_yet_built,
        host=host,
        port=port,
        log_level="info",
        log_config=log_config(logged),
        access_log=logged,
        # no Server header: it costs time on every feed request and tells nobody anything
        server_header=False,
        # bounded request heads, read in bounded time (newsletter.web.limits; issue #9)
        http=server_protocol(header_timeout, MAX_HEAD_BYTES),
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,  # the same bound if h11 is used
        limit_concurrency=limit_concurrency,
        backlog=backlog,
        timeout_keep_alive=timeout_keep_alive,
        forwarded_allow_ips=forwarded_allow_ips,
    )
    # --port 0 lets the system choose: bound first, so that links can name the port;
    # otherwise the app (and the database it migrates) comes first, as a wrong setting
    # should stop the command before it takes a port
    sock = config.bind_socket() if port == 0 else None
    if sock is not None:
        port = int(sock.getsockname()[1])
    base = serving_base_url(cfg, host, port)
    try:
        app = create_app(with_base_url(cfg, base.url), run_scheduler=scheduler, run_worker=worker)
    except BaseException:
        if sock is not None:
            sock.close()
        raise
    config.app = HostCheck(app, base.url)
    sock = sock or config.bind_socket()
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"serving on http://{shown}:{port}; {base.describe()}", err=True)
    server = uvicorn.Server(config)
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[sock])
    if not server.started:
        sys.exit(EXIT_FAILED)


async def _not_yet_built(scope: Scope, receive: Receive, send: Send) -> None:
    """Stands in for the app until the socket is bound (uvicorn wants one up front)."""
    raise RuntimeError("the application was not built")


@command(main, "scheduler")
@worker_option
def scheduler_command(worker: bool) -> None:
    """Run the digest scheduler and sender alone (no HTTP), until stopped."""
    from newsletter.scheduler import DigestScheduler

    built = services()
    cfg = built.settings

    async def run() -> None:
        scheduler = DigestScheduler(
            built.digests,
            cfg.digests.sync_seconds,
            built.digests.clock,
            bounces=built.bounces,
            send=worker,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await scheduler.start()
        signups = asyncio.create_task(built.subscribers.signups.run())
        click.echo("scheduler running (Ctrl-C stops it)", err=True)
        try:
            await stop.wait()
        finally:
            signups.cancel()
            await scheduler.stop()
            await built.aclose()

    run_loop(run())


@command(main, "worker")
@click.option(
    "--exit-when-idle",
    is_flag=True,
    help="Stop when no run is left to send (batch jobs, benchmarks) instead of waiting.",
)
def worker_command(exit_when_idle: bool) -> None:
    """Send digest runs alone: as many workers as you like, on any machines, share the
    runs on PostgreSQL; on SQLite one sends at a time and the others wait."""
    built = services()
    cfg = built.settings

    async def run() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        task = asyncio.create_task(work(built.digests, stop, exit_when_idle))
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait([task, stopping], return_when=asyncio.FIRST_COMPLETED)
            if not task.done():
                task.cancel()  # give claimed rows back now, not when their lease runs out
            with contextlib.suppress(asyncio.CancelledError):
                return await task
            return 0
        finally:
            stopping.cancel()
            await built.aclose()

    where = "SQLite (one worker sends at a time)" if is_sqlite(cfg) else "PostgreSQL"
    click.echo(f"worker {built.digests.sender.worker} on {where}", err=True)
    worked = run_loop(run())
    click.echo(f"worker stopped after {worked} runs", err=True)
