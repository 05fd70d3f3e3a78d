"""The `newsletter` command: one module per command group, each command thin (parse input,
call one use case, print the result)."""

from newsletter.cli import access, articles, bounces, digests, feeds, serve, setup, subscribers
from newsletter.cli.common import main

__all__ = [
    "access",
    "articles",
    "bounces",
    "digests",
    "feeds",
    "main",
    "serve",
    "setup",
    "subscribers",
]
