"""schemathesis against /api/v1's own OpenAPI schema: generated requests (valid and
invalid) for every operation, with a write token, must never get a server error, and every
answer must match the schema (status, content type, body)."""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from newsletter.config import Settings
from newsletter.models import Scope
from newsletter.storage import database
from newsletter.web import create_app
from tests.conftest import sqlite_pass_only
from tests.helpers import import_path, write_jsonl

EXAMPLES = 25  # per operation: enough to reach odd inputs, short enough for CI


def _build() -> tuple[Any, str, Path]:
    """The app on its own SQLite database with a few articles, and a write token. Built
    when the module is collected: schemathesis makes one test per operation from the
    schema, which it must read then. (The run is about the HTTP layer, so SQLite does.)"""
    root = Path(tempfile.mkdtemp(prefix="newsletter-api-schema-"))
    config = Settings(root=root)
    url = f"sqlite:///{root / 'api.db'}"
    config = dataclasses.replace(config, database=dataclasses.replace(config.database, url=url))
    engine = database.open_database(config.database_url)
    records = [
        {
            "guid": f"a{i}",
            "slug": f"story-{i}",
            "title": f"Story {i}",
            "body": f"<p>Body {i}</p>",
            "author": "Ana",
            "tags": ["politics" if i % 2 else "economy"],
            "published_at": f"2026-11-{10 + i:02d}T08:00:00+00:00",
        }
        for i in range(6)
    ]
    import_path(engine, config, write_jsonl(root / "seed.jsonl", records))
    app = create_app(config, engine)
    token = app.app.state.services.access.create_token("fuzz", Scope.write)  # type: ignore[attr-defined]
    return app, token, root


APP, TOKEN, ROOT = _build()
schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", APP)


@pytest.fixture(scope="module", autouse=True)
def _cleanup() -> Iterator[None]:
    yield
    shutil.rmtree(ROOT, ignore_errors=True)


@sqlite_pass_only
@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_server_error_and_every_answer_matches_the_schema(case: schemathesis.Case) -> None:
    case.call_and_validate(
        headers={"Authorization": f"Bearer {TOKEN}"},
        checks=[not_a_server_error, response_schema_conformance, content_type_conformance],
    )
