"""`newsletter tokens` (bearer tokens for /api/v1) and `newsletter editors` (accounts for
/admin)."""

from __future__ import annotations

import sys

import click

from newsletter.cli.common import command, main, services
from newsletter.errors import InvalidInputError
from newsletter.models import Scope


@click.group(name="tokens")
def tokens_group() -> None:
    """Bearer tokens for the JSON API (/api/v1)."""


@click.group(name="editors")
def editors_group() -> None:
    """Editors' accounts for the admin pages (/admin)."""


main.add_command(tokens_group)
main.add_command(editors_group)


@command(tokens_group, "create")
@click.argument("name")
@click.option(
    "--scope",
    type=click.Choice([s.value for s in Scope]),
    default=Scope.read.value,
    show_default=True,
    help="read: GET requests only; write: every request.",
)
def tokens_create(name: str, scope: str) -> None:
    """Create a token and print it. It is shown this once: only its hash is stored."""
    token = services().access.create_token(name, Scope(scope))
    click.echo(token)
    click.echo(
        f"token {name!r} ({scope}) created; send it as 'Authorization: Bearer <token>'. "
        "It cannot be shown again.",
        err=True,
    )


@command(tokens_group, "list")
def tokens_list() -> None:
    """Every token's name, scope, creation and last use (never the token)."""
    for token in services().access.tokens():
        used = token.last_used_at.isoformat(timespec="seconds") if token.last_used_at else "never"
        created = token.created_at.isoformat(timespec="seconds")
        click.echo(f"{token.name}\t{token.scope}\tcreated {created}\tlast used {used}")


@command(tokens_group, "revoke")
@click.argument("name")
def tokens_revoke(name: str) -> None:
    """Revoke a token: requests carrying it get 401 from now on."""
    services().access.revoke_token(name)
    click.echo(f"token {name!r} revoked")


@command(editors_group, "add")
@click.argument("name")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input instead of asking.",
)
def editors_add(name: str, password_stdin: bool) -> None:
    """Create an editor's account; asks for the password (at least 10 characters)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not password:
        raise InvalidInputError("password", "must not be empty")
    services().access.add_editor(name, password)
    click.echo(f"editor {name!r} added; log in at /admin")


@command(editors_group, "list")
def editors_list() -> None:
    """Every account that can log in to /admin."""
    for name in services().access.editors():
        click.echo(name)


@command(editors_group, "remove")
@click.argument("name")
def editors_remove(name: str) -> None:
    """Remove an editor's account (config.toml's [admin] account is changed there)."""
    services().access.remove_editor(name)
    click.echo(f"editor {name!r} removed")
