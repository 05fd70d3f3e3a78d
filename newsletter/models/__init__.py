"""Tables (SQLModel) and read models. Every datetime is stored as UTC and comes back
timezone-aware. Importing this package registers every table on SQLModel.metadata."""

from newsletter.models.access import ApiToken, Editor, Scope
from newsletter.models.articles import (
    Article,
    ArticleStatus,
    ArticleTag,
    ArticleView,
    Author,
    AuthorView,
    Tag,
    TagView,
)
from newsletter.models.delivery import Bounce, BounceKind, RelayUsage
from newsletter.models.digests import (
    ACTIVE_RUNS,
    DEFAULT_DIGEST,
    DEFAULT_SUBJECT,
    PENDING_DELIVERIES,
    Delivery,
    DeliveryStatus,
    Digest,
    DigestRun,
    DigestTag,
    RunArticle,
    RunKind,
    RunStatus,
)
from newsletter.models.feeds import FeedVersion
from newsletter.models.subscribers import (
    SUPPRESSING,
    Outbound,
    SignupRequest,
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionTag,
    Suppression,
)
from newsletter.models.types import UTCDateTime, utcnow

__all__ = [
    "ACTIVE_RUNS",
    "DEFAULT_DIGEST",
    "DEFAULT_SUBJECT",
    "PENDING_DELIVERIES",
    "SUPPRESSING",
    "ApiToken",
    "Article",
    "ArticleStatus",
    "ArticleTag",
    "ArticleView",
    "Author",
    "AuthorView",
    "Bounce",
    "BounceKind",
    "Delivery",
    "DeliveryStatus",
    "Digest",
    "DigestRun",
    "DigestTag",
    "Editor",
    "FeedVersion",
    "Outbound",
    "RelayUsage",
    "RunArticle",
    "RunKind",
    "RunStatus",
    "Scope",
    "SignupRequest",
    "Subscriber",
    "SubscriberStatus",
    "Subscription",
    "SubscriptionTag",
    "Suppression",
    "Tag",
    "TagView",
    "UTCDateTime",
    "utcnow",
]
