"""`newsletter digests` (define, preview, test, send) and `newsletter runs` (watch, pause,
resume, cancel)."""

from __future__ import annotations

import asyncio
import sys
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import click

from newsletter.cli.common import EXIT_FAILED, command, main, run_loop, services
from newsletter.delivery.sender import Progress
from newsletter.digests import schedule
from newsletter.digests.definitions import DigestInput
from newsletter.digests.service import DigestView, RunView
from newsletter.errors import InvalidInputError
from newsletter.models import ACTIVE_RUNS

F = TypeVar("F", bound=Callable[..., Any])


@click.group(name="digests")
def digests_group() -> None:
    """Define, preview, test and send digests."""


@click.group(name="runs")
def runs_group() -> None:
    """Watch and steer digest runs."""


main.add_command(digests_group)
main.add_command(runs_group)


def definition_options(fn: F) -> F:
    """The options `create` and `edit` share; a left-out option keeps what is there."""
    options = [
        click.option("--name", help="The digest's name, as readers see it."),
        click.option("--description"),
        click.option("--tags", help="Comma-separated tag slugs to draw from ('' for all)."),
        click.option("--max-items", type=int, help="Most posts in an issue (1-100)."),
        click.option("--cron", help="Schedule as a cron expression: 'min hour day month weekday'."),
        click.option("--daily", metavar="HH:MM", help="Every day at HH:MM."),
        click.option("--weekly", nargs=2, metavar="DAY HH:MM", help="Every week on DAY at HH:MM."),
        click.option(
            "--monthly", nargs=2, metavar="N HH:MM", help="Every month on day N at HH:MM."
        ),
        click.option("--timezone", help="IANA time zone of the schedule (default: the site's)."),
        click.option(
            "--subject", help="Subject template, e.g. '{{ digest.name }}: {{ issue.date }}'."
        ),
        click.option("--template", help="Email template name (templates/email/NAME.html|txt)."),
        click.option(
            "--skip-if-empty/--send-if-empty", default=None, help="Skip an issue with no posts."
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _input(kwargs: dict[str, Any]) -> DigestInput:
    given = [k for k in ("cron", "daily", "weekly", "monthly") if kwargs.get(k)]
    if len(given) > 1:
        raise InvalidInputError("schedule", "give one of --cron, --daily, --weekly, --monthly")
    cron = kwargs.get("cron")
    if kwargs.get("daily"):
        cron = schedule.daily(kwargs["daily"])
    elif kwargs.get("weekly"):
        cron = schedule.weekly(*kwargs["weekly"])
    elif kwargs.get("monthly"):
        day, at = kwargs["monthly"]
        if not str(day).isdigit():
            raise InvalidInputError("monthly", f"{day!r} is not a day of the month", day)
        cron = schedule.monthly(int(day), at)
    tags = kwargs.get("tags")
    return DigestInput(
        name=kwargs.get("name"),
        description=kwargs.get("description"),
        tags=None if tags is None else tuple(t.strip() for t in tags.split(",") if t.strip()),
        max_items=kwargs.get("max_items"),
        cron=cron,
        timezone=kwargs.get("timezone"),
        subject=kwargs.get("subject"),
        template=kwargs.get("template"),
        skip_if_empty=kwargs.get("skip_if_empty"),
    )


def _when(moment: datetime | None, zone: str) -> str:
    if moment is None:
        return "-"
    return f"{moment.astimezone(ZoneInfo(zone)):%Y-%m-%d %H:%M %Z}"


def _show(view: DigestView) -> None:
    tags = ", ".join(view.tags) or "every tag"
    state = "paused" if view.paused else f"next {_when(view.next_run, view.timezone)}"
    click.echo(
        f"{view.slug}  {view.name}  [{view.cron} {view.timezone}]  {state}  "
        f"max {view.max_items} · {tags} · template {view.template}"
        + ("" if view.skip_if_empty else " · sends when empty")
    )


@command(digests_group, "create")
@click.argument("slug")
@definition_options
def digests_create(slug: str, **kwargs: Any) -> None:
    """Define a new digest SLUG (--name and a schedule; the default is daily at 07:00)."""
    _show(services().digests.create(slug, _input(kwargs)))


@command(digests_group, "edit")
@click.argument("slug")
@definition_options
def digests_edit(slug: str, **kwargs: Any) -> None:
    """Change a digest: options left out keep their value."""
    _show(services().digests.edit(slug, _input(kwargs)))


@command(digests_group, "list")
def digests_list() -> None:
    """Every digest with its schedule and next run in its own time zone."""
    views = services().digests.all()
    for view in views:
        _show(view)
    if not views:
        click.echo("no digests")


@command(digests_group, "pause")
@click.argument("slug")
def digests_pause(slug: str) -> None:
    """Stop scheduling SLUG (runs under way go on; `runs pause` stops one)."""
    _show(services().digests.pause(slug))


@command(digests_group, "resume")
@click.argument("slug")
def digests_resume(slug: str) -> None:
    """Schedule SLUG again from now on (firings while paused are not sent)."""
    _show(services().digests.resume(slug))


@command(digests_group, "delete")
@click.argument("slug")
def digests_delete(slug: str) -> None:
    """Delete SLUG with its runs and its readers' subscriptions to it."""
    services().digests.delete(slug)
    click.echo(f"deleted {slug}")


@command(digests_group, "preview")
@click.argument("slug")
@click.option("--format", "fmt", type=click.Choice(["html", "text"]), default="html")
@click.option("--subscriber", help="Show this subscriber's narrowed view.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path))
def digests_preview(slug: str, fmt: str, subscriber: str | None, output: Path | None) -> None:
    """The next issue as it would go out now, with real articles."""
    body = services().digests.preview(slug, fmt, subscriber)
    if output is None:
        click.echo(body)
    else:
        output.write_text(body, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)


@command(digests_group, "test")
@click.argument("slug")
@click.option("--to", "to", required=True, help="Address to send the test to.")
def digests_test(slug: str, to: str) -> None:
    """Send the next issue to one address, marked as a test."""
    built = services()

    async def run() -> str:
        try:
            return await built.digests.send_test(slug, to)
        finally:
            await built.aclose()

    click.echo(f"test sent to {to}: {asyncio.run(run())}")


@command(digests_group, "send")
@click.argument("slug")
@click.option(
    "--background",
    is_flag=True,
    help="Create the run and its ledger, then leave the sending to `newsletter worker` "
    "(or serve's sender) instead of sending in the foreground.",
)
def digests_send(slug: str, background: bool) -> None:
    """Send an issue now, in the foreground (exit 1 if any recipient failed)."""
    built = services()
    started = time.perf_counter()
    run = built.digests.send_now(slug)
    took = time.perf_counter() - started
    click.echo(f"run {run.id}: {run.status}, {run.posts} posts, {run.recipients} recipients")
    click.echo(f"ledger: {run.recipients} rows in {took:.2f} s")
    if run.status == "skipped":
        click.echo(f"skipped: {run.reason}")
        return
    if background:
        click.echo(f"run {run.id} is left to the workers: follow it with `runs show {run.id} -f`")
        return
    progress = _deliver(run.id, run.recipients)
    final = built.digests.run(run.id)
    _show_run(final)
    if final.counts.get("failed", 0) or progress.failed:
        sys.exit(EXIT_FAILED)


def _deliver(run_id: int, total: int) -> Progress:
    built = services()

    async def run(update: Callable[[Progress], None] | None) -> Progress:
        try:
            return await built.digests.deliver(run_id, update)
        finally:
            await built.aclose()

    if not sys.stdout.isatty():
        return run_loop(run(None))
    with click.progressbar(length=total, label=f"run {run_id}", show_pos=True) as bar:
        done = [0]

        def update(progress: Progress) -> None:
            count = progress.sent + progress.failed + progress.skipped + progress.suppressed
            bar.update(count - done[0])
            done[0] = count

        return run_loop(run(update))


def _show_run(run: RunView) -> None:
    counts = run.counts
    click.echo(
        f"run {run.id}  {run.digest}  {run.scheduled_for:%Y-%m-%d %H:%M} UTC  {run.kind}  "
        f"{run.status}  posts {run.posts}  recipients {run.recipients}  "
        + "  ".join(
            f"{k} {counts.get(k, 0)}"
            for k in ("sent", "deferred", "failed", "skipped", "suppressed", "queued", "sending")
        )
        + (f"  ({run.reason})" if run.reason else "")
    )


@command(runs_group, "list")
@click.option("--digest", "slug", help="Only this digest's runs.")
@click.option("--limit", type=click.IntRange(1), default=20, show_default=True)
def runs_list(slug: str | None, limit: int) -> None:
    """Recent runs, newest first, with their counts."""
    found = services().digests.runs(slug, limit)
    for run in found:
        _show_run(run)
    if not found:
        click.echo("no runs")


FOLLOW_SECONDS = 1.0  # between two lines of `runs show --follow`
_sleep = time.sleep  # tests interrupt here, as Ctrl-C would
_OUTCOMES = ("sent", "deferred", "failed", "skipped", "suppressed")
_WAITING = ("queued", "deferred", "sending")


def _follow(read: Callable[[], RunView], run: RunView) -> RunView:
    """Print a line of progress every FOLLOW_SECONDS while the run composes or sends;
    return the run as last read. Ctrl-C stops following and leaves the run alone."""
    seen: deque[tuple[float, int]] = deque()  # (monotonic time, sent) over the last minute
    try:
        while True:
            now = time.monotonic()
            sent = run.counts.get("sent", 0)
            seen.append((now, sent))
            while now - seen[0][0] > 60:
                seen.popleft()
            first_at, first_sent = seen[0]
            rate = (
                f"{(sent - first_sent) * 60 / (now - first_at):.0f}/min" if now > first_at else "-"
            )
            click.echo(
                f"{datetime.now():%H:%M:%S}  {run.status}  "
                + "  ".join(f"{k} {run.counts.get(k, 0)}" for k in _OUTCOMES)
                + f"  rate {rate}  waiting {sum(run.counts.get(k, 0) for k in _WAITING)}"
            )
            if run.status not in ACTIVE_RUNS:
                return run
            _sleep(FOLLOW_SECONDS)
            run = read()
    except KeyboardInterrupt:
        click.echo(f"stopped following run {run.id}; the run itself goes on")
        return read()


@command(runs_group, "show")
@click.argument("run_id", type=int)
@click.option(
    "--follow",
    "-f",
    is_flag=True,
    help="Print progress every second while the run composes or sends, then the summary "
    "(Ctrl-C stops following; the run goes on).",
)
def runs_show(run_id: int, follow: bool) -> None:
    """One run: its window, subject and counts."""
    digests = services().digests
    run = digests.run(run_id)
    if follow:
        run = _follow(lambda: digests.run(run_id), run)
    _show_run(run)
    click.echo(f"subject: {run.subject}")
    start = f"{run.window_start:%Y-%m-%d %H:%M}" if run.window_start else "-"
    end = f"{run.window_end:%Y-%m-%d %H:%M}" if run.window_end else "-"
    click.echo(f"window: {start} to {end} UTC")


@command(runs_group, "pause")
@click.argument("run_id", type=int)
def runs_pause(run_id: int) -> None:
    """Stop sending a run; `runs resume` takes it up where it stopped."""
    _show_run(services().digests.pause_run(run_id))


@command(runs_group, "resume")
@click.argument("run_id", type=int)
def runs_resume(run_id: int) -> None:
    """Take a paused run up again (a running scheduler sends it within seconds)."""
    _show_run(services().digests.resume_run(run_id))


@command(runs_group, "cancel")
@click.argument("run_id", type=int)
def runs_cancel(run_id: int) -> None:
    """Stop a run for good: nobody not yet mailed is mailed."""
    _show_run(services().digests.cancel_run(run_id))
