"""`newsletter articles`: import, list, publish, unpublish, delete."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from newsletter import articles
from newsletter.cli.common import EXIT_FAILED, command, engine, main, now, settings
from newsletter.models import ArticleStatus


@click.group(name="articles")
def articles_group() -> None:
    """Import and manage articles."""


main.add_command(articles_group)


@command(articles_group, "import")
@click.argument("locations", nargs=-1, required=True)
@click.option(
    "--allow-private-hosts",
    is_flag=True,
    help="Let URLs (and their redirects) reach private, loopback and link-local addresses.",
)
@click.option(
    "--update-any",
    is_flag=True,
    help="Let a feed fetched from a URL update articles that another source brought in.",
)
def articles_import(
    locations: tuple[str, ...], allow_private_hosts: bool, update_any: bool
) -> None:
    """Import articles from JSON, JSON Lines, Markdown files or folders, or RSS/Atom feeds
    (files or http URLs). Re-importing is safe: unchanged records change nothing. A feed
    fetched from a URL updates only the articles it brought in itself."""
    cfg = settings()
    ctx = articles.ImportContext.from_settings(cfg)
    total = articles.ImportReport()
    unreadable = 0
    bars: list[Any] = []

    def progress(source: articles.Source) -> Callable[[int], None] | None:
        count = source.count()
        if not sys.stdout.isatty() or count < 200:
            return None
        bar = click.progressbar(length=count, label=source.name, show_pos=True)
        bars.append(bar.__enter__())
        return bar.update

    for outcome in articles.import_locations(
        engine(),
        ctx,
        locations,
        now(),
        progress,
        allow_private=allow_private_hosts,
        allow_takeover=update_any,
    ):
        for bar in bars:
            bar.__exit__(None, None, None)
        bars.clear()
        if outcome.error is not None:
            click.echo(f"error: {outcome.error}", err=True)
            unreadable += 1
            continue
        assert outcome.report is not None
        for error in outcome.report.errors:
            click.echo(f"error: {error}", err=True)
        click.echo(f"{outcome.name}: {outcome.report.summary()}")
        total.add(outcome.report)
    if len(locations) > 1 or unreadable:
        click.echo(f"total: {total.summary()}, {unreadable} unreadable sources")
    if total.failed or unreadable:
        sys.exit(EXIT_FAILED)


@command(articles_group, "list")
@click.option("--status", type=click.Choice([s.value for s in ArticleStatus]), default=None)
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True)
def articles_list(status: str | None, limit: int) -> None:
    """List articles, newest first."""
    rows = articles.list_articles(engine(), ArticleStatus(status) if status else None, limit)
    for a in rows:
        when = a.published_at.strftime("%Y-%m-%d %H:%M") if a.published_at else "-"
        author = a.author.name if a.author else "-"
        click.echo(f"{a.status:<9} {when:<16}  {a.slug}  {a.title}  ({author})")
    if not rows:
        click.echo("no articles")


@command(articles_group, "publish")
@click.argument("slug")
def articles_publish(slug: str) -> None:
    """Publish the article SLUG."""
    view = articles.publish(engine(), slug, now())
    click.echo(f"published {view.slug}")


@command(articles_group, "unpublish")
@click.argument("slug")
def articles_unpublish(slug: str) -> None:
    """Make the article SLUG a draft again (it leaves the site and the feeds)."""
    view = articles.unpublish(engine(), slug, now())
    click.echo(f"unpublished {view.slug}")


@command(articles_group, "delete")
@click.argument("slug")
def articles_delete(slug: str) -> None:
    """Delete the article SLUG for good."""
    articles.delete(engine(), slug, now())
    click.echo(f"deleted {slug}")
