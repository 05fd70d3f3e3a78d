"""`newsletter feeds build`: every feed as files, for nginx or a CDN."""

from __future__ import annotations

from pathlib import Path

import click

from newsletter.cli.common import command, engine, main, now, settings
from newsletter.feeds import export


@click.group(name="feeds")
def feeds_group() -> None:
    """Feeds as files."""


main.add_command(feeds_group)


@command(feeds_group, "build")
@click.argument("outdir", type=click.Path(file_okay=False, path_type=Path))
def feeds_build(outdir: Path) -> None:
    """Write every feed (site, tags, authors; RSS, Atom, JSON) and feeds.opml under OUTDIR,
    at the same paths the service uses. Unchanged files are not rewritten."""
    cfg = settings()
    report = export.build(engine(), cfg, outdir, now())
    click.echo(f"{outdir}: {report.written} written, {report.unchanged} unchanged")
