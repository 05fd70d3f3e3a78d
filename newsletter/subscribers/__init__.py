"""Subscribers: double opt-in sign-up, confirmation, preferences, one-click unsubscribe,
suppression, and bulk import and export.

    from newsletter import subscribers
    service = subscribers.Subscribers(engine, settings, mailer, templates)
    await service.subscribe("reader@example.org", digests=["digest"])

addresses.py and eligibility.py are pure; bulk.py and csv_io.py move records in and out;
service.py holds the use cases, directory.py those of the editors' lists and counts.
"""

from newsletter.subscribers.addresses import normalize_email
from newsletter.subscribers.bulk import BulkReport, RowError, export_rows, import_rows
from newsletter.subscribers.csv_io import (
    COLUMNS,
    csv_chunks,
    export_csv,
    import_csv,
    import_csv_bytes,
)
from newsletter.subscribers.directory import (
    DigestCount,
    SubscriberCounts,
    SubscriberPage,
    SubscriberView,
    SuppressionView,
    add_new,
    list_subscribers,
    subscriber_counts,
    subscriber_view,
    suppress_address,
)
from newsletter.subscribers.eligibility import Purpose, may_mail
from newsletter.subscribers.ratelimit import RateLimiter
from newsletter.subscribers.service import (
    Choice,
    Offered,
    Preferences,
    Subscribers,
    Unsubscribed,
    add,
    get_subscriber,
    remove,
)
from newsletter.subscribers.suppressions import mark, suppress, unsuppress

__all__ = [
    "COLUMNS",
    "BulkReport",
    "Choice",
    "DigestCount",
    "Offered",
    "Preferences",
    "Purpose",
    "RateLimiter",
    "RowError",
    "SubscriberCounts",
    "SubscriberPage",
    "SubscriberView",
    "Subscribers",
    "SuppressionView",
    "Unsubscribed",
    "add",
    "add_new",
    "csv_chunks",
    "export_csv",
    "export_rows",
    "get_subscriber",
    "import_csv",
    "import_csv_bytes",
    "import_rows",
    "list_subscribers",
    "mark",
    "may_mail",
    "normalize_email",
    "remove",
    "subscriber_counts",
    "subscriber_view",
    "suppress",
    "suppress_address",
    "unsuppress",
]
