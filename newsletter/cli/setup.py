"""`newsletter init` and `newsletter db`: configuration and schema."""

from __future__ import annotations

from pathlib import Path

import click

from newsletter import config
from newsletter.cli.common import command, engine, main
from newsletter.storage.database import (
    current_revision,
    downgrade,
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
    upgrade(eng, revision)
    click.echo(f"database at revision {current_revision(eng)}")


@command(db, "downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Migrate the schema down to REVISION ('base' removes every table)."""
    eng = engine(migrate=False)
    downgrade(eng, revision)
    click.echo(f"database at revision {current_revision(eng)}")


@command(db, "current")
def db_current() -> None:
    """Print the schema revision of the database and the newest one known."""
    eng = engine(migrate=False)
    click.echo(f"current: {current_revision(eng)}  head: {head_revision()}")
