"""`newsletter feeds build`: every feed as files, for nginx or a CDN."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from newsletter.cli.common import EXIT_CONFIG, EXIT_FAILED, command, engine, main, now, settings
from newsletter.feeds import export


@click.group(name="feeds")
def feeds_group() -> None:
    """Feeds as files."""


main.add_command(feeds_group)


@command(feeds_group, "build")
@click.argument("outdir", type=click.Path(file_okay=False, path_type=Path))
def feeds_build(outdir: Path) -> None:
    """Write every feed (site, tags, authors; RSS, Atom, JSON) and feeds.opml under OUTDIR,
    at the same paths the service uses (decoded, as nginx looks for them). Unchanged files
    are not rewritten.

    Exits 2 without writing anything when OUTDIR cannot be created or written to; a file
    that cannot be written is reported and the others are still written, then it exits 1."""
    cfg = settings()
    try:
        export.check_outdir(outdir)  # before the database is opened and anything rendered
        report = export.build(engine(), cfg, outdir, now())
    except export.OutputFolderError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_CONFIG)
    for notice in report.notices:
        click.echo(f"note: {notice}", err=True)
    for error in report.errors:
        click.echo(f"error: {outdir / error.path}: {error.reason}", err=True)
    click.echo(
        f"{outdir}: {report.written} written, {report.unchanged} unchanged, {report.failed} failed"
    )
    if report.errors:
        sys.exit(EXIT_FAILED)
