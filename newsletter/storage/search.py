"""What readers browse: published articles a page at a time by keyset position, months with
counts, and full-text search. Callers pass a Session and own the transaction.

Every listing is newest first, ordered by (published_at, id): a position names an article,
so the page after it is the same whatever was published meanwhile, and articles sharing a
publication time are told apart by id.

Full-text search (migration 0011) indexes title, summary and the text of body_html:
- SQLite: table article_fts (FTS5, unicode61 without removing diacritics) kept by triggers
  on article; the triggers take the body's text through the SQL function
  `newsletter_html_text`, which every SQLite connection gets here (see `_add_functions`).
- PostgreSQL: the GIN index ix_article_search on `SEARCH_DOCUMENT` (the 'simple' text
  search configuration: no stemming, no stop words, like the SQLite tokenizer), which
  PostgreSQL keeps in step itself.
Both strip tags the same way (every `<...>` becomes a space), so a word matches on both or
on neither. Only published articles due by `now` are found: the index holds every article
and the status is read at query time, so publishing and unpublishing need no index work.
"""

from __future__ import annotations

import html
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from newsletter.models import Article, ArticleStatus

Position = tuple[datetime, int]
"""An article's place in a listing: its published_at and id."""

HTML_TEXT_FUNCTION = "newsletter_html_text"
SEARCH_DOCUMENT = (
    "to_tsvector('simple'::regconfig, title || ' ' || summary || ' ' || "
    "regexp_replace(body_html, '<[^>]*>', ' ', 'g'))"
)
"""The indexed expression of ix_article_search, written exactly as migration 0011 does:
PostgreSQL uses an expression index only for a query that repeats the expression."""

# the search index's own tables on SQLite (the FTS5 table and its shadow tables)
SEARCH_TABLES = frozenset(
    {"article_fts"}
    | {f"article_fts_{part}" for part in ("content", "data", "idx", "docsize", "config")}
)

# the search index on PostgreSQL (an expression index: not on the models)
SEARCH_INDEXES = frozenset({"ix_article_search"})

_TAG = re.compile(r"<[^>]*>")


def html_text(fragment: object) -> str:
    """The text of an HTML fragment for the index: tags become spaces, entities characters.
    Never raises: it runs inside SQLite's triggers, where an error would refuse the write."""
    if not isinstance(fragment, str):
        return ""
    return html.unescape(_TAG.sub(" ", fragment))


def _add_functions(dbapi_conn: Any, _record: Any) -> None:
    if isinstance(dbapi_conn, sqlite3.Connection):
        dbapi_conn.create_function(HTML_TEXT_FUNCTION, 1, html_text, deterministic=True)


# Every SQLite connection of every engine (the service's, the migrations', a test's), not
# only those database.create_engine makes: the triggers of article need the function, and
# a write through a connection without it fails rather than leave the index behind.
sa.event.listen(sa.Engine, "connect", _add_functions)


@dataclass(frozen=True)
class TextQuery:
    """What a reader asked for: every phrase in `include` (a phrase is one or more words,
    in that order), none in `exclude`. Words contain letters and digits only."""

    include: tuple[tuple[str, ...], ...]
    exclude: tuple[tuple[str, ...], ...] = ()


def _fts5_match(query: TextQuery) -> str:
    def phrase(words: tuple[str, ...]) -> str:
        return '"' + " ".join(words) + '"'  # words hold no quotes: nothing to escape

    text = " AND ".join(phrase(p) for p in query.include)
    for words in query.exclude:
        text = f"({text}) NOT {phrase(words)}"
    return text


def _websearch(query: TextQuery) -> str:
    # every word quoted: a reader's "or" is a word to find, not websearch's operator
    def phrase(words: tuple[str, ...]) -> str:
        return '"' + " ".join(words) + '"'

    return " ".join([phrase(p) for p in query.include] + ["-" + phrase(p) for p in query.exclude])


def _visible(now: datetime) -> list[sa.ColumnElement[bool]]:
    return [
        col(Article.status) == ArticleStatus.published,
        col(Article.published_at).is_not(None),
        col(Article.published_at) <= now,
    ]


def _older(before: Position) -> sa.ColumnElement[bool]:
    at, article_id = before
    return sa.or_(
        col(Article.published_at) < at,
        sa.and_(col(Article.published_at) == at, col(Article.id) < article_id),
    )


def _newer(after: Position) -> sa.ColumnElement[bool]:
    at, article_id = after
    return sa.or_(
        col(Article.published_at) > at,
        sa.and_(col(Article.published_at) == at, col(Article.id) > article_id),
    )


def published_page(
    session: Session,
    now: datetime,
    limit: int,
    *,
    before: Position | None = None,
    after: Position | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[Article]:
    """At most `limit` published articles due by `now`, newest first: those just older than
    `before`, or (with `after`) the `limit` just newer than `after`. `since` and `until`
    bound published_at to [since, until). One range scan of ix_article_status_published."""
    query = select(Article).where(*_visible(now))
    if since is not None:
        query = query.where(col(Article.published_at) >= since)
    if until is not None:
        query = query.where(col(Article.published_at) < until)
    if after is not None:
        query = query.where(_newer(after)).order_by(
            col(Article.published_at).asc(), col(Article.id).asc()
        )
        return list(reversed(session.exec(query.limit(limit)).all()))
    if before is not None:
        query = query.where(_older(before))
    query = query.order_by(col(Article.published_at).desc(), col(Article.id).desc())
    return list(session.exec(query.limit(limit)))


def count_newer(
    session: Session, now: datetime, than: Position, most: int, *, until: datetime | None = None
) -> int:
    """How many published articles due by `now` (and before `until`) are newer than
    `than`, counting no further than `most`."""
    inner = select(Article.id).where(*_visible(now), _newer(than))
    if until is not None:
        inner = inner.where(col(Article.published_at) < until)
    counted = sa.select(sa.func.count()).select_from(inner.limit(most).subquery())
    return int(session.execute(counted).scalar_one())


def published_span(session: Session, now: datetime) -> tuple[datetime, datetime] | None:
    """The oldest and newest publication times of the articles published by `now`: the two
    ends of ix_article_status_published (min() and max() would lose the column's type on
    SQLite and come back as text)."""
    when = col(Article.published_at)
    query = select(when).where(*_visible(now))
    oldest = session.exec(query.order_by(when.asc()).limit(1)).first()
    newest = session.exec(query.order_by(when.desc()).limit(1)).first()
    if oldest is None or newest is None:
        return None
    return oldest, newest


def counts_between(session: Session, bounds: Sequence[datetime], now: datetime) -> list[int]:
    """The number of published articles due by `now` in each interval [bounds[i],
    bounds[i + 1]) of the ascending `bounds`: one query per 240 intervals (20 years of
    months), whatever the number of articles."""
    counts: list[int] = []
    for start in range(0, max(len(bounds) - 1, 0), _BUCKETS):
        counts += _counts(session, bounds[start : start + _BUCKETS + 1], now)
    return counts


_BUCKETS = 240


def _counts(session: Session, bounds: Sequence[datetime], now: datetime) -> list[int]:
    published = col(Article.published_at)
    bucket = sa.case(*((published < edge, i) for i, edge in enumerate(bounds[1:])), else_=-1)
    rows = session.execute(
        sa.select(bucket, sa.func.count())
        .where(*_visible(now), published >= bounds[0], published < bounds[-1])
        .group_by(bucket)
    )
    counts = [0] * (len(bounds) - 1)
    for index, count in rows:
        if 0 <= index < len(counts):
            counts[index] = int(count)
    return counts


def search_published(
    session: Session,
    query: TextQuery,
    now: datetime,
    limit: int,
    *,
    before: Position | None = None,
) -> list[Article]:
    """At most `limit` published articles due by `now` whose title, summary or body text
    hold every phrase of `query` and none of its excluded ones, newest first, just older
    than `before` when given."""
    if not query.include:
        return []
    dialect = session.get_bind().dialect.name
    statement = select(Article).where(*_visible(now))
    if dialect == "postgresql":
        statement = statement.where(
            sa.text(
                f"{SEARCH_DOCUMENT} @@ websearch_to_tsquery('simple', :search_query)"
            ).bindparams(search_query=_websearch(query))
        )
    else:
        matching = sa.text(
            "SELECT rowid FROM article_fts WHERE article_fts MATCH :search_query"
        ).bindparams(search_query=_fts5_match(query))
        statement = statement.where(col(Article.id).in_(matching.columns(sa.column("rowid"))))
    if before is not None:
        statement = statement.where(_older(before))
    statement = statement.order_by(col(Article.published_at).desc(), col(Article.id).desc())
    return list(session.exec(statement.limit(limit)))
