"""The publication a digest benchmark sends: 10 published articles in three overlapping
topics and N active subscribers in three groups, each group narrowed to one topic, so that
a run of the digest has three segments of seven posts each.

The schema comes from `newsletter.storage.database.open_database` (the service's own
migrations) and the rows go in with SQLAlchemy core executemany, in batches. The digests
themselves are defined through the CLI by bench.py; `add_subscribers` runs afterwards,
when their ids exist.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from newsletter.models import (
    Article,
    ArticleStatus,
    ArticleTag,
    Author,
    Digest,
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionTag,
    Tag,
)

# Three topics; every article has one, two or all three of them, so that readers of each
# topic get seven of the ten posts, a different seven for each topic (three segments).
TOPICS = ("politics", "economy", "culture")
ARTICLE_TOPICS = (
    ("politics",),
    ("economy",),
    ("culture",),
    ("politics", "economy"),
    ("economy", "culture"),
    ("culture", "politics"),
    TOPICS,
    TOPICS,
    TOPICS,
    TOPICS,
)
# Characters of summary per article: with seven posts, the text and the HTML part (CSS
# inlined) and quoted-printable, one message is about 35 KB. The bench prints the size it
# measured on a real message.
SUMMARY_CHARS = 1_000
BODY_PARAGRAPHS = 12  # ~6 KB of HTML body per article (not in the email; realistic rows)
BATCH = 20_000  # subscribers per executemany batch

_TEXT = (
    "minister parliament coalition election border trade tariff export harbour province "
    "monsoon harvest rice currency inflation central bank reform protest court ruling "
    "summit delegation treaty navy coast guard island fishing fleet garment factory union "
    "wage migrant worker railway corridor port investment loan debt ferry typhoon flood "
    "drought village district governor mayor campaign ballot turnout opposition party"
)
_WORDS = _TEXT.split()


def _sentence(rng: random.Random, words: int) -> str:
    chosen = rng.choices(_WORDS, k=words)
    chosen[0] = chosen[0].capitalize()
    return " ".join(chosen) + "."


def _summary(rng: random.Random, chars: int) -> str:
    parts: list[str] = []
    length = 0
    while length < chars:
        part = _sentence(rng, rng.randint(8, 18))
        parts.append(part)
        length += len(part) + 1
    return " ".join(parts)[:chars].rsplit(" ", 1)[0] + "."


def _body(rng: random.Random) -> str:
    return "\n".join(
        f'<p>{_sentence(rng, 70)} <a href="https://example.org/{rng.choice(_WORDS)}">More</a></p>'
        for _ in range(BODY_PARAGRAPHS)
    )


def add_articles(engine: sa.Engine, now: datetime, seed: int = 20240601) -> int:
    """One author, the three topic tags and ten articles published in the last few hours
    (inside the first issue's window, which looks back one day)."""
    rng = random.Random(seed)
    with engine.begin() as conn:
        author_id = conn.execute(
            sa.insert(Author.__table__).returning(Author.__table__.c.id),
            {"slug": "desk", "name": "The Regional Desk", "bio": "", "url": None},
        ).scalar_one()
        tag_ids: dict[str, int] = {}
        for slug in TOPICS:
            tag_ids[slug] = conn.execute(
                sa.insert(Tag.__table__).returning(Tag.__table__.c.id),
                {"slug": slug, "name": slug.capitalize(), "description": ""},
            ).scalar_one()
        for i, topics in enumerate(ARTICLE_TOPICS):
            published = now - timedelta(minutes=30 * (i + 1))
            article_id = conn.execute(
                sa.insert(Article.__table__).returning(Article.__table__.c.id),
                {
                    "guid": f"https://news.example.org/articles/bench-{i}",
                    "slug": f"bench-{i}",
                    "title": f"Story {i + 1}: " + _sentence(rng, 9).rstrip("."),
                    "summary": _summary(rng, SUMMARY_CHARS),
                    "body_html": _body(rng),
                    "url": None,
                    "image": f"https://cdn.example.org/img/bench-{i}.jpg",
                    "author_id": author_id,
                    "status": ArticleStatus.published.value,
                    "published_at": published,
                    "updated_at": published,
                    "created_at": published,
                    "fingerprint": "",
                    "source": "",
                },
            ).scalar_one()
            conn.execute(
                sa.insert(ArticleTag.__table__),
                [
                    {"article_id": article_id, "tag_id": tag_ids[t], "listed_at": published}
                    for t in topics
                ],
            )
    return len(ARTICLE_TOPICS)


def digest_id(engine: sa.Engine, slug: str) -> int:
    table = Digest.__table__
    with engine.connect() as conn:
        found = conn.execute(sa.select(table.c.id).where(table.c.slug == slug)).scalar()
    if found is None:
        raise RuntimeError(f"digest {slug!r} is not in the database")
    return int(found)


def _tag_ids(engine: sa.Engine) -> list[int]:
    table = Tag.__table__
    with engine.connect() as conn:
        rows = dict(
            conn.execute(sa.select(table.c.slug, table.c.id).where(table.c.slug.in_(TOPICS)))
            .tuples()
            .all()
        )
    return [int(rows[slug]) for slug in TOPICS]


def _batches(
    first_id: int, count: int, email: str, digest: int, tags: list[int], now: datetime
) -> Iterator[tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]]:
    """(subscriber, subscription, subscription_tag) rows, BATCH subscribers at a time.
    Subscriber k (0-based) is in group k % 3 and narrows the digest to that topic."""
    for start in range(0, count, BATCH):
        people: list[dict[str, Any]] = []
        subscriptions: list[dict[str, Any]] = []
        chosen: list[dict[str, Any]] = []
        for k in range(start, min(start + BATCH, count)):
            sid = first_id + k
            people.append(
                {
                    "id": sid,
                    "email": email.format(k=k, domain=k % 50),
                    "name": f"Reader {k}" if k % 2 else "",
                    "status": SubscriberStatus.active.value,
                    "created_at": now,
                    "updated_at": now,
                    "confirmed_at": now,
                    "confirm_nonce": None,
                    "confirm_sent_at": None,
                    "link_key": secrets.token_urlsafe(12),
                }
            )
            subscriptions.append({"subscriber_id": sid, "digest_id": digest})
            chosen.append({"subscriber_id": sid, "digest_id": digest, "tag_id": tags[k % 3]})
        yield people, subscriptions, chosen


def add_subscribers(
    engine: sa.Engine,
    digest_slug: str,
    count: int,
    now: datetime,
    email: str = "reader{k:07d}@mail{domain:02d}.example.net",
    on_batch: Any = None,
) -> int:
    """`count` active subscribers of `digest_slug` in three topic groups, with ids after
    the highest one in use. Returns the first id."""
    digest = digest_id(engine, digest_slug)
    tags = _tag_ids(engine)
    with engine.connect() as conn:
        first = int(conn.execute(sa.select(sa.func.max(Subscriber.__table__.c.id))).scalar() or 0)
    first += 1
    done = 0
    for people, subscriptions, chosen in _batches(first, count, email, digest, tags, now):
        with engine.begin() as conn:
            conn.execute(sa.insert(Subscriber.__table__), people)
            conn.execute(sa.insert(Subscription.__table__), subscriptions)
            conn.execute(sa.insert(SubscriptionTag.__table__), chosen)
        done += len(people)
        if on_batch is not None:
            on_batch(done)
    if engine.dialect.name == "postgresql":  # explicit ids leave the sequence behind
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "SELECT setval(pg_get_serial_sequence('subscriber', 'id'), "
                "(SELECT max(id) FROM subscriber))"
            )
    return first


def finish(engine: sa.Engine) -> None:
    """Statistics for the planner, and (SQLite) the WAL folded into the database file so
    that the file can be copied."""
    if engine.dialect.name == "sqlite":
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    else:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
