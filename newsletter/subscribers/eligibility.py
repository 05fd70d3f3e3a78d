"""May we mail this address? The one answer, used by sign-up, confirmation and delivery
(pure: the subscriber's status and the address's suppression come in)."""

from __future__ import annotations

from enum import StrEnum

from newsletter.models import SubscriberStatus

# Addresses that bounced or complained are never mailed again, whatever anyone asks.
NEVER_AGAIN = frozenset({SubscriberStatus.bounced, SubscriberStatus.complained})


class Purpose(StrEnum):
    confirmation = "confirmation"  # the double opt-in email (and confirming its link)
    digest = "digest"  # an issue of a digest the subscriber chose


def may_mail(
    purpose: Purpose,
    status: SubscriberStatus | str | None,
    suppression: str | None,
    subscribed: bool = True,
    by_operator: bool = False,
) -> bool:
    """Whether an address may get mail for `purpose`.

    `status` is its subscriber's status (None: no subscriber yet), `suppression` the reason
    it is suppressed (None: it is not), `subscribed` whether it chose the digest in
    question, `by_operator` whether an operator made the suppression. A reader who
    unsubscribed may ask to come back through a confirmation; a bounce, a complaint or an
    operator's suppression is final (until an operator lifts it). A digest goes only to
    active, unsuppressed subscribers of that digest."""
    if status in NEVER_AGAIN or suppression in NEVER_AGAIN:
        return False
    if suppression is not None and by_operator:
        return False
    if purpose is Purpose.confirmation:
        return suppression in (None, SubscriberStatus.unsubscribed)
    return status == SubscriberStatus.active and suppression is None and subscribed
