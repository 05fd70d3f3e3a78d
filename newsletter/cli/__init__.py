"""The `newsletter` command: one module per command group, each command thin (parse input,
call one use case, print the result)."""

from newsletter.cli import articles, feeds, serve, setup, subscribers
from newsletter.cli.common import main

__all__ = ["articles", "feeds", "main", "serve", "setup", "subscribers"]
