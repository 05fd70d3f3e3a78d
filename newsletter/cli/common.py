"""What every command shares: the root group, --config, the services it works with, and
turning NewsletterError into a message on stderr and an exit code."""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, TypeVar

import click
import sqlalchemy as sa

from newsletter import config
from newsletter import services as composition
from newsletter.errors import ConfigError, NewsletterError
from newsletter.services import Services

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


def services(migrate: bool = True) -> Services:
    """The command's services, built once per command (the database migrated to the newest
    schema unless `migrate` is False); the engine is closed when the command ends so no
    connection outlives it."""
    ctx = click.get_current_context()
    root = ctx.find_root().ensure_object(dict)
    if "services" not in root:
        built = composition.build(settings(), migrate=migrate)
        ctx.find_root().call_on_close(built.engine.dispose)
        root["services"] = built
    found: Services = root["services"]
    return found


def engine(migrate: bool = True) -> sa.Engine:
    return services(migrate).engine


def now() -> datetime:
    return datetime.now(UTC)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@config_option
@click.pass_context
def main(ctx: click.Context) -> None:
    """Feeds and email digests for a news publication."""
    ctx.ensure_object(dict)


T = TypeVar("T")


def run_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run `coroutine` on uvloop when it is installed (a faster event loop: SMTP and HTTP
    work is mostly loop overhead), else on asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def is_sqlite(cfg: config.Settings) -> bool:
    return sa.make_url(cfg.database_url).get_backend_name() == "sqlite"
