"""Tables (SQLModel) and read models. Every datetime is stored as UTC and comes back
timezone-aware. Importing this package registers every table on SQLModel.metadata."""

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
from newsletter.models.feeds import FeedVersion
from newsletter.models.subscribers import (
    DEFAULT_DIGEST,
    SUPPRESSING,
    Digest,
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionTag,
    Suppression,
)
from newsletter.models.types import UTCDateTime, utcnow

__all__ = [
    "DEFAULT_DIGEST",
    "SUPPRESSING",
    "Article",
    "ArticleStatus",
    "ArticleTag",
    "ArticleView",
    "Author",
    "AuthorView",
    "Digest",
    "FeedVersion",
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
