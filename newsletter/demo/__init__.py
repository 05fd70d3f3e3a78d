"""The demo publication: a news magazine on Asian affairs, loaded by `newsletter demo`.

articles.json gives each article's age in hours rather than a date, so the demo always looks
fresh: dates are placed relative to the moment of loading. Loading is idempotent: articles
already stored (by guid) are left as they are.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from newsletter import articles
from newsletter.config import Settings

DATA = Path(__file__).resolve().parent / "articles.json"


def load(engine: sa.Engine, settings: Settings, now: datetime) -> articles.ImportReport:
    data: dict[str, Any] = json.loads(DATA.read_text(encoding="utf-8"))
    authors = {a["slug"]: a for a in data["authors"]}
    articles.define_authors_and_tags(engine, data["authors"], data["tags"], now)
    ctx = articles.ImportContext.from_settings(settings)
    # Whole minutes, so that two loads in the same run agree to the second.
    anchor = now.replace(second=0, microsecond=0)
    records = []
    for number, item in enumerate(data["articles"], start=1):
        record = {k: v for k, v in item.items() if k != "age_hours"}
        record["published_at"] = (anchor - timedelta(hours=item["age_hours"])).isoformat()
        record["author"] = {"name": authors[item["author"]]["name"], "slug": item["author"]}
        records.append(articles.validate(record, f"demo#{number}", ctx))
    return articles.import_articles(
        engine, records, base_url=settings.base_url, now=now, create_only=True
    )
