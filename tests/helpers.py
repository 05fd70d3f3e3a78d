"""Small helpers shared by tests."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from newsletter import articles, importer
from newsletter.config import Settings

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def context(settings: Settings) -> importer.ImportContext:
    return importer.ImportContext(
        base_url=settings.base_url,
        timezone=settings.site.tz,
        max_body_bytes=settings.articles.max_body_bytes,
    )


def import_path(
    engine: sa.Engine, settings: Settings, path: Path | str, now: datetime = NOW
) -> articles.ImportReport:
    """Import every source at `path` the way `newsletter articles import` does."""
    total = articles.ImportReport()
    for source in importer.open_source(str(path)):
        report = articles.import_articles(
            engine, importer.read(source, context(settings)), base_url=settings.base_url, now=now
        )
        total.created += report.created
        total.updated += report.updated
        total.unchanged += report.unchanged
        total.errors += report.errors
    return total


def write_jsonl(path: Path, records: Iterable[Mapping[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return path
