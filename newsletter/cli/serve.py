"""`newsletter serve` (the HTTP service with the scheduler), `newsletter scheduler` (the
scheduler alone) and `newsletter demo`."""

from __future__ import annotations

import asyncio
import signal

import click

from newsletter import demo
from newsletter.cli.common import command, engine, main, now, services, settings


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
def serve(host: str, port: int, scheduler: bool) -> None:
    """Run the HTTP service (migrates the database first), with the digest scheduler."""
    import uvicorn

    from newsletter.web import create_app

    app = create_app(settings(), run_scheduler=scheduler)
    click.echo(f"serving on http://{host}:{port}", err=True)
    # no access log and no Server header: both cost time on every feed request
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False, server_header=False)


@command(main, "scheduler")
def scheduler_command() -> None:
    """Run the digest scheduler and sender alone (no HTTP), until stopped."""
    from newsletter.scheduler import DigestScheduler

    built = services()
    cfg = built.settings

    async def run() -> None:
        scheduler = DigestScheduler(built.digests, cfg.digests.sync_seconds, built.digests.clock)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await scheduler.start()
        click.echo("scheduler running (Ctrl-C stops it)", err=True)
        try:
            await stop.wait()
        finally:
            await scheduler.stop()
            await built.aclose()

    asyncio.run(run())
