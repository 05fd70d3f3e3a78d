"""The one error hierarchy. Messages name the input and what is wrong with it.

Only web/ turns these into HTTP status codes and only cli.py into exit codes.
"""

from __future__ import annotations


class NewsletterError(Exception):
    """Base of every error the service raises on purpose."""


class ConfigError(NewsletterError):
    """config.toml or an environment override is wrong; the service does not start."""


class NotFoundError(NewsletterError):
    """A thing named by slug or id does not exist."""

    def __init__(self, kind: str, key: str) -> None:
        super().__init__(f"no {kind} {key!r}")
        self.kind = kind
        self.key = key


class InvalidInputError(NewsletterError):
    """Input was refused; nothing was stored."""


class RecordError(InvalidInputError):
    """One imported record is bad. `where` is 'file:line' or 'file#record'."""

    def __init__(self, where: str, field: str | None, reason: str) -> None:
        self.where = where
        self.field = field
        self.reason = reason
        super().__init__(f"{where}: {field}: {reason}" if field else f"{where}: {reason}")


class SourceError(InvalidInputError):
    """A whole import source cannot be read (missing file, unknown format, bad JSON)."""
