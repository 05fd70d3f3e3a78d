"""Search over titles, summaries and the text of bodies (storage.search, articles.search,
GET /search): the same answers on SQLite (FTS5) and PostgreSQL (tsvector), an index that
follows every change, and no error for any text a reader may type."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import Session
from starlette.testclient import TestClient

from newsletter import articles, storage
from newsletter.config import Settings
from newsletter.errors import InvalidInputError
from newsletter.storage import database
from newsletter.storage.search import html_text
from tests.helpers import NOW, context


def add(engine: sa.Engine, settings: Settings, *records: dict[str, object]) -> None:
    parsed = [articles.validate(r, f"test#{n}", context(settings)) for n, r in enumerate(records)]
    report = articles.import_articles(engine, parsed, base_url=settings.base_url, now=NOW)
    assert not report.errors, report.errors


def story(n: int, **fields: object) -> dict[str, object]:
    return {
        "guid": f"g{n}",
        "slug": f"story-{n}",
        "title": f"Story {n}",
        "summary": f"Summary {n}.",
        "body": f"<p>Body of story {n}.</p>",
        "published_at": (NOW - timedelta(hours=n)).isoformat(),
        **fields,
    }


def found(engine: sa.Engine, text: str) -> list[str]:
    return [s.slug for s in articles.search(engine, text, NOW).page.stories]


SEOUL = story(
    1,
    title="Kim Jong Un's rhetoric threatens relations",
    summary="Peace talks stall.",
    body='<h2>Border</h2><p>Artillery near the <a href="https://x.test/dmz">demilitarized</a>'
    " zone; officials in Seoul&nbsp;said little. 평화 회담</p>",
)


def test_finds_a_word_only_in_the_body_and_one_in_the_title(
    engine: sa.Engine, settings: Settings
) -> None:
    add(engine, settings, SEOUL, story(2), story(3, title="Jakarta floods"))
    assert found(engine, "artillery") == ["story-1"]
    assert found(engine, "DEMILITARIZED") == ["story-1"]  # any case, inside a link
    assert found(engine, "seoul") == ["story-1"]  # next to an entity
    assert found(engine, "평화") == ["story-1"]  # Korean
    assert found(engine, "rhetoric") == ["story-1"]  # title
    assert found(engine, "talk") == []  # whole words, no stemming
    assert found(engine, "jakarta") == ["story-3"]
    assert found(engine, "story") == ["story-2", "story-3"]  # newest first


def test_markup_is_not_text(engine: sa.Engine, settings: Settings) -> None:
    add(engine, settings, SEOUL)
    for markup in ("href", "h2", "https", "nbsp", "dmz"):
        assert found(engine, markup) == [], markup


def test_phrases_and_exclusions(engine: sa.Engine, settings: Settings) -> None:
    add(engine, settings, SEOUL, story(2, body="<p>Talks on peace resumed.</p>"))
    assert found(engine, '"peace talks"') == ["story-1"]
    assert found(engine, "peace talks") == ["story-1", "story-2"]
    assert found(engine, "peace -artillery") == ["story-2"]
    assert found(engine, 'peace -"peace talks"') == ["story-2"]


def test_unpublished_and_future_articles_are_not_found(
    engine: sa.Engine, settings: Settings
) -> None:
    add(
        engine,
        settings,
        story(1, title="Monsoon due"),
        story(2, title="Monsoon draft", status="draft"),
        story(3, title="Monsoon tomorrow", published_at=(NOW + timedelta(days=1)).isoformat()),
    )
    assert found(engine, "monsoon") == ["story-1"]
    articles.unpublish(engine, "story-1", NOW)
    assert found(engine, "monsoon") == []
    articles.publish(engine, "story-2", NOW)
    assert found(engine, "monsoon") == ["story-2"]


def test_the_index_follows_an_update_and_a_delete(engine: sa.Engine, settings: Settings) -> None:
    add(engine, settings, story(1, body="<p>Typhoon warning.</p>"), story(2))
    assert found(engine, "typhoon") == ["story-1"]
    add(engine, settings, story(1, body="<p>Earthquake warning.</p>"))  # an edit
    assert found(engine, "typhoon") == []
    assert found(engine, "earthquake") == ["story-1"]
    articles.delete(engine, "story-1", NOW)
    assert found(engine, "earthquake") == []
    assert found(engine, "story") == ["story-2"]


def test_results_follow_one_another_by_cursor(engine: sa.Engine, settings: Settings) -> None:
    same = (NOW - timedelta(days=1)).isoformat()
    add(engine, settings, *(story(n, published_at=same if n % 3 else None) for n in range(1, 41)))
    seen: list[str] = []
    before = None
    while True:
        results = articles.search(engine, "story", NOW, before=before, limit=7)
        seen += [s.slug for s in results.page.stories]
        if results.page.older is None:
            break
        before = results.page.older
    assert len(seen) == len(set(seen)) == 40


HOSTILE = [
    '"',
    '"unbalanced quote',
    "story NEAR(peace, 2)",
    "AND OR NOT",
    "*",
    "story*",
    "^story",
    "title:story",
    "'; DROP TABLE article; --",
    "a\x00b",
    "(((",
    "-",
    "--story",
    "\\",
    "%_",
    "x" * 200,
    "😀 ☃",
    "\ud800",
    "story " * 16,
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_searches_answer_without_error(
    engine: sa.Engine, settings: Settings, text: str
) -> None:
    add(engine, settings, story(1))
    try:
        articles.search(engine, text, NOW)
    except InvalidInputError as exc:
        assert exc.field == "q"


def test_operators_are_words(engine: sa.Engine, settings: Settings) -> None:
    add(engine, settings, story(1, title="War or peace"), story(2, title="War and peace"))
    assert found(engine, "war or peace") == ["story-1"]
    assert found(engine, "NEAR story") == []
    assert found(engine, '"war and') == ["story-2"]  # the open quote runs to the end


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("x" * 201, "too long"),
        ("x" * 10_000, "too long"),
        ("-story", "leave out"),
        ("*** !!!", "no letters or digits"),
        (" ".join(f"w{n}" for n in range(17)), "too many words"),
    ],
)
def test_searches_refused_in_words(text: str, reason: str) -> None:
    with pytest.raises(InvalidInputError) as refused:
        articles.reading.parse_query(text)
    assert refused.value.field == "q" and reason in refused.value.reason


def test_search_page_answers_every_query_with_a_page(
    client: TestClient, engine: sa.Engine, settings: Settings
) -> None:
    add(engine, settings, SEOUL)
    empty = client.get("/search")
    assert empty.status_code == 200 and 'name="q"' in empty.text
    hit = client.get("/search", params={"q": "artillery"})
    assert hit.status_code == 200 and "Kim Jong Un" in hit.text
    miss = client.get("/search", params={"q": "volcano"})
    assert miss.status_code == 200 and "No stories found" in miss.text
    for text in ("x" * 10_000, "-x", '"', "NEAR AND *", "a\x00b"):
        answer = client.get("/search", params={"q": text})
        assert answer.status_code in (200, 422), text
        assert answer.headers["content-type"].startswith("text/html")
    long = client.get("/search", params={"q": "x" * 10_000})
    assert long.status_code == 422 and "too long" in long.text
    assert client.get("/search", params={"q": "x", "before": "junk!"}).status_code == 404


def test_search_pages_link_to_the_next(
    client: TestClient, engine: sa.Engine, settings: Settings
) -> None:
    add(engine, settings, *(story(n) for n in range(1, 21)))
    first = client.get("/search", params={"q": "body"})
    assert '<link rel="next"' in first.text and "More results" in first.text
    nxt = first.text.split('<link rel="next" href="')[1].split('"')[0].replace("&amp;", "&")
    second = client.get(nxt)
    assert second.status_code == 200 and "story-20" in second.text
    assert 'story-1"' not in second.text


def test_html_text_strips_tags_and_never_raises() -> None:
    assert html_text("<p>a&amp;b<br/>c</p>").split() == ["a&b", "c"]
    assert html_text(None) == ""
    assert html_text("<unclosed") == "<unclosed"


def test_migration_backfills_existing_articles_and_is_reversible(
    engine: sa.Engine, settings: Settings
) -> None:
    add(engine, settings, SEOUL)
    database.downgrade(engine, "0010")
    add(engine, settings, story(2, body="<p>Added without an index.</p>"))
    database.upgrade(engine)
    assert found(engine, "artillery") == ["story-1"]
    assert found(engine, "index") == ["story-2"]


def test_postgresql_search_uses_the_gin_index(engine: sa.Engine, settings: Settings) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's planner")
    add(engine, settings, SEOUL)
    query = storage.TextQuery((("artillery",),))
    with Session(engine) as session:
        session.execute(sa.text("SET LOCAL enable_seqscan = off"))
        compiled = _compiled(session, query)
        plan = "\n".join(r[0] for r in session.execute(sa.text("EXPLAIN " + compiled)))
    assert "ix_article_search" in plan


def _compiled(session: Session, query: storage.TextQuery) -> str:
    from sqlmodel import col, select

    from newsletter.models import Article
    from newsletter.storage.search import SEARCH_DOCUMENT, _websearch

    text = _websearch(query).replace("'", "''")
    statement = select(col(Article.id)).where(
        sa.text(f"{SEARCH_DOCUMENT} @@ websearch_to_tsquery('simple', '{text}')")
    )
    return str(statement.compile(session.get_bind(), compile_kwargs={"literal_binds": True}))
