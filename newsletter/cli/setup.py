"""`newsletter init` and `newsletter db`: configuration and schema."""

from __future__ import annotations

from pathlib import Path

import click

from newsletter import config
from newsletter.cli.common import command, engine, main, settings
from newsletter.storage.database import (
    current_revision,
    display_url,
    downgrade,
    downgrade_plan,
    head_revision,
    open_database,
    upgrade,
)


@command(main)
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".")
def init(directory: Path) -> None:
    """Write a fresh config.toml (with a random secret) into DIRECTORY and create the database."""
    path = config.write_fresh_config(directory)
    cfg = config.load(path)
    open_database(cfg.database_url).dispose()
    click.echo(f"wrote {path}; database ready at {display_url(cfg.database_url)}")


@click.group()
def db() -> None:
    """Database schema."""


main.add_command(db)


@command(db, "upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Migrate the schema up to REVISION (default: the newest); an unknown REVISION
    changes nothing and exits 2."""
    eng = engine(migrate=False)
    current_revision(eng)  # a database that cannot be reached is a message, not a traceback
    upgrade(eng, revision)
    click.echo(f"database at revision {current_revision(eng)}")


@command(db, "downgrade")
@click.argument("revision")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (for scripts).")
def db_downgrade(revision: str, yes: bool) -> None:
    """Migrate the schema down to REVISION ('base' removes every table, '-1' undoes the
    newest migration). Each migration undone drops what it added, with its data, so this
    asks first (--yes does not); an unknown REVISION changes nothing and exits 2."""
    eng = engine(migrate=False)
    undone = downgrade_plan(eng, revision)
    current = current_revision(eng)
    if not undone:
        click.echo(f"nothing to undo: database at revision {current}")
        return
    if not yes:
        click.confirm(
            f"Downgrading {display_url(settings().database_url)} from revision {current} to "
            f"{revision} drops the tables and columns added by migration"
            f"{'s' if len(undone) > 1 else ''} {', '.join(undone)}, with their data. Continue?",
            abort=True,  # "no", or no answer (no terminal): exit 1, nothing done
        )
    downgrade(eng, revision)
    click.echo(f"database at revision {current_revision(eng)}")


# a relative REVISION such as -1 is an argument, not an unknown option
db_downgrade.context_settings["ignore_unknown_options"] = True  # type: ignore[attr-defined]


@command(db, "current")
def db_current() -> None:
    """Print the schema revision of the database and the newest one known."""
    eng = engine(migrate=False)
    click.echo(f"current: {current_revision(eng)}  head: {head_revision()}")
