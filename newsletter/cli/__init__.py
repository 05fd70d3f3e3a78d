"""The `newsletter` command: one module per command group, each command thin (parse input,
call one use case, print the result)."""

from newsletter.cli import articles, digests, feeds, serve, setup, subscribers
from newsletter.cli.common import main

__all__ = ["articles", "digests", "feeds", "main", "serve", "setup", "subscribers"]
