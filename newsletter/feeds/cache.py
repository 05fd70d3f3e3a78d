"""Rendered feeds kept in memory, keyed by each feed's content version.

A cached request touches no database: `refresh` (run a few times a second by the web
process, and at once after a change made in this process) reads the one global version row
and, only when it moved, the feed versions that changed. Entries whose version is stale are
rendered again on their next request. Articles scheduled for later join their feeds when
their time comes: `refresh` stamps new versions on those feeds then.

Validators: the ETag is a digest of the bytes. Last-Modified comes from feed_rendering,
one row per feed and format, recorded by the first process to render bytes that differ
from the recorded ones: a version whose bytes are the recorded ones keeps their
Last-Modified (a change that did not alter what the feed shows, such as an old article
imported outside its newest items, moves neither validator); bytes that differ get the
version's changed_at, and never less than a second after the Last-Modified recorded before,
even when the newest item got older (an article unpublished or deleted). Every process
reads the same row, so all agree.
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import format_datetime

import sqlalchemy as sa
from sqlmodel import Session

from newsletter import storage
from newsletter.config import Settings
from newsletter.feeds import invalidation, render
from newsletter.feeds.render import FeedSpec
from newsletter.feeds.specs import FeedRef, feed_spec
from newsletter.models import ArticleView, utcnow
from newsletter.storage.feed_versions import current_version, record_rendering, rendering

log = logging.getLogger(__name__)
_NONE = (0, render.EPOCH)
_RECORD_ATTEMPTS = 5  # compare-and-set rounds against other processes rendering the same feed


@dataclass(frozen=True)
class Recorded:
    """The validators feed_rendering holds for one feed in one format: the bytes' digest,
    their Last-Modified and the feed version that first rendered them."""

    version: int
    digest: str
    modified_at: datetime


def last_modified(
    recorded: Recorded | None, digest: str, changed_at: datetime, *, stale: bool
) -> tuple[datetime, bool]:
    """The Last-Modified of bytes with `digest`, rendered at a feed version stamped at
    `changed_at`, and whether to record it. Pure, so every process decides alike.

    - the recorded bytes: their recorded Last-Modified;
    - other bytes rendered at a version older than the feed's current one (`stale`: this
      process has not polled since; its bytes may be older than the recorded ones): the
      version's time, recorded nowhere;
    - other bytes: the version's time, and at least a second after the recorded
      Last-Modified, so that it never goes backwards and If-Modified-Since (whole seconds)
      never hides a change.
    """
    if recorded is not None and recorded.digest == digest:
        return recorded.modified_at, False
    if stale:
        return changed_at, False
    if recorded is None:
        return changed_at, True
    return max(changed_at, recorded.modified_at + timedelta(seconds=1)), True


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
        # Changes committed in this process are counted; the cache is behind while the
        # count is ahead of the count a finished refresh covered. A flag cleared when a
        # refresh starts would let a request, arriving while another thread's refresh
        # still reads, take the old versions for current and serve a feed one change old.
        self._notified = itertools.count(1)
        self._changes_seen = 0  # changes committed here (the last value taken)
        self._changes_covered = 0  # changes a finished refresh has read
        self._changes: set[str] = set()  # changed keys not yet handed to take_changes
        invalidation.on_change(engine, self._note_change)

    # ------------------------------------------------------------------ lookups (no I/O)

    def ref(self, kind: str, slug: str) -> FeedRef | None:
        return self._refs.get((kind, slug))

    def cached(self, ref: FeedRef, fmt: str) -> Rendered | None:
        """The rendering of the feed's current version, if there is one in memory."""
        if self._behind():
            return None  # a change in this process: the caller refreshes first
        entry = self._entries.get((ref.key, fmt))
        if entry is not None and entry.version == self._version_of(ref.key)[0]:
            return entry
        return None

    def is_current(self, key: str, entry: Rendered) -> bool:
        """Whether `entry` still is the feed's current version (no I/O)."""
        return not self._behind() and entry.version == self._versions.get(key, _NONE)[0]

    def needs_refresh(self) -> bool:
        return self._behind()

    def _note_change(self) -> None:
        # next() of itertools.count is atomic: commits may come from any thread
        self._changes_seen = next(self._notified)

    def _behind(self) -> bool:
        return self._changes_seen > self._changes_covered

    def _version_of(self, key: str) -> tuple[int, datetime]:
        return self._versions.get(key, _NONE)

    # ------------------------------------------------------------------ database side

    def refresh(self, now: datetime | None = None) -> set[str]:
        """Learn what changed since the last call; returns the keys of changed feeds.
        Cheap when nothing did: one primary-key read."""
        now = now or utcnow()
        with self._lock, Session(self.engine) as session:
            if self._next_due is not None and self._next_due <= now:
                self._publish_due(session, now)
            # every change committed before this read is covered by it
            covering = self._changes_seen
            current = storage.global_version(session)
            if current == self._seen:
                self._changes_covered = max(self._changes_covered, covering)
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
            self._changes_covered = max(self._changes_covered, covering)
            return changed_keys

    def _publish_due(self, session: Session, now: datetime) -> None:
        """Articles whose scheduled time has come change their feeds now."""
        assert self._next_due is not None
        keys: set[str] = set()
        for article in storage.published_between(session, self._next_due, now):
            keys |= invalidation.keys_of_article(session, article)
        invalidation.stamp(session, keys, now)
        session.commit()  # our own change: the version read after this covers it
        self._next_due = None

    def _load_refs(self, session: Session) -> None:
        """The feeds that exist, each with its version's time (the versions are read first)."""
        site = invalidation.SITE_KEY
        refs: dict[tuple[str, str], FeedRef] = {
            ("site", ""): FeedRef(site, "site", "", "", "", None, self._version_of(site)[1])
        }
        for tag in storage.all_tags(session):
            assert tag.id is not None
            key = invalidation.tag_key(tag.id)
            refs[("tag", tag.slug)] = FeedRef(
                key, "tag", tag.slug, tag.name, tag.description, tag.id, self._version_of(key)[1]
            )
        for author in storage.all_authors(session):
            assert author.id is not None
            key = invalidation.author_key(author.id)
            refs[("author", author.slug)] = FeedRef(
                key,
                "author",
                author.slug,
                author.name,
                author.bio,
                author.id,
                self._version_of(key)[1],
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
        digest = hashlib.sha1(body).hexdigest()
        stamp = changed_at if version else render.feed_updated(articles)
        modified = self._last_modified(ref.key, fmt, version, stamp.replace(microsecond=0), digest)
        entry = Rendered(
            version=version,
            body=body,
            gzipped=gzip.compress(body, compresslevel=6, mtime=0),
            etag='W/"' + digest[:20] + '"',
            last_modified=format_datetime(modified, usegmt=True),
            last_modified_at=modified,
            content_type=render.CONTENT_TYPES[fmt],
        )
        self._entries[(ref.key, fmt)] = entry
        return entry

    def _last_modified(
        self, key: str, fmt: str, version: int, changed_at: datetime, digest: str
    ) -> datetime:
        """Decide the Last-Modified of a rendering at `version` against the recorded
        validators, and record it when the bytes are new (compare-and-set: another process
        may be rendering the same feed). Bytes as recorded cost one read, no write."""
        modified = changed_at
        try:
            for _ in range(_RECORD_ATTEMPTS):
                with Session(self.engine) as session:
                    row = rendering(session, key, fmt)
                    recorded = Recorded(row.version, row.digest, row.modified_at) if row else None
                    stale = version < current_version(session, key)
                    modified, record = last_modified(recorded, digest, changed_at, stale=stale)
                    if not record:
                        return modified
                    seen = (recorded.version, recorded.digest) if recorded else None
                    if record_rendering(
                        session,
                        key,
                        fmt,
                        seen,
                        version=version,
                        digest=digest,
                        modified_at=modified,
                    ):
                        session.commit()
                        return modified
        except sa.exc.OperationalError:
            # The database is busy: serve what the recorded row gives now; the next
            # rendering records it. The feed must not fail over its Last-Modified.
            log.warning("feed %s.%s: validators not recorded", key, fmt, exc_info=True)
        return modified

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
