"""Bounces and complaints that come back after a relay accepted a message: read from the
bounce mailbox (delivery status notifications, RFC 3464; complaint reports, RFC 5965) or
posted by a mail provider (Amazon SES, Mailgun, Postmark, SendGrid), matched to the
delivery they are about through its VERP envelope sender, recorded once each, and turned
into suppressions.

    from newsletter.bounces import Bounces
    bounces = Bounces(engine, settings)
    bounces.poll()                                  # the mailbox
    bounces.webhook("mailgun", body, headers)       # a provider's request

reports.py is pure (raw mail in, `Report`s out); mailbox.py and webhooks.py are the edges;
service.py holds the use cases.
"""

from newsletter.bounces.mailbox import MailboxError
from newsletter.bounces.reports import Report, parse
from newsletter.bounces.service import Bounces, Outcome, Polled
from newsletter.bounces.webhooks import PROVIDERS, FetchError, WebhookRefused

__all__ = [
    "PROVIDERS",
    "Bounces",
    "FetchError",
    "MailboxError",
    "Outcome",
    "Polled",
    "Report",
    "WebhookRefused",
    "parse",
]
