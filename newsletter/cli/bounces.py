"""`newsletter bounces`: read the bounce mailbox now, list recorded bounces."""

from __future__ import annotations

import click

from newsletter.bounces import Polled
from newsletter.cli.common import command, main, now, services


@click.group(name="bounces")
def bounces_group() -> None:
    """Bounces and complaints that came back after sending."""


main.add_command(bounces_group)


@command(bounces_group, "poll")
@click.option("--limit", type=click.IntRange(1), default=500, show_default=True)
def bounces_poll(limit: int) -> None:
    """Read the [bounces] mailbox once: record its reports, suppress the addresses they
    condemn, delete the messages read."""
    polled = services().bounces.poll(now(), limit)
    click.echo(_summary(polled))
    for email, reason in polled.suppressed:
        click.echo(f"suppressed {email} ({reason})")


def _summary(polled: Polled) -> str:
    parts = [f"{polled.recorded} recorded"]
    for count, what in (
        (polled.duplicates, "already recorded"),
        (polled.unmatched, "about nobody we know"),
        (polled.forged, "with a forged VERP address"),
    ):
        if count:
            parts.append(f"{count} {what}")
    messages = f"{polled.messages} message{'s' if polled.messages != 1 else ''}"
    others = f", {polled.not_reports} without a report" if polled.not_reports else ""
    return f"{polled.source}: {messages} read and deleted{others}; reports: " + ", ".join(parts)


@command(bounces_group, "list")
@click.option("--email", default=None, help="Only this address's reports.")
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True)
def bounces_list(email: str | None, limit: int) -> None:
    """Recorded bounces and complaints, newest first."""
    found = services().bounces.recent(limit, email)
    for bounce in found:
        delivery = f"delivery {bounce.delivery_id}" if bounce.delivery_id else "no delivery"
        diagnostic = f"  {bounce.diagnostic[:120]}" if bounce.diagnostic else ""
        click.echo(
            f"{bounce.received_at:%Y-%m-%d %H:%M} UTC  {bounce.kind:<9} {bounce.status or '-':<7} "
            f"{bounce.email}  {bounce.source}  {delivery}{diagnostic}"
        )
    if not found:
        click.echo("no bounces")
