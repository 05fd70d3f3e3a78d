"""`newsletter serve` (the HTTP service) and `newsletter demo`."""

from __future__ import annotations

import click

from newsletter import demo
from newsletter.cli.common import command, engine, main, now, settings


@command(main, "demo")
def demo_command() -> None:
    """Load the demo publication (idempotent: articles already there are left alone)."""
    cfg = settings()
    report = demo.load(engine(), cfg, now())
    click.echo(f"demo publication: {report.summary()}")


@command(main)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
def serve(host: str, port: int) -> None:
    """Run the HTTP service (migrates the database first)."""
    import uvicorn

    from newsletter.web import create_app

    app = create_app(settings())
    click.echo(f"serving on http://{host}:{port}", err=True)
    # no access log and no Server header: both cost time on every feed request
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False, server_header=False)
