"""The one error hierarchy. Every error the service raises on purpose derives from
NewsletterError and carries structured fields, so no caller ever parses a message; messages
name the input and what is wrong with it.

Only web/ turns these into HTTP status codes and only cli/ into exit codes.
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


class DuplicateError(NewsletterError):
    """A thing with this key exists already (another process may have just stored it)."""

    def __init__(self, kind: str, key: str) -> None:
        super().__init__(f"{kind} {key!r} exists already")
        self.kind = kind
        self.key = key


class InvalidInputError(NewsletterError):
    """Input was refused; nothing was stored.

    `field` names the input (None when the whole input is wrong), `reason` says what is
    wrong with it in words a user understands, `value` is what was given (when useful)."""

    def __init__(self, field: str | None, reason: str, value: object = None) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.field = field
        self.reason = reason
        self.value = value


class RateLimited(NewsletterError):
    """Too many attempts from one client or for one address; try later."""


class RecordError(InvalidInputError):
    """One imported record is bad. `where` is 'file:line' or 'file#record'."""

    def __init__(self, where: str, field: str | None, reason: str) -> None:
        super().__init__(field, reason)
        self.where = where

    def __str__(self) -> str:
        return f"{self.where}: {super().__str__()}"


class SourceError(InvalidInputError):
    """A whole import source cannot be read (missing file, unknown format, bad JSON)."""

    def __init__(self, reason: str) -> None:
        super().__init__(None, reason)


class TokenError(InvalidInputError):
    """A link is not valid: `kind` is "tampered", "expired", "used" or "wrong purpose"."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(None, message)
        self.kind = kind


class DeliveryError(NewsletterError):
    """A message was not delivered. `code` is the SMTP reply code (None when there was no
    answer: a refused connection, a timeout) and `reason` the server's text."""

    def __init__(self, recipient: str, code: int | None, reason: str) -> None:
        super().__init__(f"{recipient}: {code or ''} {reason}".strip())
        self.recipient = recipient
        self.code = code
        self.reason = reason


class PermanentFailure(DeliveryError):
    """The server refused the recipient for good (5xx to RCPT TO): suppress the address."""


class MessageRefused(DeliveryError):
    """The server refused the sender or the message itself (5xx to MAIL FROM or DATA): a
    problem of ours, not of the recipient, so the address is not suppressed."""


class TemporaryFailure(DeliveryError):
    """Try again later: 4xx, a timeout, a dropped connection."""
