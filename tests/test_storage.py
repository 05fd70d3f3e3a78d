from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import Session, SQLModel

from newsletter import storage
from newsletter.storage import database
from newsletter.models import Article


def table_names(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}


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
