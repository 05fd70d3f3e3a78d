"""The `newsletter` command. Each command parses its input, calls one service function and
prints the result; NewsletterError becomes a message on stderr and a non-zero exit code."""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
import sqlalchemy as sa

from newsletter import (
    articles,
    config,
    database,
    demo,
    export,
    importer,
    subscriber_csv,
    subscribers,
)
from newsletter.errors import ConfigError, NewsletterError, SourceError
from newsletter.mailer import make_mailer
from newsletter.models import ArticleStatus, SubscriberStatus
from newsletter.resources import template_environment
from newsletter.subscribers import Subscribers

F = TypeVar("F", bound=Callable[..., Any])

EXIT_FAILED = 1  # the command ran but some of its work failed (bad records)
EXIT_CONFIG = 2  # wrong configuration or usage: nothing was done


def _remember_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.ensure_object(dict)["config"] = value


config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    expose_value=False,
    callback=_remember_config,
    is_eager=True,
    help="Configuration file (default ./config.toml).",
)


def command(group: click.Group, name: str | None = None) -> Callable[[F], F]:
    """A subcommand that accepts --config and reports NewsletterError cleanly."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except ConfigError as exc:
                click.echo(f"error: {exc}", err=True)
                sys.exit(EXIT_CONFIG)
            except NewsletterError as exc:
                click.echo(f"error: {exc}", err=True)
                sys.exit(EXIT_FAILED)

        return group.command(name)(config_option(run))  # type: ignore[return-value]

    return wrap


def settings() -> config.Settings:
    ctx = click.get_current_context()
    path = (ctx.find_root().obj or {}).get("config")
    return config.load(path)


def engine(migrate: bool = True) -> sa.Engine:
    """The command's database engine (migrated to head unless `migrate` is False), closed
    when the command ends so no connection outlives it."""
    ctx = click.get_current_context()
    url = settings().database_url
    eng = database.open_database(url) if migrate else database.create_engine(url)
    ctx.call_on_close(eng.dispose)
    return eng


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@config_option
@click.pass_context
def main(ctx: click.Context) -> None:
    """Feeds and email digests for a news publication."""
    ctx.ensure_object(dict)


# ----------------------------------------------------------------------------- set-up


@command(main)
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".")
def init(directory: Path) -> None:
    """Write a fresh config.toml (with a random secret) into DIRECTORY and create the database."""
    path = config.write_fresh_config(directory)
    cfg = config.load(path)
    database.open_database(cfg.database_url).dispose()
    click.echo(f"wrote {path}; database ready at {cfg.database_url}")


@click.group()
def db() -> None:
    """Database schema."""


main.add_command(db)


@command(db, "upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Migrate the schema up to REVISION (default: the newest)."""
    eng = engine(migrate=False)
    database.upgrade(eng, revision)
    click.echo(f"database at revision {database.current_revision(eng)}")


@command(db, "downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Migrate the schema down to REVISION ('base' removes every table)."""
    eng = engine(migrate=False)
    database.downgrade(eng, revision)
    click.echo(f"database at revision {database.current_revision(eng)}")


@command(db, "current")
def db_current() -> None:
    """Print the schema revision of the database and the newest one known."""
    eng = engine(migrate=False)
    click.echo(f"current: {database.current_revision(eng)}  head: {database.head_revision()}")


# ----------------------------------------------------------------------------- articles


@click.group(name="articles")
def articles_group() -> None:
    """Import and manage articles."""


main.add_command(articles_group)


@command(articles_group, "import")
@click.argument("locations", nargs=-1, required=True)
def articles_import(locations: tuple[str, ...]) -> None:
    """Import articles from JSON, JSON Lines, Markdown files or folders, or RSS/Atom feeds
    (files or http URLs). Re-importing is safe: unchanged records change nothing."""
    cfg = settings()
    eng = engine()
    ctx = importer.ImportContext(
        base_url=cfg.base_url, timezone=cfg.site.tz, max_body_bytes=cfg.articles.max_body_bytes
    )
    total = articles.ImportReport()
    unreadable = 0
    for location in locations:
        try:
            sources = importer.open_source(location)
        except SourceError as exc:
            click.echo(f"error: {exc}", err=True)
            unreadable += 1
            continue
        for source in sources:
            try:
                report = _import_source(eng, source, ctx, cfg.base_url)
            except SourceError as exc:
                click.echo(f"error: {exc}", err=True)
                unreadable += 1
                continue
            for error in report.errors:
                click.echo(f"error: {error}", err=True)
            click.echo(f"{source.name}: {report.summary()}")
            for name in ("created", "updated", "unchanged"):
                setattr(total, name, getattr(total, name) + getattr(report, name))
            total.errors += report.errors
    if len(locations) > 1 or unreadable:
        click.echo(f"total: {total.summary()}, {unreadable} unreadable sources")
    if total.failed or unreadable:
        sys.exit(EXIT_FAILED)


def _import_source(
    eng: sa.Engine, source: importer.Source, ctx: importer.ImportContext, base_url: str
) -> articles.ImportReport:
    now = datetime.now(UTC)
    records = importer.read(source, ctx)
    count = source.count()
    if not sys.stdout.isatty() or count < 200:
        return articles.import_articles(eng, records, base_url=base_url, now=now)
    with click.progressbar(length=count, label=source.name, show_pos=True) as bar:
        return articles.import_articles(
            eng, records, base_url=base_url, now=now, progress=bar.update
        )


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
    view = articles.publish(engine(), slug, datetime.now(UTC))
    click.echo(f"published {view.slug}")


@command(articles_group, "unpublish")
@click.argument("slug")
def articles_unpublish(slug: str) -> None:
    """Make the article SLUG a draft again (it leaves the site and the feeds)."""
    view = articles.unpublish(engine(), slug, datetime.now(UTC))
    click.echo(f"unpublished {view.slug}")


@command(articles_group, "delete")
@click.argument("slug")
def articles_delete(slug: str) -> None:
    """Delete the article SLUG for good."""
    articles.delete(engine(), slug, datetime.now(UTC))
    click.echo(f"deleted {slug}")


# ----------------------------------------------------------------------------- feeds


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
    report = export.build(engine(), cfg, outdir, datetime.now(UTC))
    click.echo(f"{outdir}: {report.written} written, {report.unchanged} unchanged")


# ----------------------------------------------------------------------------- subscribers


@click.group(name="subscribers")
def subscribers_group() -> None:
    """Manage subscribers."""


main.add_command(subscribers_group)


@command(subscribers_group, "add")
@click.argument("email")
@click.option("--name", default="")
@click.option("--digest", "digests", multiple=True, help="Digest slug (repeatable).")
@click.option("--tag", "tags", multiple=True, help="Only these tag slugs (repeatable).")
@click.option(
    "--confirm", is_flag=True, help="Send a confirmation email instead of adding as active."
)
def subscribers_add(
    email: str, name: str, digests: tuple[str, ...], tags: tuple[str, ...], confirm: bool
) -> None:
    """Add a subscriber: active at once, or pending with --confirm (double opt-in)."""
    eng = engine()
    if confirm:
        cfg = settings()
        service = Subscribers(eng, cfg, make_mailer(cfg), template_environment(cfg))

        async def run() -> None:
            try:
                await service.subscribe(email, name, digests, tags)
            finally:
                await service.mailer.close()

        asyncio.run(run())
        click.echo(f"confirmation sent to {subscribers.normalize_email(email)} (unless suppressed)")
        return
    added = subscribers.add(eng, email, name, digests, tags)
    click.echo(f"{added.email}: {added.status}")


@command(subscribers_group, "import")
@click.argument("path", type=click.Path(dir_okay=False, exists=True, path_type=Path))
def subscribers_import(path: Path) -> None:
    """Import subscribers from CSV (columns: email, name, status, digests, tags, created_at;
    only email required; lists separated by ';'). Suppressed addresses are skipped."""
    with path.open(newline="", encoding="utf-8-sig") as stream:
        report = subscriber_csv.import_csv(engine(), stream, datetime.now(UTC))
    for error in report.errors:
        click.echo(f"error: {path}:{error.line}: {error.reason}", err=True)
    click.echo(f"{path}: {report.summary()}")
    if report.errors:
        sys.exit(EXIT_FAILED)


@command(subscribers_group, "export")
@click.argument("path", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--status", type=click.Choice([s.value for s in SubscriberStatus]), default=None)
def subscribers_export(path: str, status: str | None) -> None:
    """Write subscribers as CSV to PATH ('-' for standard output)."""
    if path == "-":
        subscriber_csv.export_csv(engine(), sys.stdout, status)
        return
    with open(path, "w", newline="", encoding="utf-8") as stream:
        count = subscriber_csv.export_csv(engine(), stream, status)
    click.echo(f"{path}: {count} subscribers", err=True)


@command(subscribers_group, "list")
@click.option("--status", type=click.Choice([s.value for s in SubscriberStatus]), default=None)
def subscribers_list(status: str | None) -> None:
    """List subscribers with their status and digests."""
    count = 0
    for email, name, state, digests, tags, created in subscriber_csv.rows(engine(), status):
        extra = f"  tags: {tags}" if tags else ""
        click.echo(f"{state:<12} {email}  {name}  [{digests}]{extra}  since {created[:10]}")
        count += 1
    if not count:
        click.echo("no subscribers")


@command(subscribers_group, "remove")
@click.argument("email")
def subscribers_remove(email: str) -> None:
    """Delete a subscriber and their choices (a suppression of the address stays)."""
    subscribers.remove(engine(), email)
    click.echo(f"removed {email}")


@command(subscribers_group, "suppress")
@click.argument("email")
@click.option(
    "--reason",
    type=click.Choice(["unsubscribed", "bounced", "complained"]),
    default="unsubscribed",
    show_default=True,
)
def subscribers_suppress(email: str, reason: str) -> None:
    """Never mail EMAIL again, whatever a sign-up or an import says."""
    subscribers.suppress(engine(), email, reason)
    click.echo(f"suppressed {subscribers.normalize_email(email)} ({reason})")


# ----------------------------------------------------------------------------- demo, serve


@command(main, "demo")
def demo_command() -> None:
    """Load the demo publication (idempotent: articles already there are left alone)."""
    cfg = settings()
    report = demo.load(engine(), cfg, datetime.now(UTC))
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
