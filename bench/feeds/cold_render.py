"""Part 2: time to render a 20-item tag feed on a cache miss (queries + RSS rendering + gzip),
on an archive of 1,000 and of 100,000 articles. The feed queries are meant to be index range
scans, so the time should hardly grow with the archive: the ratio 100k/1k is the figure.

Each archive is a fresh SQLite database (schema from newsletter.storage.database.open_database)
filled with SQLAlchemy core executemany: 1,000 tags (1-3 per article, a few tags much more
popular than the rest, as news sections are), 50 authors, ~2 KB HTML bodies, 5 % drafts.

    .venv/bin/python bench/feeds/cold_render.py [--repeats 200] [--sizes 1000 100000]
"""

from __future__ import annotations

import argparse
import itertools
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from newsletter.config import DatabaseSettings, Settings
from newsletter.feeds.cache import FeedCache
from newsletter.feeds.specs import FeedRef
from newsletter.models import Article, ArticleStatus, ArticleTag, Author, Tag
from newsletter.storage.database import open_database

TAGS = 1_000
AUTHORS = 50
ITEMS = 20  # the feed length measured ([feeds] items default)
CHUNK = 5_000  # rows generated and inserted per executemany
DRAFT_SHARE = 0.05
SPAN = timedelta(days=5 * 365)  # the archive covers five years
TARGET = 1.5

_TEXT = (
    "minister parliament coalition election border trade tariff export harbour province "
    "monsoon harvest rice currency inflation central bank reform protest court ruling "
    "summit delegation treaty navy coast guard island fishing fleet garment factory union "
    "wage migrant worker railway corridor port investment loan debt ferry typhoon flood "
    "drought village district governor mayor campaign ballot turnout opposition party"
)
_WORDS = _TEXT.split()


def _paragraphs(rng: random.Random, count: int) -> list[str]:
    out = []
    for _ in range(count):
        words = rng.choices(_WORDS, k=60)
        words[0] = words[0].capitalize()
        text = " ".join(words)
        out.append(f'<p>{text}, said <a href="https://example.org/{words[1]}">{words[2]}</a>.</p>')
    return out


class Archive:
    """Deterministic rows for an archive of `n` articles."""

    def __init__(self, n: int, now: datetime, seed: int = 20240601) -> None:
        self.n = n
        self.now = now
        self.rng = random.Random(seed)
        self.paragraphs = _paragraphs(self.rng, 200)
        # Zipf-like popularity: tag k is picked with weight 1/k (sections vs. rare topics)
        self.tag_ids = list(range(1, TAGS + 1))
        self.tag_weights = list(itertools.accumulate(1.0 / k for k in self.tag_ids))

    def authors(self) -> list[dict[str, Any]]:
        return [
            {
                "id": i,
                "slug": f"author-{i:02d}",
                "name": f"Reporter Number {i}",
                "bio": f"Correspondent {i}, covering the region since {1990 + i % 30}.",
                "url": f"https://example.org/people/{i}" if i % 3 == 0 else None,
            }
            for i in range(1, AUTHORS + 1)
        ]

    def tags(self) -> list[dict[str, Any]]:
        return [
            {
                "id": i,
                "slug": f"topic-{i:04d}",
                "name": f"Topic {i:04d}",
                "description": f"Coverage of topic {i}",
            }
            for i in self.tag_ids
        ]

    def _tags_of(self) -> set[int]:
        wanted = self.rng.randint(1, 3)
        chosen: set[int] = set()
        while len(chosen) < wanted:
            chosen.add(self.rng.choices(self.tag_ids, cum_weights=self.tag_weights)[0])
        return chosen

    def chunks(self) -> Iterator[tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
        """(article rows, article_tag rows), CHUNK articles at a time."""
        rng = self.rng
        span = SPAN.total_seconds()
        for start in range(1, self.n + 1, CHUNK):
            articles: list[dict[str, Any]] = []
            links: list[dict[str, Any]] = []
            for i in range(start, min(start + CHUNK, self.n + 1)):
                draft = rng.random() < DRAFT_SHARE
                written = self.now - timedelta(seconds=rng.uniform(60, span))
                published = None if draft else written
                body = "\n".join(rng.sample(self.paragraphs, 5))  # ~2 KB
                articles.append(
                    {
                        "id": i,
                        "guid": f"https://example.org/articles/story-{i}",
                        "slug": f"story-{i}",
                        "title": f"Story {i}: " + " ".join(rng.choices(_WORDS, k=8)),
                        "summary": " ".join(rng.choices(_WORDS, k=30)) + ".",
                        "body_html": body,
                        "url": None,
                        "image": f"https://cdn.example.org/img/{i}.jpg" if i % 2 else None,
                        "author_id": rng.randint(1, AUTHORS),
                        "status": (ArticleStatus.draft if draft else ArticleStatus.published).value,
                        "published_at": published,
                        "updated_at": written + timedelta(minutes=rng.randint(0, 120)),
                        "created_at": written,
                        "fingerprint": "",
                    }
                )
                # listed_at mirrors published_at while published (NULL for drafts)
                links.extend(
                    {"article_id": i, "tag_id": t, "listed_at": published} for t in self._tags_of()
                )
            yield articles, links


def build(n: int, folder: Path, now: datetime) -> tuple[sa.Engine, Settings, float]:
    """A database of `n` articles in `folder`; returns it and the seconds the insert took."""
    folder.mkdir(parents=True)
    url = f"sqlite:///{folder / 'archive.db'}"
    engine = open_database(url)
    settings = Settings(root=folder, database=DatabaseSettings(url=url))
    archive = Archive(n, now)
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(sa.insert(Author.__table__), archive.authors())
        conn.execute(sa.insert(Tag.__table__), archive.tags())
        for articles, links in archive.chunks():
            conn.execute(sa.insert(Article.__table__), articles)
            conn.execute(sa.insert(ArticleTag.__table__), links)
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    return engine, settings, time.perf_counter() - started


def full_feeds(engine: sa.Engine, cache: FeedCache, limit: int) -> list[FeedRef]:
    """Up to `limit` tags that have at least ITEMS listed articles (so every render measured
    has exactly ITEMS items), most popular first. Every article is dated in the past."""
    query = sa.text(
        "SELECT t.slug FROM tag t JOIN article_tag at ON at.tag_id = t.id "
        "WHERE at.listed_at IS NOT NULL "
        "GROUP BY t.id HAVING count(*) >= :items ORDER BY count(*) DESC, t.id LIMIT :limit"
    )
    with engine.connect() as conn:
        slugs = list(conn.execute(query, {"items": ITEMS, "limit": limit}).scalars())
    refs = [cache.ref("tag", slug) for slug in slugs]
    return [ref for ref in refs if ref is not None]


class Subject:
    """One archive under test: its cache, the full tag feeds to render, the timings."""

    def __init__(self, n: int, engine: sa.Engine, settings: Settings) -> None:
        self.n = n
        self.engine = engine
        self.cache = FeedCache(engine, settings)
        self.cache.refresh()
        self.refs = full_feeds(engine, self.cache, limit=100)
        if not self.refs:
            raise RuntimeError(f"{n} articles: no tag has {ITEMS} published articles")
        self.timings: list[float] = []
        self.size = 0
        for ref in self.refs[:10]:  # warm-up: statement caches, SQLite page cache
            self.cache.render(ref, "rss")

    def render_once(self, i: int) -> None:
        """Time one cache-miss render (FeedCache.render always queries and renders)."""
        ref = self.refs[i % len(self.refs)]
        started = time.perf_counter_ns()
        entry = self.cache.render(ref, "rss")
        self.timings.append((time.perf_counter_ns() - started) / 1e6)
        items = entry.body.count(b"<item>")
        if items != ITEMS:
            raise RuntimeError(f"{ref.slug}: {items} items rendered, expected {ITEMS}")
        self.size = len(entry.body)

    def report(self) -> str:
        timings = sorted(self.timings)
        return (
            f"  {self.n:>9,} articles: {len(timings)} renders over {len(self.refs)} full tag feeds "
            f"(~{self.size:,} bytes): median {statistics.median(timings):.2f} ms, "
            f"p90 {timings[int(len(timings) * 0.9)]:.2f} ms"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs=2, default=[1_000, 100_000])
    parser.add_argument("--repeats", type=int, default=200, help="renders timed per size")
    parser.add_argument("--workdir", type=Path, help="scratch folder (default: a temp dir)")
    parser.add_argument("--summary", type=Path, help="append the result line to this file")
    args = parser.parse_args()

    own_workdir = args.workdir is None
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="newsletter-cold-"))
    now = datetime.now(UTC)
    subjects: list[Subject] = []
    try:
        for n in args.sizes:
            engine, settings, seconds = build(n, workdir / f"archive-{n}", now)
            subjects.append(Subject(n, engine, settings))
            print(f"  {n:>9,} articles: inserted and analysed in {seconds:.1f} s", flush=True)
        # alternate between the archives so that drift in machine speed hits both alike
        for i in range(args.repeats):
            for subject in subjects if i % 2 else reversed(subjects):
                subject.render_once(i)
        for subject in subjects:
            print(subject.report())
            subject.engine.dispose()
    finally:
        if own_workdir:
            shutil.rmtree(workdir, ignore_errors=True)

    small, large = (statistics.median(s.timings) for s in subjects)
    line = (
        f"cold render of a {ITEMS}-item tag feed: {args.sizes[0]:,} articles {small:.2f} ms, "
        f"{args.sizes[1]:,} articles {large:.2f} ms, ratio {large / small:.2f} "
        f"(target <= {TARGET})"
    )
    print(line)
    if args.summary:
        with args.summary.open("a") as out:
            out.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
