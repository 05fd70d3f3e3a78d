"""Rendered feeds kept in memory, keyed by each feed's content version.

A cached request touches no database: `refresh` (run a few times a second by the web
process, and at once after a change made in this process) reads the one global version row
and, only when it moved, the feed versions that changed. Entries whose version is stale are
rendered again on their next request. Articles scheduled for later join their feeds when
their time comes: `refresh` stamps new versions on those feeds then.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime

import sqlalchemy as sa
from sqlmodel import Session

from newsletter import storage
from newsletter.config import Settings
from newsletter.feeds import invalidation, render
from newsletter.feeds.render import FeedSpec
from newsletter.feeds.specs import FeedRef, feed_spec
from newsletter.models import ArticleView, utcnow

_NONE = (0, render.EPOCH)


@dataclass(frozen=True)
class Rendered:
    """One feed in one format, ready to send."""

    version: int
    body: bytes
    gzipped: bytes
    etag: str  # weak: the same for the gzip and identity encodings of the same content
    last_modified: str  # IMF-fixdate
    last_modified_at: datetime
    content_type: str


class FeedCache:
    def __init__(self, engine: sa.Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self._entries: dict[tuple[str, str], Rendered] = {}
        self._versions: dict[str, tuple[int, datetime]] = {}
        self._refs: dict[tuple[str, str], FeedRef] = {}
        self._seen = -1
        self._next_due: datetime | None = None
        self._lock = threading.Lock()
        self._dirty = threading.Event()  # set after a change made in this process
        self._changes: set[str] = set()  # changed keys not yet handed to take_changes
        invalidation.on_change(engine, self._dirty.set)

    # ------------------------------------------------------------------ lookups (no I/O)

    def ref(self, kind: str, slug: str) -> FeedRef | None:
        return self._refs.get((kind, slug))

    def cached(self, ref: FeedRef, fmt: str) -> Rendered | None:
        """The rendering of the feed's current version, if there is one in memory."""
        if self._dirty.is_set():
            return None  # a change in this process: the caller refreshes first
        entry = self._entries.get((ref.key, fmt))
        if entry is not None and entry.version == self._version_of(ref.key)[0]:
            return entry
        return None

    def is_current(self, key: str, entry: Rendered) -> bool:
        """Whether `entry` still is the feed's current version (no I/O)."""
        return not self._dirty.is_set() and entry.version == self._versions.get(key, _NONE)[0]

    def needs_refresh(self) -> bool:
        return self._dirty.is_set()

    def _version_of(self, key: str) -> tuple[int, datetime]:
        return self._versions.get(key, _NONE)

    # ------------------------------------------------------------------ database side

    def refresh(self, now: datetime | None = None) -> set[str]:
        """Learn what changed since the last call; returns the keys of changed feeds.
        Cheap when nothing did: one primary-key read."""
        now = now or utcnow()
        with self._lock:
            self._dirty.clear()
            with Session(self.engine) as session:
                if self._next_due is not None and self._next_due <= now:
                    self._publish_due(session, now)
                current = storage.global_version(session)
                if current == self._seen:
                    return set()
                changed = storage.versions_since(session, max(self._seen, 0))
                if self._seen < 0:  # first load: nothing counts as a change
                    changed_keys: set[str] = set()
                else:
                    changed_keys = {row.key for row in changed}
                for row in changed:
                    self._versions[row.key] = (row.version, row.changed_at)
                self._changes |= changed_keys
                self._load_refs(session)
                self._next_due = storage.next_scheduled(session, now)
                self._seen = current
                return changed_keys

    def _publish_due(self, session: Session, now: datetime) -> None:
        """Articles whose scheduled time has come change their feeds now."""
        assert self._next_due is not None
        keys: set[str] = set()
        for article in storage.published_between(session, self._next_due, now):
            keys |= invalidation.keys_of_article(session, article)
        invalidation.stamp(session, keys, now)
        session.commit()
        self._dirty.clear()  # our own change; the version read below covers it
        self._next_due = None

    def _load_refs(self, session: Session) -> None:
        refs: dict[tuple[str, str], FeedRef] = {
            ("site", ""): FeedRef(invalidation.SITE_KEY, "site", "", "", "", None)
        }
        for tag in storage.all_tags(session):
            assert tag.id is not None
            refs[("tag", tag.slug)] = FeedRef(
                invalidation.tag_key(tag.id), "tag", tag.slug, tag.name, tag.description, tag.id
            )
        for author in storage.all_authors(session):
            assert author.id is not None
            refs[("author", author.slug)] = FeedRef(
                invalidation.author_key(author.id),
                "author",
                author.slug,
                author.name,
                author.bio,
                author.id,
            )
        self._refs = refs

    def all_refs(self) -> list[FeedRef]:
        return list(self._refs.values())

    def refs_for(self, keys: set[str]) -> list[FeedRef]:
        return [ref for ref in self._refs.values() if ref.key in keys]

    def take_changes(self) -> set[str]:
        """Keys changed since the last call, whoever ran the refresh that found them."""
        with self._lock:
            changes, self._changes = self._changes, set()
        return changes

    def render(self, ref: FeedRef, fmt: str, now: datetime | None = None) -> Rendered:
        """Render the feed at its current version and keep it (runs a few queries)."""
        version, changed_at = self._version_of(ref.key)
        articles = self.articles(ref, now or utcnow())
        body = render.render(self.spec(ref), fmt, articles)
        last_modified = changed_at if version else render.feed_updated(articles)
        last_modified = last_modified.replace(microsecond=0)
        entry = Rendered(
            version=version,
            body=body,
            gzipped=gzip.compress(body, compresslevel=6, mtime=0),
            etag='W/"' + hashlib.sha1(body).hexdigest()[:20] + '"',
            last_modified=format_datetime(last_modified, usegmt=True),
            last_modified_at=last_modified,
            content_type=render.CONTENT_TYPES[fmt],
        )
        self._entries[(ref.key, fmt)] = entry
        return entry

    def articles(self, ref: FeedRef, now: datetime) -> list[ArticleView]:
        limit = self.settings.feeds.items
        with Session(self.engine) as session:
            if ref.kind == "tag":
                return storage.recent_published(session, limit, tag_id=ref.row_id, now=now)
            if ref.kind == "author":
                return storage.recent_published(session, limit, author_id=ref.row_id, now=now)
            return storage.recent_published(session, limit, now=now)

    def spec(self, ref: FeedRef) -> FeedSpec:
        return feed_spec(self.settings, ref)
