from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import Session, SQLModel

from newsletter import storage
from newsletter.models import Article, Subscriber
from newsletter.storage import database
from newsletter.storage.search import SEARCH_INDEXES, SEARCH_TABLES


def table_names(engine: sa.Engine) -> set[str]:
    """The tables of the models: the search index's own tables (SQLite FTS5, made by
    migration 0011, not models) are left out."""
    return set(sa.inspect(engine).get_table_names()) - {"alembic_version", *SEARCH_TABLES}


@pytest.fixture
def bare_engine(database_url: str) -> Iterator[sa.Engine]:
    """An engine on an empty database (no migration run)."""
    engine = database.create_engine(database_url)
    yield engine
    engine.dispose()


def test_upgrade_from_empty_creates_every_table(bare_engine: sa.Engine) -> None:
    engine = bare_engine
    assert table_names(engine) == set()
    database.upgrade(engine)
    assert table_names(engine) == set(SQLModel.metadata.tables)
    assert database.current_revision(engine) == database.head_revision()


def test_migrations_match_the_models(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    # UTCDateTime is stored as a plain DATETIME; alembic may report that as a type change
    real = [d for d in diff if not (isinstance(d, list) and d and d[0][0] == "modify_type")]
    # the full-text index is the migration's (an FTS5 table, an expression index), not a model's
    real = [
        d
        for d in real
        if not (
            isinstance(d, tuple)
            and (
                (d[0] == "remove_table" and d[1].name in SEARCH_TABLES)
                or (d[0] == "remove_index" and d[1].name in SEARCH_INDEXES)
            )
        )
    ]
    assert real == []


def test_downgrade_to_base_and_upgrade_again(bare_engine: sa.Engine) -> None:
    engine = bare_engine
    database.upgrade(engine)
    database.downgrade(engine, "base")
    assert table_names(engine) == set()
    database.upgrade(engine)
    assert table_names(engine) == set(SQLModel.metadata.tables)


def test_open_database_upgrades_on_start(database_url: str) -> None:
    engine = database.open_database(database_url)
    assert database.current_revision(engine) == database.head_revision()
    database.open_database(database_url).dispose()  # second start: nothing to do, no error
    engine.dispose()


def test_sqlite_runs_with_wal_and_foreign_keys(engine: sa.Engine) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite only")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_naive_datetime_is_refused(engine: sa.Engine) -> None:
    with Session(engine) as session:
        session.add(Article(guid="g", slug="s", title="t", updated_at=datetime(2024, 1, 1)))
        with pytest.raises(sa.exc.StatementError, match="naive datetime"):
            session.commit()


@pytest.mark.parametrize(
    ("kwargs", "index"),
    [
        ({"tag_id": 1}, "ix_article_tag_tag_listed"),
        ({"author_id": 1}, "ix_article_author_status_published"),
        ({}, "ix_article_status_published"),
    ],
)
def test_newest_published_is_one_index_scan(
    engine: sa.Engine, kwargs: dict[str, int], index: str
) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("EXPLAIN QUERY PLAN is SQLite's; PostgreSQL picks plans by statistics")
    statements: list[tuple[str, tuple[object, ...]]] = []

    def capture(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
        statements.append((statement, params))

    sa.event.listen(engine, "before_cursor_execute", capture)
    with Session(engine) as session:
        storage.recent_published(session, 20, **kwargs)
    sa.event.remove(engine, "before_cursor_execute", capture)
    first, params = statements[0]
    with engine.connect() as conn:
        compiled = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + first, params).all()
    plan = " ".join(row[-1] for row in compiled)
    assert index in plan
    assert "TEMP B-TREE" not in plan  # no sort: the index order is the answer order


# ----------------------------------------------------------------------------- migration 0004


def _seed_0003(engine: sa.Engine) -> None:
    """Subscribers as revision 0003 stored them: topics as a string of slugs."""
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO tag (id, slug, name, description) VALUES "
                "(1, 'trade', 'Trade', ''), (2, 'north-korea', 'North Korea', '')"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO digest (id, slug, name, description) VALUES "
                "(1, 'digest', 'Daily', ''), (2, 'weekly', 'Weekly', '')"
            )
        )
        for sid, email, status in [(1, "a@example.org", "active"), (2, "b@example.org", "odd")]:
            conn.execute(
                sa.text(
                    "INSERT INTO subscriber (id, email, name, status, created_at, updated_at, "
                    "link_key) VALUES (:i, :e, '', :s, '2026-01-01', '2026-01-01', 'k')"
                ),
                {"i": sid, "e": email, "s": status},
            )
        conn.execute(
            sa.text(
                "INSERT INTO subscription (subscriber_id, digest_id, tags) VALUES "
                "(1, 1, 'trade north-korea gone'), (1, 2, ''), (2, 1, 'trade')"
            )
        )


def test_upgrade_to_0004_keeps_every_subscription_and_topic(bare_engine: sa.Engine) -> None:
    database.upgrade(bare_engine, "0003")
    _seed_0003(bare_engine)
    database.upgrade(bare_engine)
    with Session(bare_engine) as session:
        choices = storage.subscriptions_of_many(session, [1, 2])
        statuses = {s.email: s.status for s, _ in storage.subscribers(session)}
        digests = [d.slug for d in storage.all_digests(session)]
    # a slug that named no tag any more ("gone") is dropped; the rest are kept
    assert choices == {
        1: {1: frozenset({"trade", "north-korea"}), 2: frozenset()},
        2: {1: frozenset({"trade"})},
    }
    # a status outside the known ones cannot be mailed: it becomes pending
    assert statuses == {"a@example.org": "active", "b@example.org": "pending"}
    assert digests == ["digest", "weekly"]  # the default digest existed: not made twice


def test_downgrade_from_0004_writes_topics_back_as_slugs(bare_engine: sa.Engine) -> None:
    database.upgrade(bare_engine, "0003")
    _seed_0003(bare_engine)
    database.upgrade(bare_engine)
    database.downgrade(bare_engine, "0003")
    with bare_engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT subscriber_id, digest_id, tags FROM subscription ORDER BY 1, 2")
        ).all()
    assert [tuple(r) for r in rows] == [(1, 1, "north-korea trade"), (1, 2, ""), (2, 1, "trade")]


def test_the_default_digest_is_created_once_by_the_migration(engine: sa.Engine) -> None:
    with Session(engine) as session:
        assert [d.slug for d in storage.all_digests(session)] == ["digest"]


def _subscribe_to_tags(engine: sa.Engine, slugs: list[str]) -> int:
    with Session(engine) as session:
        for slug in slugs:
            storage.upsert_tag(session, slug, slug.title(), "")
        subscriber = Subscriber(email="t@example.org", status="active", link_key="k")
        storage.add_subscriber(session, subscriber)
        assert subscriber.id is not None
        digest = storage.all_digests(session)[0].id or 0
        storage.set_subscriptions(session, subscriber.id, {digest: frozenset(slugs)})
        session.commit()
        return subscriber.id


def test_a_renamed_tag_stays_chosen_and_a_deleted_one_drops_out(engine: sa.Engine) -> None:
    sid = _subscribe_to_tags(engine, ["trade", "energy"])
    with Session(engine) as session:
        storage.upsert_tag(session, "trade", "Trade and tariffs", "")
        trade = storage.tag_by_slug(session, "trade")
        assert trade is not None
        trade.slug = "trade-and-tariffs"
        energy = storage.tag_by_slug(session, "energy")
        session.delete(energy)
        session.commit()
    with Session(engine) as session:
        assert list(storage.subscriptions_of(session, sid).values()) == [
            frozenset({"trade-and-tariffs"})
        ]


def test_a_subscriber_status_outside_the_known_ones_is_refused(engine: sa.Engine) -> None:
    with engine.begin() as conn, pytest.raises(sa.exc.IntegrityError):
        conn.execute(
            sa.text(
                "INSERT INTO subscriber (email, name, status, created_at, updated_at, link_key) "
                "VALUES ('x@example.org', '', 'sleeping', '2026-01-01', '2026-01-01', 'k')"
            )
        )


def test_a_digests_subscribers_are_listed_through_an_index(engine: sa.Engine) -> None:
    indexes = {i["name"]: i["column_names"] for i in sa.inspect(engine).get_indexes("subscription")}
    assert indexes["ix_subscription_digest_subscriber"] == ["digest_id", "subscriber_id"]


def test_the_newest_migration_file_names_the_head_revision() -> None:
    # open_database skips Alembic when the database records this revision: the file-name
    # shortcut must agree with Alembic's own idea of head
    assert database.newest_revision() == database.head_revision()
