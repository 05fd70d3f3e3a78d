from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from newsletter.cli import main
from newsletter.storage import database
from tests.helpers import serving


def run(tmp_path: Path, *args: str, database_url: str | None = None) -> Result:
    env = {"NEWSLETTER_DATABASE__URL": database_url} if database_url else {}
    return CliRunner().invoke(main, ["--config", str(tmp_path / "config.toml"), *args], env=env)


@pytest.fixture
def site(tmp_path: Path, database_url: str) -> Path:
    result = run(tmp_path, "init", str(tmp_path), database_url=database_url)
    assert result.exit_code == 0, result.output
    return tmp_path


def test_init_writes_config_and_creates_database(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["init", str(tmp_path / "site")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "site" / "config.toml").exists()
    assert (tmp_path / "site" / "newsletter.db").exists()
    again = CliRunner().invoke(main, ["init", str(tmp_path / "site")])
    assert again.exit_code == 2
    assert "already exists" in again.output


def test_bad_config_stops_the_command_with_the_key_named(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("[smtp]\nsecurity = 'ssl'\n")
    result = run(tmp_path, "articles", "list")
    assert result.exit_code == 2
    assert "[smtp] security = 'ssl' is not allowed" in result.output


def test_config_option_is_accepted_after_the_subcommand(site: Path, database_url: str) -> None:
    result = CliRunner().invoke(
        main,
        ["articles", "list", "--config", str(site / "config.toml")],
        env={"NEWSLETTER_DATABASE__URL": database_url},
    )
    assert result.exit_code == 0, result.output
    assert "no articles" in result.output


def test_import_reports_counts_and_fails_on_bad_records(site: Path, database_url: str) -> None:
    data = site / "posts.jsonl"
    data.write_text(
        json.dumps({"guid": "a", "title": "Good one", "body": "<p>x</p>"})
        + "\n"
        + json.dumps({"guid": "b", "title": "", "body": "<p>y</p>"})
        + "\n"
    )
    result = run(site, "articles", "import", str(data), database_url=database_url)
    assert result.exit_code == 1
    assert f"{data}:2: title: missing or empty" in result.output
    assert "1 created, 0 updated, 0 unchanged, 1 failed" in result.output
    listed = run(site, "articles", "list", database_url=database_url)
    assert "good-one" in listed.output


def test_import_of_unreadable_source_names_it(site: Path, database_url: str) -> None:
    result = run(site, "articles", "import", str(site / "nope.json"), database_url=database_url)
    assert result.exit_code == 1
    assert "nope.json: cannot read" in result.output


def test_publish_unpublish_delete(site: Path, database_url: str) -> None:
    data = site / "p.json"
    data.write_text(json.dumps([{"guid": "g", "slug": "story", "title": "Story"}]))
    assert run(site, "articles", "import", str(data), database_url=database_url).exit_code == 0
    assert run(site, "articles", "unpublish", "story", database_url=database_url).exit_code == 0
    assert "draft" in run(site, "articles", "list", database_url=database_url).output
    assert run(site, "articles", "publish", "story", database_url=database_url).exit_code == 0
    assert "published" in run(site, "articles", "list", database_url=database_url).output
    assert run(site, "articles", "delete", "story", database_url=database_url).exit_code == 0
    missing = run(site, "articles", "publish", "story", database_url=database_url)
    assert missing.exit_code == 1
    assert "no article 'story'" in missing.output


def test_demo_loads_the_publication_idempotently(site: Path, database_url: str) -> None:
    first = run(site, "demo", database_url=database_url)
    assert first.exit_code == 0, first.output
    assert "60 created" in first.output
    second = run(site, "demo", database_url=database_url)
    assert "0 created, 0 updated, 60 unchanged, 0 failed" in second.output
    listed = run(site, "articles", "list", "--limit", "100", database_url=database_url).output
    assert listed.count("published") == 60
    assert "Kim Jong Un's Rhetoric Threatens Relations with South Korea" in listed


def test_db_commands(site: Path, database_url: str) -> None:
    head = database.head_revision()
    assert f"current: {head}" in run(site, "db", "current", database_url=database_url).output
    down = run(site, "db", "downgrade", "base", "--yes", database_url=database_url)
    assert "database at revision None" in down.output
    up = run(site, "db", "upgrade", database_url=database_url)
    assert f"database at revision {head}" in up.output


def test_serve_answers_the_home_page_over_http(site: Path, database_url: str) -> None:
    assert run(site, "demo", database_url=database_url).exit_code == 0
    with serving(site / "config.toml", {"NEWSLETTER_DATABASE__URL": database_url}) as base:
        assert httpx.get(base + "/healthz").json() == {"status": "ok"}
        home = httpx.get(base + "/")
        assert home.status_code == 200
        assert "Kim Jong Un" in home.text
        assert "Rizky Pratama" in home.text
