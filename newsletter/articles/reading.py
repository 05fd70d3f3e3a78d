"""What readers browse: the front page (a lead story, then the latest), older stories a page
at a time, the archive by month in the site's time zone, and search.

Pages follow one another by cursor: an opaque token naming an article's position
(published_at, id), not a page number, so a link to "older stories" shows the same
stories however many were published since. Only published articles whose time has come
are shown. Search results are newest first (not ranked): the same order on SQLite and
PostgreSQL, and cursors that stay valid as the index changes.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session

from newsletter import cursors, storage
from newsletter.errors import InvalidInputError, NotFoundError
from newsletter.models import Article, ArticleView
from newsletter.storage import Position, TextQuery

PAGE_SIZE = 15  # stories a page (the front page: the lead and the latest after it)
MAX_QUERY = 200  # characters of a search
MAX_WORDS = 16  # words of a search
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_WORD = re.compile(r"[^\W_]+")  # letters and digits: what both full-text indexes call words


@dataclass(frozen=True)
class StoryPage:
    """One page of stories, newest first. `older`: the cursor of the next page back (None
    on the last); `newer`: None on the first page, "" when the first page is the way
    forward, else the cursor (for `after`) of the page just newer."""

    stories: list[ArticleView]
    older: str | None
    newer: str | None


@dataclass(frozen=True)
class FrontPage:
    """The lead (the newest story of the first page with an image, else the newest; None
    on older pages and on an empty site) and the other stories of the page."""

    lead: ArticleView | None
    page: StoryPage


@dataclass(frozen=True)
class MonthCount:
    year: int
    month: int
    count: int

    @property
    def first_day(self) -> datetime:
        return datetime(self.year, self.month, 1)

    @property
    def path(self) -> str:
        return f"/archive/{self.year:04d}/{self.month:02d}"


@dataclass(frozen=True)
class ArchiveYear:
    year: int
    count: int
    months: list[MonthCount]


@dataclass(frozen=True)
class MonthPage:
    """A month of stories in the site's time zone, with the nearest months that have any."""

    month: MonthCount
    page: StoryPage
    earlier: MonthCount | None
    later: MonthCount | None


@dataclass(frozen=True)
class SearchResults:
    """`text` is the search as the reader wrote it (tidied); `asked` is False for an empty
    search, which shows the form alone."""

    text: str
    asked: bool
    page: StoryPage


# ------------------------------------------------------------------------------ cursors


def cursor_of(article: Article) -> str:
    """The opaque cursor naming `article`'s position."""
    assert article.published_at is not None and article.id is not None
    micros = (article.published_at - _EPOCH) // timedelta(microseconds=1)
    return cursors.encode(micros, article.id)


def read_cursor(cursor: str) -> Position:
    """The position a cursor names; NotFoundError("page", cursor) for anything this site
    did not give out (the link is broken: there is no such page)."""
    missing = NotFoundError("page", cursor[:40])
    key = cursors.decode(cursor, 60)
    if (
        key is None
        or len(key) != 2
        or not all(type(part) is int for part in key)
        or not 0 < key[1] < 2**31  # article.id is a 32-bit integer
    ):
        raise missing
    try:
        at = _EPOCH + timedelta(microseconds=key[0])
    except OverflowError:
        raise missing from None
    return at, key[1]


def _optional(cursor: str | None) -> Position | None:
    return read_cursor(cursor) if cursor else None


# ----------------------------------------------------------------------------- listings


def _page(
    session: Session,
    now: datetime,
    limit: int,
    *,
    before: Position | None,
    after: Position | None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> tuple[list[Article], StoryPage]:
    newer: str | None
    if after is not None:
        rows = storage.published_page(
            session, now, limit + 1, after=after, since=since, until=until
        )
        if len(rows) <= limit:  # nothing newer beyond these: that is the first page
            return _page(session, now, limit, before=None, after=None, since=since, until=until)
        rows = rows[1:]
        older: str | None = cursor_of(rows[-1])
        newer = cursor_of(rows[0])
    else:
        rows = storage.published_page(
            session, now, limit + 1, before=before, since=since, until=until
        )
        older = cursor_of(rows[limit - 1]) if len(rows) > limit else None
        rows = rows[:limit]
        newer = None
        if before is not None:
            than = _position(rows[0]) if rows else before
            ahead = storage.count_newer(session, now, than, limit + 1, until=until)
            if ahead > limit:
                newer = cursor_of(rows[0]) if rows else _cursor_at(before)
            elif ahead > 0 or rows:
                newer = ""
    return rows, StoryPage(storage.views(session, rows), older, newer)


def _position(article: Article) -> Position:
    assert article.published_at is not None and article.id is not None
    return article.published_at, article.id


def _cursor_at(position: Position) -> str:
    at, article_id = position
    return cursor_of(Article(id=article_id, published_at=at, guid="", slug="", title=""))


def front_page(
    engine: sa.Engine,
    now: datetime,
    *,
    before: str | None = None,
    after: str | None = None,
    limit: int = PAGE_SIZE,
) -> FrontPage:
    """The front page, or with `before` (`after`) the page of stories just older (newer)
    than that cursor's. NotFoundError for a cursor this site did not give out."""
    older_than, newer_than = _optional(before), _optional(after)
    with Session(engine) as session:
        _rows, page = _page(session, now, limit, before=older_than, after=newer_than)
    if page.newer is not None or not page.stories:
        return FrontPage(None, page)
    lead = next((s for s in page.stories if s.image), page.stories[0])
    rest = [s for s in page.stories if s is not lead]
    return FrontPage(lead, StoryPage(rest, page.older, page.newer))


# ------------------------------------------------------------------------------ archive


def _month_start(year: int, month: int, tz: ZoneInfo) -> datetime:
    return datetime(year, month, 1, tzinfo=tz).astimezone(UTC)


def _next_month(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


def archive_months(engine: sa.Engine, tz: ZoneInfo, now: datetime) -> list[ArchiveYear]:
    """Every month (in `tz`) with published stories, newest first, grouped by year."""
    with Session(engine) as session:
        span = storage.published_span(session, now)
        if span is None:
            return []
        first, last = (t.astimezone(tz) for t in span)
        months: list[tuple[int, int]] = []
        at = (first.year, first.month)
        while at <= (last.year, last.month):
            months.append(at)
            at = _next_month(*at)
        bounds = [_month_start(y, m, tz) for y, m in [*months, _next_month(*months[-1])]]
        counts = storage.counts_between(session, bounds, now)
    years: dict[int, list[MonthCount]] = {}
    for (year, month), count in zip(reversed(months), reversed(counts), strict=True):
        if count:
            years.setdefault(year, []).append(MonthCount(year, month, count))
    return [ArchiveYear(y, sum(m.count for m in ms), ms) for y, ms in years.items()]


def month_page(
    engine: sa.Engine,
    tz: ZoneInfo,
    year: str,
    month: str,
    now: datetime,
    *,
    before: str | None = None,
    after: str | None = None,
    limit: int = PAGE_SIZE,
) -> MonthPage:
    """The stories of a month (`year` as YYYY, `month` as MM, in `tz`), a page at a time.
    NotFoundError("month", ...) for a month that is not one or has no stories, and for a
    cursor this site did not give out."""
    missing = NotFoundError("month", f"{year[:8]}/{month[:8]}")
    if not (re.fullmatch(r"\d{4}", year) and re.fullmatch(r"0[1-9]|1[0-2]", month)):
        raise missing
    y, m = int(year), int(month)
    if y < 1:
        raise missing
    try:
        since = _month_start(y, m, tz)
        until = _month_start(*_next_month(y, m), tz)
    except (OverflowError, ValueError):  # the edges of datetime's range
        raise missing from None
    older_than, newer_than = _optional(before), _optional(after)
    with Session(engine) as session:
        _rows, page = _page(
            session, now, limit, before=older_than, after=newer_than, since=since, until=until
        )
        count = storage.counts_between(session, [since, until], now)[0]
        if count == 0:
            raise missing
        earlier = storage.published_page(session, now, 1, before=(since, 0))
        later = storage.published_page(session, now, 1, after=(until, 0))
    return MonthPage(
        MonthCount(y, m, count),
        page,
        _month_of(earlier, tz),
        _month_of(later, tz),
    )


def _month_of(rows: Sequence[Article], tz: ZoneInfo) -> MonthCount | None:
    if not rows or rows[0].published_at is None:
        return None
    local = rows[0].published_at.astimezone(tz)
    return MonthCount(local.year, local.month, 0)


# ------------------------------------------------------------------------------- search


def _tidy(text: str) -> str:
    """The search without control characters, lone surrogates and runs of spaces."""
    kept = "".join(" " if unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp") else c for c in text)
    return " ".join(kept.split())


def parse_query(text: str) -> TextQuery | None:
    """A reader's search as words and phrases to find: words match whole words in any case;
    "quoted words" match in that order; a -word (or -"phrase") must be absent. Nothing else
    is an operator: AND, OR, NEAR, * and stray quotes are words or nothing. None for an
    empty search; InvalidInputError("q", ...) for one too long or with nothing to find."""
    if len(text) > MAX_QUERY * 4:  # before any work on 10 KB of text
        raise InvalidInputError("q", f"is too long: use at most {MAX_QUERY} characters")
    tidy = _tidy(text)
    if not tidy:
        return None
    if len(tidy) > MAX_QUERY:
        raise InvalidInputError("q", f"is too long: use at most {MAX_QUERY} characters")
    include: list[tuple[str, ...]] = []
    exclude: list[tuple[str, ...]] = []
    # an unbalanced last quote opens a phrase that runs to the end
    for n, part in enumerate(tidy.split('"')):
        if n % 2:  # inside quotes
            negated = tidy.split('"')[n - 1].endswith("-")
            _add(part, exclude if negated else include)
            continue
        for chunk in part.split():
            if chunk.startswith("-") and len(chunk) > 1:
                _add(chunk[1:], exclude)
            else:
                _add(chunk, include)
    if sum(len(p) for p in include + exclude) > MAX_WORDS:
        raise InvalidInputError("q", f"has too many words: use at most {MAX_WORDS}")
    if not include:
        if exclude:
            raise InvalidInputError("q", "says only what to leave out: add a word to look for")
        raise InvalidInputError("q", "has no letters or digits to look for")
    return TextQuery(tuple(include), tuple(exclude))


def _add(text: str, into: list[tuple[str, ...]]) -> None:
    words = tuple(w.lower() for w in _WORD.findall(text))
    if words and words not in into:
        into.append(words)


def search(
    engine: sa.Engine,
    text: str,
    now: datetime,
    *,
    before: str | None = None,
    limit: int = PAGE_SIZE,
) -> SearchResults:
    """Published stories whose title, summary or body hold the search's words, newest
    first, a page at a time (see `parse_query` for what a search may say). Raises
    InvalidInputError("q", ...) as parse_query does, NotFoundError for a bad cursor."""
    query = parse_query(text)
    tidy = _tidy(text[: MAX_QUERY * 4])
    if query is None:
        return SearchResults("", False, StoryPage([], None, None))
    older_than = _optional(before)
    with Session(engine) as session:
        rows = storage.search_published(session, query, now, limit + 1, before=older_than)
        older = cursor_of(rows[limit - 1]) if len(rows) > limit else None
        stories = storage.views(session, rows[:limit])
    return SearchResults(tidy, True, StoryPage(stories, older, "" if before else None))
