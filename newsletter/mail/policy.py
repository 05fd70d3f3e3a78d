"""What an SMTP answer means for a ledger row (pure: the outcome, the row's attempts and
`now` come in; a Decision goes out).

Enhanced status codes (RFC 3463) decide, not only the first digit:
- 5.1.x (bad mailbox), or a plain 550 to RCPT without an enhanced code: the address is
  gone; the row fails and the address is suppressed as bounced.
- 5.7.x (policy: our server blocklisted, authentication, DMARC) and any 5xx to MAIL FROM or
  DATA: a problem of ours, which would otherwise burn through the whole list. Nobody is
  suppressed; the run pauses with the reason and the row waits.
- 4.x.x and 5.2.2 (mailbox full): retried with exponential back-off, then failed.
- No answer at all (the server is down, a timeout): the row waits without using up an
  attempt, and the sender backs off; nobody fails because our relay is down.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from newsletter.errors import DeliveryError, MessageRefused, PermanentFailure, TemporaryFailure
from newsletter.models import DeliveryStatus

_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")


def enhanced_code(reason: str) -> tuple[int, int, int] | None:
    """The RFC 3463 code at the start of a server's reply text, e.g. (5, 1, 1)."""
    match = _ENHANCED.match(reason)
    return (int(match.group(1)), int(match.group(2)), int(match.group(3))) if match else None


@dataclass(frozen=True)
class Decision:
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None = None
    suppress: bool = False  # suppress the address as bounced
    pause_reason: str | None = None  # pause the whole run with this reason
    server_down: bool = False  # the sender should back off before claiming more
    error: str = ""


def decide(
    outcome: DeliveryError | None,
    attempts: int,
    now: datetime,
    retry_base_seconds: int,
    max_attempts: int,
) -> Decision:
    """The next state of a row tried `attempts` times before this try."""
    if outcome is None:
        return Decision(DeliveryStatus.sent, attempts + 1)
    error = str(outcome)
    code = enhanced_code(outcome.reason)

    def retry() -> Decision:
        tried = attempts + 1
        if tried >= max_attempts:
            return Decision(DeliveryStatus.failed, tried, error=f"gave up after {tried}: {error}")
        delay = timedelta(seconds=retry_base_seconds * 2 ** (tried - 1))
        return Decision(DeliveryStatus.deferred, tried, now + delay, error=error)

    def ours() -> Decision:
        return Decision(
            DeliveryStatus.queued,
            attempts,
            None,
            pause_reason=f"refused by the mail server: {error}",
            error=error,
        )

    if code is not None and code[0] == 5 and code[1] == 2 and code[2] == 2:
        return retry()  # mailbox full: it may have room tomorrow
    if code is not None and code[0] == 5 and code[1] == 7:
        return ours()
    if isinstance(outcome, PermanentFailure):
        if (code is not None and code[1] == 1) or (code is None and outcome.code == 550):
            return Decision(DeliveryStatus.failed, attempts + 1, suppress=True, error=error)
        return Decision(DeliveryStatus.failed, attempts + 1, error=error)
    if isinstance(outcome, MessageRefused):
        return ours()
    if isinstance(outcome, TemporaryFailure) and outcome.code is None:
        delay = timedelta(seconds=min(retry_base_seconds, 30))
        return Decision(DeliveryStatus.queued, attempts, now + delay, server_down=True, error=error)
    return retry()
