"""What readers are told about their subscription, in their words (pure: the status, the
suppression and the chosen digests come in). Editors and the CLI keep the exact reasons
of the errors; these sentences are for the public pages."""

from __future__ import annotations

from collections.abc import Sequence

from newsletter.models import SubscriberStatus

NAME_MOST = 100  # characters of a name we keep (clean_name's default)
NAME_TOO_LONG = f"Please keep your name to {NAME_MOST} characters or fewer."
TOO_MANY_FROM_NETWORK = (
    "We received many sign-ups from your network in the past hour. Please try again in an hour."
)
TOO_MANY_FOR_ADDRESS = (
    "This address was signed up several times in the past hour. "
    "Please try again in an hour, or look for the email we already sent."
)


def status_words(
    status: SubscriberStatus | str,
    suppression: str | None,
    by_operator: bool,
    receiving: Sequence[str],
) -> str:
    """One sentence telling a reader where their subscription stands. `suppression` is the
    reason the address is suppressed (None: it is not), `receiving` the names of the
    digests they chose. Why mail stopped comes first: a bounce or complaint outweighs any
    status, and an operator's suppression outweighs everything."""
    if by_operator and suppression is not None:
        return (
            "We no longer send email to this address: our editors stopped it. "
            "Write to us if you would like to receive it again."
        )
    if SubscriberStatus.bounced in (status, suppression):
        return (
            "We stopped mailing you because messages to this address bounced: "
            "the mail server refused them."
        )
    if SubscriberStatus.complained in (status, suppression):
        return (
            "We stopped mailing you because one of our emails to this address was reported as spam."
        )
    if status == SubscriberStatus.pending:
        return (
            "You have not confirmed yet: follow the link in the email we sent you, "
            "and nothing arrives before you do."
        )
    if status == SubscriberStatus.unsubscribed or suppression is not None:
        return "You are not subscribed at the moment: we send nothing to this address."
    if not receiving:
        return "You are subscribed, but no newsletter is chosen: tick one below."
    return "You receive: " + _listed(receiving) + "."


def _listed(names: Sequence[str]) -> str:
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " and " + names[-1]
