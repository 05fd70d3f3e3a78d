"""`newsletter subscribers`: add, import, export, list, remove, suppress."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import click

from newsletter import subscribers
from newsletter.cli.common import EXIT_FAILED, command, engine, main, now, services, settings
from newsletter.models import SubscriberStatus


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
    built = services()
    if confirm:

        async def run() -> None:
            try:
                await built.subscribers.subscribe(email, name, digests, tags)
                await built.subscribers.signups.drain()
            finally:
                await built.aclose()

        asyncio.run(run())
        click.echo(
            f"confirmation queued for {subscribers.normalize_email(email)} (unless suppressed)"
        )
        return
    added = subscribers.add(built.engine, email, settings().site.tz, name, digests, tags)
    click.echo(f"{added.email}: {added.status}")


@command(subscribers_group, "import")
@click.argument("path", type=click.Path(dir_okay=False, exists=True, path_type=Path))
def subscribers_import(path: Path) -> None:
    """Import subscribers from CSV (columns: email, name, status, digests, tags, created_at;
    only email required; lists separated by ';'). Suppressed addresses are skipped."""
    with path.open(newline="", encoding="utf-8-sig") as stream:
        report = subscribers.import_csv(engine(), stream, now(), settings().site.tz)
    for error in report.errors:
        click.echo(f"error: {path}:{error.line}: {error}", err=True)
    click.echo(f"{path}: {report.summary()}")
    if report.errors:
        sys.exit(EXIT_FAILED)


@command(subscribers_group, "export")
@click.argument("path", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--status", type=click.Choice([s.value for s in SubscriberStatus]), default=None)
def subscribers_export(path: str, status: str | None) -> None:
    """Write subscribers as CSV to PATH ('-' for standard output)."""
    if path == "-":
        subscribers.export_csv(engine(), sys.stdout, status)
        return
    # addresses and names are personal data: readable by the owner alone
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", newline="", encoding="utf-8") as stream:
        count = subscribers.export_csv(engine(), stream, status)
    click.echo(f"{path}: {count} subscribers", err=True)


@command(subscribers_group, "list")
@click.option("--status", type=click.Choice([s.value for s in SubscriberStatus]), default=None)
def subscribers_list(status: str | None) -> None:
    """List subscribers with their status and digests."""
    count = 0
    for email, name, state, digests, tags, created in subscribers.export_rows(engine(), status):
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


@command(subscribers_group, "unsuppress")
@click.argument("email")
def subscribers_unsuppress(email: str) -> None:
    """Lift a suppression of EMAIL (sign-ups never do). The address may then sign up and
    confirm again, or be added with `subscribers add` on your word."""
    subscribers.unsuppress(engine(), email)
    click.echo(f"{subscribers.normalize_email(email)} is no longer suppressed")
