"""article search: full-text index of titles, summaries and the text of bodies

SQLite: an FTS5 table article_fts (rowid = article.id) kept by triggers on article, filled
from the articles already stored. Its triggers call newsletter_html_text(), which
newsletter.storage.search gives every SQLite connection. A later migration that rebuilds
article (batch mode: copy, drop, rename) drops these triggers with it and must create them
again.
PostgreSQL: an expression GIN index, which the database keeps in step by itself; the
expression is the one newsletter.storage.search.SEARCH_DOCUMENT queries with.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ROW = (
    "(rowid, title, summary, body) "
    "VALUES (new.id, new.title, new.summary, newsletter_html_text(new.body_html))"
)

SQLITE_UP = [
    "CREATE VIRTUAL TABLE article_fts USING fts5("
    "title, summary, body, tokenize = 'unicode61 remove_diacritics 0')",
    f"CREATE TRIGGER article_fts_insert AFTER INSERT ON article BEGIN "
    f"INSERT INTO article_fts {_ROW}; END",
    "CREATE TRIGGER article_fts_delete AFTER DELETE ON article BEGIN "
    "DELETE FROM article_fts WHERE rowid = old.id; END",
    f"CREATE TRIGGER article_fts_update AFTER UPDATE OF title, summary, body_html ON article "
    f"BEGIN DELETE FROM article_fts WHERE rowid = old.id; INSERT INTO article_fts {_ROW}; END",
    "INSERT INTO article_fts (rowid, title, summary, body) "
    "SELECT id, title, summary, newsletter_html_text(body_html) FROM article",
]
SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS article_fts_update",
    "DROP TRIGGER IF EXISTS article_fts_delete",
    "DROP TRIGGER IF EXISTS article_fts_insert",
    "DROP TABLE IF EXISTS article_fts",
]
POSTGRESQL_UP = [
    "CREATE INDEX ix_article_search ON article USING gin ("
    "to_tsvector('simple'::regconfig, title || ' ' || summary || ' ' || "
    "regexp_replace(body_html, '<[^>]*>', ' ', 'g')))",
]
POSTGRESQL_DOWN = ["DROP INDEX IF EXISTS ix_article_search"]


def _run(statements: list[str]) -> None:
    for statement in statements:
        op.execute(statement)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _run(POSTGRESQL_UP)
    else:
        _register_function()  # the backfill calls it (whatever made this connection)
        _run(SQLITE_UP)


def downgrade() -> None:
    _run(POSTGRESQL_DOWN if op.get_bind().dialect.name == "postgresql" else SQLITE_DOWN)


def _register_function() -> None:
    from newsletter.storage.search import HTML_TEXT_FUNCTION, html_text

    raw = op.get_bind().connection.driver_connection
    assert raw is not None
    raw.create_function(HTML_TEXT_FUNCTION, 1, html_text, deterministic=True)
